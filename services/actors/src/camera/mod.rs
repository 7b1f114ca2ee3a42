//! One actor per PTZ camera: aims at its button's preset for an incident, bookmarks the
//! recording, follows the camera to `on_target`, and releases when told.
//!
//! The camera is reached through a [`driver`]: a native device keeps a command channel open (a
//! gRPC server stream) and reports back; an IP camera is driven over [`onvif`] by a task the
//! actor owns. Either way the actor's state machine is the same, and a camera that comes back
//! while an aim is in progress gets the aim again.

pub mod driver;
pub mod onvif;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use ractor::{ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use centinela_core::camera::{Camera, CameraState, PtzPreset};
use centinela_core::ids::{CameraId, IncidentId};

use centinela_telemetry::metrics::GAUGES;
use centinela_telemetry::propagation;
use tracing::Instrument;

use self::driver::{CameraDriver, NativeLink};
use self::onvif::{DriverEvent, OnvifDriver};
use crate::entity::{Delivery, Entity, EntityMsg, Reply, Request, Source};
use crate::error::Error;
use crate::group_commit::Presence;
use crate::registry::Registry;
use crate::router::Router;
use crate::{Context, limits};

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

/// What a camera is asked, from any node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraRequest {
    /// Frame the button's caller for `incident`.
    #[serde(rename = "camera_aim")]
    Aim {
        incident: IncidentId,
        /// The camera as the press's transaction recorded this aim (the aim rides in the
        /// press's write): the actor then only turns the camera. Absent from older senders,
        /// and when the press found the camera already aimed there.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recorded: Option<Box<Camera>>,
    },
    /// Done with `incident` (ignored when the camera was aimed at something newer since).
    #[serde(rename = "camera_release")]
    Release {
        incident: IncidentId,
        /// The camera as the incident's closing transaction released it: the actor then only
        /// tells the device. Absent from older senders, and when the close did not release it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recorded: Option<Box<Camera>>,
    },
    /// The device's report of where it is; answered with the camera.
    #[serde(rename = "camera_report")]
    Report {
        state: CameraState,
        incident: Option<IncidentId>,
    },
    /// An operator's manual move: to `to`, or back to the button when `None`. Answered with
    /// the camera; refused for a camera that takes no manual moves (a native device).
    #[serde(rename = "camera_steer")]
    Steer { to: Option<PtzPreset> },
}

impl Request for CameraRequest {
    type Entity = CameraActor;

    fn delivery(&self) -> Delivery {
        match self {
            // Framing the caller is worth a late delivery across a cut between sites (and
            // aiming twice is harmless).
            CameraRequest::Aim { .. } => {
                Delivery::tell("camera aim").within(limits::CAMERA_AIM_DEADLINE)
            }
            CameraRequest::Release { .. } => Delivery::tell("camera release"),
            CameraRequest::Report { .. } => Delivery::call("camera report"),
            CameraRequest::Steer { .. } => Delivery::call("camera steer"),
        }
    }
}

/// What a camera actor tells itself.
pub enum CameraMsg {
    /// The device's command channel, connected to this node or proxied from another.
    Attach {
        commands: mpsc::Sender<Box<CameraCommand>>,
        reply: RpcReplyPort<Result<Camera, Error>>,
    },
    /// The device channel of `generation` closed.
    Detached { generation: u64 },
    /// What the ONVIF driver learned.
    Driver(DriverEvent),
}

/// One PTZ camera's actor state.
pub struct CameraActor {
    ctx: Arc<Context>,
    camera: Camera,
    driver: Box<dyn CameraDriver>,
    myself: Myself,
}

type Myself = ActorRef<EntityMsg<CameraActor>>;

impl Entity for CameraActor {
    const KIND: &'static str = "camera";
    type Id = CameraId;
    type Record = Camera;
    type Request = CameraRequest;
    type Internal = CameraMsg;

    fn registry(router: &Router) -> &Registry<CameraId, EntityMsg<Self>> {
        &router.cameras
    }

    async fn start(
        ctx: Arc<Context>,
        camera: Camera,
        myself: &Myself,
    ) -> Result<Self, ActorProcessingErr> {
        ctx.router
            .cameras_offline
            .observe(&camera.id, camera.online);
        let driver = driver_for(&ctx, &camera, myself);
        Ok(CameraActor {
            ctx,
            camera,
            driver,
            myself: myself.clone(),
        })
    }

    fn id(&self) -> &CameraId {
        &self.camera.id
    }

    /// A native camera with no incident held, its device attached or not: the device's
    /// channel is kept by the node ([`NativeLink`]), and a command or a report wakes the actor.
    /// An ONVIF camera stays: its actor drives it and watches its health.
    fn idle(&self) -> bool {
        self.camera.onvif.is_none()
            && self.camera.state == CameraState::Idle
            && self.camera.target.is_none()
    }

    /// An aim or release carries the camera as the press's or the close's transaction wrote
    /// it.
    fn carried(request: &CameraRequest) -> Option<Camera> {
        match request {
            CameraRequest::Aim { recorded, .. } | CameraRequest::Release { recorded, .. } => {
                recorded.as_deref().cloned()
            }
            _ => None,
        }
    }

    fn owned(router: &Router, _id: &CameraId) {
        router.cameras_offline.owned();
    }

    /// Ends the device's stream too: the device reconnects to the new owner.
    fn disowned(router: &Router, id: &CameraId) {
        router.cameras_offline.disowned(id);
        router.camera_links.remove(id);
    }

    /// A camera recorded aiming is turned again: the aim sent when its incident opened may
    /// have been lost (a cut between nodes longer than its delivery deadline, or this actor
    /// was moving to a new owner). Turning is
    /// idempotent, and costs no store request: the press's transaction records the camera's
    /// aim with the incident, and a close records its release with the close, so the camera's
    /// own record says whether an incident holds it. (Until this release the actor read its
    /// button's open-incident pointer here, one more read per start, for records written
    /// before presses aimed cameras in their own transaction.)
    ///
    /// Not when an aim or release woke the actor with the camera as its transaction wrote it
    /// ([`Source::Carried`]): that message is the news, handled next.
    async fn started(&mut self, _myself: &Myself, source: Source) {
        // A native device that is not attached here gets the aim when it attaches.
        let aiming = self.camera.state == CameraState::Aiming && self.driver.attached();
        if source == Source::Carried || !aiming {
            return;
        }
        if let Some(incident) = self.camera.target.clone() {
            let _entered =
                tracing::info_span!("camera.aim", camera = %self.camera.id, %incident).entered();
            self.turn(incident);
        }
    }

    async fn request(&mut self, _myself: &Myself, request: CameraRequest, reply: Reply) {
        match request {
            CameraRequest::Aim { incident, recorded } => {
                self.aim(incident, recorded.map(|c| *c)).await;
                reply.send(Ok(()));
            }
            CameraRequest::Release { incident, recorded } => {
                self.release(incident, recorded.map(|c| *c)).await;
                reply.send(Ok(()));
            }
            CameraRequest::Report { state, incident } => {
                reply.send(self.report(state, incident).await);
            }
            CameraRequest::Steer { to } => reply.send(self.steer(to)),
        }
    }

    async fn internal(&mut self, _myself: &Myself, message: CameraMsg) {
        match message {
            CameraMsg::Attach { commands, reply } => {
                let _ = reply.send(self.attach(commands).await);
            }
            CameraMsg::Detached { generation } => self.detached(generation).await,
            CameraMsg::Driver(event) => self.driver_event(event).await,
        }
    }
}

/// The node's count of its cameras offline (`centinela_cameras_offline`, alerted as
/// `CentinelaCameraOffline`): every camera the node owns counts offline until it is seen
/// recorded online. Kept by the node, not by the camera's actor: a native camera's actor
/// passivates while its device stays attached, and the camera stays online meanwhile (the
/// actor's own count, given back when it stopped, counted every such camera offline two
/// minutes after its device attached).
#[derive(Default)]
pub struct OfflineCount {
    /// The owned cameras counted online.
    online: Mutex<HashSet<CameraId>>,
}

impl OfflineCount {
    fn online(&self) -> std::sync::MutexGuard<'_, HashSet<CameraId>> {
        self.online.lock().expect("camera count lock poisoned")
    }

    /// The node took a camera on: offline until seen online.
    pub fn owned(&self) {
        GAUGES.cameras_offline.fetch_add(1, Ordering::Relaxed);
    }

    /// `camera` as last read or written here is `online` or not.
    pub fn observe(&self, camera: &CameraId, online: bool) {
        let mut counted = self.online();
        // Most observations change nothing: no id is cloned for them.
        let changed = if online {
            !counted.contains(camera) && counted.insert(camera.clone())
        } else {
            counted.remove(camera)
        };
        drop(counted);
        if changed {
            let change = if online { -1 } else { 1 };
            GAUGES.cameras_offline.fetch_add(change, Ordering::Relaxed);
        }
    }

    /// How many owned cameras are counted online.
    pub fn online_count(&self) -> usize {
        self.online().len()
    }

    /// The node no longer owns `camera`: counted neither way.
    pub fn disowned(&self, camera: &CameraId) {
        if !self.online().remove(camera) {
            GAUGES.cameras_offline.fetch_add(-1, Ordering::Relaxed);
        }
    }
}

/// The driver `camera` is configured for: ONVIF when it has an endpoint, else a native device
/// channel (attached when the device dials in).
fn driver_for(ctx: &Context, camera: &Camera, myself: &Myself) -> Box<dyn CameraDriver> {
    let Some(endpoint) = camera.onvif.clone() else {
        return Box::new(NativeLink {
            camera: camera.id.clone(),
            links: ctx.router.camera_links.clone(),
        });
    };
    let login = ctx.onvif.login(&camera.id).cloned();
    if login.is_none() {
        tracing::warn!(camera = %camera.id, "ONVIF camera without credentials: set CENTINELA_ONVIF_USER and CENTINELA_ONVIF_PASSWORD, or CENTINELA_CAMERAS_FILE");
    }
    let actor = myself.clone();
    Box::new(OnvifDriver::start(
        camera.id.clone(),
        endpoint,
        login,
        move |event| {
            let _ = actor.cast(EntityMsg::Internal(CameraMsg::Driver(event)));
        },
    ))
}

/// A fault's text as stored: a camera's fault reason can quote its answer, which is bounded
/// by the client but need not all go into the record.
fn truncate(mut reason: String) -> String {
    if reason.len() > limits::CAMERA_FAULT_BYTES_MAX {
        let mut end = limits::CAMERA_FAULT_BYTES_MAX;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    reason
}

impl CameraActor {
    /// Takes a new version of the camera, keeping the offline-cameras gauge in step.
    fn observe(&mut self, camera: Camera) {
        self.ctx
            .router
            .cameras_offline
            .observe(&camera.id, camera.online);
        let reconfigured = self.camera.onvif != camera.onvif;
        self.camera = camera;
        if reconfigured {
            tracing::info!(camera = %self.camera.id, driver = %self.camera.driver(), "camera driver reconfigured");
            self.driver = driver_for(&self.ctx, &self.camera, &self.myself);
        }
    }

    async fn aim(&mut self, incident: IncidentId, recorded: Option<Camera>) {
        let span = tracing::info_span!("camera.aim", camera = %self.camera.id, %incident);
        // The press's transaction recorded the aim: no write of our own, just turn the camera.
        if let Some(camera) =
            recorded.filter(|c| c.id == self.camera.id && c.target.as_ref() == Some(&incident))
        {
            self.observe(camera);
            let _entered = span.enter();
            self.turn(incident);
            return;
        }
        let already = self.camera.target.as_ref() == Some(&incident)
            && self.camera.state != CameraState::Idle;
        if already {
            return;
        }
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
            Ok(camera) => self.observe(camera),
            Err(e) => {
                // Still try to turn the camera: the store write is bookkeeping, the picture
                // of the caller is what matters.
                tracing::warn!(camera = %self.camera.id, error = %e, "camera aim not recorded");
            }
        }
        self.turn(incident);
    }

    /// Sends the aim to the device (or the ONVIF driver).
    fn turn(&mut self, incident: IncidentId) {
        tracing::info!(camera = %self.camera.id, %incident, "camera aiming");
        self.send(CameraCommand::Aim {
            incident,
            preset: self.camera.preset,
            trace: propagation::traceparent(),
        });
    }

    async fn release(&mut self, incident: IncidentId, recorded: Option<Camera>) {
        if self.camera.target.as_ref() != Some(&incident) {
            return; // aimed at something newer since
        }
        // The close released it in the store already: just tell the device.
        if let Some(camera) = recorded.filter(|c| c.id == self.camera.id && c.target.is_none()) {
            self.observe(camera);
            self.send(CameraCommand::Release);
            return;
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
            Ok(camera) => self.observe(camera),
            Err(e) => {
                tracing::warn!(camera = %self.camera.id, error = %e, "camera release not recorded")
            }
        }
        self.send(CameraCommand::Release);
    }

    async fn attach(
        &mut self,
        commands: mpsc::Sender<Box<CameraCommand>>,
    ) -> Result<Camera, Error> {
        let Some(link) = self.driver.native() else {
            let url = self.camera.onvif.as_ref().map_or("", |e| e.url.as_str());
            return Err(Error::Records(centinela_records::Error::Refused(format!(
                "camera {} is driven over ONVIF at {url}; it takes no device stream",
                self.camera.id
            ))));
        };
        // The device's hang-up reaches the camera through its registry slot, waking a
        // passivated actor. A weak reference: the entry must not keep the router alive.
        let router = self.ctx.router.downgrade();
        let camera = self.camera.id.clone();
        link.links
            .attach(self.camera.id.clone(), commands, move |generation| {
                if let Some(router) = router.upgrade() {
                    let detached = EntityMsg::Internal(CameraMsg::Detached { generation });
                    // Refused: no longer owned here; the stream ended with the ownership.
                    let _ = router.cameras.send(&camera, detached);
                }
            });
        // Online, in a batch with other cameras attaching; the stored record comes from a
        // current read: another node may have aimed this camera while this actor was not its
        // owner.
        let camera = self
            .ctx
            .router
            .presence
            .record(self.camera.id.as_ref(), Presence::Online)
            .await?;
        self.observe(camera);
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
        let Some(link) = self.driver.native() else {
            return;
        };
        if !link.links.detach(&link.camera, generation) {
            return; // an older channel; a newer one is attached
        }
        let now = self.ctx.clock.now();
        match self
            .ctx
            .router
            .presence
            .record(self.camera.id.as_ref(), Presence::Offline(now))
            .await
        {
            Ok(camera) => self.observe(camera),
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
                let camera = self
                    .ctx
                    .records
                    .update_camera(&self.camera.id, |c| Ok(c.on_target(now)?))
                    .instrument(span)
                    .await?;
                self.observe(camera);
                tracing::info!(camera = %self.camera.id, incident = ?self.camera.target, "camera on target");
                Ok(self.camera.clone())
            }
            CameraState::Idle => {
                if self.camera.state == CameraState::Idle {
                    return Ok(self.camera.clone());
                }
                let camera = self
                    .ctx
                    .records
                    .update_camera(&self.camera.id, |c| {
                        c.release(now);
                        Ok(())
                    })
                    .await?;
                self.observe(camera);
                Ok(self.camera.clone())
            }
        }
    }

    /// A command not delivered is not lost: the camera's state holds it, and the device gets
    /// it again when it reconnects.
    fn send(&mut self, command: CameraCommand) {
        if let Err(reason) = self.driver.send(command) {
            tracing::warn!(camera = %self.camera.id, reason, "camera command not delivered now");
        }
    }

    /// An operator's manual move (`None`: back to the button).
    fn steer(&mut self, to: Option<PtzPreset>) -> Result<Camera, Error> {
        let refused = |reason: &str| {
            Error::Records(centinela_records::Error::Refused(format!(
                "camera {}: {reason}",
                self.camera.id
            )))
        };
        if !self.camera.online {
            let why = self.camera.fault.as_deref().unwrap_or("not connected");
            return Err(refused(&format!("offline ({why})")));
        }
        self.driver.steer(to, self.camera.preset).map_err(refused)?;
        tracing::info!(camera = %self.camera.id, ?to, "camera steered by an operator");
        Ok(self.camera.clone())
    }

    /// Writes the camera's stream URI into `incident`, once: with the camera and the incident's
    /// times, it is where operators find the footage.
    async fn record_stream(&self, incident: &IncidentId) {
        let Some(uri) = self.camera.stream_uri.clone() else {
            return;
        };
        if self.camera.target.as_ref() != Some(incident) {
            return;
        }
        let result = self
            .ctx
            .records
            .update_incident(incident, |i| {
                i.stream_uri = Some(uri.clone());
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(camera = %self.camera.id, %incident, error = %e, "stream URI not recorded in the incident");
        }
    }

    /// Keeps the record in step with what the ONVIF driver learned.
    async fn driver_event(&mut self, event: DriverEvent) {
        let change: Box<dyn FnMut(&mut Camera) + Send> = match event {
            DriverEvent::Reached { incident } => {
                if let Err(e) = self
                    .report(CameraState::OnTarget, Some(incident.clone()))
                    .await
                {
                    tracing::warn!(camera = %self.camera.id, error = %e, "on_target not recorded");
                }
                self.record_stream(&incident).await;
                return;
            }
            DriverEvent::Online { stream_uri } => {
                let current = self.camera.online
                    && self.camera.fault.is_none()
                    && self.camera.stream_uri == stream_uri;
                if current {
                    return;
                }
                Box::new(move |c: &mut Camera| {
                    c.set_online();
                    c.fault = None;
                    c.stream_uri = stream_uri.clone();
                })
            }
            DriverEvent::Offline { reason } => {
                let reason = truncate(reason);
                let now = self.ctx.clock.now();
                Box::new(move |c: &mut Camera| {
                    c.set_offline(now);
                    c.fault = Some(reason.clone());
                })
            }
            DriverEvent::Stuck { reason } => {
                let reason = truncate(reason);
                Box::new(move |c: &mut Camera| c.fault = Some(reason.clone()))
            }
        };
        let mut change = change;
        match self
            .ctx
            .records
            .update_camera(&self.camera.id, |c| {
                change(c);
                Ok(())
            })
            .await
        {
            Ok(camera) => self.observe(camera),
            Err(e) => {
                tracing::warn!(camera = %self.camera.id, error = %e, "camera driver state not recorded")
            }
        }
    }
}
