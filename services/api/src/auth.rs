//! Who is calling, and may they: the node's gRPC edge.
//!
//! Every `centinela.v1` service a node serves is wrapped in a [`Guard`], which, before the
//! service sees the call:
//! 1. **authenticates** each `authorization` value the call carries and puts the resulting
//!    [`Caller`] in the request's extensions:
//!    - `Bearer TOKEN`: a device. A per-device token (from the devices file) is bound to one
//!      button, camera or unit terminal; the shared device token (`CENTINELA_DEVICE_TOKEN`,
//!      the demo's and the simulator's) may act as any device and list the inventory;
//!    - `Basic base64(ID:PASSWORD)`: an operator, checked against the console's accounts
//!      (argon2id) through an [`OperatorDirectory`], with a [`Role`];
//!    - `Node NODE_ID SECRET`: another node of the cluster (`CENTINELA_CLUSTER_SECRET`);
//!
//!    a credential that does not check out is `UNAUTHENTICATED`, whatever the mode;
//! 2. refuses a call with no credential at all (`UNAUTHENTICATED`) or with credentials of the
//!    wrong kind for the service (`PERMISSION_DENIED`), unless the node is [`Mode::Open`];
//! 3. limits each operator's and each node's call rate (`RESOURCE_EXHAUSTED`);
//! 4. reads the request body, refusing more than [`REQUEST_BYTES_MAX`] with
//!    `RESOURCE_EXHAUSTED` (tonic's own limit answers `OUT_OF_RANGE`, and only once decoding).
//!
//! Handlers then check the identity against the request's fields through the [`Caller`]: a
//! button's token presses only that button ([`Caller::act_as_button`]), an operator acts only
//! as themselves and within their role ([`Caller::operator`]); device calls are rate-limited
//! per device there, since the device is named in the body.
//!
//! # Modes
//! - [`Mode::Enforced`] (`centinela start`): every call needs a credential. A node without a
//!   cluster secret refuses to start ([`Security::check_cluster`]); without device tokens or
//!   operator accounts the corresponding calls are all refused. Fails closed.
//! - [`Mode::Open`] (`centinela demo`, `centinela start --insecure`, in-process tests): a call
//!   without credentials is allowed everything, so a newcomer's first `centinela press B01`
//!   just works; a credential that *is* presented still binds its holder (a button's token
//!   still cannot press another button).
//!
//! In-process callers (the console, which signs its operators in itself) do not pass through
//! the guard; see `OperatorService::new`.
//!
//! [`REQUEST_BYTES_MAX`]: crate::limits::REQUEST_BYTES_MAX

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use base64::Engine as _;
use blake2::{Blake2b256, Digest};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::time::Instant;
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tower::Service;

use centinela_core::ids::{BrigadeId, ButtonId, CameraId, NodeId, OperatorId};
use centinela_proto::convert::id;

use crate::limits::{
    AUTHORIZATION_LEN_MAX, AUTHORIZATION_VALUES_MAX, CLUSTER_SECRET_LEN_MIN,
    DEVICE_CREDENTIALS_MAX, DEVICE_RATE, DEVICE_TOKEN_LEN_MIN, GRPC_FRAME_PREFIX_BYTES,
    OPERATOR_CACHE_ENTRIES_MAX, OPERATOR_CACHE_TTL, OPERATOR_RATE, PEER_RATE, RATE_BUCKETS_MAX,
    REQUEST_BODY_TIMEOUT, REQUEST_BYTES_MAX, Rate,
};
use crate::status::from_convert;

// ---- identities -------------------------------------------------------------------------

/// What an operator may do. Ordered: each role may do everything the ones below it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
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
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Role> {
        match value {
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

/// Who made a call: what the [`Guard`] authenticated, in the request's extensions.
#[derive(Clone, Default)]
pub struct Caller {
    pub device: Option<Device>,
    pub operator: Option<OperatorIdentity>,
    pub peer: Option<NodeId>,
    /// A missing credential is no obstacle ([`Mode::Open`], or an in-process caller).
    pub open: bool,
    /// Per-device rate limits; `None` for in-process callers.
    limiter: Option<Arc<RateLimiter>>,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("device", &self.device)
            .field("operator", &self.operator)
            .field("peer", &self.peer)
            .field("open", &self.open)
            .finish()
    }
}

fn no_credentials() -> Status {
    Status::unauthenticated(
        "no credentials: devices send `authorization: Bearer TOKEN` (CENTINELA_DEVICE_TOKEN), \
         operators `Basic` with their console account (CENTINELA_OPERATOR, CENTINELA_PASSWORD)",
    )
}

fn rate_limited(who: &str, rate: Rate) -> Status {
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

    /// No credential of any kind.
    pub fn is_anonymous(&self) -> bool {
        self.device.is_none() && self.operator.is_none() && self.peer.is_none()
    }

    /// The caller may act as button `button`: its own token, the shared device token, or an
    /// open node. Counts against the button's rate limit.
    pub fn act_as_button(&self, button: &ButtonId) -> Result<(), Status> {
        self.act_as_device(
            "button",
            button.as_str(),
            |device| matches!(device, Device::Button(id) if id == button),
        )
    }

    pub fn act_as_camera(&self, camera: &CameraId) -> Result<(), Status> {
        self.act_as_device(
            "camera",
            camera.as_str(),
            |device| matches!(device, Device::Camera(id) if id == camera),
        )
    }

    pub fn act_as_unit(&self, unit: &BrigadeId) -> Result<(), Status> {
        self.act_as_device(
            "unit",
            unit.as_str(),
            |device| matches!(device, Device::Unit(id) if id == unit),
        )
    }

    fn act_as_device(
        &self,
        kind: &'static str,
        id: &str,
        is_this_one: impl Fn(&Device) -> bool,
    ) -> Result<(), Status> {
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
                    "acting as {kind} {id} takes a device token"
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

    /// Reads of the operator API (incidents, units, cluster): any operator.
    pub fn read_operations(&self) -> Result<(), Status> {
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
        Role::Operator | Role::Admin => "an",
        Role::Supervisor => "a",
    }
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

/// Checks operators' passwords: the console's accounts, so there is one account system.
#[tonic::async_trait]
pub trait OperatorDirectory: Send + Sync + 'static {
    /// Whether `operator` is a configured account (cheap: no password check).
    fn knows(&self, operator: &str) -> bool;
    /// The operator's role when `password` is theirs.
    async fn verify(&self, operator: &str, password: &str) -> Option<Role>;
}

// ---- configuration -------------------------------------------------------------------------

/// Whether calls without credentials are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every call needs a credential of the right kind: production.
    Enforced,
    /// Calls without credentials may do anything: the demo and tests. Presented credentials
    /// are still checked and still bind their holder.
    Open,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} must be printable ASCII without spaces")]
    NotPrintable { what: &'static str },
    #[error("{what} has {len} bytes, at least {min} needed")]
    TooShort {
        what: &'static str,
        len: usize,
        min: usize,
    },
    #[error("devices file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("device {kind} {id:?}: {reason}")]
    Device {
        kind: String,
        id: String,
        reason: String,
    },
    #[error("more than {DEVICE_CREDENTIALS_MAX} device credentials")]
    TooMany,
    #[error(
        "no CENTINELA_CLUSTER_SECRET: nodes could not authenticate each other (set one of at least {CLUSTER_SECRET_LEN_MIN} bytes on every node, or pass --insecure on a trusted test network)"
    )]
    NoClusterSecret,
}

/// A token's digest: tokens are looked up (and kept in memory) only as BLAKE2b-256 digests.
type Digest32 = [u8; 32];

fn digest(bytes: &[u8]) -> Digest32 {
    let hash = Blake2b256::digest(bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(&hash);
    out
}

/// The digest of a device token, as the devices file holds it (hex).
pub fn token_digest_hex(token: &str) -> String {
    digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_hex_digest(text: &str) -> Option<Digest32> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Equal without revealing where two digests differ.
fn same(a: &Digest32, b: &Digest32) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_secret(what: &'static str, value: &str, min: usize) -> Result<(), Error> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::NotPrintable { what });
    }
    if value.len() < min {
        return Err(Error::TooShort {
            what,
            len: value.len(),
            min,
        });
    }
    Ok(())
}

/// A node's credentials configuration. Build it with [`Security::open`] or
/// [`Security::enforced`] and the `with_*` methods, or [`Security::from_env`].
#[derive(Clone)]
pub struct Security {
    mode: Mode,
    /// Per-device token digests.
    devices: HashMap<Digest32, Device>,
    /// The shared device token's digest.
    fleet: Option<Digest32>,
    /// The cluster secret (sent to other nodes) and its digest (to check theirs).
    cluster: Option<(String, Digest32)>,
    operators: Option<Arc<dyn OperatorDirectory>>,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("mode", &self.mode)
            .field("device_tokens", &self.devices.len())
            .field("shared_device_token", &self.fleet.is_some())
            .field("cluster_secret", &self.cluster.is_some())
            .field("operators", &self.operators.is_some())
            .finish()
    }
}

/// The devices file's shape (TOML; see docs/security.md).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DevicesFile {
    #[serde(default)]
    devices: Vec<DeviceEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceEntry {
    /// `button`, `camera` or `unit`.
    kind: String,
    id: String,
    /// BLAKE2b-256 of the token, 64 hex digits ([`token_digest_hex`]).
    token_blake2b: String,
}

impl Security {
    /// Calls without credentials are allowed: the demo and tests.
    pub fn open() -> Self {
        Self::with_mode(Mode::Open)
    }

    /// Every call needs a credential: production.
    pub fn enforced() -> Self {
        Self::with_mode(Mode::Enforced)
    }

    fn with_mode(mode: Mode) -> Self {
        Self {
            mode,
            devices: HashMap::new(),
            fleet: None,
            cluster: None,
            operators: None,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The shared device token. An enforcing node wants at least [`DEVICE_TOKEN_LEN_MIN`]
    /// bytes; an open one takes any printable token.
    pub fn with_shared_device_token(mut self, token: &str) -> Result<Self, Error> {
        let min = match self.mode {
            Mode::Enforced => DEVICE_TOKEN_LEN_MIN,
            Mode::Open => 1,
        };
        check_secret("the shared device token", token, min)?;
        self.fleet = Some(digest(token.as_bytes()));
        Ok(self)
    }

    /// A per-device token, given as its digest.
    pub fn with_device_digest(mut self, device: Device, token_digest: &str) -> Result<Self, Error> {
        let describe = |reason: &str| {
            let (kind, id) = match &device {
                Device::Button(id) => ("button", id.to_string()),
                Device::Camera(id) => ("camera", id.to_string()),
                Device::Unit(id) => ("unit", id.to_string()),
                Device::Fleet => ("shared", String::new()),
            };
            Error::Device {
                kind: kind.into(),
                id,
                reason: reason.into(),
            }
        };
        if device == Device::Fleet {
            return Err(describe(
                "the shared token is set with CENTINELA_DEVICE_TOKEN",
            ));
        }
        let token = parse_hex_digest(token_digest)
            .ok_or_else(|| describe("token_blake2b must be 64 hex digits"))?;
        if self.devices.len() >= DEVICE_CREDENTIALS_MAX {
            return Err(Error::TooMany);
        }
        if let Some(other) = self.devices.get(&token) {
            return Err(describe(&format!("shares its token with {other}")));
        }
        self.devices.insert(token, device);
        Ok(self)
    }

    /// A per-device token, given in the clear (tests, tools).
    pub fn with_device_token(self, device: Device, token: &str) -> Result<Self, Error> {
        check_secret("a device token", token, DEVICE_TOKEN_LEN_MIN)?;
        self.with_device_digest(device, &token_digest_hex(token))
    }

    /// Per-device tokens from a devices file (TOML; see docs/security.md).
    pub fn with_devices_file(self, path: &Path) -> Result<Self, Error> {
        let file_error = |reason: String| Error::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        self.with_devices_toml(&text).map_err(|e| match e {
            Error::File { reason, .. } => file_error(reason),
            other => other,
        })
    }

    /// Per-device tokens from the text of a devices file.
    pub fn with_devices_toml(mut self, text: &str) -> Result<Self, Error> {
        let file: DevicesFile = toml::from_str(text).map_err(|e| Error::File {
            path: "(inline)".into(),
            reason: e.to_string(),
        })?;
        if file.devices.len() > DEVICE_CREDENTIALS_MAX {
            return Err(Error::TooMany);
        }
        for entry in file.devices {
            let bad = |reason: String| Error::Device {
                kind: entry.kind.clone(),
                id: entry.id.clone(),
                reason,
            };
            let device = match entry.kind.as_str() {
                "button" => {
                    Device::Button(ButtonId::new(&entry.id).map_err(|e| bad(e.to_string()))?)
                }
                "camera" => {
                    Device::Camera(CameraId::new(&entry.id).map_err(|e| bad(e.to_string()))?)
                }
                "unit" => Device::Unit(BrigadeId::new(&entry.id).map_err(|e| bad(e.to_string()))?),
                other => return Err(bad(format!("kind {other:?} is not button, camera or unit"))),
            };
            self = self.with_device_digest(device, &entry.token_blake2b)?;
        }
        Ok(self)
    }

    /// The secret every node of the cluster shares: presented on calls to other nodes and
    /// required of theirs.
    pub fn with_cluster_secret(mut self, secret: &str) -> Result<Self, Error> {
        check_secret("the cluster secret", secret, CLUSTER_SECRET_LEN_MIN)?;
        self.cluster = Some((secret.to_string(), digest(secret.as_bytes())));
        Ok(self)
    }

    /// Where operators' passwords are checked (the node passes the console's accounts).
    pub fn with_operators(mut self, directory: Arc<dyn OperatorDirectory>) -> Self {
        self.operators = Some(directory);
        self
    }

    /// `CENTINELA_DEVICE_TOKEN`, `CENTINELA_DEVICES_FILE` and `CENTINELA_CLUSTER_SECRET` on
    /// top of `self`. Empty variables count as unset.
    pub fn from_env(self) -> Result<Self, Error> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut security = self;
        if let Some(token) = var("CENTINELA_DEVICE_TOKEN") {
            security = security.with_shared_device_token(&token)?;
        }
        if let Some(path) = var("CENTINELA_DEVICES_FILE") {
            security = security.with_devices_file(Path::new(&path))?;
        }
        if let Some(secret) = var("CENTINELA_CLUSTER_SECRET") {
            security = security.with_cluster_secret(&secret)?;
        }
        Ok(security)
    }

    /// An enforcing node must be able to authenticate its peers: refuses to go without a
    /// cluster secret (fail closed at start-up rather than at the first forwarded press).
    pub fn check_cluster(&self) -> Result<(), Error> {
        if self.mode == Mode::Enforced && self.cluster.is_none() {
            return Err(Error::NoClusterSecret);
        }
        Ok(())
    }

    /// One line for the start-up log: what this node will accept.
    pub fn summary(&self) -> String {
        format!(
            "credentials {}: {} device token(s){}, operators {}, cluster secret {}",
            match self.mode {
                Mode::Enforced => "enforced",
                Mode::Open => "open (calls without credentials are allowed)",
            },
            self.devices.len(),
            if self.fleet.is_some() {
                " + the shared device token"
            } else {
                ""
            },
            if self.operators.is_some() {
                "from the console accounts"
            } else {
                "none"
            },
            if self.cluster.is_some() {
                "set"
            } else {
                "unset"
            },
        )
    }

    /// The `authorization` value this node presents to other nodes, if it has a secret.
    pub fn peer_authorization(&self, node: &NodeId) -> Option<String> {
        self.cluster
            .as_ref()
            .map(|(secret, _)| format!("Node {node} {secret}"))
    }
}

// ---- rate limits ---------------------------------------------------------------------------

struct Bucket {
    tokens: f64,
    at: Instant,
    rate: Rate,
}

impl Bucket {
    fn refilled(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * self.rate.per_s).min(self.rate.burst)
    }
}

/// Token buckets keyed by identity (`button:B01`, `operator:ana`, `peer:n2`), bounded by
/// [`RATE_BUCKETS_MAX`].
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes one token from `key`'s bucket; `false` when it is empty.
    pub fn admit(&self, key: &str, rate: Rate) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock poisoned");
        if let Some(bucket) = buckets.get_mut(key) {
            let tokens = bucket.refilled(now);
            bucket.at = now;
            bucket.rate = rate;
            if tokens >= 1.0 {
                bucket.tokens = tokens - 1.0;
                return true;
            }
            bucket.tokens = tokens;
            return false;
        }
        if buckets.len() >= RATE_BUCKETS_MAX {
            // Full buckets hold no information: forget them first.
            buckets.retain(|_, bucket| bucket.refilled(now) < bucket.rate.burst);
            if buckets.len() >= RATE_BUCKETS_MAX {
                tracing::warn!(
                    buckets = buckets.len(),
                    "rate limiter full of active identities; starting afresh"
                );
                buckets.clear();
            }
        }
        buckets.insert(
            key.to_string(),
            Bucket {
                tokens: rate.burst - 1.0,
                at: now,
                rate,
            },
        );
        true
    }

    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .expect("rate limiter lock poisoned")
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---- the edge ------------------------------------------------------------------------------

/// The runtime side of [`Security`]: shared by every guard of a node.
pub struct Edge {
    security: Security,
    limiter: Arc<RateLimiter>,
    /// Verified operator credentials by digest of the whole `authorization` value, with when
    /// they were verified ([`OPERATOR_CACHE_TTL`]).
    operators: Mutex<HashMap<Digest32, (OperatorIdentity, Instant)>>,
}

/// Which kind of service a guard protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Devices,
    Operator,
    Peer,
}

/// Operator methods the shared device token may call (the simulator's discovery, and the
/// load generator's baseline).
const INVENTORY_METHODS: &[&str] = &[
    "/centinela.v1.Operator/ListButtons",
    "/centinela.v1.Operator/ListCameras",
    "/centinela.v1.Operator/ListUnits",
    "/centinela.v1.Operator/Ping",
];

fn unauthenticated(reason: impl Into<String>) -> Status {
    Status::unauthenticated(reason.into())
}

impl Edge {
    pub fn new(security: Security) -> Arc<Self> {
        Arc::new(Self {
            security,
            limiter: Arc::new(RateLimiter::default()),
            operators: Mutex::new(HashMap::new()),
        })
    }

    pub fn security(&self) -> &Security {
        &self.security
    }

    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// Wraps a service in this edge's guard.
    pub fn guard<S>(self: &Arc<Self>, class: Class, inner: S) -> Guard<S> {
        Guard {
            inner,
            edge: self.clone(),
            class,
        }
    }

    /// Every `authorization` value of a call, checked.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Caller, Status> {
        let mut caller = Caller {
            open: self.security.mode == Mode::Open,
            limiter: Some(self.limiter.clone()),
            ..Caller::default()
        };
        let values: Vec<&http::HeaderValue> = headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .collect();
        if values.len() > AUTHORIZATION_VALUES_MAX {
            return Err(unauthenticated(format!(
                "{} authorization values, at most {AUTHORIZATION_VALUES_MAX}",
                values.len()
            )));
        }
        for value in values {
            if value.len() > AUTHORIZATION_LEN_MAX {
                return Err(unauthenticated(format!(
                    "an authorization value of {} bytes, at most {AUTHORIZATION_LEN_MAX}",
                    value.len()
                )));
            }
            let text = value
                .to_str()
                .map_err(|_| unauthenticated("authorization is not printable ascii"))?;
            let (scheme, credential) = text
                .split_once(' ')
                .ok_or_else(|| unauthenticated("authorization must be `SCHEME CREDENTIAL`"))?;
            let credential = credential.trim();
            let twice = |scheme: &str| unauthenticated(format!("two {scheme} credentials"));
            match scheme.to_ascii_lowercase().as_str() {
                "bearer" => {
                    if caller.device.is_some() {
                        return Err(twice("bearer"));
                    }
                    caller.device = Some(self.device(credential)?);
                }
                "basic" => {
                    if caller.operator.is_some() {
                        return Err(twice("basic"));
                    }
                    caller.operator = Some(self.operator(value.as_bytes(), credential).await?);
                }
                "node" => {
                    if caller.peer.is_some() {
                        return Err(twice("node"));
                    }
                    caller.peer = Some(self.peer(credential)?);
                }
                other => {
                    return Err(unauthenticated(format!(
                        "unsupported authorization scheme {:?} (Bearer, Basic or Node)",
                        other.chars().take(16).collect::<String>()
                    )));
                }
            }
        }
        Ok(caller)
    }

    fn device(&self, token: &str) -> Result<Device, Status> {
        let presented = digest(token.as_bytes());
        if let Some(device) = self.security.devices.get(&presented) {
            return Ok(device.clone());
        }
        match &self.security.fleet {
            Some(fleet) if same(fleet, &presented) => Ok(Device::Fleet),
            _ => Err(unauthenticated(
                "unknown device token (is CENTINELA_DEVICE_TOKEN the one the node was started with?)",
            )),
        }
    }

    async fn operator(&self, value: &[u8], credential: &str) -> Result<OperatorIdentity, Status> {
        let refused = || unauthenticated("unknown operator or wrong password");
        let key = digest(value);
        let now = Instant::now();
        if let Some((identity, at)) = self
            .operators
            .lock()
            .expect("operator cache poisoned")
            .get(&key)
            && now.saturating_duration_since(*at) < OPERATOR_CACHE_TTL
        {
            return Ok(identity.clone());
        }
        let Some(directory) = &self.security.operators else {
            return Err(unauthenticated("this node has no operator accounts"));
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credential)
            .map_err(|_| unauthenticated("basic credentials are not base64"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| unauthenticated("basic credentials are not utf-8"))?;
        // Operator ids may contain ':' (RFC 7617 user ids may not): split where a configured
        // account ends, else at the first ':'.
        let splits: Vec<usize> = decoded.match_indices(':').map(|(i, _)| i).collect();
        let split = splits
            .iter()
            .copied()
            .find(|&i| directory.knows(&decoded[..i]))
            .or_else(|| splits.first().copied())
            .ok_or_else(|| unauthenticated("basic credentials must be ID:PASSWORD"))?;
        let (operator, password) = (&decoded[..split], &decoded[split + 1..]);
        let role = directory
            .verify(operator, password)
            .await
            .ok_or_else(refused)?;
        let id = OperatorId::new(operator).map_err(|_| refused())?;
        let identity = OperatorIdentity { id, role };
        let mut cache = self.operators.lock().expect("operator cache poisoned");
        if cache.len() >= OPERATOR_CACHE_ENTRIES_MAX {
            cache.retain(|_, (_, at)| now.saturating_duration_since(*at) < OPERATOR_CACHE_TTL);
            if cache.len() >= OPERATOR_CACHE_ENTRIES_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (identity.clone(), now));
        Ok(identity)
    }

    fn peer(&self, credential: &str) -> Result<NodeId, Status> {
        let (node, secret) = credential
            .split_once(' ')
            .ok_or_else(|| unauthenticated("node credentials must be `NODE_ID SECRET`"))?;
        let node = NodeId::new(node).map_err(|e| unauthenticated(e.to_string()))?;
        match &self.security.cluster {
            Some((_, expected)) if same(expected, &digest(secret.trim().as_bytes())) => Ok(node),
            _ => Err(unauthenticated("wrong cluster secret")),
        }
    }

    /// Everything the guard checks before the service sees the call; see the module docs.
    pub async fn admit(
        &self,
        class: Class,
        request: http::Request<Body>,
    ) -> Result<http::Request<Body>, Status> {
        let caller = self.authenticate(request.headers()).await?;
        let path = request.uri().path();
        if self.security.mode == Mode::Enforced {
            if caller.is_anonymous() {
                return Err(no_credentials());
            }
            let allowed = match class {
                Class::Devices => caller.device.is_some(),
                Class::Operator => {
                    caller.operator.is_some()
                        || (caller.device == Some(Device::Fleet)
                            && INVENTORY_METHODS.contains(&path))
                }
                Class::Peer => caller.peer.is_some(),
            };
            if !allowed {
                return Err(Status::permission_denied(match class {
                    Class::Devices => "device calls take a device token",
                    Class::Operator => {
                        "operator calls take an operator's credentials (CENTINELA_OPERATOR, CENTINELA_PASSWORD)"
                    }
                    Class::Peer => "the peer service is for the cluster's nodes only",
                }));
            }
        }
        // Devices are limited per device in the handlers (the device is named in the body).
        let limit = match (class, &caller.operator, &caller.peer) {
            (Class::Peer, _, Some(node)) => Some((format!("peer:{node}"), PEER_RATE)),
            (Class::Peer, _, None) => Some(("peer".to_string(), PEER_RATE)),
            (Class::Operator, Some(me), _) => Some((format!("operator:{}", me.id), OPERATOR_RATE)),
            (Class::Operator, None, _) => Some(("operator".to_string(), OPERATOR_RATE)),
            (Class::Devices, _, _) => None,
        };
        if let Some((key, rate)) = limit
            && !self.limiter.admit(&key, rate)
        {
            return Err(rate_limited(&key, rate));
        }
        let (mut parts, body) = request.into_parts();
        let body = read_limited(body).await?;
        parts.extensions.insert(caller);
        Ok(http::Request::from_parts(parts, body))
    }
}

/// Reads a (unary) request body, refusing it as soon as it is known to exceed
/// [`REQUEST_BYTES_MAX`]: from the length prefix of its gRPC frame, or from the bytes sent.
async fn read_limited(mut body: Body) -> Result<Body, Status> {
    let too_large = |len: usize| {
        Status::resource_exhausted(format!(
            "request of {len} bytes, at most {REQUEST_BYTES_MAX}"
        ))
    };
    let limit = REQUEST_BYTES_MAX + GRPC_FRAME_PREFIX_BYTES;
    let read = async {
        let mut buffer = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers: none expected from a client
            };
            buffer.extend_from_slice(&data);
            if buffer.len() >= GRPC_FRAME_PREFIX_BYTES {
                let declared =
                    u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
                if declared > REQUEST_BYTES_MAX {
                    return Err(too_large(declared));
                }
            }
            if buffer.len() > limit {
                return Err(too_large(buffer.len() - GRPC_FRAME_PREFIX_BYTES));
            }
        }
        Ok(buffer.freeze())
    };
    let bytes: Bytes = tokio::time::timeout(REQUEST_BODY_TIMEOUT, read)
        .await
        .map_err(|_| {
            Status::deadline_exceeded(format!(
                "the request body took more than {} s to arrive",
                REQUEST_BODY_TIMEOUT.as_secs()
            ))
        })??;
    Ok(Body::new(http_body_util::Full::new(bytes)))
}

/// A `centinela.v1` service behind the edge: see the module docs.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    edge: Arc<Edge>,
    class: Class,
}

impl<S: NamedService> NamedService for Guard<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Guard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call; a fresh clone waits for the next.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let edge = self.edge.clone();
        let class = self.class;
        Box::pin(async move {
            match edge.admit(class, request).await {
                Ok(request) => inner.call(request).await,
                Err(status) => {
                    tracing::debug!(class = ?class, code = ?status.code(), message = status.message(), "call refused at the edge");
                    Ok(status.into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Accounts;

    #[tonic::async_trait]
    impl OperatorDirectory for Accounts {
        fn knows(&self, operator: &str) -> bool {
            matches!(operator, "ana" | "sala:2:luis")
        }
        async fn verify(&self, operator: &str, password: &str) -> Option<Role> {
            match (operator, password) {
                ("ana", "clave:con:dos") => Some(Role::Supervisor),
                ("sala:2:luis", "x") => Some(Role::Operator),
                _ => None,
            }
        }
    }

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for value in values {
            map.append(http::header::AUTHORIZATION, value.parse().unwrap());
        }
        map
    }

    fn basic(id: &str, password: &str) -> String {
        let raw = format!("{id}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    fn edge(mode: Mode) -> Arc<Edge> {
        let security = Security::with_mode(mode)
            .with_shared_device_token("fleet-token-0123456789")
            .unwrap()
            .with_device_token(
                Device::Button(ButtonId::new("B01").unwrap()),
                "button-b01-token-0123",
            )
            .unwrap()
            .with_cluster_secret(&"s".repeat(32))
            .unwrap()
            .with_operators(Arc::new(Accounts));
        Edge::new(security)
    }

    #[tokio::test]
    async fn credentials_name_their_holder() {
        let edge = edge(Mode::Enforced);
        let caller = edge
            .authenticate(&headers(&["Bearer button-b01-token-0123"]))
            .await
            .unwrap();
        assert_eq!(
            caller.device,
            Some(Device::Button(ButtonId::new("B01").unwrap()))
        );
        assert!(caller.act_as_button(&ButtonId::new("B01").unwrap()).is_ok());
        let other = caller
            .act_as_button(&ButtonId::new("B02").unwrap())
            .unwrap_err();
        assert_eq!(other.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            caller.operator("", Role::Operator).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );

        let fleet = edge
            .authenticate(&headers(&["bearer fleet-token-0123456789"]))
            .await
            .unwrap();
        assert!(fleet.act_as_unit(&BrigadeId::new("U9").unwrap()).is_ok());
        assert!(fleet.read_inventory().is_ok());
        assert!(fleet.read_operations().is_err());

        let ana = edge
            .authenticate(&headers(&[&basic("ana", "clave:con:dos")]))
            .await
            .unwrap();
        assert_eq!(ana.operator("", Role::Supervisor).unwrap().as_str(), "ana");
        assert_eq!(
            ana.operator("bob", Role::Operator).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            ana.operator("ana", Role::Admin).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        let luis = edge
            .authenticate(&headers(&[&basic("sala:2:luis", "x")]))
            .await
            .unwrap();
        assert_eq!(
            luis.operator("", Role::Operator).unwrap().as_str(),
            "sala:2:luis"
        );

        let peer = edge
            .authenticate(&headers(&[&format!("Node n2 {}", "s".repeat(32))]))
            .await
            .unwrap();
        assert_eq!(peer.peer.as_ref().unwrap().as_str(), "n2");
        assert!(peer.peer().is_ok());
    }

    #[tokio::test]
    async fn bad_credentials_are_unauthenticated_in_every_mode() {
        for mode in [Mode::Enforced, Mode::Open] {
            let edge = edge(mode);
            for bad in [
                "Bearer nope".to_string(),
                basic("ana", "wrong"),
                basic("nobody", "x"),
                "Basic !!!".to_string(),
                format!("Node n2 {}", "t".repeat(32)),
                "Digest x".to_string(),
                "Bearer".to_string(),
            ] {
                let status = edge.authenticate(&headers(&[&bad])).await.unwrap_err();
                assert_eq!(status.code(), tonic::Code::Unauthenticated, "{bad}");
            }
            let twice = edge
                .authenticate(&headers(&[
                    "Bearer fleet-token-0123456789",
                    "Bearer button-b01-token-0123",
                ]))
                .await
                .unwrap_err();
            assert_eq!(twice.code(), tonic::Code::Unauthenticated);
        }
    }

    #[tokio::test]
    async fn open_mode_lets_the_anonymous_through_but_binds_presented_credentials() {
        let edge = edge(Mode::Open);
        let anonymous = edge.authenticate(&headers(&[])).await.unwrap();
        assert!(
            anonymous
                .act_as_button(&ButtonId::new("B07").unwrap())
                .is_ok()
        );
        assert_eq!(
            anonymous.operator("cli", Role::Admin).unwrap().as_str(),
            "cli"
        );
        assert_eq!(
            anonymous.operator("", Role::Operator).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let button = edge
            .authenticate(&headers(&["Bearer button-b01-token-0123"]))
            .await
            .unwrap();
        assert_eq!(
            button
                .act_as_button(&ButtonId::new("B02").unwrap())
                .unwrap_err()
                .code(),
            tonic::Code::PermissionDenied
        );

        let closed = self::edge(Mode::Enforced);
        let nobody = closed.authenticate(&headers(&[])).await.unwrap();
        for status in [
            nobody
                .act_as_button(&ButtonId::new("B01").unwrap())
                .unwrap_err(),
            nobody.operator("cli", Role::Operator).unwrap_err(),
            nobody.read_operations().unwrap_err(),
            nobody.peer().unwrap_err(),
        ] {
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
        }
    }

    #[test]
    fn configuration_refuses_weak_and_malformed_secrets() {
        assert!(matches!(
            Security::enforced().with_shared_device_token("short"),
            Err(Error::TooShort { .. })
        ));
        assert!(Security::open().with_shared_device_token("short").is_ok());
        assert!(matches!(
            Security::open().with_shared_device_token("has space"),
            Err(Error::NotPrintable { .. })
        ));
        assert!(Security::open().with_cluster_secret("short").is_err());
        assert!(matches!(
            Security::enforced().check_cluster(),
            Err(Error::NoClusterSecret)
        ));
        assert!(Security::open().check_cluster().is_ok());
        let digest = token_digest_hex("button-b01-token-0123");
        let toml =
            format!("[[devices]]\nkind = \"button\"\nid = \"B01\"\ntoken_blake2b = \"{digest}\"\n");
        let security = Security::enforced().with_devices_toml(&toml).unwrap();
        assert_eq!(security.devices.len(), 1);
        let twice = format!("{toml}{}", toml.replace("B01", "B02"));
        assert!(Security::enforced().with_devices_toml(&twice).is_err());
        assert!(
            Security::enforced()
                .with_devices_toml(&toml.replace("button", "lamp"))
                .is_err()
        );
        assert!(
            Security::enforced()
                .with_devices_toml(&toml.replace(&digest, "abc"))
                .is_err()
        );
    }

    #[tokio::test]
    async fn buckets_refill_and_stay_bounded() {
        tokio::time::pause();
        let limiter = RateLimiter::default();
        let rate = Rate {
            per_s: 10.0,
            burst: 3.0,
        };
        assert!((0..3).all(|_| limiter.admit("button:B01", rate)));
        assert!(!limiter.admit("button:B01", rate));
        assert!(limiter.admit("button:B02", rate), "other keys unaffected");
        tokio::time::advance(std::time::Duration::from_millis(100)).await;
        assert!(limiter.admit("button:B01", rate));
        assert!(!limiter.admit("button:B01", rate));
        assert_eq!(limiter.len(), 2);
    }
}
