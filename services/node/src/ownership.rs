//! Ownership: this node runs the actors of the entities rendezvous hashing gives it.
//!
//! Whenever the member set changes, the reconciler lists the entities in the store, computes
//! this node's share, starts the actors it newly owns (they load their state from the store)
//! and stops the ones it no longer owns. Two nodes may briefly both run an entity while their
//! views of the member set differ; that is safe because every change goes through the store's
//! compare-and-swap, and the router refuses forwarded messages for entities it does not own.
//!
//! A node whose session lease is lost owns nothing until it has a new one: the others took
//! its entities over while it was away (paused, cut off from the store), and its actors'
//! in-memory state is stale. They are stopped, and started afresh from the store when the
//! node rejoins. (Found by the SIGSTOP cluster test: a camera kept by a paused node never
//! learned of an aim its stand-in owner made meanwhile.)

use std::collections::BTreeSet;
use std::sync::Arc;

use ractor::ActorRef;
use tokio::sync::watch;

use crate::limits;
use centinela_actors::Context;
use centinela_actors::brigade::BrigadeActor;
use centinela_actors::button::ButtonActor;
use centinela_actors::camera::CameraActor;
use centinela_actors::entity::Entity;
use centinela_actors::supervisor::SupervisorMsg;
use centinela_cluster::Owner;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId};
use centinela_records::Record;
use centinela_store::LeaseId;

/// The entity supervisors the reconciler drives.
pub struct EntitySupervisors {
    pub buttons: ActorRef<SupervisorMsg<ButtonId>>,
    pub cameras: ActorRef<SupervisorMsg<CameraId>>,
    pub brigades: ActorRef<SupervisorMsg<BrigadeId>>,
}

/// How many entities of each kind this node owns: (buttons, cameras, brigades).
pub type Share = (usize, usize, usize);

/// Follows the member set and keeps this node's actors equal to its share; publishes the size
/// of the share last applied.
pub async fn reconcile(
    ctx: Arc<Context>,
    supervisors: EntitySupervisors,
    mut lease: watch::Receiver<Option<LeaseId>>,
    share: watch::Sender<Option<Share>>,
) {
    let mut members = ctx.router.topology().members_watch();
    let mut buttons: BTreeSet<ButtonId> = BTreeSet::new();
    let mut cameras: BTreeSet<CameraId> = BTreeSet::new();
    let mut brigades: BTreeSet<BrigadeId> = BTreeSet::new();
    loop {
        members.borrow_and_update();
        let in_session = lease.borrow_and_update().is_some();
        let result = if in_session {
            owned(&ctx).await
        } else {
            tracing::warn!("session lease lost: stopping every entity actor until rejoined");
            Ok(Default::default())
        };
        match result {
            Ok((b, c, u)) => {
                let moves = [
                    apply(&supervisors.buttons, &mut buttons, b),
                    apply(&supervisors.cameras, &mut cameras, c),
                    apply(&supervisors.brigades, &mut brigades, u),
                ];
                let size = (buttons.len(), cameras.len(), brigades.len());
                // The one line of a rebalance at info: each actor stopped logs at debug.
                tracing::info!(
                    buttons = size.0,
                    cameras = size.1,
                    brigades = size.2,
                    taken_on = moves.iter().map(|m| m.0).sum::<usize>(),
                    given_up = moves.iter().map(|m| m.1).sum::<usize>(),
                    members = ctx.router.topology().members().len(),
                    "owning my share"
                );
                let _ = share.send(Some(size));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot list entities to place; retrying");
                tokio::time::sleep(limits::RECONCILE_RETRY).await;
                continue;
            }
        }
        tokio::select! {
            changed = members.changed() => if changed.is_err() { return },
            changed = lease.changed() => if changed.is_err() { return },
        }
    }
}

type Owned = (BTreeSet<ButtonId>, BTreeSet<CameraId>, BTreeSet<BrigadeId>);

async fn owned(ctx: &Context) -> Result<Owned, centinela_records::Error> {
    // Ids only (a keys-only read): decoding 210k records to learn their ids took most of a
    // rebalance (docs/benchmarks.md, "Scale").
    let buttons = mine::<ButtonActor>(ctx).await?;
    let cameras = mine::<CameraActor>(ctx).await?;
    let brigades = mine::<BrigadeActor>(ctx).await?;
    Ok((buttons, cameras, brigades))
}

/// The ids of kind `E` that rendezvous hashing gives this node.
async fn mine<E: Entity>(ctx: &Context) -> Result<BTreeSet<E::Id>, centinela_records::Error> {
    let topology = ctx.router.topology();
    let mut owned = BTreeSet::new();
    for raw in ctx.records.ids::<E::Record>().await? {
        if topology.owner(E::KIND, &raw) != Owner::Local {
            continue;
        }
        let key = E::Record::key_of(&raw);
        let id = E::Id::try_from(raw).map_err(|e| centinela_records::Error::Corrupt {
            key,
            reason: e.to_string(),
        })?;
        owned.insert(id);
    }
    Ok(owned)
}

/// Starts what is newly owned and stops what is not owned any more; how many of each.
fn apply<K>(
    supervisor: &ActorRef<SupervisorMsg<K>>,
    running: &mut BTreeSet<K>,
    owned: BTreeSet<K>,
) -> (usize, usize)
where
    K: Clone + Ord + Send + 'static,
{
    let start: Vec<K> = owned.difference(running).cloned().collect();
    let stop: Vec<K> = running.difference(&owned).cloned().collect();
    let moved = (start.len(), stop.len());
    if !stop.is_empty() {
        let _ = supervisor.cast(SupervisorMsg::Stop(stop));
    }
    if !start.is_empty() {
        let _ = supervisor.cast(SupervisorMsg::Start(start));
    }
    *running = owned;
    moved
}
