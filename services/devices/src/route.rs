//! Where a simulated device's long-lived stream goes: the node that owns the device.
//!
//! A device starts at its home connection (its group's, over the configured addresses) and asks
//! to be redirected (`centinela_proto::redirect`). A node that does not own it names the owner;
//! the device reconnects there, on a connection it shares with the other devices that node owns
//! ([`Owners`]: up to [`DEVICE_STREAMS_PER_CONNECTION`] streams each, then another). When the
//! owner's stream ends naming a new owner (a rebalance) it follows again; when the stream
//! breaks (the owner died) it goes home, where a live node names the new owner.
//!
//! An owner's address the device cannot reach (a node advertises an address inside its own
//! network, which devices outside it may not route to, as in a Kubernetes pod network behind
//! a load balancer) is remembered for [`UNREACHABLE_OWNER_FORGET`]: meanwhile a redirect to it
//! is not followed, and the device reconnects at home without asking, where the node relays
//! its stream to the owner (the proxy every device had before redirects). Served either way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use centinela_proto::client::Failover;
use centinela_proto::redirect;

use crate::limits::{
    DEVICE_STREAMS_PER_CONNECTION, REDIRECTS_IN_A_ROW_MAX, UNREACHABLE_OWNER_FORGET,
};

/// The connections to the owners the devices were sent to, shared by every device of a run.
#[derive(Clone)]
pub struct Owners {
    base: Failover,
    connections: Arc<Mutex<HashMap<String, Vec<Shared>>>>,
    /// Owners' addresses a device failed to reach, and when.
    unreachable: Arc<Mutex<HashMap<String, Instant>>>,
    /// One connection per owner for the devices' unary calls sent there (buttons'
    /// heartbeats), apart from the streams' connections.
    unary: Arc<Mutex<HashMap<String, Failover>>>,
}

/// One connection to an owner, and how many device streams ride on it.
#[derive(Clone)]
struct Shared {
    failover: Failover,
    streams: Arc<AtomicUsize>,
}

/// A device's place on a shared connection to its owner; given back on drop.
struct Slot {
    failover: Failover,
    streams: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Owners {
    /// Connections made like `base`'s (credentials, TLS, timeouts).
    pub fn new(base: &Failover) -> Self {
        Self {
            base: base.clone(),
            connections: Arc::default(),
            unreachable: Arc::default(),
            unary: Arc::default(),
        }
    }

    /// The connection the devices' unary calls to `url` share.
    pub(crate) fn unary(&self, url: &str) -> Failover {
        let mut unary = self.unary.lock().expect("not poisoned");
        // Every heartbeat asks: the key is copied only the first time.
        if let Some(failover) = unary.get(url) {
            return failover.clone();
        }
        let failover = self.base.to(url);
        unary.insert(url.to_string(), failover.clone());
        failover
    }

    /// A place on a connection to `url` with room for one more stream.
    fn slot(&self, url: &str) -> Slot {
        let mut connections = self.connections.lock().expect("not poisoned");
        let list = connections.entry(url.to_string()).or_default();
        let shared = match list
            .iter()
            .find(|c| c.streams.load(Ordering::Relaxed) < DEVICE_STREAMS_PER_CONNECTION)
        {
            Some(shared) => shared.clone(),
            None => {
                let shared = Shared {
                    failover: self.base.to(url),
                    streams: Arc::default(),
                };
                list.push(shared.clone());
                shared
            }
        };
        shared.streams.fetch_add(1, Ordering::Relaxed);
        Slot {
            failover: shared.failover,
            streams: shared.streams,
        }
    }

    /// A device could not reach `url`: not followed there for a while.
    pub(crate) fn mark_unreachable(&self, url: &str) {
        let mut unreachable = self.unreachable.lock().expect("not poisoned");
        unreachable.insert(url.to_string(), Instant::now());
    }

    /// Whether a device failed to reach `url` within [`UNREACHABLE_OWNER_FORGET`].
    pub(crate) fn is_unreachable(&self, url: &str) -> bool {
        let mut unreachable = self.unreachable.lock().expect("not poisoned");
        unreachable.retain(|_, at| at.elapsed() < UNREACHABLE_OWNER_FORGET);
        unreachable.contains_key(url)
    }

    /// Streams on connections to `url` (for tests).
    #[cfg(test)]
    fn streams_to(&self, url: &str) -> Vec<usize> {
        let connections = self.connections.lock().expect("not poisoned");
        connections.get(url).map_or_else(Vec::new, |list| {
            list.iter()
                .map(|c| c.streams.load(Ordering::Relaxed))
                .collect()
        })
    }
}

/// One device's route: home, or the owner a node named.
pub struct Route {
    home: Failover,
    owners: Owners,
    owner: Option<(redirect::Owner, Slot)>,
    /// Redirects followed since a stream was last served: a bound, so two nodes that disagree
    /// about the owner for a moment cannot bounce a device back and forth without a pause.
    redirects: u32,
    /// Whether the device asks to be redirected: false while the owner it was sent to is
    /// unreachable from here (the node at home relays its stream instead).
    asks: bool,
    /// Streams failed since one was last served: each pause is longer ([`crate::retry_pause`]).
    failures: u32,
}

impl Route {
    pub fn new(home: Failover, owners: Owners) -> Self {
        Self {
            home,
            owners,
            owner: None,
            redirects: 0,
            asks: true,
            failures: 0,
        }
    }

    /// Whether the device's next stream asks to be redirected to its owner.
    pub fn asks(&self) -> bool {
        self.asks
    }

    /// The connection the device uses now.
    pub fn failover(&self) -> &Failover {
        self.owner
            .as_ref()
            .map_or(&self.home, |(_, slot)| &slot.failover)
    }

    /// Whether the device is on its owner's connection (a node named it).
    #[cfg(test)]
    fn at_owner(&self) -> Option<&redirect::Owner> {
        self.owner.as_ref().map(|(owner, _)| owner)
    }

    /// The stream was opened and served: redirects and failures count from zero again.
    pub fn served(&mut self) {
        self.redirects = 0;
        self.failures = 0;
    }

    /// How long `device` pauses before its next stream, after one more that failed with
    /// `status` (and was not a redirect followed).
    pub fn pause(&mut self, device: &str, status: &tonic::Status) -> Duration {
        self.failures = self.failures.saturating_add(1);
        crate::retry_pause(device, self.failures, status)
    }

    /// After the stream ended with `status`: follows a redirect (returns true: reconnect now)
    /// or goes home (false: back off first, then reconnect at home).
    pub fn after(&mut self, device: &str, status: &tonic::Status) -> bool {
        if let Some(owner) = redirect::owner_of(status)
            && self.redirects < REDIRECTS_IN_A_ROW_MAX
        {
            self.redirects += 1;
            let url = owner.url_like(self.home.current_addr());
            if self.owners.is_unreachable(&url) {
                tracing::debug!(device, owner = %owner.node, %url, "devices: owner unreachable from here; relayed at home");
                self.owner = None;
                self.asks = false;
                return true;
            }
            tracing::debug!(device, owner = %owner.node, %url, "devices: following the owner");
            let slot = self.owners.slot(&url);
            self.owner = Some((owner, slot));
            return true;
        }
        if self.owner.is_some() && answered_busy(status) {
            // The owner answered and is busy: the device stays with it and comes back after
            // its pause. Going home would cost a redirect per retry, and counting the owner
            // unreachable would relay every device sent to it through another node.
            tracing::debug!(device, %status, "devices: owner busy; staying");
            self.redirects = 0;
            return false;
        }
        if let Some((owner, slot)) = self.owner.take() {
            // Sent there and never served, or served by something that is not a node's
            // device API (HTTP 404: another service answers at that address from here): the
            // owner is not reachable at it. Not when the redirects ran out: that is nodes
            // disagreeing about the owner for a moment (one joining sees the member set
            // before its own entry), and the owner answered.
            let bounced = redirect::owner_of(status).is_some();
            if !bounced && (self.redirects > 0 || status.code() == tonic::Code::Unimplemented) {
                let url = owner.url_like(self.home.current_addr());
                tracing::debug!(device, %url, %status, "devices: owner not reached; going home");
                self.owners.mark_unreachable(&url);
            } else {
                tracing::debug!(device, %status, "devices: owner's stream lost; going home");
            }
            drop(slot);
        }
        self.redirects = 0;
        self.asks = true;
        false
    }
}

/// Whether `status` is a live node's answer that it is busy: its attach admission refused the
/// stream (`RESOURCE_EXHAUSTED`), or it did not answer within the call's deadline.
fn answered_busy(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::ResourceExhausted | tonic::Code::DeadlineExceeded
    )
}

/// Whether `status` is a node failure the connection should move on from: not a redirect,
/// which names a live node that is simply not the owner, and not a deadline, which is a busy
/// node (its connection's pings, every 500 ms, tell a dead one). Moving on from a busy node
/// opened a connection per deadline: at 100,000 devices the simulator held ~4,000 connections
/// where ~30 carry its streams.
pub fn is_node_failure(status: &tonic::Status) -> bool {
    centinela_proto::client::is_node_failure(status)
        && redirect::owner_of(status).is_none()
        && status.code() != tonic::Code::DeadlineExceeded
}

#[cfg(test)]
mod tests {
    use centinela_proto::client::{Credentials, parse_addrs};

    use super::*;

    fn redirect_to(node: &str, addr: &str) -> tonic::Status {
        redirect::status(
            "camera",
            "C01",
            &redirect::Owner {
                node: node.into(),
                addr: addr.into(),
            },
        )
    }

    #[test]
    fn a_device_follows_the_owner_and_goes_home_when_its_stream_breaks() {
        let home = Failover::new(
            parse_addrs("a:1,b:2").unwrap(),
            Credentials::new(None).unwrap(),
        );
        let owners = Owners::new(&home);
        let mut route = Route::new(home.clone(), owners.clone());
        assert_eq!(route.failover().current_addr(), "http://a:1");
        assert!(route.after("C01", &redirect_to("n2", "b:2")));
        assert_eq!(route.failover().current_addr(), "http://b:2");
        assert_eq!(route.at_owner().unwrap().node, "n2");
        assert_eq!(owners.streams_to("http://b:2"), vec![1]);
        // A rebalance names another owner: the slot moves with the device.
        assert!(route.after("C01", &redirect_to("n3", "c:3")));
        assert_eq!(owners.streams_to("http://b:2"), vec![0]);
        assert_eq!(owners.streams_to("http://c:3"), vec![1]);
        // The owner died: home again, and the slot is given back.
        assert!(!route.after("C01", &tonic::Status::unavailable("connection reset")));
        assert_eq!(route.failover().current_addr(), "http://a:1");
        assert_eq!(owners.streams_to("http://c:3"), vec![0]);
        assert!(!is_node_failure(&redirect_to("n2", "b:2")));
        assert!(is_node_failure(&tonic::Status::unavailable("gone")));
    }

    #[test]
    fn an_owner_not_reached_is_not_followed_again_and_the_device_is_relayed_at_home() {
        let home = Failover::new(parse_addrs("a:1").unwrap(), Credentials::new(None).unwrap());
        let owners = Owners::new(&home);
        let mut route = Route::new(home.clone(), owners.clone());
        assert!(route.asks());
        assert!(route.after("C01", &redirect_to("n2", "10.0.0.2:7401")));
        // The connect to the owner failed before any stream was served there.
        assert!(!route.after("C01", &tonic::Status::unavailable("no route to host")));
        assert_eq!(route.failover().current_addr(), "http://a:1");
        // The home node names the same owner again: not followed; reconnect at home now,
        // without asking, so the node relays the stream.
        assert!(route.after("C01", &redirect_to("n2", "10.0.0.2:7401")));
        assert_eq!(route.failover().current_addr(), "http://a:1");
        assert!(!route.asks());
        // Another device is not sent there either; an owner reached and served is followed.
        let mut other = Route::new(home.clone(), owners.clone());
        assert!(other.after("C02", &redirect_to("n2", "10.0.0.2:7401")));
        assert!(!other.asks());
        let mut third = Route::new(home.clone(), owners);
        assert!(third.after("C03", &redirect_to("n3", "b:2")));
        third.served();
        assert!(!third.after("C03", &tonic::Status::unavailable("connection reset")));
        assert!(third.after("C03", &redirect_to("n3", "b:2")));
        assert!(third.asks());
        assert_eq!(third.failover().current_addr(), "http://b:2");
        // Something else answers at the owner's address (a 404 once the stream opened).
        third.served();
        let not_ours = tonic::Status::unimplemented("grpc-status header missing, 404");
        assert!(!third.after("C03", &not_ours));
        assert!(third.after("C03", &redirect_to("n3", "b:2")));
        assert!(!third.asks());
    }

    #[test]
    fn a_device_refused_or_kept_waiting_by_its_owner_stays_with_it() {
        let home = Failover::new(parse_addrs("a:1").unwrap(), Credentials::new(None).unwrap());
        let owners = Owners::new(&home);
        let mut route = Route::new(home.clone(), owners.clone());
        assert!(route.after("C01", &redirect_to("n2", "b:2")));
        let busy = [
            tonic::Status::resource_exhausted("attaching 128 device channels; retry in 4 s"),
            tonic::Status::deadline_exceeded("timeout expired"),
        ];
        for status in &busy {
            // Back off, then try the owner again: not home, and not unreachable.
            assert!(!route.after("C01", status), "{status:?}");
            assert_eq!(route.failover().current_addr(), "http://b:2");
            assert!(route.asks());
            assert!(
                !is_node_failure(status),
                "{status:?}: a busy node is not a dead one"
            );
        }
        let mut other = Route::new(home.clone(), owners);
        assert!(other.after("C02", &redirect_to("n2", "b:2")));
        assert!(other.asks(), "n2 is followed by the other devices too");
        assert_eq!(other.failover().current_addr(), "http://b:2");
        // A connection that broke is another matter: home, as before.
        assert!(!route.after("C01", &tonic::Status::unavailable("connection reset")));
        assert_eq!(route.failover().current_addr(), "http://a:1");
    }

    #[test]
    fn redirects_in_a_row_are_bounded() {
        let home = Failover::new(parse_addrs("a:1").unwrap(), Credentials::new(None).unwrap());
        let mut route = Route::new(home.clone(), Owners::new(&home));
        for _ in 0..REDIRECTS_IN_A_ROW_MAX {
            assert!(route.after("C01", &redirect_to("n2", "b:2")));
        }
        assert!(!route.after("C01", &redirect_to("n2", "b:2")));
        assert_eq!(route.failover().current_addr(), "http://a:1");
        // Bounced, not unreachable: the device still asks, and follows the owner next time
        // (relaying it at home for a minute kept it off its owner in a cluster test).
        assert!(route.asks());
        route.served();
        assert!(route.after("C01", &redirect_to("n2", "b:2")));
        assert!(route.at_owner().is_some(), "follows n2 again");
        assert!(route.asks());
    }

    #[test]
    fn devices_share_an_owners_connection_up_to_its_stream_cap() {
        let home = Failover::new(parse_addrs("a:1").unwrap(), Credentials::new(None).unwrap());
        let owners = Owners::new(&home);
        let slots: Vec<Slot> = (0..DEVICE_STREAMS_PER_CONNECTION + 1)
            .map(|_| owners.slot("http://b:2"))
            .collect();
        assert_eq!(
            owners.streams_to("http://b:2"),
            vec![DEVICE_STREAMS_PER_CONNECTION, 1]
        );
        drop(slots);
        assert_eq!(owners.streams_to("http://b:2"), vec![0, 0]);
    }
}
