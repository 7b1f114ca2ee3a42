//! The node's session: its lease in the store, kept alive for the node's whole life.
//!
//! Everything that must vanish when the node dies hangs off this lease (its membership key,
//! its election candidacy), so a crashed node disappears from the cluster one TTL later. A node
//! that loses its lease while still running (the store was unreachable for longer than the TTL,
//! or the process was paused) has already been replaced by the others; the session then grants
//! a new lease and publishes it, and the node's membership and candidacy start over with it.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::limits;
use centinela_store::{LeaseId, Store};

pub struct Session {
    store: Store,
    lease: watch::Receiver<Option<LeaseId>>,
    task: JoinHandle<()>,
}

impl Session {
    /// Grants the first lease (so the caller can rely on one) and keeps it alive.
    pub async fn start(store: Store, ttl: Duration) -> Result<Session, centinela_store::Error> {
        let first = store.grant_lease(ttl).await?;
        let (tx, lease) = watch::channel(Some(first));
        let task = tokio::spawn(keep(store.clone(), ttl, first, tx));
        Ok(Session { store, lease, task })
    }

    /// The current lease; `None` between a loss and the next grant.
    pub fn lease(&self) -> watch::Receiver<Option<LeaseId>> {
        self.lease.clone()
    }

    pub fn current(&self) -> Option<LeaseId> {
        *self.lease.borrow()
    }

    /// Ends the session: stops renewing and revokes the lease, so everything tied to it goes at
    /// once (a graceful handover) instead of one TTL later.
    pub async fn close(self) {
        self.task.abort();
        if let Some(lease) = *self.lease.borrow()
            && let Err(e) = self.store.revoke(lease).await
        {
            tracing::debug!(error = %e, "lease revoke failed; it expires on its own");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn keep(store: Store, ttl: Duration, mut lease: LeaseId, tx: watch::Sender<Option<LeaseId>>) {
    loop {
        match store.keep_alive(lease).await {
            Ok(keeper) => {
                keeper.lost().await;
                tracing::warn!(%lease, "session lease lost; this node is out of the cluster until it gets a new one");
                centinela_telemetry::metrics::instruments()
                    .lease_losses
                    .add(1, &[]);
            }
            Err(e) => tracing::warn!(%lease, error = %e, "session lease cannot be kept alive"),
        }
        let _ = tx.send(None);
        lease = loop {
            match store.grant_lease(ttl).await {
                Ok(lease) => break lease,
                Err(e) => {
                    tracing::debug!(error = %e, "granting a new session lease failed; retrying");
                    tokio::time::sleep(limits::REGRANT_RETRY).await;
                }
            }
        };
        tracing::info!(%lease, "new session lease");
        let _ = tx.send(Some(lease));
    }
}
