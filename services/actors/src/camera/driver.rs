//! How a camera actor reaches its camera. One trait, two drivers:
//!
//! - **native**: the device dials in and keeps our `CameraGateway` command stream open (a
//!   [`NativeLink`]: the channel is kept in the node's table, so the actor passivates while
//!   the device stays attached); it reports `on_target` itself.
//! - **onvif**: the node drives an IP camera over ONVIF ([`super::onvif::OnvifDriver`]) and
//!   learns `on_target` from the camera's PTZ status.
//!
//! The actor's state machine (idle → aiming → on_target, a bookmark per incident) is the same
//! for both: a driver takes commands and never waits; what it learns comes back to the actor
//! as a message.

use std::sync::Arc;

use centinela_core::camera::{DriverKind, PtzPreset};
use centinela_core::ids::CameraId;

use super::CameraCommand;
use crate::device::DeviceLinks;

/// The node's native camera channels, by camera.
pub type CameraLinks = DeviceLinks<CameraId, Box<CameraCommand>>;

/// What a camera actor needs of its driver.
pub trait CameraDriver: Send + Sync {
    fn kind(&self) -> DriverKind;

    /// Hands `command` to the camera without waiting; `Err` says why it was not delivered now
    /// (the actor's state keeps it, and the driver gets it again on reconnection).
    fn send(&mut self, command: CameraCommand) -> Result<(), &'static str>;

    /// An operator's manual move to `to`, or back to the button (`None`; `button` is the
    /// preset that frames it), when the driver can make one.
    fn steer(&mut self, to: Option<PtzPreset>, button: PtzPreset) -> Result<(), &'static str> {
        let _ = (to, button);
        Err("a native camera device takes no manual moves; manual control needs ONVIF")
    }

    /// Whether a device is attached, or the driver runs on its own (ONVIF).
    fn attached(&self) -> bool;

    /// The native device channel, for a device that dials in.
    fn native(&self) -> Option<&NativeLink> {
        None
    }
}

/// A native camera's channel: its entry in the node's [`CameraLinks`].
pub struct NativeLink {
    pub camera: CameraId,
    pub links: Arc<CameraLinks>,
}

impl CameraDriver for NativeLink {
    fn kind(&self) -> DriverKind {
        DriverKind::Native
    }

    fn send(&mut self, command: CameraCommand) -> Result<(), &'static str> {
        self.links.send(&self.camera, Box::new(command))
    }

    fn attached(&self) -> bool {
        self.links.is_attached(&self.camera)
    }

    fn native(&self) -> Option<&NativeLink> {
        Some(self)
    }
}
