//! The node's session: its lease in the store, kept alive for the node's whole life.
//!
//! Everything that must vanish when the node dies hangs off this lease (its membership key,
//! its election candidacy), so a crashed node disappears from the cluster one TTL later. A node
//! that loses its lease while still running (the store was unreachable for longer than the TTL,
//! or the process was paused) has already been replaced by the others; the session then grants
//! a new lease and publishes it, and the node's membership and candidacy start over with it.
//!
//! Where the keep-alive runs is [`KeepAlive`]'s choice. On a real etcd it runs on a thread of
//! its own, with its own single-threaded runtime and its own connection: a node whose runtime
//! is busy (an attach storm of thousands of device streams, a wave of store writes) or whose
//! connection to etcd is queued behind large reads still renews its lease every TTL/3. On the
//! node's shared runtime and connection the refresh waited behind all of that, missed the 2 s
//! TTL, and the node lost its lease (and, with it, every entity and device stream) again and
//! again under load (docs/benchmarks.md, "Scale on three nodes with devices attached").

use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::limits;
use centinela_store::{ConnectOptions, Error, LeaseId, Store};

/// Where the session's keep-alive runs and how it reaches the store.
#[derive(Clone, Debug)]
pub enum KeepAlive {
    /// A task on the caller's runtime, over the caller's store handle: the simulation (whose
    /// network and clock belong to its runtime) and the embedded store (served in-process by
    /// that same runtime, so a thread of its own would gain nothing).
    Shared,
    /// A thread of its own ([`limits::SESSION_THREAD`]) with a single-threaded runtime and its
    /// own connection to etcd through `endpoints` with `options`: the keep-alive never waits
    /// for the node's other tasks nor behind the node's other requests on one connection.
    Dedicated {
        endpoints: Vec<String>,
        options: ConnectOptions,
    },
}

/// What keeps the lease alive, so that closing the session can stop it.
enum Keeper {
    Task(JoinHandle<()>),
    /// Dropping (or sending on) the sender stops the thread's loop; the thread then ends.
    Thread(Option<oneshot::Sender<()>>),
}

impl Keeper {
    fn stop(&mut self) {
        match self {
            Keeper::Task(task) => task.abort(),
            Keeper::Thread(stop) => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
            }
        }
    }
}

pub struct Session {
    store: Store,
    lease: watch::Receiver<Option<LeaseId>>,
    keeper: Keeper,
}

impl Session {
    /// Grants the first lease (so the caller can rely on one) and keeps it alive from a task
    /// on the caller's runtime ([`KeepAlive::Shared`]).
    pub async fn start(store: Store, ttl: Duration) -> Result<Session, Error> {
        Self::start_with(store, ttl, KeepAlive::Shared).await
    }

    /// Grants the first lease (so the caller can rely on one) and keeps it alive where
    /// `keep_alive` says. `store` is the caller's handle: the one the lease is revoked through
    /// on [`Session::close`].
    pub async fn start_with(
        store: Store,
        ttl: Duration,
        keep_alive: KeepAlive,
    ) -> Result<Session, Error> {
        match keep_alive {
            KeepAlive::Shared => {
                let first = store.grant_lease(ttl).await?;
                let (tx, lease) = watch::channel(Some(first));
                let task = tokio::spawn(keep(store.clone(), ttl, first, tx));
                Ok(Session {
                    store,
                    lease,
                    keeper: Keeper::Task(task),
                })
            }
            KeepAlive::Dedicated { endpoints, options } => {
                let (tx, lease) = watch::channel(None);
                let (first_tx, first) = oneshot::channel();
                let (stop_tx, stop) = oneshot::channel();
                std::thread::Builder::new()
                    .name(limits::SESSION_THREAD.to_owned())
                    .spawn(move || run_dedicated(endpoints, options, ttl, tx, first_tx, stop))
                    .map_err(|e| {
                        Error::Unavailable(format!("cannot start the session thread: {e}"))
                    })?;
                let Ok(first) = first.await else {
                    return Err(Error::Unavailable(
                        "the session thread ended before granting a lease".to_owned(),
                    ));
                };
                first?;
                Ok(Session {
                    store,
                    lease,
                    keeper: Keeper::Thread(Some(stop_tx)),
                })
            }
        }
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
    pub async fn close(mut self) {
        self.keeper.stop();
        let lease = *self.lease.borrow();
        if let Some(lease) = lease
            && let Err(e) = self.store.revoke(lease).await
        {
            tracing::debug!(error = %e, "lease revoke failed; it expires on its own");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.keeper.stop();
    }
}

/// The session thread: its own runtime and connection, the first grant reported through
/// `first`, then [`keep`] until `stop` fires (or its sender is dropped with the session).
fn run_dedicated(
    endpoints: Vec<String>,
    options: ConnectOptions,
    ttl: Duration,
    tx: watch::Sender<Option<LeaseId>>,
    first: oneshot::Sender<Result<(), Error>>,
    stop: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = first.send(Err(Error::Unavailable(format!(
                "cannot build the session runtime: {e}"
            ))));
            return;
        }
    };
    runtime.block_on(async move {
        let granted = async {
            let store = Store::connect(&endpoints, options).await?;
            let lease = store.grant_lease(ttl).await?;
            Ok::<_, Error>((store, lease))
        };
        let (store, lease) = match granted.await {
            Ok(granted) => granted,
            Err(e) => {
                let _ = first.send(Err(e));
                return;
            }
        };
        tx.send_replace(Some(lease));
        if first.send(Ok(())).is_err() {
            // The caller gave up waiting: nobody will revoke this lease; let it expire.
            return;
        }
        tokio::select! {
            () = keep(store, ttl, lease, tx) => {}
            _ = stop => {}
        }
    });
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
