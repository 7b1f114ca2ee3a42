//! One actor per panic button: turns presses into durable incidents and tracks the button's
//! health from heartbeats and tamper reports.
//!
//! Presses of one button are handled one at a time (the actor's mailbox), which is what makes
//! "a press inside the debounce window merges into the open incident" simple and race-free on
//! this node; the store's compare-and-swap keeps it right across nodes too.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use centinela_core::button::{Button, ButtonHealth};
use centinela_core::ids::{ButtonId, PressId};
use centinela_core::time::Timestamp;
use centinela_store::records::PressOutcome;

use centinela_telemetry::metrics::GAUGES;
use centinela_telemetry::propagation;
use tracing::Instrument;

use crate::Context;
use crate::error::Error;
use crate::limits;

pub enum ButtonMsg {
    Press {
        press_id: PressId,
        reply: RpcReplyPort<Result<PressOutcome, Error>>,
    },
    Heartbeat {
        reply: RpcReplyPort<Result<Button, Error>>,
    },
    Tamper {
        detail: String,
        reply: RpcReplyPort<Result<Button, Error>>,
    },
    /// Periodic: no heartbeat for too long turns the button offline.
    CheckLiveness,
    /// Fault injection for tests of supervision: the actor panics.
    #[doc(hidden)]
    Crash,
}

pub struct ButtonActor;

pub struct ButtonArgs {
    pub id: ButtonId,
    pub ctx: Arc<Context>,
}

pub struct ButtonState {
    ctx: Arc<Context>,
    button: Button,
    /// Last heartbeat seen by this actor (in memory; see `HEARTBEAT_PERSIST_INTERVAL`).
    last_heartbeat: Timestamp,
    /// When a heartbeat was last written to the store.
    heartbeat_persisted: Option<Timestamp>,
}

impl Actor for ButtonActor {
    type Msg = ButtonMsg;
    type State = ButtonState;
    type Arguments = ButtonArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ButtonArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let button = args
            .ctx
            .records
            .button(&args.id)
            .await?
            .ok_or_else(|| format!("button {} is not in the store", args.id))?;
        myself.send_interval(limits::LIVENESS_CHECK_INTERVAL, || ButtonMsg::CheckLiveness);
        // A (re)started actor gives the device a full timeout to be heard from before it
        // declares the button offline.
        let now = args.ctx.clock.now();
        if button.health == ButtonHealth::Offline {
            GAUGES.buttons_offline.fetch_add(1, Ordering::Relaxed);
        }
        Ok(ButtonState {
            ctx: args.ctx,
            last_heartbeat: now,
            heartbeat_persisted: button.last_heartbeat,
            button,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // This node no longer counts the button (it moved, or the actor is restarting).
        if state.button.health == ButtonHealth::Offline {
            GAUGES.buttons_offline.fetch_add(-1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ButtonMsg::Press { press_id, reply } => {
                let result = state.press(press_id).await;
                let _ = reply.send(result);
            }
            ButtonMsg::Heartbeat { reply } => {
                let result = state.heartbeat().await;
                let _ = reply.send(result);
            }
            ButtonMsg::Tamper { detail, reply } => {
                let result = state.tamper(detail).await;
                let _ = reply.send(result);
            }
            ButtonMsg::CheckLiveness => state.check_liveness().await,
            ButtonMsg::Crash => panic!("fault injection: button {} crashed", state.button.id),
        }
        Ok(())
    }
}

impl ButtonState {
    /// Takes a new version of the button, keeping the offline-buttons gauge in step.
    fn observe(&mut self, button: Button) {
        let was = self.button.health == ButtonHealth::Offline;
        let is = button.health == ButtonHealth::Offline;
        if was != is {
            GAUGES
                .buttons_offline
                .fetch_add(if is { 1 } else { -1 }, Ordering::Relaxed);
        }
        self.button = button;
    }

    async fn press(&mut self, press_id: PressId) -> Result<PressOutcome, Error> {
        let now = self.ctx.clock.now();
        let span = tracing::info_span!("store.press", button = %self.button.id);
        // The incident remembers this press's trace: the dispatcher continues it.
        let trace = span.in_scope(propagation::traceparent);
        let outcome = self
            .ctx
            .records
            .press(&self.button, &press_id, now, limits::DEBOUNCE_WINDOW, trace)
            .instrument(span)
            .await?;
        tracing::info!(
            button = %self.button.id,
            incident = %outcome.incident.id,
            press = %press_id,
            duplicate = outcome.duplicate,
            "press durable"
        );
        // The camera turns to the caller whether the press opened the incident or joined it
        // (the camera actor ignores an aim it is already carrying out).
        self.ctx
            .router
            .camera_aim(&self.button.camera, outcome.incident.id.clone());
        Ok(outcome)
    }

    async fn heartbeat(&mut self) -> Result<Button, Error> {
        let now = self.ctx.clock.now();
        self.last_heartbeat = now;
        let stale = self.heartbeat_persisted.is_none_or(|at| {
            now.saturating_duration_since(at) >= limits::HEARTBEAT_PERSIST_INTERVAL
        });
        if self.button.health == ButtonHealth::Offline || stale {
            let button = self
                .ctx
                .records
                .update_button(&self.button.id, |b| {
                    b.heartbeat(now);
                    Ok(())
                })
                .await?;
            self.observe(button);
            self.heartbeat_persisted = Some(now);
        }
        Ok(self.button.clone())
    }

    async fn tamper(&mut self, detail: String) -> Result<Button, Error> {
        let now = self.ctx.clock.now();
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

    async fn check_liveness(&mut self) {
        let now = self.ctx.clock.now();
        let silent = now.saturating_duration_since(self.last_heartbeat);
        if self.button.health != ButtonHealth::Online || silent < limits::HEARTBEAT_TIMEOUT {
            return;
        }
        let last_heartbeat = self.last_heartbeat;
        let result = self
            .ctx
            .records
            .update_button(&self.button.id, |b| {
                // The store's copy may hold an older heartbeat; judge by what this actor saw.
                b.last_heartbeat = Some(
                    b.last_heartbeat
                        .map_or(last_heartbeat, |t| t.max(last_heartbeat)),
                );
                b.check_liveness(now, limits::HEARTBEAT_TIMEOUT);
                Ok(())
            })
            .await;
        match result {
            Ok(button) => {
                if button.health == ButtonHealth::Offline {
                    tracing::warn!(button = %button.id, silent_s = silent.as_secs(), "button offline");
                }
                self.observe(button);
            }
            Err(e) => {
                tracing::warn!(button = %self.button.id, error = %e, "liveness update failed")
            }
        }
    }
}
