//! A node's credentials configuration: what it accepts, and what it presents to its peers.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use blake2::{Blake2b256, Digest};

use centinela_core::ids::{BrigadeId, ButtonId, CameraId, NodeId};
use centinela_core::seal::AuditKey;

use super::identity::{Device, OperatorDirectory};
use crate::limits::{CLUSTER_SECRET_LEN_MIN, DEVICE_CREDENTIALS_MAX, DEVICE_TOKEN_LEN_MIN};

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
        "{what} is a placeholder (it contains {marker:?}), not a secret: generate one, e.g. `head -c 32 /dev/urandom | base64`"
    )]
    Placeholder {
        what: &'static str,
        marker: &'static str,
    },
    #[error(
        "no CENTINELA_CLUSTER_SECRET: nodes could not authenticate each other (set one of at least {CLUSTER_SECRET_LEN_MIN} bytes on every node, or pass --insecure on a trusted test network)"
    )]
    NoClusterSecret,
}

/// A token's digest: tokens are looked up (and kept in memory) only as BLAKE2b-256 digests.
pub(super) type Digest32 = [u8; 32];

pub(super) fn digest(bytes: &[u8]) -> Digest32 {
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
pub(super) fn same(a: &Digest32, b: &Digest32) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the example configuration's placeholders contain (deploy/centinela.example.env): a
/// value with one of these, in any case, is a copied example, never a secret, and a node
/// refuses to start with it. Random secrets of 32 bytes contain none of them in practice.
pub const PLACEHOLDER_MARKERS: &[&str] = &["change-me", "changeme", "replace-me", "placeholder"];

/// The placeholder marker `value` contains, if any ([`PLACEHOLDER_MARKERS`]).
pub fn placeholder_marker(value: &str) -> Option<&'static str> {
    let value = value.to_ascii_lowercase();
    PLACEHOLDER_MARKERS
        .iter()
        .copied()
        .find(|marker| value.contains(marker))
}

fn check_secret(what: &'static str, value: &str, min: usize) -> Result<(), Error> {
    if let Some(marker) = placeholder_marker(value) {
        return Err(Error::Placeholder { what, marker });
    }
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
    pub(super) mode: Mode,
    /// Per-device token digests.
    pub(super) devices: HashMap<Digest32, Device>,
    /// The shared device token's digest.
    pub(super) fleet: Option<Digest32>,
    /// The shared device token itself: SIP digest needs the password to compute each
    /// button's `HA1` (docs/intercom.md). Never logged.
    pub(super) fleet_password: Option<String>,
    /// Buttons' SIP `HA1` (MD5 of `id:centinela:password`, 32 hex digits) from the devices
    /// file's `sip_ha1`.
    pub(super) sip_ha1: HashMap<ButtonId, String>,
    /// The cluster secret (sent to other nodes) and its digest (to check theirs).
    pub(super) cluster: Option<(String, Digest32)>,
    pub(super) operators: Option<Arc<dyn OperatorDirectory>>,
    /// The audit seal's key from `CENTINELA_AUDIT_KEY`; without it, derived from the cluster
    /// secret ([`Security::audit_key`]).
    pub(super) audit: Option<AuditKey>,
    /// Peer calls must come over TLS with a client certificate naming the calling node
    /// (`<id>.node.centinela`, signed by `CENTINELA_TLS_CA`): set when the node serves TLS
    /// with a CA ([`Security::with_node_certificates`]).
    pub(super) node_certificates: bool,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("mode", &self.mode)
            .field("device_tokens", &self.devices.len())
            .field("shared_device_token", &self.fleet.is_some())
            .field("cluster_secret", &self.cluster.is_some())
            .field("operators", &self.operators.is_some())
            .field("audit_key", &self.audit_key())
            .field("node_certificates", &self.node_certificates)
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
    /// A button's SIP digest `HA1`: MD5 of `ID:centinela:PASSWORD`, 32 hex digits
    /// (docs/intercom.md). Without it the button's SIP password is the shared device token.
    #[serde(default)]
    sip_ha1: Option<String>,
}

/// What the intercom gateway checks a button's SIP digest against (docs/intercom.md).
#[derive(Clone, Default)]
pub struct SipCredentials {
    /// `HA1` (hex) per button, from the devices file.
    pub per_button: Vec<(ButtonId, String)>,
    /// The shared device token: the SIP password of every other button.
    pub shared: Option<String>,
    /// Buttons with neither may call unauthenticated (an open node: the demo, tests).
    pub open: bool,
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

    pub(super) fn with_mode(mode: Mode) -> Self {
        Self {
            mode,
            devices: HashMap::new(),
            fleet: None,
            fleet_password: None,
            sip_ha1: HashMap::new(),
            cluster: None,
            operators: None,
            audit: None,
            node_certificates: false,
        }
    }

    /// Peer calls need a client certificate that names the calling node; a call without one,
    /// or with one naming anything else (a device, another node), is refused before any
    /// handler runs, whatever the mode and whatever secret it presents.
    pub fn with_node_certificates(mut self) -> Self {
        self.node_certificates = true;
        self
    }

    pub fn requires_node_certificates(&self) -> bool {
        self.node_certificates
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
        self.fleet_password = Some(token.to_string());
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
            if let Some(ha1) = &entry.sip_ha1 {
                let Device::Button(button) = &device else {
                    return Err(bad("sip_ha1 is for buttons only".into()));
                };
                let hex = ha1.len() == 32 && ha1.bytes().all(|b| b.is_ascii_hexdigit());
                if !hex {
                    return Err(bad(
                        "sip_ha1 must be 32 hex digits (MD5 of ID:centinela:PASSWORD)".into(),
                    ));
                }
                self.sip_ha1
                    .insert(button.clone(), ha1.to_ascii_lowercase());
            }
            self = self.with_device_digest(device, &entry.token_blake2b)?;
        }
        Ok(self)
    }

    /// What the intercom gateway checks buttons' SIP digest against.
    pub fn sip_credentials(&self) -> SipCredentials {
        SipCredentials {
            per_button: self
                .sip_ha1
                .iter()
                .map(|(button, ha1)| (button.clone(), ha1.clone()))
                .collect(),
            shared: self.fleet_password.clone(),
            open: self.mode == Mode::Open,
        }
    }

    /// The secret every node of the cluster shares: presented on calls to other nodes and
    /// required of theirs.
    pub fn with_cluster_secret(mut self, secret: &str) -> Result<Self, Error> {
        check_secret("the cluster secret", secret, CLUSTER_SECRET_LEN_MIN)?;
        self.cluster = Some((secret.to_string(), digest(secret.as_bytes())));
        Ok(self)
    }

    /// The audit seal's own key (`CENTINELA_AUDIT_KEY`): set it to keep the audit verifiable
    /// across a rotation of the cluster secret (docs/security.md, "Audit").
    pub fn with_audit_key(mut self, secret: &str) -> Result<Self, Error> {
        check_secret("the audit key", secret, CLUSTER_SECRET_LEN_MIN)?;
        self.audit = Some(AuditKey::from_secret(secret.as_bytes()));
        Ok(self)
    }

    /// The key incidents are sealed with: `CENTINELA_AUDIT_KEY`'s, else one derived from the
    /// cluster secret, else (no secret at all: the demo, open test nodes) the public key,
    /// whose seals prove nothing.
    pub fn audit_key(&self) -> AuditKey {
        if let Some(key) = &self.audit {
            return key.clone();
        }
        match &self.cluster {
            Some((secret, _)) => AuditKey::from_cluster_secret(secret.as_bytes()),
            None => AuditKey::public(),
        }
    }

    /// Where operators' passwords are checked (the node passes the console's accounts).
    pub fn with_operators(mut self, directory: Arc<dyn OperatorDirectory>) -> Self {
        self.operators = Some(directory);
        self
    }

    /// `CENTINELA_DEVICE_TOKEN`, `CENTINELA_DEVICES_FILE`, `CENTINELA_CLUSTER_SECRET` and
    /// `CENTINELA_AUDIT_KEY` on top of `self`. Empty variables count as unset.
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
        if let Some(secret) = var("CENTINELA_AUDIT_KEY") {
            security = security.with_audit_key(&secret)?;
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
            "credentials {}: {} device token(s){}, operators {}, cluster secret {}, audit key {}",
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
            match (&self.audit, &self.cluster) {
                (Some(key), _) => format!("{} (CENTINELA_AUDIT_KEY)", key.fingerprint()),
                (None, Some(_)) => format!(
                    "{} (from the cluster secret)",
                    self.audit_key().fingerprint()
                ),
                (None, None) => "public (no secret: seals prove nothing)".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_key_is_configured_or_derived_never_the_secret_itself() {
        let secret = "s".repeat(32);
        let open = Security::open();
        assert!(open.audit_key().is_public(), "no secret: the public key");
        let clustered = Security::enforced().with_cluster_secret(&secret).unwrap();
        let derived = clustered.audit_key();
        assert!(!derived.is_public());
        assert_eq!(derived, AuditKey::from_cluster_secret(secret.as_bytes()));
        assert_ne!(derived, AuditKey::from_secret(secret.as_bytes()));
        // An explicit key wins, and survives a rotation of the cluster secret.
        let audit = "a".repeat(32);
        let configured = clustered.with_audit_key(&audit).unwrap();
        let rotated = configured
            .clone()
            .with_cluster_secret(&"t".repeat(32))
            .unwrap();
        assert_eq!(configured.audit_key(), rotated.audit_key());
        assert_eq!(
            configured.audit_key(),
            AuditKey::from_secret(audit.as_bytes())
        );
        assert!(
            configured
                .summary()
                .contains(configured.audit_key().fingerprint())
        );
        assert!(matches!(
            Security::enforced().with_audit_key("short"),
            Err(Error::TooShort { .. })
        ));
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
        // The example environment file's secrets are placeholders a node refuses.
        let example = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/centinela.example.env"
        ));
        let secrets: Vec<&str> = example
            .lines()
            .filter_map(|line| line.trim_start_matches('#').split_once('='))
            .filter(|(name, _)| name.ends_with("_SECRET") || name.ends_with("_TOKEN"))
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
            .collect();
        assert!(!secrets.is_empty(), "the example sets a cluster secret");
        for secret in secrets {
            assert!(
                matches!(
                    Security::open().with_cluster_secret(secret),
                    Err(Error::Placeholder { .. })
                ),
                "{secret:?} would be accepted"
            );
        }
        assert!(
            Security::open()
                .with_cluster_secret("CHANGE-ME-0000000000000000000000000000")
                .is_err()
        );
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

    #[test]
    fn a_buttons_sip_ha1_comes_from_the_devices_file_and_is_checked() {
        let digest = token_digest_hex("button-b01-token-0123");
        let ha1 = "0123456789abcdef0123456789ABCDEF";
        let entry = |kind: &str, ha1: &str| {
            format!(
                "[[devices]]\nkind = \"{kind}\"\nid = \"B01\"\ntoken_blake2b = \"{digest}\"\nsip_ha1 = \"{ha1}\"\n"
            )
        };
        let security = Security::enforced()
            .with_shared_device_token("fleet-token-0123456789")
            .unwrap()
            .with_devices_toml(&entry("button", ha1))
            .unwrap();
        let sip = security.sip_credentials();
        assert_eq!(sip.per_button.len(), 1);
        assert_eq!(sip.per_button[0].0.as_str(), "B01");
        assert_eq!(sip.per_button[0].1, ha1.to_ascii_lowercase());
        assert_eq!(sip.shared.as_deref(), Some("fleet-token-0123456789"));
        assert!(!sip.open);
        assert!(Security::open().sip_credentials().open);
        // Not 32 hex digits, or on a device that is no button: refused with the reason.
        let short = Security::enforced().with_devices_toml(&entry("button", "abc"));
        assert!(short.unwrap_err().to_string().contains("sip_ha1"));
        let unit = Security::enforced().with_devices_toml(&entry("unit", ha1));
        assert!(unit.unwrap_err().to_string().contains("buttons only"));
    }
}
