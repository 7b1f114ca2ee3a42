//! Keeping a lease alive from a background task, and knowing when it is not any more.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use super::{LeaseId, Store};
use crate::pb::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse};
use crate::{Error, limits};

/// What [`Store::lease_ttl`] reports about a live lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTtl {
    /// Time left, in whole seconds (truncated, as etcd reports it).
    pub remaining: Duration,
    /// The TTL the lease was granted with (and each keep-alive restores).
    pub granted: Duration,
    /// The keys attached to it.
    pub keys: Vec<String>,
}

/// Refreshes a lease every TTL/3 from a background task, over etcd's keep-alive stream.
///
/// [`LeaseKeeper::alive`] turns `false`, for good, when the store says the lease is gone (TTL
/// <= 0) or when no refresh succeeded before the lease's expiry as seen from here (measured from
/// when the last successful refresh was *sent*, so we report the loss no later than the store
/// acts on it). Whoever holds something under the lease (election key, membership) must stop
/// acting on it then. Dropping the keeper stops the refreshes; the lease then expires after its
/// TTL unless revoked.
#[derive(Debug)]
pub struct LeaseKeeper {
    lease: LeaseId,
    granted: Duration,
    alive: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LeaseKeeper {
    /// Refreshes once (so a lease that is already gone is an error here), then spawns the task.
    pub(crate) async fn start(store: Store, lease: LeaseId) -> Result<Self, Error> {
        let mut stream = None;
        let sent_at = Instant::now();
        let ttl_secs =
            tokio::time::timeout(store.request_timeout(), refresh(&store, &mut stream, lease))
                .await
                .map_err(|_| Error::Timeout)??;
        if ttl_secs <= 0 {
            return Err(Error::LeaseNotFound);
        }
        let granted = Duration::from_secs(ttl_secs.unsigned_abs());
        let (alive_tx, alive) = watch::channel(true);
        let task = tokio::spawn(keep_alive_loop(
            store,
            lease,
            granted,
            sent_at + granted,
            stream,
            alive_tx,
        ));
        Ok(LeaseKeeper {
            lease,
            granted,
            alive,
            task,
        })
    }

    /// The lease being kept.
    pub fn lease(&self) -> LeaseId {
        self.lease
    }

    /// The TTL the store granted.
    pub fn granted_ttl(&self) -> Duration {
        self.granted
    }

    /// Whether the lease is (as far as we know) still alive.
    pub fn is_alive(&self) -> bool {
        *self.alive.borrow()
    }

    /// A receiver that turns `false` once, when the lease is lost.
    pub fn alive(&self) -> watch::Receiver<bool> {
        self.alive.clone()
    }

    /// Resolves when the lease is lost.
    pub async fn lost(&self) {
        let mut alive = self.alive.clone();
        // An error means the task ended, which it only does after reporting the loss.
        let _ = alive.wait_for(|alive| !*alive).await;
    }
}

/// An open keep-alive stream: requests go in through the sender, responses come out in order.
/// It is on the store member with the given index.
type KeepAliveStream = (
    mpsc::Sender<LeaseKeepAliveRequest>,
    tonic::Streaming<LeaseKeepAliveResponse>,
    usize,
);

/// Closes a failed stream and moves the store's later calls off its member.
fn drop_stream(store: &Store, stream: &mut Option<KeepAliveStream>, error: &Error) {
    let member = stream
        .take()
        .map_or_else(|| store.member().0, |(_, _, member)| member);
    store.member_failed(member, error);
}

/// Sends one keep-alive (opening the stream if needed) and returns the TTL the store answered.
async fn refresh(
    store: &Store,
    stream: &mut Option<KeepAliveStream>,
    lease: LeaseId,
) -> Result<i64, Error> {
    let request = LeaseKeepAliveRequest { id: lease.0 };
    let closed = || Error::Unavailable("keep-alive stream closed".to_owned());
    let responses = match stream {
        Some((requests, _, _)) if requests.send(request).await.is_err() => {
            let error = closed();
            drop_stream(store, stream, &error);
            return Err(error);
        }
        Some((_, responses, _)) => responses,
        None => {
            // Queue the first request before opening: etcd sends response headers only with its
            // first message.
            let (requests, outgoing) = mpsc::channel(4);
            requests.send(request).await.map_err(|_| closed())?;
            let (member, clients) = store.member();
            let mut client = clients.lease_client();
            let responses = match client.lease_keep_alive(ReceiverStream::new(outgoing)).await {
                Ok(responses) => responses.into_inner(),
                Err(status) => {
                    let error = Error::from(status);
                    store.member_failed(member, &error);
                    return Err(error);
                }
            };
            &mut stream.insert((requests, responses, member)).1
        }
    };
    let result = responses.message().await;
    match result {
        Ok(Some(response)) => Ok(response.ttl),
        Ok(None) => {
            let error = Error::Unavailable("keep-alive stream ended".to_owned());
            drop_stream(store, stream, &error);
            Err(error)
        }
        Err(status) => {
            let error = Error::from(status);
            drop_stream(store, stream, &error);
            Err(error)
        }
    }
}

async fn keep_alive_loop(
    store: Store,
    lease: LeaseId,
    granted: Duration,
    mut expires_at: Instant,
    mut stream: Option<KeepAliveStream>,
    alive: watch::Sender<bool>,
) {
    let period = granted / limits::KEEP_ALIVE_DIVISOR;
    let mut next_refresh = Instant::now() + period;
    loop {
        tokio::time::sleep_until(next_refresh.min(expires_at)).await;
        let now = Instant::now();
        if now >= expires_at {
            tracing::warn!(lease = %lease, "lease expired before it could be refreshed");
            alive.send_replace(false);
            return;
        }
        let budget = store.request_timeout().min(expires_at - now);
        match tokio::time::timeout(budget, refresh(&store, &mut stream, lease)).await {
            Ok(Ok(ttl_secs)) if ttl_secs > 0 => {
                expires_at = now + Duration::from_secs(ttl_secs.unsigned_abs());
                next_refresh = now + period;
            }
            Ok(Ok(_)) => {
                tracing::warn!(lease = %lease, "store reports the lease gone");
                alive.send_replace(false);
                return;
            }
            Ok(Err(error)) => {
                // `refresh` closed the stream and moved off its member.
                tracing::debug!(lease = %lease, %error, "lease refresh failed, retrying");
                next_refresh = Instant::now() + limits::KEEP_ALIVE_RETRY;
            }
            Err(_elapsed) => {
                tracing::debug!(lease = %lease, "lease refresh timed out, retrying");
                drop_stream(&store, &mut stream, &Error::Timeout);
                next_refresh = Instant::now() + limits::KEEP_ALIVE_RETRY;
            }
        }
    }
}
