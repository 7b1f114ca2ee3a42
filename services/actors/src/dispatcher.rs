//! The dispatcher: a singleton actor run only by the elected leader.
//!
//! It keeps the available brigades in a spatial index and the incidents that need a brigade in
//! a priority queue, both rebuilt from the store when it starts and kept current by watching
//! the store, so it does not matter which node created an incident or moved a brigade.
//!
//! Every write it makes is fenced: the store transaction also checks that this leader's term
//! still holds, so a paused or partitioned ex-leader cannot assign anyone. A fenced write stops
//! the actor; the node's leadership loop takes it from there.
//!
//! Flow: a new incident (from the watch) is queued → the best eligible brigade is assigned in
//! one transaction (incident + brigade + term check) → the brigade's actor pushes the
//! assignment to its terminal → if the terminal does not acknowledge within `ACK_TIMEOUT`, the
//! brigade is released, remembered as declined for that incident, cooled down (not offered
//! any job for `ACK_TIMEOUT_COOLDOWN`), and the next candidate is assigned. Only `available`
//! brigades are candidates: the brigade actors record a unit whose terminal or app is not live
//! as `offline`. With no brigade free, incidents wait in priority order and are assigned the
//! moment one frees up.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;

use std::sync::atomic::Ordering;

use centinela_core::brigade::{Brigade, BrigadeStatus, Mode};
use centinela_core::dispatch::{BrigadeIndex, Candidate, PendingQueue, StraightLine};
use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, ButtonId, IncidentId, OperatorId};
use centinela_core::incident::{
    Actor as AuditActor, AuditAction, Incident, IncidentKind, Priority,
};
use centinela_records::{self as records, Change, DispatchChange};
use centinela_store::election::Fence;
use centinela_telemetry::metrics::{self, GAUGES};
use centinela_telemetry::propagation;
use opentelemetry::KeyValue;
use tracing::Instrument;

use crate::Context;
use crate::brigade::BrigadeRequest;
use crate::error::Error;
use crate::limits;

/// What a brigade's terminal is told about its job.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Assignment {
    pub incident: IncidentId,
    pub button: ButtonId,
    pub position: Position,
    pub kind: IncidentKind,
    pub priority: Priority,
    /// The dispatcher's travel-time estimate when it chose the brigade.
    pub eta: Duration,
    /// Trace context for the terminal to send back (set when it is pushed to the terminal).
    #[serde(default)]
    pub trace: Option<String>,
}

impl Assignment {
    pub fn new(incident: &Incident, eta: Duration) -> Self {
        Self {
            incident: incident.id.clone(),
            button: incident.button.clone(),
            position: incident.position,
            kind: incident.kind,
            priority: incident.priority,
            eta,
            trace: None,
        }
    }
}

/// An operator's dispatch order.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DispatchRequest {
    pub incident: IncidentId,
    pub operator: OperatorId,
    /// A chosen brigade; the best candidate when `None`.
    pub unit: Option<BrigadeId>,
    /// Release the incident's current brigades first.
    pub replace: bool,
    /// Release only this brigade, on the incident, and send `unit` instead (the swap an
    /// incident recommends after a reclassification). Absent in older senders' bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_out: Option<BrigadeId>,
}

/// A change seen by the store watch, with its revision.
pub enum StoreChange {
    IncidentChanged(Box<Incident>, i64),
    IncidentRemoved(IncidentId),
    BrigadeChanged(Brigade, i64),
    BrigadeRemoved(BrigadeId),
}

pub enum DispatcherMsg {
    /// Changes wait in the dispatcher's pending buffer (see `spawn_watch`): applied all at
    /// once, in revision order, before the next round. The watch hands over whole revisions,
    /// so a transaction that frees several brigades at once (closing an incident, say) is
    /// never judged with only some of them free.
    ChangesPending,
    /// A store watch broke: fail, and let the supervisor rebuild from the store.
    WatchFailed(String),
    AckDeadline {
        incident: IncidentId,
        brigade: BrigadeId,
    },
    Tick,
    Dispatch {
        request: DispatchRequest,
        reply: RpcReplyPort<Result<Incident, Error>>,
    },
    Recommend {
        incident: IncidentId,
        limit: usize,
        reply: RpcReplyPort<Result<Vec<(Candidate, Brigade)>, Error>>,
    },
    /// Fault injection for the supervision tests: the actor panics.
    #[cfg(feature = "fault-injection")]
    Crash,
}

pub struct DispatcherActor;

pub struct DispatcherArgs {
    pub ctx: Arc<Context>,
    pub fence: Fence,
}

pub struct DispatcherState {
    ctx: Arc<Context>,
    fence: Fence,
    index: BrigadeIndex,
    brigades: HashMap<BrigadeId, Brigade>,
    /// Open incidents only.
    incidents: HashMap<IncidentId, Incident>,
    /// Store revision of the newest version seen of each record: the watch may deliver a change
    /// after the dispatcher already applied its own newer write.
    revisions: HashMap<String, i64>,
    queue: PendingQueue,
    watches: Vec<JoinHandle<()>>,
    /// Watched changes not applied yet, filled by the watch task (see [`spawn_watch`]).
    pending: Arc<std::sync::Mutex<Vec<StoreChange>>>,
}

impl DispatcherState {
    fn term(&self) -> i64 {
        self.fence.term()
    }

    fn audit_actor(&self) -> AuditActor {
        AuditActor::Dispatcher { term: self.term() }
    }
}

impl Actor for DispatcherActor {
    type Msg = DispatcherMsg;
    type State = DispatcherState;
    type Arguments = DispatcherArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: DispatcherArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let ctx = args.ctx;
        // Incidents first: the watch resumes after the incidents' revision, and replays the
        // brigade changes up to the (later) brigades' revision, which `is_newer` discards.
        let (incidents, incidents_rev) = ctx.records.open_incidents_snapshot().await?;
        let (brigades, brigades_rev) = ctx.records.snapshot::<Brigade>().await?;
        let mut index = BrigadeIndex::new(Arc::new(StraightLine::default()));
        let now = ctx.clock.now();
        let mut brigade_map = HashMap::new();
        let mut revisions = HashMap::new();
        for brigade in brigades {
            revisions.insert(brigade_key(&brigade.id), brigades_rev);
            index.upsert(&brigade);
            // Resume the ack timers of assignments made by an earlier leader.
            if brigade.status == BrigadeStatus::Dispatched
                && !brigade.acked
                && let Some(incident) = brigade.incident.clone()
            {
                let waited = now.saturating_duration_since(brigade.status_since);
                let left = limits::ACK_TIMEOUT.saturating_sub(waited);
                let id = brigade.id.clone();
                myself.send_after(left, move || DispatcherMsg::AckDeadline {
                    incident,
                    brigade: id,
                });
            }
            brigade_map.insert(brigade.id.clone(), brigade);
        }
        let mut queue = PendingQueue::default();
        let mut incident_map = HashMap::new();
        for incident in incidents {
            revisions.insert(incident_key(&incident.id), incidents_rev);
            if wants_unit(&incident) {
                queue.push(&incident);
            }
            incident_map.insert(incident.id.clone(), incident);
        }
        tracing::info!(
            term = args.fence.term(),
            brigades = brigade_map.len(),
            available = index.len(),
            open_incidents = incident_map.len(),
            queued = queue.len(),
            "dispatcher started"
        );
        // One watch for both kinds, from just after the older snapshot (the incidents'; `min`
        // only guards against a store that answered the two reads out of order).
        let from = incidents_rev.min(brigades_rev) + 1;
        let pending = Arc::new(std::sync::Mutex::new(Vec::new()));
        let watches = vec![spawn_watch(&ctx, from, myself.clone(), pending.clone())];
        myself.send_interval(limits::DISPATCH_TICK, || DispatcherMsg::Tick);
        let _ = myself.cast(DispatcherMsg::Tick);
        Ok(DispatcherState {
            ctx,
            fence: args.fence,
            index,
            brigades: brigade_map,
            incidents: incident_map,
            revisions,
            queue,
            watches,
            pending,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for watch in &state.watches {
            watch.abort();
        }
        // Only the leader reports the queue, the brigades and the waiting incidents.
        GAUGES.queue_length.store(0, Ordering::Relaxed);
        for gauge in GAUGES.available.iter().chain(&GAUGES.brigades) {
            gauge.store(0, Ordering::Relaxed);
        }
        GAUGES.unacknowledged_oldest_s.store(0, Ordering::Relaxed);
        GAUGES.unassigned_oldest_s.store(0, Ordering::Relaxed);
        tracing::info!(term = state.term(), "dispatcher stopped");
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let result = match message {
            DispatcherMsg::ChangesPending => {
                let changes =
                    std::mem::take(&mut *state.pending.lock().expect("pending changes lock"));
                let mut dispatch = false;
                for change in changes {
                    dispatch |= state.apply(change);
                }
                if dispatch {
                    state.dispatch_queue(&myself).await
                } else {
                    Ok(())
                }
            }
            DispatcherMsg::WatchFailed(reason) => {
                return Err(format!("store watch failed: {reason}").into());
            }
            DispatcherMsg::AckDeadline { incident, brigade } => {
                match state.ack_deadline(&myself, incident, brigade).await {
                    Ok(()) => state.dispatch_queue(&myself).await,
                    Err(e) => Err(e),
                }
            }
            DispatcherMsg::Tick => {
                state.report_gauges();
                match state.expire_holds().await {
                    Ok(()) => state.dispatch_queue(&myself).await,
                    Err(e) => Err(e),
                }
            }
            DispatcherMsg::Dispatch { request, reply } => {
                let result = state.operator_dispatch(&myself, request).await;
                let fenced = matches!(result, Err(Error::Records(records::Error::Fenced)));
                let _ = reply.send(result);
                if fenced {
                    Err(Error::Records(records::Error::Fenced))
                } else {
                    Ok(())
                }
            }
            DispatcherMsg::Recommend {
                incident,
                limit,
                reply,
            } => {
                let _ = reply.send(state.recommend(&incident, limit).await);
                Ok(())
            }
            #[cfg(feature = "fault-injection")]
            DispatcherMsg::Crash => panic!("fault injection: dispatcher crashed"),
        };
        match result {
            Err(Error::Records(records::Error::Fenced)) => {
                tracing::warn!(
                    term = state.term(),
                    "dispatcher fenced: leadership lost, stopping"
                );
                myself.stop(Some("fenced".into()));
                Ok(())
            }
            Err(e) => {
                // Store trouble: keep the state, the next tick retries.
                tracing::warn!(error = %e, "dispatch round incomplete");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }
}

/// Forwards the store's incident and brigade changes to the dispatcher, whole revisions at a
/// time, in revision order. Both kinds come on one watch, so the dispatcher sees them in
/// revision order: with a watch per kind, a brigade freed just after an operator classified an
/// incident could be handed out by the incident's old priority and kind.
///
/// Changes go into `pending`, and the dispatcher is told (`ChangesPending`) only when the
/// buffer was empty: everything that arrives while it is busy committing a round is applied in
/// one go before the next, so under load each round plans many incidents at once instead of
/// one per mailbox message.
fn spawn_watch(
    ctx: &Arc<Context>,
    from_revision: i64,
    me: ActorRef<DispatcherMsg>,
    pending: Arc<std::sync::Mutex<Vec<StoreChange>>>,
) -> JoinHandle<()> {
    let records = ctx.records.clone();
    tokio::spawn(async move {
        let mut changes = match records.watch_incidents_and_brigades(from_revision).await {
            Ok(stream) => stream.peekable(),
            Err(e) => {
                let _ = me.cast(DispatcherMsg::WatchFailed(e.to_string()));
                return;
            }
        };
        while let Some(change) = changes.next().await {
            let first = match change {
                Ok(change) => change,
                Err(e) => {
                    let _ = me.cast(DispatcherMsg::WatchFailed(e.to_string()));
                    return;
                }
            };
            let revision = first.revision();
            let mut batch = vec![first];
            // The store delivers a revision's changes together, so the rest of this one is
            // already buffered: take it without waiting (an error stays for the next turn).
            while let Some(Some(Ok(next))) = std::pin::Pin::new(&mut changes)
                .next_if(|next| matches!(next, Ok(c) if c.revision() == revision))
                .now_or_never()
            {
                batch.push(next);
            }
            let changes = match batch
                .into_iter()
                .map(store_change)
                .collect::<Result<Vec<_>, String>>()
            {
                Ok(changes) => changes,
                Err(e) => {
                    let _ = me.cast(DispatcherMsg::WatchFailed(e));
                    return;
                }
            };
            let notify = {
                let mut pending = pending.lock().expect("pending changes lock");
                let was_empty = pending.is_empty();
                pending.extend(changes);
                was_empty
            };
            if notify && me.cast(DispatcherMsg::ChangesPending).is_err() {
                return;
            }
        }
        let _ = me.cast(DispatcherMsg::WatchFailed("watch stream ended".into()));
    })
}

/// A watched change as the dispatcher applies it.
fn store_change(change: DispatchChange) -> Result<StoreChange, String> {
    Ok(match change {
        DispatchChange::Incident(change) => match *change {
            Change::Put { value, revision } => {
                StoreChange::IncidentChanged(Box::new(value), revision)
            }
            Change::Deleted { id, .. } => StoreChange::IncidentRemoved(
                IncidentId::new(id).map_err(|e| format!("bad incident key: {e}"))?,
            ),
        },
        DispatchChange::Brigade(Change::Put { value, revision }) => {
            StoreChange::BrigadeChanged(value, revision)
        }
        DispatchChange::Brigade(Change::Deleted { id, .. }) => StoreChange::BrigadeRemoved(
            BrigadeId::new(id).map_err(|e| format!("bad brigade key: {e}"))?,
        ),
    })
}

impl DispatcherState {
    /// Applies one watched change; returns whether it calls for a dispatch round (an incident
    /// changed, or a brigade is free).
    fn apply(&mut self, change: StoreChange) -> bool {
        match change {
            StoreChange::IncidentChanged(incident, revision) => {
                self.observe_incident(*incident, revision);
                true
            }
            StoreChange::IncidentRemoved(id) => {
                self.incidents.remove(&id);
                self.queue.remove(&id);
                false
            }
            StoreChange::BrigadeChanged(brigade, revision) => {
                let freed = brigade.is_available();
                self.observe_brigade(brigade, revision);
                freed
            }
            StoreChange::BrigadeRemoved(id) => {
                self.brigades.remove(&id);
                self.index.remove(&id);
                false
            }
        }
    }

    /// Publishes the queue length and the available brigades by mode (once a tick).
    fn report_gauges(&self) {
        GAUGES
            .queue_length
            .store(self.queue.len() as i64, Ordering::Relaxed);
        let mut available = [0i64; 3];
        for brigade in self.brigades.values().filter(|b| b.is_available()) {
            available[match brigade.mode {
                Mode::Foot => 0,
                Mode::Motorcycle => 1,
                Mode::Car => 2,
            }] += 1;
        }
        for (gauge, count) in GAUGES.available.iter().zip(available) {
            gauge.store(count, Ordering::Relaxed);
        }
        let mut by_status = [0i64; 6];
        for brigade in self.brigades.values() {
            by_status[match brigade.status {
                BrigadeStatus::Available => 0,
                BrigadeStatus::Dispatched => 1,
                BrigadeStatus::EnRoute => 2,
                BrigadeStatus::OnScene => 3,
                BrigadeStatus::OutOfService => 4,
                BrigadeStatus::Offline => 5,
            }] += 1;
        }
        for (gauge, count) in GAUGES.brigades.iter().zip(by_status) {
            gauge.store(count, Ordering::Relaxed);
        }
        // How long the oldest caller has waited for an operator, and for a brigade: what the
        // alerts on waiting incidents watch (docs/observability.md).
        let now = self.ctx.clock.now();
        let waited = |incident: &Incident| {
            now.saturating_duration_since(incident.first_press_at)
                .as_secs() as i64
        };
        let open = self.incidents.values();
        let unacknowledged = open
            .clone()
            .filter(|i| i.acknowledged.is_none())
            .map(waited)
            .max();
        let unassigned = open.filter(|i| i.needs_unit()).map(waited).max();
        GAUGES
            .unacknowledged_oldest_s
            .store(unacknowledged.unwrap_or(0), Ordering::Relaxed);
        GAUGES
            .unassigned_oldest_s
            .store(unassigned.unwrap_or(0), Ordering::Relaxed);
    }

    /// Records `revision` for `key`; false when a newer version was seen already.
    fn is_newer(&mut self, key: String, revision: i64) -> bool {
        let known = self.revisions.entry(key).or_insert(revision);
        if *known > revision {
            return false;
        }
        *known = revision;
        true
    }

    fn observe_incident(&mut self, incident: Incident, revision: i64) {
        if !self.is_newer(incident_key(&incident.id), revision) {
            return;
        }
        if !incident.is_open() {
            self.queue.remove(&incident.id);
            self.incidents.remove(&incident.id);
            return;
        }
        if wants_unit(&incident) {
            self.queue.push(&incident);
        } else {
            self.queue.remove(&incident.id);
        }
        self.incidents.insert(incident.id.clone(), incident);
    }

    fn observe_brigade(&mut self, brigade: Brigade, revision: i64) {
        if !self.is_newer(brigade_key(&brigade.id), revision) {
            return;
        }
        self.index.upsert(&brigade);
        self.brigades.insert(brigade.id.clone(), brigade);
    }

    /// Assigns brigades to queued incidents, highest priority first, while any is eligible.
    ///
    /// A round plans up to [`limits::DISPATCH_BATCH_MAX`] assignments against the index (each planned
    /// brigade excluded from the later picks, so priority order decides as before), then
    /// commits them concurrently: they touch different incidents and brigades, so they do not
    /// conflict, and a round costs one store round trip of latency instead of one per
    /// incident. A full round is followed by another.
    async fn dispatch_queue(&mut self, myself: &ActorRef<DispatcherMsg>) -> Result<(), Error> {
        loop {
            let mut plan: Vec<(IncidentId, Candidate)> = Vec::new();
            // Units cooling down after an ack timeout are not offered anything (they are
            // available, so in the index: counted as taken).
            let mut taken: Vec<BrigadeId> = if self.queue.is_empty() {
                Vec::new()
            } else {
                self.cooling()
            };
            let pending: Vec<IncidentId> = self.queue.iter().cloned().collect();
            for incident_id in pending {
                if plan.len() >= limits::DISPATCH_BATCH_MAX || self.index.len() <= taken.len() {
                    break;
                }
                let Some(incident) = self.incidents.get(&incident_id) else {
                    self.queue.remove(&incident_id);
                    continue;
                };
                if !incident.needs_unit() {
                    self.queue.remove(&incident_id);
                    continue;
                }
                let mut excluded = excluded_for(incident);
                excluded.extend(taken.iter().cloned());
                let Some(candidate) = self
                    .index
                    .best(incident.kind, &incident.position, &excluded)
                else {
                    continue; // nobody eligible for this one; a lower-priority incident may fit
                };
                taken.push(candidate.brigade.clone());
                plan.push((incident_id, candidate));
            }
            if plan.is_empty() {
                return Ok(());
            }
            let full = plan.len() >= limits::DISPATCH_BATCH_MAX;
            let actor = self.audit_actor();
            let spans: Vec<tracing::Span> = plan
                .iter()
                .map(|(incident, candidate)| self.assign_span(incident, &candidate.brigade))
                .collect();
            let round = tracing::info_span!(
                "dispatch.round",
                assignments = plan.len(),
                term = self.term()
            );
            let results = self.commit_round(&plan, actor).instrument(round).await;
            let mut fenced = false;
            for (((incident_id, candidate), span), result) in
                plan.into_iter().zip(spans).zip(results)
            {
                match result {
                    Ok(update) => {
                        span.in_scope(|| {
                            self.finish_assignment(myself, update, 0, candidate.eta, "dispatcher")
                        });
                    }
                    Err(Error::Records(records::Error::Fenced)) => fenced = true,
                    Err(e) => {
                        tracing::info!(incident = %incident_id, brigade = %candidate.brigade, error = %e, "assignment refused; state refreshed, will retry");
                        self.refresh(&incident_id, &candidate.brigade).await;
                    }
                }
            }
            if fenced {
                return Err(Error::Records(records::Error::Fenced));
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// The store half of a round: every assignment whose incident and brigade the watch
    /// brought in **one** fenced transaction, guarded on those copies
    /// ([`records::Records::update_incidents_known`]: an assignment whose copies moved is made
    /// alone from a read, the others still commit together); an assignment of a record not
    /// held is made alone. Results in the order of `plan`.
    async fn commit_round(
        &self,
        plan: &[(IncidentId, Candidate)],
        actor: AuditActor,
    ) -> Vec<Result<records::IncidentUpdate, Error>> {
        let now = self.ctx.clock.now();
        let assign = |actor: AuditActor| {
            move |inc: &mut Incident, bs: &mut [Brigade]| -> records::Result<()> {
                let b = &mut bs[0];
                b.dispatch(inc.id.clone(), now)?;
                inc.assign(b.id.clone(), actor.clone(), now)?;
                Ok(())
            }
        };
        let mut held = Vec::new();
        let mut changes = Vec::new();
        let mut unheld = Vec::new();
        for (index, (incident_id, candidate)) in plan.iter().enumerate() {
            match self.known(incident_id, std::slice::from_ref(&candidate.brigade)) {
                Some((incident, brigades)) => {
                    held.push(index);
                    changes.push(records::KnownChange {
                        incident,
                        brigades,
                        change: assign(actor.clone()),
                    });
                }
                None => unheld.push(index),
            }
        }
        let alone = unheld.iter().map(|&index| {
            let (incident_id, candidate) = &plan[index];
            self.commit_assignment(incident_id, &[], &candidate.brigade, actor.clone())
        });
        let (batched, alone) = futures::future::join(
            self.ctx
                .records
                .update_incidents_known(changes, &self.fence),
            futures::future::join_all(alone),
        )
        .await;
        let mut results: Vec<Option<Result<records::IncidentUpdate, Error>>> =
            plan.iter().map(|_| None).collect();
        for (index, result) in held.into_iter().zip(batched) {
            results[index] = Some(result.map_err(Error::from));
        }
        for (index, result) in unheld.into_iter().zip(alone) {
            results[index] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.expect("every planned assignment has a result"))
            .collect()
    }

    /// The span of one assignment: it continues the trace of the press that opened the
    /// incident.
    fn assign_span(&self, incident_id: &IncidentId, brigade_id: &BrigadeId) -> tracing::Span {
        let span = tracing::info_span!(
            "dispatch.assign",
            incident = %incident_id,
            brigade = %brigade_id,
            term = self.term()
        );
        if let Some(trace) = self
            .incidents
            .get(incident_id)
            .and_then(|i| i.trace.as_deref())
        {
            propagation::set_parent(&span, trace);
        }
        span
    }

    /// Assigns `brigade` to `incident` in one fenced transaction, first releasing `release`.
    async fn assign(
        &mut self,
        myself: &ActorRef<DispatcherMsg>,
        incident_id: &IncidentId,
        release: &[BrigadeId],
        brigade_id: BrigadeId,
        eta: Duration,
        actor: AuditActor,
    ) -> Result<Incident, Error> {
        let span = self.assign_span(incident_id, &brigade_id);
        let by = match actor {
            AuditActor::Operator(_) => "operator",
            _ => "dispatcher",
        };
        let update = self
            .commit_assignment(incident_id, release, &brigade_id, actor)
            .instrument(span.clone())
            .await?;
        Ok(span.in_scope(|| self.finish_assignment(myself, update, release.len(), eta, by)))
    }

    /// The store half of an assignment: one fenced transaction releasing `release` and
    /// dispatching `brigade_id` to the incident.
    async fn commit_assignment(
        &self,
        incident_id: &IncidentId,
        release: &[BrigadeId],
        brigade_id: &BrigadeId,
        actor: AuditActor,
    ) -> Result<records::IncidentUpdate, Error> {
        let now = self.ctx.clock.now();
        let mut involved: Vec<BrigadeId> = release.to_vec();
        involved.push(brigade_id.clone());
        let released = release.len();
        let change = |inc: &mut Incident, bs: &mut [Brigade]| {
            for b in bs[..released].iter_mut() {
                inc.unassign(&b.id, actor.clone(), "replaced by the operator", now)?;
                b.release(now)?;
            }
            let b = &mut bs[released];
            b.dispatch(inc.id.clone(), now)?;
            inc.assign(b.id.clone(), actor.clone(), now)?;
            Ok(())
        };
        let records = &self.ctx.records;
        // The watch already brought every record involved: commit guarded on those copies,
        // without reading them again (a read only if one changed meanwhile).
        Ok(match self.known(incident_id, &involved) {
            Some((incident, brigades)) => {
                records
                    .update_incident_known(&incident, &brigades, Some(&self.fence), change)
                    .await?
            }
            None => {
                records
                    .update_incident_with(incident_id, &involved, Some(&self.fence), change)
                    .await?
            }
        })
    }

    /// The dispatcher's copies of an incident and brigades, each with the revision it was
    /// seen at; `None` if it does not hold one of them.
    fn known(
        &self,
        incident_id: &IncidentId,
        brigades: &[BrigadeId],
    ) -> Option<(records::Known<Incident>, Vec<records::Known<Brigade>>)> {
        let incident = records::Known {
            value: self.incidents.get(incident_id)?.clone(),
            revision: *self.revisions.get(&incident_key(incident_id))?,
        };
        let brigades = brigades
            .iter()
            .map(|id| {
                Some(records::Known {
                    value: self.brigades.get(id)?.clone(),
                    revision: *self.revisions.get(&brigade_key(id))?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some((incident, brigades))
    }

    /// The rest of a committed assignment (inside its span): tell the brigades, arm the ack
    /// timer, update the dispatcher's view, count it.
    fn finish_assignment(
        &mut self,
        myself: &ActorRef<DispatcherMsg>,
        update: records::IncidentUpdate,
        released: usize,
        eta: Duration,
        by: &'static str,
    ) -> Incident {
        let (incident, brigades, revision) = (update.incident, update.brigades, update.revision);
        let assigned = brigades[released].clone();
        tracing::info!(
            incident = %incident.id,
            brigade = %assigned.id,
            eta_s = eta.as_secs(),
            term = self.term(),
            "brigade assigned"
        );
        for brigade in &brigades[..released] {
            self.ctx.router.tell(
                &brigade.id,
                BrigadeRequest::Cancel {
                    incident: incident.id.clone(),
                    reason: "replaced by the operator".into(),
                    recorded: Some(Box::new(brigade.clone())),
                },
            );
        }
        self.ctx.router.tell(
            &assigned.id,
            BrigadeRequest::Assign {
                assignment: Assignment::new(&incident, eta),
                recorded: Some(Box::new(assigned.clone())),
            },
        );
        let (incident_for_timer, brigade_for_timer) = (incident.id.clone(), assigned.id.clone());
        myself.send_after(limits::ACK_TIMEOUT, move || DispatcherMsg::AckDeadline {
            incident: incident_for_timer,
            brigade: brigade_for_timer,
        });
        for brigade in brigades {
            self.observe_brigade(brigade, revision);
        }
        self.observe_incident(incident.clone(), revision);

        let m = metrics::instruments();
        m.assignments.add(1, &[KeyValue::new("by", by)]);
        let first = incident
            .audit
            .iter()
            .filter(|e| e.action == AuditAction::Assigned)
            .count()
            == 1;
        if first {
            let waited = self
                .ctx
                .clock
                .now()
                .saturating_duration_since(incident.first_press_at);
            m.press_to_assigned
                .record(waited.as_secs_f64() * 1000.0, &[]);
        }
        incident
    }

    /// Re-reads an incident and a brigade after a refused write.
    async fn refresh(&mut self, incident: &IncidentId, brigade: &BrigadeId) {
        match self.ctx.records.incident_at(incident).await {
            Ok(Some((i, revision))) => self.observe_incident(i, revision),
            Ok(None) => {
                self.incidents.remove(incident);
                self.queue.remove(incident);
            }
            Err(e) => tracing::warn!(%incident, error = %e, "incident refresh failed"),
        }
        match self.ctx.records.brigade_at(brigade).await {
            Ok(Some((b, revision))) => self.observe_brigade(b, revision),
            Ok(None) => {
                self.brigades.remove(brigade);
                self.index.remove(brigade);
            }
            Err(e) => tracing::warn!(%brigade, error = %e, "brigade refresh failed"),
        }
    }

    async fn ack_deadline(
        &mut self,
        _myself: &ActorRef<DispatcherMsg>,
        incident_id: IncidentId,
        brigade_id: BrigadeId,
    ) -> Result<(), Error> {
        let still_waiting = self.brigades.get(&brigade_id).is_some_and(|b| {
            b.status == BrigadeStatus::Dispatched
                && !b.acked
                && b.incident.as_ref() == Some(&incident_id)
        });
        if !still_waiting {
            return Ok(());
        }
        let now = self.ctx.clock.now();
        let term = self.term();
        let result = self
            .ctx
            .records
            .update_incident_with(
                &incident_id,
                std::slice::from_ref(&brigade_id),
                Some(&self.fence),
                |inc, bs| {
                    let b = &mut bs[0];
                    if b.acked || b.incident.as_ref() != Some(&inc.id) {
                        return Err(records::Error::Refused("acknowledged meanwhile".into()));
                    }
                    inc.ack_timeout(&b.id, term, now)?;
                    b.release_unacknowledged(now, limits::ACK_TIMEOUT_COOLDOWN)?;
                    Ok(())
                },
            )
            .await;
        match result {
            Ok(update) => {
                let incident = update.incident;
                metrics::instruments()
                    .reassignments
                    .add(1, &[KeyValue::new("reason", "ack_timeout")]);
                tracing::warn!(
                    incident = %incident.id,
                    brigade = %brigade_id,
                    timeout_s = limits::ACK_TIMEOUT.as_secs(),
                    cooldown_s = limits::ACK_TIMEOUT_COOLDOWN.as_secs(),
                    "no acknowledgement: brigade released and cooled down, next candidate"
                );
                self.ctx.router.tell(
                    &brigade_id,
                    BrigadeRequest::Cancel {
                        incident: incident.id.clone(),
                        reason: format!(
                            "not acknowledged within {} s; reassigned",
                            limits::ACK_TIMEOUT.as_secs()
                        ),
                        recorded: update.brigades.first().cloned().map(Box::new),
                    },
                );
                for brigade in update.brigades {
                    self.observe_brigade(brigade, update.revision);
                }
                self.observe_incident(incident, update.revision);
                Ok(())
            }
            Err(records::Error::Fenced) => Err(Error::Records(records::Error::Fenced)),
            Err(e) => {
                tracing::debug!(incident = %incident_id, brigade = %brigade_id, error = %e, "ack deadline: nothing to do");
                self.refresh(&incident_id, &brigade_id).await;
                Ok(())
            }
        }
    }

    async fn incident(&mut self, id: &IncidentId) -> Result<Incident, Error> {
        if let Some(incident) = self.incidents.get(id) {
            return Ok(incident.clone());
        }
        self.ctx
            .records
            .incident(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "incident",
                id: id.to_string(),
            })
    }

    async fn operator_dispatch(
        &mut self,
        myself: &ActorRef<DispatcherMsg>,
        request: DispatchRequest,
    ) -> Result<Incident, Error> {
        let incident = self.incident(&request.incident).await?;
        if !incident.is_open() {
            return Err(records::Error::Refused(format!(
                "incident {} is closed; nothing to dispatch",
                incident.id
            ))
            .into());
        }
        let actor = AuditActor::Operator(request.operator.clone());
        let release: Vec<BrigadeId> = if let Some(out) = &request.swap_out {
            if !incident.is_attached(out) {
                return Err(records::Error::Refused(format!(
                    "brigade {out} is not on incident {}; nothing to swap",
                    incident.id
                ))
                .into());
            }
            vec![out.clone()]
        } else if request.replace {
            incident.units.clone()
        } else {
            Vec::new()
        };
        let (brigade, eta) = match request.unit {
            Some(unit) => {
                let brigade =
                    match self.brigades.get(&unit) {
                        Some(b) => b.clone(),
                        None => self.ctx.records.brigade(&unit).await?.ok_or_else(|| {
                            Error::NotFound {
                                kind: "brigade",
                                id: unit.to_string(),
                            }
                        })?,
                    };
                if !brigade.is_available() {
                    return Err(records::Error::Refused(format!(
                        "brigade {} is {}, not available",
                        brigade.id, brigade.status
                    ))
                    .into());
                }
                let eta = self
                    .index
                    .rank(incident.kind, &incident.position, &[], usize::MAX)
                    .into_iter()
                    .find(|c| c.brigade == brigade.id)
                    .map(|c| c.eta)
                    .unwrap_or_default();
                (brigade.id, eta)
            }
            None => {
                let mut excluded = excluded_for(&incident);
                excluded.extend(self.cooling());
                let best = self
                    .index
                    .best(incident.kind, &incident.position, &excluded)
                    .ok_or_else(|| {
                        records::Error::Refused(format!(
                            "no suitable brigade is available for incident {}; it stays queued",
                            incident.id
                        ))
                    })?;
                (best.brigade, best.eta)
            }
        };
        self.assign(myself, &incident.id, &release, brigade, eta, actor)
            .await
    }

    /// Ends the verify-first holds that passed unconfirmed (checked every
    /// [`limits::DISPATCH_TICK`]): each in one fenced write, audited as the hold expiring; the
    /// incident then joins the queue and is dispatched as usual.
    async fn expire_holds(&mut self) -> Result<(), Error> {
        let now = self.ctx.clock.now();
        let due: Vec<IncidentId> = self
            .incidents
            .values()
            .filter(|i| i.is_held() && i.held_until.is_some_and(|until| until <= now))
            .map(|i| i.id.clone())
            .collect();
        let term = self.term();
        for id in due {
            let result = self
                .ctx
                .records
                .update_incident_with(&id, &[], Some(&self.fence), |inc, _| {
                    Ok(inc.hold_expired(term, now)?)
                })
                .await;
            match result {
                Ok(update) => {
                    tracing::info!(incident = %id, term, "verify-first hold expired unconfirmed: dispatching");
                    self.observe_incident(update.incident, update.revision);
                }
                Err(records::Error::Fenced) => return Err(Error::Records(records::Error::Fenced)),
                Err(e) => {
                    // Confirmed or closed meanwhile: the watch brings the newer record.
                    tracing::debug!(incident = %id, error = %e, "hold expiry: nothing to do");
                }
            }
        }
        Ok(())
    }

    /// The brigades sitting out a cool-down now.
    fn cooling(&self) -> Vec<BrigadeId> {
        let now = self.ctx.clock.now();
        self.brigades
            .values()
            .filter(|b| b.is_available() && b.in_cooldown(now))
            .map(|b| b.id.clone())
            .collect()
    }

    async fn recommend(
        &mut self,
        id: &IncidentId,
        limit: usize,
    ) -> Result<Vec<(Candidate, Brigade)>, Error> {
        let incident = self.incident(id).await?;
        if !incident.is_open() {
            return Err(records::Error::Refused(format!(
                "incident {} is closed; there is nobody to recommend",
                incident.id
            ))
            .into());
        }
        let mut excluded = excluded_for(&incident);
        excluded.extend(self.cooling());
        let limit = limit.clamp(1, limits::RECOMMEND_MAX);
        Ok(self
            .index
            .rank(incident.kind, &incident.position, &excluded, limit)
            .into_iter()
            .filter_map(|c| {
                let brigade = self.brigades.get(&c.brigade)?.clone();
                Some((c, brigade))
            })
            .collect())
    }
}

/// Whether an incident waits in the queue: it needs a brigade and no verify-first hold keeps
/// it back (a held incident is only recommended until it is confirmed or its hold passes).
fn wants_unit(incident: &Incident) -> bool {
    incident.needs_unit() && !incident.is_held()
}

fn incident_key(id: &IncidentId) -> String {
    format!("i/{id}")
}

fn brigade_key(id: &BrigadeId) -> String {
    format!("b/{id}")
}

/// Brigades not to offer for `incident`: those already on it and those that let it time out.
fn excluded_for(incident: &Incident) -> Vec<BrigadeId> {
    let mut excluded: HashSet<BrigadeId> = incident.declined.iter().cloned().collect();
    excluded.extend(incident.units.iter().cloned());
    excluded.into_iter().collect()
}
