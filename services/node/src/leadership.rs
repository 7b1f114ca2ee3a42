//! The leadership loop: campaign with the session's lease, run the dispatcher (and the
//! hand-off sender, `centinela_handoff::sender`) while leading,
//! stop it the moment leadership is lost (the election key vanished, or the lease did), and
//! campaign again. On shutdown the leader resigns, so the next candidate leads at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ractor::ActorRef;
use tokio::sync::watch;

use crate::limits;
use centinela_actors::Context;
use centinela_actors::supervisor::SupervisorMsg;
use centinela_store::election::{Election, Fence};
use centinela_store::{LeaseId, Store};
use centinela_telemetry::metrics;

/// The election every node campaigns in; its leader runs the dispatcher.
pub const DISPATCHER_ELECTION: &str = "/centinela/election/dispatcher";

pub async fn lead(
    ctx: Arc<Context>,
    store: Store,
    mut lease: watch::Receiver<Option<LeaseId>>,
    dispatchers: ActorRef<SupervisorMsg<Fence>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let node = ctx.node_id.to_string();
    loop {
        // A lease to campaign with (none while the session is regaining one).
        let current = tokio::select! {
            result = lease.wait_for(Option::is_some) => match result {
                Ok(current) => current.expect("waited for Some"),
                Err(_) => return,
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let campaign = Election::campaign(&store, DISPATCHER_ELECTION, current, &node);
        let result = tokio::select! {
            result = campaign => result,
            _ = lease.wait_for(|l| *l != Some(current)) => continue,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let leadership = match result {
            Ok(leadership) => leadership,
            Err(e) => {
                tracing::warn!(error = %e, "campaign failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(limits::CAMPAIGN_RETRY) => continue,
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        };
        let fence = leadership.fence_token();
        tracing::info!(node = %node, term = fence.term(), "leading: starting the dispatcher");
        metrics::instruments().leader_changes.add(1, &[]);
        metrics::GAUGES.leader.store(1, Ordering::Relaxed);
        // A keyspace from before the index of open incidents gets it now, once, before the
        // dispatcher reads it (until it is built, listings walk `incidents/` instead).
        match ctx.records.build_open_index(Some(&fence)).await {
            Ok(0) => {}
            Ok(entries) => tracing::info!(entries, "built the index of open incidents"),
            Err(e) => {
                tracing::warn!(error = %e, "index of open incidents not built; listings walk incidents/ until a leader builds it")
            }
        }
        let _ = dispatchers.cast(SupervisorMsg::Start(vec![fence.clone()]));
        // The hand-off sender, in its own task (a slow agency never holds up dispatch), its
        // writes fenced with the same term.
        // Without agencies there is nothing to send: no task, no store reads.
        let (stop_sender, sender_stop) = watch::channel(false);
        let clock = ctx.clock;
        let agencies = !ctx.handoff.agencies.agencies.is_empty();
        let sender = agencies.then(|| {
            tokio::spawn(
                centinela_handoff::sender::Sender::new(
                    ctx.records.clone(),
                    ctx.handoff.clone(),
                    centinela_handoff::sender::Options::default(),
                    Some(fence.clone()),
                    move || clock.now(),
                )
                .run(sender_stop),
            )
        });
        // The archiver: closed incidents copied to the archive, then removed from the store
        // past retention, its removals fenced with the same term (docs/operations.md).
        let archiver = ctx.history.clone().map(|history| {
            let archiver = centinela_archive::retention::Archiver::new(
                ctx.records.clone(),
                history,
                Some(fence.clone()),
                move || clock.now(),
            );
            tokio::spawn(archiver.run(stop_sender.subscribe()))
        });
        // Calls whose node died are ended in their incidents' trails (docs/intercom.md,
        // "Through failures"); reads the store only on taking the lead and when a member leaves.
        let lost_calls = tokio::spawn(crate::intercom::sweep_lost_calls(
            ctx.clone(),
            stop_sender.subscribe(),
        ));
        let stopping = tokio::select! {
            _ = leadership.lost() => {
                tracing::warn!(node = %node, term = fence.term(), "leadership lost");
                false
            }
            _ = lease.wait_for(|l| *l != Some(current)) => {
                tracing::warn!(node = %node, term = fence.term(), "session lease lost: stepping down");
                false
            }
            _ = shutdown.wait_for(|stop| *stop) => true,
        };
        // Stopped before anything else: from here on this node must not dispatch (its writes
        // would be fenced anyway).
        let _ = dispatchers.cast(SupervisorMsg::Stop(vec![fence.clone()]));
        let _ = stop_sender.send(true);
        if let Some(sender) = sender {
            sender.abort();
        }
        if let Some(archiver) = archiver {
            archiver.abort();
        }
        lost_calls.abort();
        metrics::GAUGES.leader.store(0, Ordering::Relaxed);
        if stopping {
            if let Err(e) = leadership.resign().await {
                tracing::warn!(error = %e, "resign failed; the lease revoke hands over instead");
            }
            return;
        }
        tokio::time::sleep(limits::CAMPAIGN_RETRY).await;
    }
}
