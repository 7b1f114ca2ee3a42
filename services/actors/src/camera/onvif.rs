//! The ONVIF driver: one task per camera actor that owns the camera's ONVIF client.
//!
//! The actor hands it orders and never waits on the camera; the task connects (clock offset,
//! services, profile, stream URI), moves the camera (`GotoPreset` when the scenario names a
//! preset token, `AbsoluteMove` otherwise), polls `GetStatus` until the move is done and tells
//! the actor, which records `on_target` exactly as it does for a native device's report.
//!
//! Every exchange is bounded ([`centinela_onvif::client::EXCHANGE_TIMEOUT`]). A camera that
//! fails an exchange is `offline` with the reason (unauthorized, a SOAP fault, malformed XML, a
//! timeout); the task reconnects with a capped backoff and carries out the latest order once
//! the camera answers again. An idle camera's status is read every
//! [`ONVIF_HEALTH_INTERVAL`](crate::limits::ONVIF_HEALTH_INTERVAL), so a camera that dies
//! between incidents is shown offline before the next press needs it.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use centinela_core::camera::{DriverKind, OnvifEndpoint, PtzPreset};
use centinela_core::ids::{CameraId, IncidentId};
use centinela_core::time::Timestamp;
use centinela_onvif::client::{Client, Target};
use centinela_onvif::credentials::Login;
use centinela_onvif::ptz::Pose;

use super::CameraCommand;
use super::driver::CameraDriver;
use crate::limits::{
    ONVIF_HEALTH_INTERVAL, ONVIF_ORDERS_CAPACITY, ONVIF_RECONNECT_MAX, ONVIF_RECONNECT_MIN,
    ONVIF_SETTLE_MAX, ONVIF_STATUS_POLL,
};

/// What the driver learned, for the actor.
#[derive(Clone, Debug, PartialEq)]
pub enum DriverEvent {
    /// The camera answers, signed in.
    Online { stream_uri: Option<String> },
    /// It does not, and why.
    Offline { reason: String },
    /// The move for `incident` is done: the camera frames the button.
    Reached { incident: IncidentId },
    /// It answers but did not finish a move in time (online, worth showing).
    Stuck { reason: String },
}

/// An order for the task. Only the latest move matters: a newer one replaces a move that has
/// not finished.
#[derive(Clone, Debug)]
enum Order {
    Aim {
        incident: IncidentId,
        pose: Pose,
    },
    /// A manual move; `home` is back to the button (its preset token when it has one).
    Steer {
        pose: Pose,
        home: bool,
    },
    Release,
}

/// The driver the actor holds; dropping it stops the task.
pub struct OnvifDriver {
    orders: mpsc::Sender<Order>,
    task: JoinHandle<()>,
}

impl Drop for OnvifDriver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OnvifDriver {
    /// Starts driving `camera` at `endpoint`, signing in with `login`; `events` carries what
    /// the driver learns to the actor (it must not block).
    pub fn start(
        camera: CameraId,
        endpoint: OnvifEndpoint,
        login: Option<Login>,
        events: impl Fn(DriverEvent) + Send + Sync + 'static,
    ) -> Self {
        let (orders, receiver) = mpsc::channel(ONVIF_ORDERS_CAPACITY);
        let task = Task {
            camera,
            preset: endpoint.preset.clone(),
            target: Target {
                device_url: endpoint.url,
                username: login
                    .as_ref()
                    .map(|l| l.username.clone())
                    .unwrap_or_default(),
                password: login.map(|l| l.password).unwrap_or_default(),
            },
            orders: receiver,
            events: Box::new(events),
            online: None,
        };
        Self {
            orders,
            task: tokio::spawn(task.run()),
        }
    }

    fn order(&mut self, order: Order) -> Result<(), &'static str> {
        self.orders.try_send(order).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "ONVIF driver busy; order dropped",
            mpsc::error::TrySendError::Closed(_) => "ONVIF driver stopped",
        })
    }
}

impl CameraDriver for OnvifDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Onvif
    }

    fn attached(&self) -> bool {
        true
    }

    fn send(&mut self, command: CameraCommand) -> Result<(), &'static str> {
        match command {
            CameraCommand::Aim {
                incident, preset, ..
            } => self.order(Order::Aim {
                incident,
                pose: Pose::from_preset(&preset),
            }),
            CameraCommand::Release => self.order(Order::Release),
        }
    }

    fn steer(&mut self, to: Option<PtzPreset>, button: PtzPreset) -> Result<(), &'static str> {
        self.order(Order::Steer {
            pose: Pose::from_preset(&to.unwrap_or(button)),
            home: to.is_none(),
        })
    }
}

struct Task {
    camera: CameraId,
    /// The preset token that frames the button, when the installer saved one.
    preset: Option<String>,
    target: Target,
    orders: mpsc::Receiver<Order>,
    events: Box<dyn Fn(DriverEvent) + Send + Sync>,
    /// What the actor was last told (it is told only of changes).
    online: Option<bool>,
}

/// How a move ended.
enum Moved {
    /// The camera reports no move in progress.
    Done,
    /// Still moving past [`ONVIF_SETTLE_MAX`] (reported to the actor as stuck).
    Stuck,
    /// A newer order arrived while it was under way.
    Superseded(Order),
}

impl Task {
    async fn run(mut self) {
        let mut client: Option<Client> = None;
        let mut pending: Option<Order> = None;
        let mut backoff = ONVIF_RECONNECT_MIN;
        loop {
            let Some(connected) = client.as_mut() else {
                match self.connect().await {
                    Ok(connected) => {
                        client = Some(connected);
                        backoff = ONVIF_RECONNECT_MIN;
                    }
                    Err(reason) => {
                        self.offline(reason);
                        // Wait out the backoff, keeping the latest order for when it answers.
                        let until = Instant::now() + backoff;
                        backoff = (backoff * 2).min(ONVIF_RECONNECT_MAX);
                        loop {
                            tokio::select! {
                                _ = tokio::time::sleep_until(until) => break,
                                order = self.orders.recv() => match order {
                                    // The newest order is the one to carry out.
                                    Some(order) => pending = Some(order),
                                    None => return,
                                },
                            }
                        }
                    }
                }
                continue;
            };
            let order = match pending.take() {
                Some(order) => order,
                None => tokio::select! {
                    order = self.orders.recv() => match order {
                        Some(order) => order,
                        None => return,
                    },
                    _ = tokio::time::sleep(ONVIF_HEALTH_INTERVAL) => {
                        if let Err(e) = connected.status().await {
                            self.offline(format!("status: {e}"));
                            client = None;
                        }
                        continue;
                    }
                },
            };
            let retry = matches!(order, Order::Aim { .. }).then(|| order.clone());
            match self.carry_out(connected, order).await {
                Ok(Moved::Done | Moved::Stuck) => {}
                Ok(Moved::Superseded(newer)) => pending = Some(newer),
                Err(reason) => {
                    // An aim is carried out again once the camera answers.
                    pending = retry;
                    self.offline(reason);
                    client = None;
                }
            }
        }
    }

    async fn connect(&mut self) -> Result<Client, String> {
        let mut client = Client::new(self.target.clone());
        client
            .connect(wall_clock())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        // Only for operators' own players: a camera without a stream still works here.
        let stream_uri = match client.stream_uri().await {
            Ok(uri) => Some(uri),
            Err(e) => {
                tracing::debug!(camera = %self.camera, error = %e, "no stream URI");
                None
            }
        };
        tracing::info!(camera = %self.camera, url = %self.target.device_url, "ONVIF camera connected");
        self.online = Some(true);
        (self.events)(DriverEvent::Online { stream_uri });
        Ok(client)
    }

    fn offline(&mut self, reason: String) {
        if self.online != Some(false) {
            // The reason may quote the camera's own answer (a SOAP fault): escaped.
            let reason = centinela_core::text::printable(&reason).into_owned();
            tracing::warn!(camera = %self.camera, %reason, "ONVIF camera offline");
            self.online = Some(false);
            (self.events)(DriverEvent::Offline { reason });
        }
    }

    async fn carry_out(&mut self, client: &Client, order: Order) -> Result<Moved, String> {
        match order {
            Order::Aim { incident, pose } => {
                client
                    .goto(self.preset.as_deref(), pose)
                    .await
                    .map_err(|e| format!("move: {e}"))?;
                let moved = self.settle(client).await?;
                if matches!(moved, Moved::Done) {
                    (self.events)(DriverEvent::Reached { incident });
                }
                Ok(moved)
            }
            Order::Steer { pose, home } => {
                let preset = if home { self.preset.as_deref() } else { None };
                client
                    .goto(preset, pose)
                    .await
                    .map_err(|e| format!("move: {e}"))?;
                Ok(Moved::Done)
            }
            // The camera stays where it is: the recording keeps framing the scene.
            Order::Release => Ok(Moved::Done),
        }
    }

    /// Polls `GetStatus` until the camera reports no move in progress, or a newer order comes.
    async fn settle(&mut self, client: &Client) -> Result<Moved, String> {
        let deadline = Instant::now() + ONVIF_SETTLE_MAX;
        loop {
            let status = client.status().await.map_err(|e| format!("status: {e}"))?;
            if !status.moving {
                return Ok(Moved::Done);
            }
            if Instant::now() >= deadline {
                let reason = format!(
                    "still moving {}s after the move was sent",
                    ONVIF_SETTLE_MAX.as_secs()
                );
                (self.events)(DriverEvent::Stuck { reason });
                return Ok(Moved::Stuck);
            }
            tokio::select! {
                _ = tokio::time::sleep(ONVIF_STATUS_POLL) => {}
                order = self.orders.recv() => match order {
                    Some(order @ (Order::Aim { .. } | Order::Steer { .. })) => {
                        return Ok(Moved::Superseded(order));
                    }
                    // A release does not stop a move under way; its end is still reported.
                    Some(Order::Release) | None => {}
                },
            }
        }
    }
}

/// Our wall clock (the camera's clock offset is measured against it).
fn wall_clock() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    Timestamp::from_millis(millis)
}
