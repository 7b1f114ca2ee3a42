//! Who made a call, and what they may act as.

use std::fmt;
use std::sync::Arc;

use tonic::Status;

use centinela_core::ids::{BrigadeId, ButtonId, CameraId, NodeId, OperatorId};
use centinela_proto::convert::id;

use centinela_tls::CertificateDer;
use centinela_tls::names::{self, Kind};

use super::rate::RateLimiter;
use crate::limits::{DEVICE_RATE, Rate};
use crate::status::from_convert;

/// What an operator may do. Ordered: each role may do everything the ones below it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A Serenazgo officer bound to one unit: signs in to the brigade app (`/brigada/`) and
    /// acts there only for that unit. Below every console role: no operator call, no read of
    /// the operator API, no console.
    Officer,
    /// Call-center operator: acknowledges, classifies, dispatches, flags pranks, resolves.
    Operator,
    /// Watches the queues, timers and health of the system; may also withdraw incidents
    /// (close as `cancelled`) and verify the audit trails.
    Supervisor,
    /// Configuration: everything a supervisor may, and the administrative calls.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Role> {
        match value {
            "officer" => Some(Role::Officer),
            "operator" => Some(Role::Operator),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Closing an incident as `cancelled` (withdrawn, e.g. reported another way) discards a
    /// possible emergency without a response: a supervisor's decision.
    pub fn may_cancel(self) -> bool {
        self >= Role::Supervisor
    }

    /// Whether the role works the console and the operator API (every role but officer).
    pub fn is_console(self) -> bool {
        self >= Role::Operator
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The device a bearer token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    Button(ButtonId),
    Camera(CameraId),
    Unit(BrigadeId),
    /// The shared device token: any device (the demo's simulator, a gateway).
    Fleet,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Button(id) => write!(f, "button {id}"),
            Device::Camera(id) => write!(f, "camera {id}"),
            Device::Unit(id) => write!(f, "unit {id}"),
            Device::Fleet => f.write_str("the shared device token"),
        }
    }
}

/// A signed-in operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorIdentity {
    pub id: OperatorId,
    pub role: Role,
}

/// Who made a call: what the [`Guard`](super::Guard) authenticated, in the request's extensions.
#[derive(Clone, Default)]
pub struct Caller {
    pub device: Option<Device>,
    pub operator: Option<OperatorIdentity>,
    pub peer: Option<NodeId>,
    /// The client certificate the caller presented over TLS (verified against the CA in
    /// the handshake): a device whose certificate names it (`B01.button.centinela`) acts as
    /// that device without a token.
    pub certificate: Option<CertificateDer<'static>>,
    /// A missing credential is no obstacle ([`Mode::Open`](super::Mode::Open), or an
    /// in-process caller).
    pub open: bool,
    /// Per-device rate limits; `None` for in-process callers.
    pub(super) limiter: Option<Arc<RateLimiter>>,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("device", &self.device)
            .field("operator", &self.operator)
            .field("peer", &self.peer)
            .field("certificate", &self.certificate.is_some())
            .field("open", &self.open)
            .finish()
    }
}

pub(super) fn no_credentials() -> Status {
    Status::unauthenticated(
        "no credentials: devices send `authorization: Bearer TOKEN` (CENTINELA_DEVICE_TOKEN), \
         operators `Basic` with their console account (CENTINELA_OPERATOR, CENTINELA_PASSWORD)",
    )
}

pub(super) fn rate_limited(who: &str, rate: Rate) -> Status {
    Status::resource_exhausted(format!(
        "rate limit: {who} made more than {} calls in a burst ({}/s sustained); retry later",
        rate.burst, rate.per_s
    ))
}

impl Caller {
    /// A caller inside the node (the console, tests): trusted, unlimited.
    pub fn in_process() -> Self {
        Self {
            open: true,
            ..Self::default()
        }
    }

    /// An operator signed in elsewhere in the node (the console's session): their role is
    /// checked by the call itself, as for a gRPC caller, never taken for granted.
    pub fn signed_in(identity: OperatorIdentity) -> Self {
        Self {
            operator: Some(identity),
            ..Self::default()
        }
    }

    /// No credential of any kind.
    pub fn is_anonymous(&self) -> bool {
        self.device.is_none()
            && self.operator.is_none()
            && self.peer.is_none()
            && self.certificate.is_none()
    }

    /// The caller may act as button `button`: its own token, the shared device token, or an
    /// open node. Counts against the button's rate limit.
    pub fn act_as_button(&self, button: &ButtonId) -> Result<(), Status> {
        self.act_as_device(
            Kind::Button,
            button.as_str(),
            |device| matches!(device, Device::Button(id) if id == button),
        )
    }

    pub fn act_as_camera(&self, camera: &CameraId) -> Result<(), Status> {
        self.act_as_device(
            Kind::Camera,
            camera.as_str(),
            |device| matches!(device, Device::Camera(id) if id == camera),
        )
    }

    pub fn act_as_unit(&self, unit: &BrigadeId) -> Result<(), Status> {
        self.act_as_device(
            Kind::Unit,
            unit.as_str(),
            |device| matches!(device, Device::Unit(id) if id == unit),
        )
    }

    fn act_as_device(
        &self,
        certificate_kind: Kind,
        id: &str,
        is_this_one: impl Fn(&Device) -> bool,
    ) -> Result<(), Status> {
        let kind = match certificate_kind {
            Kind::Button => "button",
            Kind::Camera => "camera",
            Kind::Unit => "unit",
            Kind::Node => "node",
        };
        // A device with no token and a certificate: the certificate must name it.
        if let (None, Some(certificate)) = (&self.device, &self.certificate) {
            if !names::names(certificate, certificate_kind, id) {
                return Err(Status::permission_denied(format!(
                    "the client certificate does not name {kind} {id} ({})",
                    names::name(certificate_kind, id)
                        .map(|name| name.to_str().into_owned())
                        .unwrap_or_else(|| "an id no certificate can name".into())
                )));
            }
            return self.admit(&format!("{kind}:{id}"), DEVICE_RATE);
        }
        match &self.device {
            Some(Device::Fleet) => {}
            Some(device) if is_this_one(device) => {}
            Some(device) => {
                return Err(Status::permission_denied(format!(
                    "this credential is {device}'s: it cannot act as {kind} {id}"
                )));
            }
            None if self.open => {}
            None if self.is_anonymous() => return Err(no_credentials()),
            None => {
                return Err(Status::permission_denied(format!(
                    "acting as {kind} {id} takes a device token or a device certificate"
                )));
            }
        }
        self.admit(&format!("{kind}:{id}"), DEVICE_RATE)
    }

    /// The operator an operator action is recorded as. A signed-in operator acts as
    /// themselves (an empty `claimed` id means "me"; another id is refused) and within
    /// `role`; on an open node without credentials, `claimed` is taken as it is.
    pub fn operator(&self, claimed: &str, role: Role) -> Result<OperatorId, Status> {
        match &self.operator {
            Some(me) => {
                if me.role < role {
                    return Err(Status::permission_denied(format!(
                        "operator {} is {} {}; this takes {} {}",
                        me.id,
                        article(me.role),
                        me.role,
                        article(role),
                        role
                    )));
                }
                if !claimed.is_empty() && claimed != me.id.as_str() {
                    return Err(Status::permission_denied(format!(
                        "signed in as operator {}: cannot act as operator {claimed:?}",
                        me.id
                    )));
                }
                Ok(me.id.clone())
            }
            None if self.open => id("operator_id", claimed).map_err(from_convert),
            None => Err(self.not_an_operator()),
        }
    }

    /// An operator of at least `role` (or anyone on an open node).
    pub fn require_role(&self, role: Role) -> Result<(), Status> {
        match &self.operator {
            Some(me) => self.operator(me.id.as_str(), role).map(|_| ()),
            None if self.open => Ok(()),
            None => Err(self.not_an_operator()),
        }
    }

    /// Reads of the operator API (incidents, units, cluster): any operator (not an officer).
    pub fn read_operations(&self) -> Result<(), Status> {
        if let Some(me) = &self.operator
            && !me.role.is_console()
        {
            return Err(officer_refused(&me.id));
        }
        if self.operator.is_some() || self.open {
            Ok(())
        } else {
            Err(self.not_an_operator())
        }
    }

    /// The device inventory (buttons, cameras, units) and `Ping`: any operator, or the shared
    /// device token (the simulator discovers what to play with it).
    pub fn read_inventory(&self) -> Result<(), Status> {
        if self.device == Some(Device::Fleet) {
            return Ok(());
        }
        self.read_operations()
    }

    /// The node-to-node service: other nodes only.
    pub fn peer(&self) -> Result<(), Status> {
        match (&self.peer, self.open, self.is_anonymous()) {
            (Some(_), _, _) | (None, true, _) => Ok(()),
            (None, false, true) => Err(no_credentials()),
            (None, false, false) => Err(Status::permission_denied(
                "the peer service is for the cluster's nodes only",
            )),
        }
    }

    fn not_an_operator(&self) -> Status {
        if self.is_anonymous() {
            no_credentials()
        } else {
            Status::permission_denied(
                "operator calls take an operator's credentials (CENTINELA_OPERATOR, CENTINELA_PASSWORD)",
            )
        }
    }

    fn admit(&self, key: &str, rate: Rate) -> Result<(), Status> {
        match &self.limiter {
            Some(limiter) if !limiter.admit(key, rate) => Err(rate_limited(key, rate)),
            _ => Ok(()),
        }
    }
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Officer | Role::Operator | Role::Admin => "an",
        Role::Supervisor => "a",
    }
}

/// An officer's account presented to the operator API: it acts only in the brigade app.
pub(super) fn officer_refused(id: &OperatorId) -> Status {
    Status::permission_denied(format!(
        "{id} is an officer's account: it acts only for its unit, in the brigade app (/brigada/), \
         not through the operator API"
    ))
}

/// The [`Caller`] the guard put on a served call; `UNAUTHENTICATED` when there is none (a
/// service reached without its guard is a wiring bug, and it fails closed).
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the call carries no authenticated caller"))
}

/// Why an operator's credentials were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown operator or wrong password (deliberately one answer).
    Wrong,
    /// Too many failed attempts from this source or on this account: no password was checked;
    /// retry after this long (`RESOURCE_EXHAUSTED`).
    Throttled { retry_after: std::time::Duration },
}

/// Checks operators' passwords: the console's accounts, so there is one account system.
#[tonic::async_trait]
pub trait OperatorDirectory: Send + Sync + 'static {
    /// Whether `operator` is a configured account (cheap: no password check).
    fn knows(&self, operator: &str) -> bool;
    /// The operator's role when `password` is theirs; `source` is the caller's address, for
    /// throttling guesses per source.
    async fn verify(
        &self,
        operator: &str,
        password: &str,
        source: Option<std::net::IpAddr>,
    ) -> Result<Role, Refusal>;
}
