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
//!
//! # Layout
//! - [`identity`]: who a call is from ([`Caller`]: a device, an operator with a [`Role`], a
//!   peer node) and what each may act as.
//! - [`security`]: a node's credentials configuration ([`Security`]: mode, device tokens and
//!   the devices file, the cluster secret, the operator directory).
//! - [`rate`]: per-identity token buckets ([`RateLimiter`]).
//! - [`edge`]: the [`Guard`] around each service and the [`Edge`] it shares: authentication,
//!   permission by service class, rate limits, the bounded request body.

pub mod edge;
pub mod identity;
pub mod rate;
pub mod security;

pub use edge::{Class, Edge, Guard};
pub use identity::{Caller, Device, OperatorDirectory, OperatorIdentity, Refusal, Role, caller};
pub use rate::RateLimiter;
pub use security::{
    Error, Mode, PLACEHOLDER_MARKERS, Security, SipCredentials, placeholder_marker,
    token_digest_hex,
};
