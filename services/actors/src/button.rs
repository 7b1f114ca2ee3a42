//! One actor per panic button: turns presses into durable incidents and tracks the button's
//! health from heartbeats and tamper reports.
//!
//! Presses of one button are handled one at a time (the actor's mailbox), which is what makes
//! "a press inside the debounce window merges into the open incident" simple and race-free on
//! this node; the store's compare-and-swap keeps it right across nodes too.

use std::sync::Arc;

use ractor::{ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};

use centinela_core::alert::AlertKind;
use centinela_core::button::{Button, ButtonHealth};
use centinela_core::ids::{ButtonId, OperatorId, PressId};
use centinela_records::PressOutcome;
use centinela_records::device_audit::Clearing;

use centinela_telemetry::propagation;
use tracing::Instrument;

use crate::camera::CameraRequest;
use crate::entity::{Delivery, Entity, EntityMsg, Reply, Request};
use crate::error::Error;
use crate::group_commit::Heard;
use crate::registry::Registry;
use crate::router::Router;
use crate::wire::Response;
use crate::{Context, limits};

/// What a button is asked, from any node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonRequest {
    /// Answered with the press's outcome once it is durable (a [`PressOutcome`]).
    Press { press_id: PressId },
    /// Answered with the button.
    #[serde(rename = "button_heartbeat")]
    Heartbeat {},
    /// Answered with the button.
    #[serde(rename = "button_tamper")]
    Tamper { detail: String },
    /// A supervisor (`by`, checked by the caller) clears the button's open alert after
    /// inspection; a tamper alert also returns the button to service. Answered with the
    /// button, its clearance last in `alerts.cleared`; the clearance and `note` are appended
    /// to the button's audit trail in the same transaction.
    #[serde(rename = "button_clear_alert")]
    ClearAlert {
        by: OperatorId,
        /// Only an alert of this kind (`None`: whichever is open).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<AlertKind>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
}

impl Request for ButtonRequest {
    type Entity = ButtonActor;

    fn delivery(&self) -> Delivery {
        match self {
            ButtonRequest::Press { .. } => {
                Delivery::call("press").within(limits::PRESS_CALL_TIMEOUT)
            }
            ButtonRequest::Heartbeat {} => Delivery::call("heartbeat"),
            ButtonRequest::Tamper { .. } => Delivery::call("tamper report"),
            ButtonRequest::ClearAlert { .. } => Delivery::call("alert clearance"),
        }
    }
}

/// What a button actor tells itself.
pub enum ButtonMsg {
    /// Records the presses queued since the last flush, in one store transaction.
    FlushPresses,
}

/// One panic button's actor state.
pub struct ButtonActor {
    ctx: Arc<Context>,
    /// The button as this actor last read or wrote it. Its health may be older than the
    /// store's: the node's [`crate::liveness::Liveness`] marks silent buttons offline.
    button: Button,
    /// Presses waiting for the next flush, with their callers (see [`ButtonActor::queue_press`]).
    queued_presses: Vec<(PressId, Reply)>,
    /// A `FlushPresses` message is on its way.
    flush_scheduled: bool,
    /// When a flush last merged presses into an already open incident: the next such flush
    /// waits until [`limits::MERGE_FLUSH_INTERVAL`] after it.
    last_merge: Option<tokio::time::Instant>,
    /// The open incident that last merge went into is past its press budget: merges are
    /// paced by [`limits::FLOOD_FLUSH_INTERVAL`] instead of [`limits::MERGE_FLUSH_INTERVAL`].
    flooded: bool,
}

type Myself = ActorRef<EntityMsg<ButtonActor>>;

impl Entity for ButtonActor {
    const KIND: &'static str = "button";
    type Id = ButtonId;
    type Record = Button;
    type Request = ButtonRequest;
    type Internal = ButtonMsg;

    fn registry(router: &Router) -> &Registry<ButtonId, EntityMsg<Self>> {
        &router.buttons
    }

    fn id(&self) -> &ButtonId {
        &self.button.id
    }

    /// Nothing queued or about to be flushed: liveness is the node's table's, not the actor's.
    fn idle(&self) -> bool {
        self.queued_presses.is_empty() && !self.flush_scheduled
    }

    /// The button as this actor last read or wrote it: its next actor starts from it. Only
    /// this actor and the node's liveness marker write a button record (a press writes the
    /// incident, its pointers and the camera, never the button; seeding writes only buttons
    /// the store lacks; a move to another node drops the slot, and the copy with it), and
    /// the marker tells the registry around each write, which replaces the kept copy with the
    /// one written, or drops it if an actor ran meanwhile ([`crate::liveness`]).
    fn kept(&self) -> Option<Button> {
        Some(self.button.clone())
    }

    fn disowned(router: &Router, id: &ButtonId) {
        router.liveness.forget(id);
    }

    /// A heartbeat of a button the node tracks touches the liveness table only: no actor (a
    /// passivated button stays so). One the node knows online (or tampered) costs no store
    /// write; one it recorded offline is answered online and queued for a batched online
    /// write ([`crate::liveness`]).
    fn absorb(router: &Router, id: &ButtonId, request: &ButtonRequest) -> Option<Response> {
        let ButtonRequest::Heartbeat {} = request else {
            return None;
        };
        match router.liveness.heard(id)? {
            ButtonHealth::Offline => router
                .liveness
                .heard_again(id)
                .then_some(Response::Health(ButtonHealth::Online)),
            health => Some(Response::Health(health)),
        }
    }

    async fn start(
        ctx: Arc<Context>,
        button: Button,
        myself: &Myself,
    ) -> Result<Self, ActorProcessingErr> {
        // The node's liveness table judges the button from now on; one tracked for the first
        // time (this node just started, or took it over) gets a full timeout to be heard from.
        ctx.router.liveness.track(&button);
        let _ = myself;
        Ok(ButtonActor {
            ctx,
            button,
            queued_presses: Vec::new(),
            flush_scheduled: false,
            last_merge: None,
            flooded: false,
        })
    }

    async fn request(&mut self, myself: &Myself, request: ButtonRequest, reply: Reply) {
        match request {
            ButtonRequest::Press { press_id } => self.queue_press(myself, press_id, reply),
            ButtonRequest::Heartbeat {} => reply.send(self.heartbeat().await),
            ButtonRequest::Tamper { detail } => reply.send(self.tamper(detail).await),
            ButtonRequest::ClearAlert { by, kind, note } => {
                reply.send(self.clear_alert(by, kind, note).await)
            }
        }
    }

    async fn internal(&mut self, myself: &Myself, message: ButtonMsg) {
        match message {
            ButtonMsg::FlushPresses => self.flush_presses(myself).await,
        }
    }
}

impl ButtonActor {
    /// Takes a new version of the button, as stored, and tells the liveness table.
    fn observe(&mut self, button: Button) {
        self.ctx.router.liveness.track(&button);
        self.button = button;
    }

    /// Queues a press for the next flush. Presses are coalesced, never dropped: a flush
    /// records every queued press (its `presses/` key included) in one transaction before any
    /// of them is answered, so "durable before the ack" holds for each. The first flush of a
    /// quiet button runs at once (behind what is already in the mailbox, which a burst thereby
    /// joins); a flush that only merges into the open incident waits until
    /// [`limits::MERGE_FLUSH_INTERVAL`] after the previous merge, so a flood of presses costs a
    /// bounded number of store writes (docs/security.md).
    fn queue_press(&mut self, myself: &Myself, press_id: PressId, reply: Reply) {
        if self.queued_presses.len() >= limits::PRESS_QUEUE_MAX {
            reply.send::<PressOutcome>(Err(Error::unavailable(format!(
                "button {} has {} presses waiting to be recorded; retry",
                self.button.id,
                self.queued_presses.len()
            ))));
            return;
        }
        self.queued_presses.push((press_id, reply));
        if self.queued_presses.len() >= limits::PRESS_BATCH_MAX {
            // A full batch goes now: waiting longer would only make the next one bigger.
            let _ = myself.cast(EntityMsg::Internal(ButtonMsg::FlushPresses));
            self.flush_scheduled = true;
        } else {
            self.schedule_flush(myself);
        }
    }

    fn schedule_flush(&mut self, myself: &Myself) {
        if self.flush_scheduled || self.queued_presses.is_empty() {
            return;
        }
        self.flush_scheduled = true;
        let interval = if self.flooded {
            limits::FLOOD_FLUSH_INTERVAL
        } else {
            limits::MERGE_FLUSH_INTERVAL
        };
        let wait = self.last_merge.map_or(std::time::Duration::ZERO, |at| {
            (at + interval).saturating_duration_since(tokio::time::Instant::now())
        });
        if wait.is_zero() {
            let _ = myself.cast(EntityMsg::Internal(ButtonMsg::FlushPresses));
        } else {
            myself.send_after(wait, || EntityMsg::Internal(ButtonMsg::FlushPresses));
        }
    }

    async fn flush_presses(&mut self, myself: &Myself) {
        self.flush_scheduled = false;
        let take = self.queued_presses.len().min(limits::PRESS_BATCH_MAX);
        if take == 0 {
            return;
        }
        let (press_ids, replies): (Vec<PressId>, Vec<_>) =
            self.queued_presses.drain(..take).unzip();
        match record_presses(&self.ctx.router, &self.button, &press_ids).await {
            Ok(outcomes) => {
                if outcomes.iter().all(|outcome| outcome.duplicate) {
                    self.last_merge = Some(tokio::time::Instant::now());
                }
                self.flooded = outcomes.iter().all(|outcome| {
                    outcome.duplicate
                        && outcome.incident.press_count as usize
                            >= centinela_records::limits::PRESS_KEYS_PER_INCIDENT_MAX
                });
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                for reply in replies {
                    reply.send::<PressOutcome>(Err(e.clone()));
                }
            }
        }
        self.schedule_flush(myself);
    }

    /// A heartbeat the router did not absorb (the button was not tracked yet): written only
    /// when it changes the button's health.
    async fn heartbeat(&mut self) -> Result<Button, Error> {
        let now = self.ctx.clock.now();
        match self.ctx.router.liveness.heard(&self.button.id) {
            Some(health) if health != ButtonHealth::Offline => {
                let mut button = self.button.clone();
                button.health = health;
                Ok(button)
            }
            _ => {
                // Online again, in a batch with the other buttons heard again: after a
                // district's outage, or at a city's start, they come back together.
                let button = self
                    .ctx
                    .router
                    .heard
                    .record(self.button.id.as_ref(), Heard(now))
                    .await?;
                self.observe(button);
                Ok(self.button.clone())
            }
        }
    }

    async fn tamper(&mut self, detail: String) -> Result<Button, Error> {
        let now = self.ctx.clock.now();
        // The device's own words: escaped, so they cannot drive the terminal reading the log.
        let detail = centinela_core::text::printable(&detail);
        tracing::warn!(button = %self.button.id, %detail, "tamper reported");
        let button = self
            .ctx
            .records
            .update_button(&self.button.id, |b| {
                b.tamper(now);
                Ok(())
            })
            .await?;
        self.observe(button);
        Ok(self.button.clone())
    }

    /// Through this actor, not straight to the store: the actor's copy of the button decides
    /// the liveness checks, and a tamper cleared behind its back would leave it believing the
    /// button still tampered.
    async fn clear_alert(
        &mut self,
        by: OperatorId,
        kind: Option<AlertKind>,
        note: Option<String>,
    ) -> Result<Button, Error> {
        let now = self.ctx.clock.now();
        let clearing = Clearing {
            by: &by,
            kind,
            note: note.as_deref(),
        };
        let (button, _) = self
            .ctx
            .records
            .clear_button_alert(&self.button.id, clearing, now)
            .await?;
        if let Some(clearance) = button.alerts.cleared.last() {
            tracing::warn!(
                button = %button.id,
                kind = %clearance.kind,
                by = %by,
                health = %button.health,
                "alert cleared"
            );
        }
        self.observe(button);
        Ok(self.button.clone())
    }
}

/// Records presses of `button` (one store transaction, shared with other buttons' presses
/// through the node's group commit) and turns its camera to the caller:
/// what the button's actor does with each batch, and what a node does alone when the button's
/// owner cannot be reached ([`Router::press`]).
pub(crate) async fn record_presses(
    router: &Router,
    button: &Button,
    press_ids: &[PressId],
) -> Result<Vec<PressOutcome>, Error> {
    let now = router.clock.now();
    let span = tracing::info_span!("store.press", button = %button.id, presses = press_ids.len());
    // The incident remembers this press's trace: the dispatcher continues it.
    let trace = span.in_scope(propagation::traceparent);
    let group = centinela_records::PressGroup {
        button: button.clone(),
        press_ids: press_ids.to_vec(),
        now,
        debounce: limits::DEBOUNCE_WINDOW,
        trace,
    };
    let outcomes = router.presses.record(group).instrument(span).await?;
    let mut aimed = Vec::new();
    for (press_id, outcome) in press_ids.iter().zip(&outcomes) {
        tracing::info!(
            button = %button.id,
            incident = %outcome.incident.id,
            press = %press_id,
            duplicate = outcome.duplicate,
            presses = press_ids.len(),
            "press durable"
        );
        // The camera turns to the caller whether the press opened the incident or joined it
        // (the camera actor ignores an aim it is already carrying out).
        if !aimed.contains(&outcome.incident.id) {
            aimed.push(outcome.incident.id.clone());
            router.tell(
                &button.camera,
                CameraRequest::Aim {
                    incident: outcome.incident.id.clone(),
                    recorded: outcome.camera.clone().map(Box::new),
                },
            );
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use centinela_core::button::Button;

    /// A passivated button's registry slot keeps its record ([`super::ButtonActor::kept`]):
    /// docs/benchmarks.md ("Starting without a read") sizes that at about 0.4 KB a button
    /// (the record's 208 bytes, boxed, plus its ids, name and district on the heap), ~38 MiB
    /// for 100,000. A record that grows past this makes that figure wrong: say so there.
    #[test]
    fn a_kept_button_record_stays_small() {
        assert!(
            std::mem::size_of::<Button>() <= 208,
            "Button is {} bytes",
            std::mem::size_of::<Button>()
        );
    }
}
