//! The ledger: every archived incident's audit head, chained across incidents in archiving
//! order and sealed with the audit key, and the verification of the whole archive against it.
//!
//! Each entry's `link` is BLAKE2b-256 over the previous link, the incident id, its audit chain
//! head and the hash of its archived body: a plain hash, so anyone can check the chain. Its
//! `mac` is [`centinela_core::seal::ledger_mac`] over the link: only the holder of the audit
//! key can make one. The MAC covers the entry itself (its sequence number, incident id, audit
//! head and body hash), not the chain: an entry whose links were recomputed only because an
//! earlier one changed still carries its own valid MAC, so a report names the incident that
//! was changed, not every one after it. So:
//! - an incident deleted from the archive leaves its ledger entry pointing at nothing;
//! - an incident edited no longer hashes to its entry's body hash (and its own audit seal
//!   breaks);
//! - an incident edited and "re-hashed" (body hash, link and every later link recomputed)
//!   fails the MAC of the entry it changed;
//! - a ledger entry deleted breaks the next entry's `prev` and sequence.

use blake2::{Blake2b256, Digest};
use centinela_core::seal::{AuditKey, ledger_mac, macs_equal};

use crate::db::Archive;
use crate::error::Result;
use crate::{ArchivedIncident, limits};

/// Domain of the ledger's links.
const LINK_DOMAIN: &[u8] = b"centinela/archive-ledger/link/v1";
/// Domain of the text an entry's MAC covers.
const ENTRY_DOMAIN: &[u8] = b"centinela/archive-ledger/entry/v1";
/// Domain of the first entry's `prev`.
const GENESIS_DOMAIN: &[u8] = b"centinela/archive-ledger/genesis/v1";

/// One ledger entry as stored.
#[derive(Debug, Clone)]
pub(crate) struct LedgerRow {
    pub seq: i64,
    pub incident_id: String,
    pub audit_head: String,
    pub body_hash: String,
    pub prev: String,
    pub link: String,
    pub mac: String,
}

/// BLAKE2b-256 of `bytes`, in hex.
pub fn hash_hex(bytes: &[u8]) -> String {
    hex(&Blake2b256::digest(bytes))
}

/// The `prev` of the first entry.
pub fn genesis() -> String {
    let mut hasher = Blake2b256::new();
    prefixed(&mut hasher, GENESIS_DOMAIN);
    hex(&hasher.finalize())
}

/// The link of an entry after `prev`.
pub fn link(prev: &str, incident_id: &str, audit_head: &str, body_hash: &str) -> String {
    let mut hasher = Blake2b256::new();
    for field in [
        LINK_DOMAIN,
        prev.as_bytes(),
        incident_id.as_bytes(),
        audit_head.as_bytes(),
        body_hash.as_bytes(),
    ] {
        prefixed(&mut hasher, field);
    }
    hex(&hasher.finalize())
}

/// What an entry's MAC covers (hex): its sequence number, incident id, audit head and body
/// hash.
pub fn entry_digest(seq: i64, incident_id: &str, audit_head: &str, body_hash: &str) -> String {
    let mut hasher = Blake2b256::new();
    for field in [
        ENTRY_DOMAIN,
        &seq.to_le_bytes(),
        incident_id.as_bytes(),
        audit_head.as_bytes(),
        body_hash.as_bytes(),
    ] {
        prefixed(&mut hasher, field);
    }
    hex(&hasher.finalize())
}

fn prefixed(hasher: &mut Blake2b256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One break found by [`Archive::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The incident concerned.
    pub incident_id: String,
    pub reason: String,
}

/// What [`Archive::verify`] found.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// Ledger entries checked.
    pub checked: u64,
    /// Breaks, at most [`limits::VERIFY_BREAKS_MAX`] of them.
    pub breaks: Vec<Break>,
    /// Breaks found in all (past the ones listed too).
    pub broken: u64,
    /// The last entry's link (to compare with the head the store keeps).
    pub head: Option<(i64, String)>,
}

impl Verification {
    fn broke(&mut self, incident_id: &str, reason: String) {
        self.broken += 1;
        if self.breaks.len() < limits::VERIFY_BREAKS_MAX {
            self.breaks.push(Break {
                incident_id: incident_id.to_string(),
                reason,
            });
        }
    }

    pub fn is_intact(&self) -> bool {
        self.broken == 0
    }
}

impl Archive {
    /// Checks the whole archive against its ledger with the audit `key`, page by page: the
    /// ledger chain (sequence, links, MACs), each entry's incident (present, its body hashing
    /// to the entry, its audit chain and seal intact, its head the entry's), and that no
    /// incident sits outside the ledger.
    pub async fn verify(&self, key: &AuditKey) -> Result<Verification> {
        let mut verification = Verification::default();
        let mut expected_prev = genesis();
        let mut expected_seq = 1;
        let mut after = 0;
        loop {
            let page = self.ledger_page(after, limits::VERIFY_PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = last.seq;
            for (entry, stored) in &page {
                verification.checked += 1;
                check_entry(
                    &mut verification,
                    key,
                    entry,
                    stored.as_ref(),
                    expected_seq,
                    &expected_prev,
                );
                expected_seq = entry.seq + 1;
                expected_prev = entry.link.clone();
                verification.head = Some((entry.seq, entry.link.clone()));
            }
        }
        let unledgered = self.unledgered(limits::VERIFY_BREAKS_MAX as i64).await?;
        for id in unledgered {
            verification.broke(&id, "archived outside the ledger (no ledger entry)".into());
        }
        Ok(verification)
    }
}

fn check_entry(
    verification: &mut Verification,
    key: &AuditKey,
    entry: &LedgerRow,
    stored: Option<&(String, String)>,
    expected_seq: i64,
    expected_prev: &str,
) {
    let id = entry.incident_id.as_str();
    if entry.seq != expected_seq || entry.prev != expected_prev {
        verification.broke(
            id,
            format!(
                "ledger entry {} does not follow entry {}: an entry before it was removed or \
                 rewritten",
                entry.seq,
                expected_seq - 1
            ),
        );
    }
    if link(&entry.prev, id, &entry.audit_head, &entry.body_hash) != entry.link {
        verification.broke(
            id,
            format!("ledger entry {} does not hash to its link", entry.seq),
        );
    }
    let digest = entry_digest(entry.seq, id, &entry.audit_head, &entry.body_hash);
    if !macs_equal(&ledger_mac(key, &digest), &entry.mac) {
        verification.broke(
            id,
            format!(
                "ledger entry {} is not sealed by the audit key: re-hashed",
                entry.seq
            ),
        );
    }
    let Some((body, body_hash)) = stored else {
        verification.broke(id, "deleted from the archive (the ledger names it)".into());
        return;
    };
    if *body_hash != entry.body_hash || hash_hex(body.as_bytes()) != entry.body_hash {
        verification.broke(
            id,
            "edited in the archive: its body no longer matches the ledger".into(),
        );
        return;
    }
    let archived: ArchivedIncident = match serde_json::from_str(body) {
        Ok(archived) => archived,
        Err(e) => {
            verification.broke(id, format!("the archived record does not decode: {e}"));
            return;
        }
    };
    if archived.incident.id.as_str() != id {
        verification.broke(
            id,
            format!("the archived record is of {}", archived.incident.id),
        );
        return;
    }
    let verdict = archived.incident.verify_audit(Some(key));
    if let Some(broken) = verdict.first_break {
        verification.broke(id, format!("audit chain: {}", broken.reason));
    } else if verdict.head != entry.audit_head {
        verification.broke(
            id,
            "its audit head is not the one the ledger chained".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_depend_on_every_field_and_the_previous_link() {
        let base = link(&genesis(), "B01-1", "aa", "bb");
        assert_eq!(base.len(), 64);
        assert_eq!(base, link(&genesis(), "B01-1", "aa", "bb"));
        assert_ne!(base, link(&genesis(), "B01-2", "aa", "bb"));
        assert_ne!(base, link(&genesis(), "B01-1", "ab", "bb"));
        assert_ne!(base, link(&genesis(), "B01-1", "aa", "bc"));
        assert_ne!(base, link(&base, "B01-1", "aa", "bb"));
        assert_ne!(
            link("", "ab", "c", ""),
            link("", "a", "bc", ""),
            "length-prefixed"
        );
    }
}
