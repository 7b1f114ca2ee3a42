//! The audit seal: a keyed MAC over an incident's audit chain head, its entry count and every
//! field of its state, so that someone who can write the store but does not hold the audit key
//! cannot change an incident (its resolution, who acknowledged it, its kind, its caller, its
//! audit trail...) without [`crate::incident::Incident::verify_audit`] reporting it.
//!
//! The chain's links ([`crate::incident::audit_chain_link`]) are plain BLAKE2b: anyone can
//! check them, and anyone can recompute them. What only the key holder can compute is the
//! seal, and the seal binds the chain's last link and length: a chain rewritten consistently,
//! stripped of its hashes or cut short no longer matches it. The seal is refreshed on every
//! write of the record (by `centinela-records`, which holds the key).
//!
//! The key ([`AuditKey`]) is never stored with the records: a node derives it from
//! `CENTINELA_AUDIT_KEY`, or from its cluster secret with a domain of its own (see
//! docs/security.md, "Audit"). Its [`AuditKey::fingerprint`] is stored in each seal, so that a
//! record sealed under another key says so instead of looking tampered with.

use std::fmt;

use blake2::digest::{Digest, KeyInit, Mac};
use blake2::{Blake2b256, Blake2bMac};

/// BLAKE2b keyed with 32 bytes, 32 bytes out (RFC 7693's keyed mode: a MAC by construction).
type Blake2bMac256 = Blake2bMac<blake2::digest::consts::U32>;

/// Domain of the key derived from a configured audit key.
const AUDIT_KEY_DOMAIN: &[u8] = b"centinela/audit-key/v1";
/// Domain of the key derived from the cluster secret: the same secret never keys two things
/// the same way.
const CLUSTER_SECRET_DOMAIN: &[u8] = b"centinela/audit-key/from-cluster-secret/v1";
/// Domain of a key's public fingerprint.
const FINGERPRINT_DOMAIN: &[u8] = b"centinela/audit-key/fingerprint/v1";
/// Domain of the seal's MAC input.
pub(crate) const SEAL_DOMAIN: &[u8] = b"centinela/audit-seal/v1";
/// The key of a node with neither an audit key nor a cluster secret (the demo, open test
/// nodes): public, so such a node's seals prove nothing against someone who reads this file.
const PUBLIC_KEY_SECRET: &[u8] = b"centinela-demo-audit-key (public: proves nothing)";

/// The secret key of the audit seal. Its `Debug` shows only the fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditKey {
    key: [u8; 32],
    fingerprint: String,
}

impl AuditKey {
    /// The key from a configured audit key (`CENTINELA_AUDIT_KEY`), any length: it is hashed.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self::derive(AUDIT_KEY_DOMAIN, secret)
    }

    /// The key derived from the cluster secret, when no audit key is configured.
    pub fn from_cluster_secret(secret: &[u8]) -> Self {
        Self::derive(CLUSTER_SECRET_DOMAIN, secret)
    }

    /// The public key of a node without secrets (the demo): see [`Self::is_public`].
    pub fn public() -> Self {
        Self::from_secret(PUBLIC_KEY_SECRET)
    }

    /// Whether this is [`Self::public`], whose seals anyone can forge.
    pub fn is_public(&self) -> bool {
        *self == Self::public()
    }

    fn derive(domain: &[u8], secret: &[u8]) -> Self {
        let mut hasher = Blake2b256::new();
        length_prefixed(&mut hasher, domain);
        length_prefixed(&mut hasher, secret);
        let key: [u8; 32] = hasher.finalize().into();
        let mut hasher = Blake2b256::new();
        length_prefixed(&mut hasher, FINGERPRINT_DOMAIN);
        length_prefixed(&mut hasher, &key);
        let digest: [u8; 32] = hasher.finalize().into();
        Self {
            key,
            fingerprint: hex(&digest[..8]),
        }
    }

    /// 16 hex digits naming the key without revealing it: stored in every seal.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(crate) fn mac(&self) -> Blake2bMac256 {
        <Blake2bMac256 as KeyInit>::new_from_slice(&self.key).expect("32 bytes is a valid key")
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditKey({})", self.fingerprint)
    }
}

/// What a seal holds: in the clear, which key made it, how many entries it covers and the
/// chain head it covers (so a reader can say what changed), and the MAC over those and every
/// field of the incident.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditSeal {
    /// [`AuditKey::fingerprint`] of the key that made it.
    pub key: String,
    /// Audit entries the seal covers.
    pub entries: u32,
    /// The chain's last link (hex) when sealed: the genesis link for an empty trail.
    pub head: String,
    /// BLAKE2b-256 keyed MAC (hex).
    pub mac: String,
}

/// Feeds the seal's MAC, one length-prefixed field at a time (so `("ab", "c")` and
/// `("a", "bc")` differ).
pub(crate) struct SealInput {
    mac: Blake2bMac256,
}

impl SealInput {
    pub(crate) fn new(key: &AuditKey) -> Self {
        let mut input = Self { mac: key.mac() };
        input.bytes(SEAL_DOMAIN);
        input
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        Mac::update(&mut self.mac, &(bytes.len() as u64).to_le_bytes());
        Mac::update(&mut self.mac, bytes);
    }

    pub(crate) fn text(&mut self, text: impl fmt::Display) {
        self.bytes(text.to_string().as_bytes());
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }

    /// An optional value: a presence tag, then the value.
    pub(crate) fn option<T>(&mut self, value: Option<T>, mut each: impl FnMut(&mut Self, T)) {
        match value {
            None => self.bytes(b"none"),
            Some(value) => {
                self.bytes(b"some");
                each(self, value);
            }
        }
    }

    /// A list: its length, then each item.
    pub(crate) fn list<T>(
        &mut self,
        items: impl ExactSizeIterator<Item = T>,
        mut each: impl FnMut(&mut Self, T),
    ) {
        self.u64(items.len() as u64);
        for item in items {
            each(self, item);
        }
    }

    pub(crate) fn finish(self) -> String {
        hex(&self.mac.finalize().into_bytes())
    }
}

/// Domain of the archive ledger's MAC: a ledger link is never mistaken for an incident seal.
const LEDGER_DOMAIN: &[u8] = b"centinela/archive-ledger/v1";

/// The keyed MAC (hex) over one entry of the archive's ledger (`centinela-archive`; `digest`
/// is the entry's hash): the ledger's hashes are plain ones anyone can recompute, so a ledger
/// re-hashed after an edit still needs this MAC, which only the audit key's holder can make.
pub fn ledger_mac(key: &AuditKey, digest: &str) -> String {
    let mut input = SealInput { mac: key.mac() };
    input.bytes(LEDGER_DOMAIN);
    input.text(digest);
    input.finish()
}

/// Whether two MACs (hex) are equal, without revealing where they differ.
pub fn macs_equal(a: &str, b: &str) -> bool {
    same(a, b)
}

fn length_prefixed(hasher: &mut Blake2b256, bytes: &[u8]) {
    Digest::update(hasher, (bytes.len() as u64).to_le_bytes());
    Digest::update(hasher, bytes);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal without revealing where two MACs differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_separated_by_domain_and_named_by_fingerprint() {
        let configured = AuditKey::from_secret(b"a secret");
        let derived = AuditKey::from_cluster_secret(b"a secret");
        assert_ne!(
            configured, derived,
            "the same secret, two domains, two keys"
        );
        assert_ne!(configured.fingerprint(), derived.fingerprint());
        assert_eq!(configured, AuditKey::from_secret(b"a secret"));
        assert_eq!(configured.fingerprint().len(), 16);
        assert!(!format!("{configured:?}").contains("secret"));
        assert!(AuditKey::public().is_public());
        assert!(!configured.is_public());
    }

    #[test]
    fn macs_depend_on_the_key_and_every_field() {
        let mac = |key: &AuditKey, fields: &[&str]| {
            let mut input = SealInput::new(key);
            for field in fields {
                input.text(field);
            }
            input.finish()
        };
        let key = AuditKey::from_secret(b"k1");
        let base = mac(&key, &["ab", "c"]);
        assert_eq!(base.len(), 64);
        assert_eq!(base, mac(&key, &["ab", "c"]));
        assert_ne!(base, mac(&key, &["a", "bc"]), "fields are length-prefixed");
        assert_ne!(base, mac(&AuditKey::from_secret(b"k2"), &["ab", "c"]));
        assert!(same(&base, &base.clone()));
        assert!(!same(&base, &mac(&key, &["ab", "d"])));
        assert!(!same(&base, &base[..63]));
    }

    #[test]
    fn ledger_macs_are_keyed_and_apart_from_seals() {
        let key = AuditKey::from_secret(b"k1");
        let mac = ledger_mac(&key, "00ff");
        assert_eq!(mac, ledger_mac(&key, "00ff"));
        assert_ne!(mac, ledger_mac(&key, "00fe"));
        assert_ne!(mac, ledger_mac(&AuditKey::from_secret(b"k2"), "00ff"));
        let mut seal = SealInput::new(&key);
        seal.text("00ff");
        assert_ne!(mac, seal.finish(), "another domain than the incident seal");
        assert!(macs_equal(&mac, &mac.clone()));
    }
}
