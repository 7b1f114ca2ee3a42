//! A device's audit trail: who cleared which alert on a button or a camera, as a hash chain
//! sealed with the audit key, like an incident's ([`crate::incident`]).
//!
//! The entries are the incidents' [`AuditEntry`] and are linked by the same
//! [`audit_chain_link`]; only the chain's first link differs ([`device_chain_genesis`], tied
//! to the device, so entries cannot be moved between devices or into an incident). The
//! device's [`DeviceAuditHead`] carries an [`AuditSeal`] over the entry count, the last link
//! and the device: an entry edited shows as a link that does not match, an entry removed as
//! a count that does not match, and a chain edited and re-hashed consistently as a seal that
//! does not match (only the key's holder can make one).
//!
//! The device's record keeps its newest clearances ([`crate::alert::Alerts::cleared`]); each
//! of them must have its entry in the chain ([`DeviceChain::verify`]), so a trail deleted
//! as a whole is a break too.

use std::fmt;

use blake2::{Blake2b256, Digest};

use crate::alert::Clearance;
use crate::ids::{ButtonId, CameraId, OperatorId};
use crate::incident::{
    Actor, AuditAction, AuditBreak, AuditEntry, AuditVerdict, ChainHash, audit_chain_link,
    chain_hex, length_prefixed, parse_chain_hex, truncate_at_char_boundary, walk_audit_chain,
};
use crate::limits::AUDIT_DETAIL_LEN_MAX;
use crate::seal::{AuditKey, AuditSeal, SealInput, same};
use crate::text::printable;

/// The domain separation of a device's chain, bound into its first link with the device.
const DEVICE_CHAIN_DOMAIN: &[u8] = b"centinela/device-audit-chain/v1";

/// The domain of a device trail's seal: never mistaken for an incident's.
const DEVICE_SEAL_DOMAIN: &[u8] = b"centinela/device-audit-seal/v1";

/// The device a trail belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Device {
    Button(ButtonId),
    Camera(CameraId),
}

impl Device {
    /// `button:B02`, `camera:C02`: what keys, verdicts and the chain's first link use.
    pub fn tag(&self) -> String {
        self.to_string()
    }

    /// The device a [`Device::tag`] names; `None` for anything else.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let (kind, id) = tag.split_once(':')?;
        match kind {
            "button" => ButtonId::new(id).ok().map(Device::Button),
            "camera" => CameraId::new(id).ok().map(Device::Camera),
            _ => None,
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Button(id) => write!(f, "button:{id}"),
            Device::Camera(id) => write!(f, "camera:{id}"),
        }
    }
}

/// The link every trail of `device` starts from.
pub fn device_chain_genesis(device: &Device) -> ChainHash {
    let mut hasher = Blake2b256::new();
    length_prefixed(&mut hasher, DEVICE_CHAIN_DOMAIN);
    length_prefixed(&mut hasher, device.tag().as_bytes());
    hasher.finalize().into()
}

/// What is stored beside a device's entries: the seal over them, and a break a writer found
/// before it extended the trail (kept under the new seal, so a write never launders it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceAuditHead {
    /// [`Device::tag`].
    pub device: String,
    pub seal: AuditSeal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_break: Option<String>,
}

impl DeviceAuditHead {
    /// The head of `device`'s trail of `entries` entries ending at `head`, sealed with `key`.
    pub fn sealed(
        device: &Device,
        entries: u32,
        head: &ChainHash,
        audit_break: Option<String>,
        key: &AuditKey,
    ) -> Self {
        let head = chain_hex(head);
        let mac = seal_mac(key, &device.tag(), entries, &head, audit_break.as_deref());
        Self {
            device: device.tag(),
            seal: AuditSeal {
                key: key.fingerprint().to_string(),
                entries,
                head,
                mac,
            },
            audit_break,
        }
    }

    /// The chain's last link as sealed, to extend it from.
    pub fn link(&self) -> Option<ChainHash> {
        parse_chain_hex(&self.seal.head)
    }

    /// Why this head was not made with `key` for what it says, if it was not: checked by a
    /// writer before it extends the trail.
    pub fn seal_break(&self, key: &AuditKey) -> Option<String> {
        if self.seal.key != key.fingerprint() {
            return Some(format!(
                "sealed with audit key {}, this node holds {}: not verifiable here",
                self.seal.key,
                key.fingerprint()
            ));
        }
        let expected = seal_mac(
            key,
            &self.device,
            self.seal.entries,
            &self.seal.head,
            self.audit_break.as_deref(),
        );
        (!same(&self.seal.mac, &expected)).then(|| {
            "the seal does not match the trail's head (entries re-hashed, or the head edited)"
                .to_string()
        })
    }
}

fn seal_mac(
    key: &AuditKey,
    device: &str,
    entries: u32,
    head: &str,
    audit_break: Option<&str>,
) -> String {
    let mut input = SealInput::new(key);
    input.bytes(DEVICE_SEAL_DOMAIN);
    input.text(key.fingerprint());
    input.text(device);
    input.u64(u64::from(entries));
    input.text(head);
    input.option(audit_break, |input, found| input.text(found));
    input.finish()
}

/// The audit entry of `clearance`, linked after `previous`: the supervisor, when, and in the
/// detail the alert's kind, when it was raised and the supervisor's note (made printable).
pub fn clearance_entry(
    previous: &ChainHash,
    clearance: &Clearance,
    note: Option<&str>,
) -> AuditEntry {
    let mut detail = format!(
        "{} raised at {}",
        clearance.kind,
        clearance.raised_at.as_millis()
    );
    if let Some(note) = note.filter(|note| !note.is_empty()) {
        detail.push_str("; note: ");
        detail.push_str(&printable(note));
    }
    truncate_at_char_boundary(&mut detail, AUDIT_DETAIL_LEN_MAX);
    let mut entry = AuditEntry {
        at: clearance.cleared_at,
        actor: Actor::Operator(clearance.cleared_by.clone()),
        action: AuditAction::AlertCleared,
        detail,
        hash: String::new(),
    };
    entry.hash = chain_hex(&audit_chain_link(previous, &entry));
    entry
}

/// A device's trail as read from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceChain {
    pub device: Device,
    /// Oldest first.
    pub entries: Vec<AuditEntry>,
    /// `None` when the device never had an alert cleared (or the head was deleted).
    pub head: Option<DeviceAuditHead>,
}

impl DeviceChain {
    /// Checks the trail: every entry's hash against the chain recomputed from the device (a
    /// missing hash is a break), the head's count and last link against the entries, with
    /// `key` the seal's MAC, a break a writer recorded, and finally that each of `on_record`
    /// (the clearances the device's record keeps) has its entry.
    pub fn verify(&self, key: Option<&AuditKey>, on_record: &[Clearance]) -> AuditVerdict {
        let (head, chained, mut first_break) = walk_audit_chain(
            device_chain_genesis(&self.device),
            &self.entries,
            "the entry has no hash (stripped)",
        );
        let whole = |reason: String| AuditBreak {
            entry: None,
            reason,
        };
        if first_break.is_none() {
            first_break = self.head_break(&head, key).map(whole);
        }
        if first_break.is_none() {
            first_break = on_record
                .iter()
                .find(|clearance| !self.entries.iter().any(|e| records(e, clearance)))
                .map(|missing| {
                    whole(format!(
                        "the device's record lists a clearance of {} by {} at {} that its audit \
                         trail lacks (entries deleted)",
                        missing.kind,
                        missing.cleared_by,
                        missing.cleared_at.as_millis()
                    ))
                });
        }
        AuditVerdict {
            entries: self.entries.len(),
            chained,
            first_break,
            seal_checked: key.is_some(),
            head,
        }
    }

    fn head_break(&self, head: &str, key: Option<&AuditKey>) -> Option<String> {
        let Some(stored) = &self.head else {
            if self.entries.is_empty() {
                return None;
            }
            return Some("the trail's head is missing (deleted)".into());
        };
        if stored.device != self.device.tag() {
            return Some(format!(
                "the head of {} is stored under {}",
                stored.device, self.device
            ));
        }
        if stored.seal.entries as usize != self.entries.len() {
            return Some(format!(
                "the seal covers {} audit entries, the store holds {} (entries dropped or added)",
                stored.seal.entries,
                self.entries.len()
            ));
        }
        if stored.seal.head != head {
            return Some(
                "the seal's chain head does not match the entries (the chain was rewritten)".into(),
            );
        }
        if let Some(key) = key
            && let Some(found) = stored.seal_break(key)
        {
            return Some(found);
        }
        stored
            .audit_break
            .as_ref()
            .map(|found| format!("a writer found the trail broken before it extended it: {found}"))
    }
}

/// Whether `entry` records `clearance`.
fn records(entry: &AuditEntry, clearance: &Clearance) -> bool {
    entry.action == AuditAction::AlertCleared
        && entry.at == clearance.cleared_at
        && entry.actor == Actor::Operator(clearance.cleared_by.clone())
        && entry
            .detail
            .split_once(' ')
            .is_some_and(|(kind, _)| kind == clearance.kind.as_str())
}

/// The supervisor an entry names, for display.
pub fn cleared_by(entry: &AuditEntry) -> Option<&OperatorId> {
    match &entry.actor {
        Actor::Operator(id) => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertKind;
    use crate::time::Timestamp;

    fn button() -> Device {
        Device::Button(ButtonId::new("B02").unwrap())
    }

    fn clearance(at: u64, kind: AlertKind) -> Clearance {
        Clearance {
            kind,
            raised_at: Timestamp::from_millis(at - 10),
            cleared_at: Timestamp::from_millis(at),
            cleared_by: OperatorId::new("sara").unwrap(),
        }
    }

    /// A trail of `clearances` as a writer builds it, sealed with `key`.
    fn trail(clearances: &[Clearance], key: &AuditKey) -> DeviceChain {
        let device = button();
        let mut link = device_chain_genesis(&device);
        let mut entries = Vec::new();
        for clearance in clearances {
            let entry = clearance_entry(&link, clearance, Some("door resealed"));
            link = parse_chain_hex(&entry.hash).unwrap();
            entries.push(entry);
        }
        let head = DeviceAuditHead::sealed(&device, entries.len() as u32, &link, None, key);
        DeviceChain {
            device,
            entries,
            head: Some(head),
        }
    }

    #[test]
    fn tags_name_the_device_and_parse_back() {
        assert_eq!(button().tag(), "button:B02");
        assert_eq!(Device::from_tag("button:B02"), Some(button()));
        assert_eq!(
            Device::from_tag("camera:C-1"),
            Some(Device::Camera(CameraId::new("C-1").unwrap()))
        );
        assert_eq!(Device::from_tag("brigade:U1"), None);
        assert_eq!(Device::from_tag("B02"), None);
        assert_ne!(
            device_chain_genesis(&button()),
            device_chain_genesis(&Device::Camera(CameraId::new("B02").unwrap()))
        );
    }

    #[test]
    fn an_intact_trail_verifies_and_names_who_cleared_what() {
        let key = AuditKey::from_secret(b"k");
        let cleared = [
            clearance(1_000, AlertKind::Tamper),
            clearance(2_000, AlertKind::ButtonOffline),
        ];
        let chain = trail(&cleared, &key);
        let verdict = chain.verify(Some(&key), &cleared);
        assert!(verdict.is_intact(), "{verdict:?}");
        assert_eq!((verdict.entries, verdict.chained), (2, 2));
        let first = &chain.entries[0];
        assert_eq!(first.action, AuditAction::AlertCleared);
        assert_eq!(cleared_by(first).unwrap().as_str(), "sara");
        assert_eq!(first.detail, "tamper raised at 990; note: door resealed");
        assert!(
            DeviceChain {
                device: button(),
                entries: Vec::new(),
                head: None
            }
            .verify(Some(&key), &[])
            .is_intact(),
            "no clearance, no trail: intact"
        );
    }

    #[test]
    fn an_edited_entry_is_a_break_at_that_entry() {
        let key = AuditKey::from_secret(b"k");
        let cleared = [
            clearance(1_000, AlertKind::Tamper),
            clearance(2_000, AlertKind::Tamper),
        ];
        let mut chain = trail(&cleared, &key);
        chain.entries[0].detail = "button_offline raised at 990".into();
        let verdict = chain.verify(Some(&key), &[]);
        let found = verdict.first_break.expect("a break");
        assert_eq!(found.entry, Some(0));
        assert!(found.reason.contains("does not match"), "{found:?}");
    }

    #[test]
    fn a_rehashed_chain_is_caught_by_the_seal_only_with_the_key() {
        let key = AuditKey::from_secret(b"k");
        let cleared = [clearance(1_000, AlertKind::Tamper)];
        let mut chain = trail(&cleared, &key);
        // Someone without the key rewrites the entry, recomputes its hash and the head's.
        chain.entries[0].actor = Actor::Operator(OperatorId::new("mallory").unwrap());
        let link = audit_chain_link(&device_chain_genesis(&button()), &chain.entries[0]);
        chain.entries[0].hash = chain_hex(&link);
        chain.head.as_mut().unwrap().seal.head = chain_hex(&link);
        assert!(
            chain.verify(None, &[]).is_intact(),
            "links alone are public"
        );
        let verdict = chain.verify(Some(&key), &[]);
        let found = verdict.first_break.expect("the seal catches it");
        assert_eq!(found.entry, None);
        assert!(found.reason.contains("seal does not match"), "{found:?}");
    }

    #[test]
    fn removed_entries_and_a_deleted_trail_are_breaks() {
        let key = AuditKey::from_secret(b"k");
        let cleared = [
            clearance(1_000, AlertKind::Tamper),
            clearance(2_000, AlertKind::ButtonOffline),
        ];
        let mut chain = trail(&cleared, &key);
        chain.entries.pop();
        let found = chain.verify(Some(&key), &cleared).first_break.unwrap();
        assert!(found.reason.contains("covers 2"), "{found:?}");

        let deleted = DeviceChain {
            device: button(),
            entries: Vec::new(),
            head: None,
        };
        let found = deleted.verify(Some(&key), &cleared).first_break.unwrap();
        assert!(found.reason.contains("lacks"), "{found:?}");
        assert!(found.reason.contains("sara"), "{found:?}");
    }

    #[test]
    fn a_recorded_break_survives_a_new_seal() {
        let key = AuditKey::from_secret(b"k");
        let mut chain = trail(&[clearance(1_000, AlertKind::Tamper)], &key);
        let head = chain.head.take().unwrap();
        let link = head.link().unwrap();
        chain.head = Some(DeviceAuditHead::sealed(
            &button(),
            1,
            &link,
            Some("entry 0 was edited".into()),
            &key,
        ));
        let found = chain.verify(Some(&key), &[]).first_break.unwrap();
        assert!(found.reason.contains("entry 0 was edited"), "{found:?}");
        let mut forged = chain.head.clone().unwrap();
        forged.audit_break = None;
        assert!(forged.seal_break(&key).is_some(), "the break is sealed");
    }
}
