//! One actor per PTZ camera: aims at its button's preset for an incident, bookmarks the
//! recording, follows the device's reports to `on_target`, and releases when told.
//!
//! The device keeps a command channel open (a gRPC server stream); the actor holds its sending
//! side. A device that reconnects while an aim is in progress gets the aim again.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;

use centinela_core::camera::{Camera, CameraState, PtzPreset};
use centinela_core::ids::{CameraId, IncidentId};

use centinela_telemetry::propagation;
use tracing::Instrument;

use crate::Context;
use crate::device::DeviceChannel;
use crate::error::Error;

/// What the node tells a camera device.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum CameraCommand {
    Aim {
        incident: IncidentId,
        preset: PtzPreset,
        /// The press's trace context, for the device to send back with its reports.
        trace: Option<String>,
    },
    Release,
}

pub enum CameraMsg {
    Aim {
        incident: IncidentId,
    },
    Release {
        incident: IncidentId,
    },
    Attach {
        commands: mpsc::Sender<CameraCommand>,
        reply: RpcReplyPort<Result<Camera, Error>>,
    },
    /// The device channel of `generation` closed.
    Detached {
        generation: u64,
    },
    Report {
        state: CameraState,
        incident: Option<IncidentId>,
        reply: RpcReplyPort<Result<Camera, Error>>,
    },
    #[doc(hidden)]
    Crash,
}

pub struct CameraActor;

pub struct CameraArgs {
    pub id: CameraId,
    pub ctx: Arc<Context>,
}

pub struct CameraState_ {
    ctx: Arc<Context>,
    camera: Camera,
    device: DeviceChannel<CameraCommand>,
}

impl Actor for CameraActor {
    type Msg = CameraMsg;
    type State = CameraState_;
    type Arguments = CameraArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: CameraArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let camera = args
            .ctx
            .records
            .camera(&args.id)
            .await?
            .ok_or_else(|| format!("camera {} is not in the store", args.id))?;
        Ok(CameraState_ {
            ctx: args.ctx,
            camera,
            device: DeviceChannel::default(),
        })
    }

    /// A camera whose button has an open incident is aimed at it: the aim sent when the
    /// incident opened may have been lost (a cut between nodes longer than its delivery
    /// deadline, or this actor was moving to a new owner). Aiming is idempotent.
    async fn post_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match state
            .ctx
            .records
            .open_incident_of(&state.camera.button)
            .await
        {
            Ok(Some(incident)) => state.aim(incident).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(camera = %state.camera.id, error = %e, "open incident not read at start");
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Boxed, so the handler's future (as large as its largest store transaction) is
        // allocated per message instead of being reserved in every idle actor for its life
        // (docs/benchmarks.md, "Scale").
        Box::pin(state.handle(&myself, message)).await;
        Ok(())
    }
}

impl CameraState_ {
    async fn handle(&mut self, myself: &ActorRef<CameraMsg>, message: CameraMsg) {
        match message {
            CameraMsg::Aim { incident } => self.aim(incident).await,
            CameraMsg::Release { incident } => self.release(incident).await,
            CameraMsg::Attach { commands, reply } => {
                let result = self.attach(myself, commands).await;
                let _ = reply.send(result);
            }
            CameraMsg::Detached { generation } => self.detached(generation).await,
            CameraMsg::Report {
                state: reported,
                incident,
                reply,
            } => {
                let result = self.report(reported, incident).await;
                let _ = reply.send(result);
            }
            CameraMsg::Crash => panic!("fault injection: camera {} crashed", self.camera.id),
        }
    }

    async fn aim(&mut self, incident: IncidentId) {
        let already = self.camera.target.as_ref() == Some(&incident)
            && self.camera.state != CameraState::Idle;
        if already {
            return;
        }
        let span = tracing::info_span!("camera.aim", camera = %self.camera.id, %incident);
        self.aim_traced(incident).instrument(span).await;
    }

    async fn aim_traced(&mut self, incident: IncidentId) {
        let now = self.ctx.clock.now();
        let target = incident.clone();
        match self
            .ctx
            .records
            .update_camera(&self.camera.id, |c| {
                c.aim(target.clone(), now);
                Ok(())
            })
            .await
        {
            Ok(camera) => self.camera = camera,
            Err(e) => {
                // Still try to turn the camera: the store write is bookkeeping, the picture
                // of the caller is what matters.
                tracing::warn!(camera = %self.camera.id, error = %e, "camera aim not recorded");
            }
        }
        tracing::info!(camera = %self.camera.id, %incident, "camera aiming");
        self.send(CameraCommand::Aim {
            incident,
            preset: self.camera.preset,
            trace: propagation::traceparent(),
        });
    }

    async fn release(&mut self, incident: IncidentId) {
        if self.camera.target.as_ref() != Some(&incident) {
            return; // aimed at something newer since
        }
        let now = self.ctx.clock.now();
        match self
            .ctx
            .records
            .update_camera(&self.camera.id, |c| {
                c.release(now);
                Ok(())
            })
            .await
        {
            Ok(camera) => self.camera = camera,
            Err(e) => {
                tracing::warn!(camera = %self.camera.id, error = %e, "camera release not recorded")
            }
        }
        self.send(CameraCommand::Release);
    }

    async fn attach(
        &mut self,
        myself: &ActorRef<CameraMsg>,
        commands: mpsc::Sender<CameraCommand>,
    ) -> Result<Camera, Error> {
        self.device
            .attach(commands, myself, |generation| CameraMsg::Detached {
                generation,
            });
        // Another node may have aimed this camera while this actor was not its owner.
        if let Some(camera) = self.ctx.records.camera(&self.camera.id).await? {
            self.camera = camera;
        }
        if !self.camera.online {
            self.camera = self
                .ctx
                .records
                .update_camera(&self.camera.id, |c| {
                    c.online = true;
                    Ok(())
                })
                .await?;
        }
        // An aim that was in progress when the device dropped is sent again.
        if self.camera.state == CameraState::Aiming
            && let Some(incident) = self.camera.target.clone()
        {
            self.send(CameraCommand::Aim {
                incident,
                preset: self.camera.preset,
                trace: None,
            });
        }
        Ok(self.camera.clone())
    }

    async fn detached(&mut self, generation: u64) {
        if !self.device.detach(generation) {
            return; // an older channel; a newer one is attached
        }
        match self
            .ctx
            .records
            .update_camera(&self.camera.id, |c| {
                c.online = false;
                Ok(())
            })
            .await
        {
            Ok(camera) => self.camera = camera,
            Err(e) => {
                tracing::warn!(camera = %self.camera.id, error = %e, "camera offline not recorded")
            }
        }
        tracing::warn!(camera = %self.camera.id, "camera device disconnected");
    }

    async fn report(
        &mut self,
        reported: CameraState,
        incident: Option<IncidentId>,
    ) -> Result<Camera, Error> {
        let now = self.ctx.clock.now();
        match reported {
            // The device confirms what the actor already recorded when it sent the aim.
            CameraState::Aiming => Ok(self.camera.clone()),
            CameraState::OnTarget => {
                if incident.is_some() && incident != self.camera.target {
                    // A late report about an earlier aim: not an error, not news either.
                    return Ok(self.camera.clone());
                }
                if self.camera.state == CameraState::OnTarget {
                    return Ok(self.camera.clone());
                }
                let span = tracing::info_span!("camera.on_target", camera = %self.camera.id);
                self.camera = self
                    .ctx
                    .records
                    .update_camera(&self.camera.id, |c| Ok(c.on_target(now)?))
                    .instrument(span)
                    .await?;
                tracing::info!(camera = %self.camera.id, incident = ?self.camera.target, "camera on target");
                Ok(self.camera.clone())
            }
            CameraState::Idle => {
                if self.camera.state == CameraState::Idle {
                    return Ok(self.camera.clone());
                }
                self.camera = self
                    .ctx
                    .records
                    .update_camera(&self.camera.id, |c| {
                        c.release(now);
                        Ok(())
                    })
                    .await?;
                Ok(self.camera.clone())
            }
        }
    }

    /// A command not delivered is not lost: the camera's state holds it, and the device gets
    /// it again when it reconnects.
    fn send(&mut self, command: CameraCommand) {
        if let Err(reason) = self.device.send(command) {
            tracing::warn!(camera = %self.camera.id, reason, "camera command not delivered now");
        }
    }
}
