//! A node's readiness (`/readyz`, gRPC health): true only while its session lease is live, it
//! is a member and it runs its share.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use centinela_actors::Context;
use centinela_telemetry::metrics;

use crate::limits;
use crate::ownership::Share;

/// The node's readiness, kept true only while its session lease is live, it is a member and it
/// runs its share.
pub(crate) struct Readiness {
    /// The session lease: `None` once it is lost (the store's quorum unreachable for a TTL).
    pub(crate) lease: watch::Receiver<Option<centinela_store::LeaseId>>,
    pub(crate) ctx: Arc<Context>,
    pub(crate) share: watch::Receiver<Option<Share>>,
    pub(crate) ready: watch::Sender<bool>,
    pub(crate) health: Arc<centinela_api::Health>,
}

impl Readiness {
    /// Ready while the session lease is live (a node cut off from the store's quorum is not
    /// ready, so a load balancer sends devices elsewhere), the node is a member, and the
    /// entities of its share are running here.
    fn is_ready(&self) -> bool {
        let share = *self.share.borrow();
        self.lease.borrow().is_some()
            && self.ctx.router.topology().is_member()
            && share.is_some_and(|share| share == self.ctx.router.local_counts())
    }

    async fn set(&self, ready: bool) {
        if *self.ready.borrow() != ready {
            metrics::GAUGES
                .ready
                .store(i64::from(ready), Ordering::Relaxed);
            let _ = self.ready.send(ready);
            self.health.set_serving(ready).await;
            tracing::info!(node = %self.ctx.node_id, ready, "readiness changed");
        }
    }

    /// Waits (boundedly) for the first time the node is ready.
    pub(crate) async fn wait_first(&mut self) {
        let deadline = tokio::time::Instant::now() + limits::FIRST_READY_WAIT;
        while !self.is_ready() {
            if tokio::time::Instant::now() > deadline {
                tracing::warn!(
                    wait_s = limits::FIRST_READY_WAIT.as_secs(),
                    "not joined with my share running yet; starting unready"
                );
                return;
            }
            tokio::time::sleep(limits::FIRST_READY_POLL).await;
        }
        self.set(true).await;
    }

    pub(crate) async fn follow(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(limits::READINESS_POLL) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            self.set(self.is_ready()).await;
        }
    }
}
