//! Simulated device terminals: what `centinela devices` and `centinela demo` run.
//!
//! The simulator is an ordinary gRPC client of a node (or of several, with failover): it
//! learns the buttons, cameras and units from the operator API, then plays each device the way
//! the real one behaves, through the same device API real hardware uses:
//!
//! - **unit terminals** report their position every [`SimOptions::position_interval`], keep
//!   their assignment channel open, acknowledge an assignment, drive to the scene at their
//!   mode's speed (times [`SimOptions::speedup`]), report en route and on scene, stay a while
//!   and clear; between assignments they patrol around their post;
//! - **cameras** keep their command channel open, report `aiming` on an aim command and
//!   `on_target` once the (simulated) pan/tilt motion is done;
//! - **buttons** heartbeat; unless `quiet`, a random button is pressed now and then; with
//!   [`SimOptions::sip`], a button whose press opens an incident calls the node's intercom
//!   gateway and speaks (a generated voice), as field intercoms do.
//!
//! Randomness comes from one seed, so a run is repeatable given the same node behaviour.
//!
//! # Layout
//! - [`run`]: discovers the devices and starts one task per terminal.
//! - `unit`, `camera`, `button`: the terminal loops.
//! - `route`: where a device's stream goes: a node that does not own the device names its
//!   owner and the device reconnects there (no proxy), sharing a connection per owner.
//! - `geo`: the little flat-earth geometry the terminals move with.
//! - [`calls`]: which button calls when (its press opened an incident), and the hang-up when
//!   the incident closes.
//! - [`sip_call`]: one call, as a SIP user agent: INVITE, digest, ACK, RTP both ways, BYE.
//! - [`voice`]: the caller's voice, a seeded source-filter speech-like signal.
//! - [`g711`]: µ-law and A-law.
//! - [`limits`]: the calls' bounds, with their reasons.
//! - `lost`: why device channels end, counted by cause and logged every 10 s.
//! - [`onvif_camera`]: a simulated ONVIF camera served over HTTP on loopback, with its picture
//!   (a synthetic street scene for its pose, as a JPEG behind HTTP Digest authentication).
//! - [`onvif_fleet`]: the run's simulated ONVIF cameras, for a scenario or for the cameras a
//!   node lists. Cameras driven over ONVIF are not played through the native gateway.

mod button;
pub mod calls;
mod camera;
pub mod g711;
mod geo;
pub mod limits;
mod lost;
pub mod onvif_camera;
pub mod onvif_fleet;
mod route;
pub mod sip_call;
mod unit;
pub mod voice;

use std::future::Future;
use std::time::Duration;

use centinela_proto::client::Failover;
use centinela_proto::v1::operator_client::OperatorClient;
use centinela_proto::v1::{ListButtonsRequest, ListCamerasRequest, ListUnitsRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How the simulated devices behave.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// No random presses (units still move and report, cameras still obey).
    pub quiet: bool,
    /// Play the units' terminals only: no camera streams, no button heartbeats or presses.
    /// What the cluster benchmark runs, so that its brigades are live (available to the
    /// dispatcher) while buttons and cameras add no traffic of their own.
    pub units_only: bool,
    /// Seed of every random choice the simulator makes.
    pub seed: u64,
    /// Time compression of unit movement and on-scene dwell (1.0 = real time).
    pub speedup: f64,
    pub position_interval: Duration,
    pub heartbeat_interval: Duration,
    /// Mean time between random presses, over all buttons.
    pub press_interval_mean: Duration,
    /// How long a unit stays on scene before clearing (before `speedup`).
    pub on_scene_dwell: Duration,
    /// How long a terminal takes to acknowledge an assignment.
    pub ack_delay: Duration,
    /// How long a camera's pan/tilt/zoom motion takes.
    pub camera_slew: Duration,
    /// How long discovery keeps retrying while no node answers.
    pub discovery_deadline: Duration,
    /// The accounts the simulated ONVIF cameras accept (the node signs in with the same).
    pub onvif: centinela_onvif::credentials::Credentials,
    /// Where pressed buttons call (the node's intercom gateway); `None`: they do not call.
    pub sip: Option<calls::SipCalls>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            quiet: false,
            units_only: false,
            seed: 1,
            speedup: 1.0,
            position_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(10),
            press_interval_mean: Duration::from_secs(45),
            on_scene_dwell: Duration::from_secs(120),
            ack_delay: Duration::from_millis(300),
            camera_slew: Duration::from_millis(250),
            discovery_deadline: Duration::from_secs(30),
            onvif: Default::default(),
            sip: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not list the devices from any node: {0}")]
    Discovery(tonic::Status),
    #[error("the node lists no {0}; is it running a scenario?")]
    Empty(&'static str),
}

/// What the simulator found to play.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pub buttons: Vec<centinela_proto::v1::Button>,
    pub cameras: Vec<centinela_proto::v1::Camera>,
    pub units: Vec<centinela_proto::v1::Unit>,
}

/// Lists the devices from whichever node answers, retrying until `deadline`.
pub async fn discover(failover: &Failover, deadline: Duration) -> Result<Inventory, Error> {
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        let creds = failover.credentials();
        let result = failover
            .call(|channel| {
                let creds = creds.clone();
                async move {
                    let mut client = OperatorClient::with_interceptor(channel, creds)
                        .max_decoding_message_size(limits::INVENTORY_REPLY_BYTES_MAX);
                    let buttons = client.list_buttons(ListButtonsRequest {}).await?;
                    let cameras = client.list_cameras(ListCamerasRequest {}).await?;
                    let units = client.list_units(ListUnitsRequest {}).await?;
                    Ok(Inventory {
                        buttons: buttons.into_inner().buttons,
                        cameras: cameras.into_inner().cameras,
                        units: units.into_inner().units,
                    })
                }
            })
            .await;
        match result {
            Ok(inventory) => return Ok(inventory),
            Err(status) if tokio::time::Instant::now() >= give_up => {
                return Err(Error::Discovery(status));
            }
            Err(status) => {
                tracing::debug!(%status, "devices: no node answered yet, retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Plays every device until `shutdown` resolves.
pub async fn run(
    failover: Failover,
    options: SimOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let inventory = discover(&failover, options.discovery_deadline).await?;
    if inventory.buttons.is_empty() {
        return Err(Error::Empty("buttons"));
    }
    tracing::info!(
        buttons = inventory.buttons.len(),
        cameras = inventory.cameras.len(),
        units = inventory.units.len(),
        quiet = options.quiet,
        units_only = options.units_only,
        seed = options.seed,
        "devices: simulating terminals"
    );
    // Cameras driven over ONVIF answer the node themselves: served here when their URL is on
    // loopback and nothing answers there yet (the demo serves its own before its node starts).
    let served: &[centinela_proto::v1::Camera] = if options.units_only {
        &[]
    } else {
        &inventory.cameras
    };
    let onvif = onvif_fleet::OnvifFleet::serve_listed(served, &options.onvif).await;
    if !onvif.is_empty() {
        tracing::info!(
            cameras = onvif.len(),
            "devices: simulated ONVIF cameras serving"
        );
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut seeds = StdRng::seed_from_u64(options.seed);
    let mut tasks = JoinSet::new();
    let mut streams = StreamConnections::new(&failover);
    let owners = route::Owners::new(&failover);
    for unit in inventory.units {
        let terminal = unit::Terminal::new(
            unit,
            route::Route::new(streams.next(), owners.clone()),
            options.clone(),
            StdRng::seed_from_u64(seeds.random()),
        );
        tasks.spawn(terminal.run(stop_rx.clone()));
    }
    let played_cameras = if options.units_only {
        Vec::new()
    } else {
        inventory.cameras
    };
    for camera in played_cameras.into_iter().filter(|c| c.driver != "onvif") {
        tasks.spawn(camera::run(
            camera.id,
            route::Route::new(streams.next(), owners.clone()),
            options.clone(),
            stop_rx.clone(),
        ));
    }
    tasks.spawn(lost::report(stop_rx.clone()));
    let button_ids: Vec<String> = inventory.buttons.into_iter().map(|b| b.id).collect();
    if !options.units_only {
        tasks.spawn(button::heartbeats(
            button_ids.clone(),
            failover.clone(),
            owners.clone(),
            options.clone(),
            stop_rx.clone(),
        ));
    }
    if let Some(sip) = options.sip.clone().filter(|_| !options.units_only) {
        tracing::info!(gateway = %sip.gateway, "devices: pressed buttons call the intercom gateway");
        tasks.spawn(calls::run(
            button_ids.clone(),
            failover.clone(),
            sip,
            seeds.random(),
            stop_rx.clone(),
        ));
    }
    if !options.quiet && !options.units_only {
        tasks.spawn(button::random_presses(
            button_ids,
            failover.clone(),
            options.clone(),
            StdRng::seed_from_u64(seeds.random()),
            stop_rx.clone(),
        ));
    }
    shutdown.await;
    drop(onvif);
    let _ = stop_tx.send(true);
    // Terminals finish their current call; a stuck one is cut off.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(3), drain)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    Ok(())
}

/// The connections the devices' long-lived streams ride on: the first
/// [`limits::DEVICE_STREAMS_PER_CONNECTION`] devices on the caller's own (shared) connection,
/// as before, each further group on a connection of its own, starting at the next address.
struct StreamConnections {
    base: Failover,
    current: Failover,
    group: usize,
    in_group: usize,
}

impl StreamConnections {
    fn new(base: &Failover) -> Self {
        Self {
            base: base.clone(),
            current: base.clone(),
            group: 0,
            in_group: 0,
        }
    }

    /// The connection for the next device.
    fn next(&mut self) -> Failover {
        if self.in_group == limits::DEVICE_STREAMS_PER_CONNECTION {
            self.group += 1;
            self.in_group = 0;
            self.current = self.base.separate(self.group);
        }
        self.in_group += 1;
        self.current.clone()
    }
}

/// Sleeps for `duration` unless `stop` turns true first; returns whether to stop.
async fn sleep_or_stop(duration: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(duration) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Reconnect backoff of the terminals: quick first retry, capped so a recovered cluster is
/// found again within a couple of seconds.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(4)).min(1_500))
}

/// The pause before `device` attaches its channel again, after the `attempt`th failure in a
/// row (counted from its last served channel) ended with `status`.
///
/// A node too busy to attach it now (`RESOURCE_EXHAUSTED` with `retry-after`, whole seconds)
/// gets at least the wait it asked for, and a device refused again and again waits longer each
/// time: 1 s doubled per refusal in a row, as a node's pace may not reach every device that
/// keeps coming back. Both are bounded by [`limits::RETRY_AFTER_HONOURED_MAX`], and the wait is
/// spread over up to twice itself by the device's id and attempt, so that the refused devices
/// do not all come back at once. Any other failure gets [`backoff`].
fn retry_pause(device: &str, attempt: u32, status: &tonic::Status) -> Duration {
    let asked = (status.code() == tonic::Code::ResourceExhausted)
        .then(|| status.metadata().get("retry-after"))
        .flatten()
        .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok());
    let Some(seconds) = asked else {
        return backoff(attempt);
    };
    let doubled = Duration::from_secs(1 << attempt.saturating_sub(1).min(16));
    let wait = Duration::from_secs(seconds)
        .max(doubled)
        .min(limits::RETRY_AFTER_HONOURED_MAX);
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&(device, attempt), &mut hasher);
    let spread = (std::hash::Hasher::finish(&hasher) % 1_000) as f64 / 1_000.0;
    wait + wait.mul_f64(spread)
}

#[cfg(test)]
mod tests {
    use centinela_proto::client::{Credentials, parse_addrs};

    use super::*;

    fn refused(retry_after: &str) -> tonic::Status {
        let mut status = tonic::Status::resource_exhausted("busy");
        status
            .metadata_mut()
            .insert("retry-after", retry_after.parse().unwrap());
        status
    }

    #[test]
    fn a_refused_attach_waits_what_the_node_asked_spread_and_bounded() {
        let pauses: Vec<_> = (0..50)
            .map(|i| retry_pause(&format!("C{i}"), 1, &refused("1")))
            .collect();
        for pause in &pauses {
            assert!(
                (Duration::from_secs(1)..Duration::from_secs(2)).contains(pause),
                "{pause:?}"
            );
        }
        // Spread: fifty devices refused together do not all come back together.
        let distinct: std::collections::BTreeSet<_> = pauses.iter().collect();
        assert!(distinct.len() > 25, "{pauses:?}");
        // A node asking for longer is honoured, up to the bound.
        let asked = retry_pause("C1", 1, &refused("8"));
        assert!((Duration::from_secs(8)..Duration::from_secs(16)).contains(&asked));
        let greedy = retry_pause("C1", 1, &refused("3600"));
        assert!(greedy >= limits::RETRY_AFTER_HONOURED_MAX);
        assert!(greedy < 2 * limits::RETRY_AFTER_HONOURED_MAX);
        // Anything else, or no retry-after: the usual backoff.
        let broken = tonic::Status::unavailable("node gone");
        assert_eq!(retry_pause("C1", 3, &broken), backoff(3));
        let bare = tonic::Status::resource_exhausted("busy");
        assert_eq!(retry_pause("C1", 3, &bare), backoff(3));
    }

    #[test]
    fn a_device_refused_again_and_again_waits_longer_each_time_until_served() {
        let home = Failover::new(parse_addrs("a:1").unwrap(), Credentials::new(None).unwrap());
        let mut route = route::Route::new(home.clone(), route::Owners::new(&home));
        // The node asks for 1 s each time; the device's own wait doubles from it.
        let pauses: Vec<u64> = (0..7)
            .map(|_| route.pause("C1", &refused("1")).as_secs())
            .collect();
        for (pause, least) in pauses.iter().zip([1, 2, 4, 8, 16, 30, 30]) {
            assert!(
                (least..2 * least).contains(pause),
                "{pauses:?}: {pause} s, not in {least}..{} s",
                2 * least
            );
        }
        // Served once: the next refusal starts again from what the node asks.
        route.served();
        let pause = route.pause("C1", &refused("1"));
        assert!(pause < Duration::from_secs(2), "{pause:?}");
    }

    #[test]
    fn device_streams_spread_over_connections_and_nodes() {
        let addrs = parse_addrs("a:1,b:2,c:3").unwrap();
        let base = Failover::new(addrs, Credentials::new(None).unwrap());
        let mut streams = StreamConnections::new(&base);
        let per = limits::DEVICE_STREAMS_PER_CONNECTION;
        let firsts: Vec<String> = (0..3 * per + 1)
            .map(|_| streams.next().current_addr().to_string())
            .collect();
        // The first group stays on the caller's connection (its address), the next groups
        // start at the next addresses, wrapping round.
        assert!(firsts[..per].iter().all(|a| a == "http://a:1"));
        assert!(firsts[per..2 * per].iter().all(|a| a == "http://b:2"));
        assert!(firsts[2 * per..3 * per].iter().all(|a| a == "http://c:3"));
        assert_eq!(firsts[3 * per], "http://a:1");
        // A group's connection moving on (its node failed) leaves the others where they are.
        let mut streams = StreamConnections::new(&base);
        let first = streams.next();
        let second = (0..per).map(|_| streams.next()).last().unwrap();
        second.advance_from("http://b:2");
        assert_eq!(second.current_addr(), "http://c:3");
        assert_eq!(first.current_addr(), "http://a:1");
    }
}
