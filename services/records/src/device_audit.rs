//! Alert clearances and their audit trail, written together.
//!
//! A supervisor's clearance changes the device's record (the alert closed, the clearance
//! listed) and appends an entry to the device's hash-chained trail
//! ([`centinela_core::device_audit`]) in one transaction: a clearance without its entry, or an
//! entry without its clearance, cannot be committed.
//!
//! # Keys
//! ```text
//! device-audit/{device}/head                DeviceAuditHead: the seal over the trail
//! device-audit/{device}/entries/{seq:010}   AuditEntry, seq from 0, never rewritten
//! ```
//! `{device}` is the [`Device::tag`] (`button:B02`, `camera:C02`). An entry is a key of its
//! own so a clearance writes a few hundred bytes whatever the trail's length.
//!
//! # Growth
//! One entry key (at most about 0.5 KiB: [`AUDIT_DETAIL_LEN_MAX`] of detail plus the
//! supervisor, the time and the hash) per clearance, and one head per device. Clearances are a
//! supervisor's action on an alert a device raised (a device has at most one open alert), so
//! the trail grows with human work, not with traffic: a district of a hundred devices with
//! ten clearances a day adds about 0.2 GiB a year... ten times what a realistic shift clears.
//! Every entry stays in the store: none is dropped, so none can vanish unseen.
//!
//! [`AUDIT_DETAIL_LEN_MAX`]: centinela_core::limits::AUDIT_DETAIL_LEN_MAX

use std::collections::BTreeMap;

use centinela_core::alert::{AlertKind, Clearance};
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::device_audit::{
    Device, DeviceAuditHead, DeviceChain, clearance_entry, device_chain_genesis,
};
use centinela_core::ids::{ButtonId, CameraId, OperatorId};
use centinela_core::incident::{AuditEntry, AuditVerdict, audit_chain_link};
use centinela_core::time::Timestamp;
use centinela_store::{Kv, Txn, TxnOp};

use crate::cas::{Commit, Freshness};
use crate::error::{Error, Result};
use crate::record::{ROOT, Record, decode, encode};
use crate::{Records, limits};

/// `device-audit/`: every device's trail.
fn trails_prefix() -> String {
    format!("{ROOT}device-audit/")
}

fn head_key(device: &Device) -> String {
    format!("{}{device}/head", trails_prefix())
}

fn entry_key(device: &Device, seq: u32) -> String {
    format!("{}{device}/entries/{seq:010}", trails_prefix())
}

/// A device record whose alerts a supervisor clears.
trait AlertDevice: Record {
    fn open_alert(&self) -> Option<AlertKind>;
    fn clear(&mut self, by: &OperatorId, now: Timestamp) -> Option<Clearance>;
}

impl AlertDevice for Button {
    fn open_alert(&self) -> Option<AlertKind> {
        self.alerts.open.as_ref().map(|open| open.kind)
    }
    fn clear(&mut self, by: &OperatorId, now: Timestamp) -> Option<Clearance> {
        self.clear_alert(by, now)
    }
}

impl AlertDevice for Camera {
    fn open_alert(&self) -> Option<AlertKind> {
        self.alerts.open.as_ref().map(|open| open.kind)
    }
    fn clear(&mut self, by: &OperatorId, now: Timestamp) -> Option<Clearance> {
        self.clear_alert(by, now)
    }
}

/// What a supervisor clears: who, the alert's kind when they named one (`None`: whichever is
/// open), and their note.
#[derive(Debug, Clone, Copy)]
pub struct Clearing<'a> {
    pub by: &'a OperatorId,
    pub kind: Option<AlertKind>,
    pub note: Option<&'a str>,
}

/// The verdict on one device's trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceVerdict {
    /// [`Device::tag`] (or, for a key that names no device, the key's part that should).
    pub device: String,
    pub verdict: AuditVerdict,
}

impl Records {
    /// Clears `button`'s open alert as `clearing` says at `now` and appends the clearance,
    /// with the note, to its audit trail, in one transaction. `Refused` when no alert is open,
    /// or the open one is not of the kind named.
    pub async fn clear_button_alert(
        &self,
        button: &ButtonId,
        clearing: Clearing<'_>,
        now: Timestamp,
    ) -> Result<(Button, Clearance)> {
        let device = Device::Button(button.clone());
        self.clear_alert_audited(device, button.as_str(), clearing, now)
            .await
    }

    /// [`Records::clear_button_alert`] for a camera.
    pub async fn clear_camera_alert(
        &self,
        camera: &CameraId,
        clearing: Clearing<'_>,
        now: Timestamp,
    ) -> Result<(Camera, Clearance)> {
        let device = Device::Camera(camera.clone());
        self.clear_alert_audited(device, camera.as_str(), clearing, now)
            .await
    }

    async fn clear_alert_audited<T: AlertDevice>(
        &self,
        device: Device,
        id: &str,
        clearing: Clearing<'_>,
        now: Timestamp,
    ) -> Result<(T, Clearance)> {
        let key = T::key_of(id);
        let head_key = head_key(&device);
        for attempt in 0..limits::CAS_ATTEMPTS_MAX {
            let freshness = Freshness::for_attempt(attempt);
            let mut read = self
                .read(&[key.clone(), head_key.clone()], freshness)
                .await?;
            // As in `update`: a conclusion drawn without a write is checked on a current read.
            let Some(original) = read.decode::<T>(&key)? else {
                if freshness.may_be_stale() {
                    continue;
                }
                return Err(Error::NotFound {
                    kind: T::KIND,
                    id: id.to_string(),
                });
            };
            let head = read.decode::<DeviceAuditHead>(&head_key)?;
            let mut value = original.clone();
            if let (Some(wanted), Some(open)) = (clearing.kind, value.open_alert())
                && wanted != open
            {
                if freshness.may_be_stale() {
                    continue;
                }
                return Err(Error::Refused(format!(
                    "{} {id}'s open alert is {open}, not {wanted}",
                    T::KIND
                )));
            }
            let Some(clearance) = value.clear(clearing.by, now) else {
                if freshness.may_be_stale() {
                    continue;
                }
                return Err(Error::Refused(format!(
                    "{} {id} has no alert to clear",
                    T::KIND
                )));
            };
            let (seq, previous, mut audit_break) = match &head {
                None => (0, device_chain_genesis(&device), None),
                Some(head) => {
                    let link = head.link().ok_or_else(|| Error::Corrupt {
                        key: head_key.clone(),
                        reason: "the trail's head is not a chain link".into(),
                    })?;
                    (head.seal.entries, link, head.audit_break.clone())
                }
            };
            // A head this node cannot vouch for stays broken under the new seal: extending it
            // must never launder an edit made behind the domain's back.
            if audit_break.is_none() {
                audit_break = head.as_ref().and_then(|h| h.seal_break(self.audit_key()));
            }
            let entry = clearance_entry(&previous, &clearance, clearing.note);
            let link = audit_chain_link(&previous, &entry);
            let next = seq
                .checked_add(1)
                .ok_or_else(|| Error::Refused(format!("the audit trail of {device} is full")))?;
            let sealed =
                DeviceAuditHead::sealed(&device, next, &link, audit_break, self.audit_key());
            value.seal(Some(&original), self.audit_key());
            let entry_key = entry_key(&device, seq);
            // The entry's key must still be free: guards against a writer that extended the
            // trail without its head (the head's revision guards the rest).
            read.kvs.insert(entry_key.clone(), None);
            let writes = vec![
                (key.clone(), Some(encode(&value))),
                (head_key.clone(), Some(encode(&sealed))),
                (entry_key, Some(encode(&entry))),
            ];
            match self.commit(&read, None, writes).await? {
                Commit::Done(_) => return Ok((value, clearance)),
                Commit::Conflict => Self::backoff(attempt).await,
            }
        }
        Err(Error::Contention {
            attempts: limits::CAS_ATTEMPTS_MAX,
        })
    }

    /// `device`'s trail as stored (entries oldest first).
    pub async fn device_trail(&self, device: &Device) -> Result<DeviceChain> {
        let prefix = format!("{}{device}/", trails_prefix());
        let (kvs, _) = self.store().get_prefix(&prefix).await?;
        let mut trails = trails_of(&kvs)?;
        Ok(trails.remove(&device.tag()).map_or_else(
            || DeviceChain {
                device: device.clone(),
                entries: Vec::new(),
                head: None,
            },
            |trail| trail.chain(device.clone()),
        ))
    }

    /// Checks every device's trail with the audit key, in one read of the trails and the
    /// button and camera records (one revision, so a clearance committing meanwhile is seen
    /// whole or not at all): every device with a trail or with clearances on its record gets a
    /// verdict, by [`Device::tag`].
    pub async fn verify_device_trails(&self) -> Result<Vec<DeviceVerdict>> {
        let prefixes = [trails_prefix(), Button::prefix(), Camera::prefix()];
        let outcome = self
            .txn(Txn::new().and_then(prefixes.iter().map(TxnOp::get_prefix)))
            .await?;
        let mut listed = outcome
            .responses
            .into_iter()
            .map(|response| match response {
                centinela_store::OpResponse::Get(kvs) => Ok(kvs),
                other => Err(Error::unexpected(format!(
                    "unexpected response to a read: {other:?}"
                ))),
            });
        let mut next = || {
            listed
                .next()
                .unwrap_or_else(|| Err(Error::unexpected("a read came back short")))
        };
        let (trail_kvs, button_kvs, camera_kvs) = (next()?, next()?, next()?);
        let mut on_record: BTreeMap<String, Vec<Clearance>> = BTreeMap::new();
        for kv in &button_kvs {
            // A device record that does not decode is the records' problem, not the trail's:
            // its clearances cannot be compared, the trail is still checked.
            if let Ok(button) = decode::<Button>(kv) {
                let tag = Device::Button(button.id.clone()).tag();
                on_record.insert(tag, button.alerts.cleared);
            }
        }
        for kv in &camera_kvs {
            if let Ok(camera) = decode::<Camera>(kv) {
                let tag = Device::Camera(camera.id.clone()).tag();
                on_record.insert(tag, camera.alerts.cleared);
            }
        }
        let mut trails = trails_of(&trail_kvs)?;
        for (tag, cleared) in &on_record {
            if !cleared.is_empty() {
                trails.entry(tag.clone()).or_default();
            }
        }
        let key = self.audit_key();
        Ok(trails
            .into_iter()
            .map(|(tag, trail)| {
                let verdict = match (Device::from_tag(&tag), &trail.problem) {
                    (None, _) => broken(format!("{tag} names no button or camera")),
                    (Some(_), Some(problem)) => broken(problem.clone()),
                    (Some(device), None) => {
                        let cleared = on_record.get(&tag).map_or(&[][..], Vec::as_slice);
                        trail.chain(device).verify(Some(key), cleared)
                    }
                };
                DeviceVerdict {
                    device: tag,
                    verdict,
                }
            })
            .collect())
    }
}

fn broken(reason: String) -> AuditVerdict {
    AuditVerdict {
        entries: 0,
        chained: 0,
        first_break: Some(centinela_core::incident::AuditBreak {
            entry: None,
            reason,
        }),
        seal_checked: true,
        head: String::new(),
    }
}

/// One device's keys as read, before checking.
#[derive(Default)]
struct Trail {
    head: Option<DeviceAuditHead>,
    entries: BTreeMap<u32, AuditEntry>,
    /// What made the keys unreadable as a trail (a value that does not decode, a key out of
    /// the layout, a gap in the sequence).
    problem: Option<String>,
}

impl Trail {
    fn chain(self, device: Device) -> DeviceChain {
        DeviceChain {
            device,
            entries: self.entries.into_values().collect(),
            head: self.head,
        }
    }
}

/// The trails under `device-audit/`, by device tag; problems are kept for the verdict.
fn trails_of(kvs: &[Kv]) -> Result<BTreeMap<String, Trail>> {
    let prefix = trails_prefix();
    let mut trails: BTreeMap<String, Trail> = BTreeMap::new();
    for kv in kvs {
        let rest = kv.key.strip_prefix(&prefix).unwrap_or(&kv.key);
        let (tag, part) = rest.split_once('/').unwrap_or((rest, ""));
        let trail = trails.entry(tag.to_string()).or_default();
        let mut problem = |reason: String| {
            trail.problem.get_or_insert(reason);
        };
        if part == "head" {
            match serde_json::from_slice(&kv.value) {
                Ok(head) => trail.head = Some(head),
                Err(e) => problem(format!("the head does not decode: {e}")),
            }
        } else if let Some(seq) = part.strip_prefix("entries/") {
            match (seq.parse::<u32>(), serde_json::from_slice(&kv.value)) {
                (Ok(seq), Ok(entry)) => {
                    trail.entries.insert(seq, entry);
                }
                (Err(_), _) => problem(format!("{} is not an entry's key", kv.key)),
                (_, Err(e)) => problem(format!("entry {seq} does not decode: {e}")),
            }
        } else {
            problem(format!("{} is not a key of a device's trail", kv.key));
        }
    }
    for trail in trails.values_mut() {
        let gap = (0u32..)
            .zip(trail.entries.keys())
            .find(|(expected, seq)| expected != *seq);
        if let Some((expected, _)) = gap
            && trail.problem.is_none()
        {
            trail.problem = Some(format!("entry {expected} is missing (deleted)"));
        }
    }
    Ok(trails)
}

#[cfg(test)]
mod tests {
    use centinela_core::alert::AlertKind;
    use centinela_core::button::ButtonHealth;

    use super::*;
    use crate::testing::{NOW, button_id, lima};

    fn sara() -> OperatorId {
        OperatorId::new("sara").unwrap()
    }

    fn by<'a>(who: &'a OperatorId, note: Option<&'a str>) -> Clearing<'a> {
        Clearing {
            by: who,
            kind: None,
            note,
        }
    }

    async fn tamper(records: &Records, id: &str) {
        records
            .update_button(&button_id(id), |b| {
                b.tamper(NOW);
                Ok(())
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_clearance_and_its_entry_are_written_together() {
        let (_embedded, records) = lima().await;
        let sara = sara();
        tamper(&records, "B02").await;
        let wrong_kind = records
            .clear_button_alert(
                &button_id("B02"),
                Clearing {
                    kind: Some(AlertKind::ButtonOffline),
                    ..by(&sara, None)
                },
                NOW,
            )
            .await;
        assert!(
            matches!(&wrong_kind, Err(Error::Refused(m)) if m.contains("is tamper, not button_offline")),
            "{wrong_kind:?}"
        );
        let (button, clearance) = records
            .clear_button_alert(&button_id("B02"), by(&sara, Some("door resealed")), NOW)
            .await
            .unwrap();
        assert_eq!(clearance.kind, AlertKind::Tamper);
        assert_ne!(button.health, ButtonHealth::Tampered);
        let device = Device::Button(button_id("B02"));
        let trail = records.device_trail(&device).await.unwrap();
        assert_eq!(trail.entries.len(), 1);
        let entry = &trail.entries[0];
        assert_eq!(entry.actor.tag(), "operator:sara");
        assert_eq!(entry.at, NOW);
        assert!(entry.detail.starts_with("tamper raised at"), "{entry:?}");
        assert!(entry.detail.ends_with("note: door resealed"), "{entry:?}");

        // Nothing to clear: refused, and nothing written.
        let refused = records
            .clear_button_alert(&button_id("B02"), by(&sara, None), NOW)
            .await;
        assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
        let unknown = records
            .clear_button_alert(&button_id("B99"), by(&sara, None), NOW)
            .await;
        assert!(
            matches!(unknown, Err(Error::NotFound { .. })),
            "{unknown:?}"
        );
        assert_eq!(
            records.device_trail(&device).await.unwrap().entries.len(),
            1
        );

        let verdicts = records.verify_device_trails().await.unwrap();
        assert_eq!(verdicts.len(), 1, "{verdicts:?}");
        assert_eq!(verdicts[0].device, "button:B02");
        assert!(verdicts[0].verdict.is_intact(), "{verdicts:?}");
    }

    #[tokio::test]
    async fn trails_chain_across_clearances_and_cameras_have_their_own() {
        let (_embedded, records) = lima().await;
        let sara = sara();
        for _ in 0..3 {
            tamper(&records, "B03").await;
            records
                .clear_button_alert(&button_id("B03"), by(&sara, None), NOW)
                .await
                .unwrap();
        }
        let camera = records
            .snapshot::<Camera>()
            .await
            .unwrap()
            .0
            .into_iter()
            .find(|c| c.alerts.open.is_some())
            .expect("a camera never heard from has an alert");
        let (cleared, _) = records
            .clear_camera_alert(&camera.id, by(&sara, None), NOW)
            .await
            .unwrap();
        assert_eq!(cleared.alerts.open, None);
        let verdicts = records.verify_device_trails().await.unwrap();
        let tags: Vec<&str> = verdicts.iter().map(|v| v.device.as_str()).collect();
        assert_eq!(tags, ["button:B03", &format!("camera:{}", camera.id)[..]]);
        assert!(
            verdicts.iter().all(|v| v.verdict.is_intact()),
            "{verdicts:?}"
        );
        assert_eq!(verdicts[0].verdict.entries, 3);
    }

    #[tokio::test]
    async fn edits_deletions_and_rehashes_in_the_store_are_named_by_device() {
        let (_embedded, records) = lima().await;
        let sara = sara();
        for id in ["B01", "B02", "B03", "B04"] {
            for _ in 0..2 {
                tamper(&records, id).await;
                records
                    .clear_button_alert(&button_id(id), by(&sara, None), NOW)
                    .await
                    .unwrap();
            }
        }
        let store = records.store();
        let device = |id: &str| Device::Button(button_id(id));
        // B01: an entry edited in place.
        let key = entry_key(&device("B01"), 0);
        let mut entry: AuditEntry =
            serde_json::from_slice(&store.get(&key).await.unwrap().unwrap().value).unwrap();
        entry.detail = "button_offline raised at 0".into();
        store.put(&key, encode(&entry), None).await.unwrap();
        // B02: the newest entry deleted.
        store.delete(&entry_key(&device("B02"), 1)).await.unwrap();
        // B03: an entry edited and the chain and head re-hashed without the key.
        let mut trail = records.device_trail(&device("B03")).await.unwrap();
        trail.entries[0].actor =
            centinela_core::incident::Actor::Operator(OperatorId::new("mallory").unwrap());
        let mut link = device_chain_genesis(&device("B03"));
        for (seq, entry) in trail.entries.iter_mut().enumerate() {
            link = audit_chain_link(&link, entry);
            entry.hash = centinela_core::incident::chain_hex(&link);
            store
                .put(
                    &entry_key(&device("B03"), seq as u32),
                    encode(&*entry),
                    None,
                )
                .await
                .unwrap();
        }
        let mut head = trail.head.unwrap();
        head.seal.head = centinela_core::incident::chain_hex(&link);
        store
            .put(&head_key(&device("B03")), encode(&head), None)
            .await
            .unwrap();
        // B04: the whole trail deleted.
        store
            .delete_prefix(&format!("{}{}/", trails_prefix(), device("B04")))
            .await
            .unwrap();

        let verdicts = records.verify_device_trails().await.unwrap();
        let reason = |tag: &str| {
            let found = verdicts
                .iter()
                .find(|v| v.device == tag)
                .unwrap_or_else(|| panic!("no verdict for {tag}: {verdicts:?}"));
            found.verdict.first_break.clone().expect("a break").reason
        };
        assert!(reason("button:B01").contains("does not match"));
        assert!(reason("button:B02").contains("covers 2"));
        assert!(reason("button:B03").contains("seal does not match"));
        assert!(reason("button:B04").contains("lacks"));

        // A clearance on the re-hashed trail keeps the break under its new seal.
        tamper(&records, "B03").await;
        records
            .clear_button_alert(&button_id("B03"), by(&sara, None), NOW)
            .await
            .unwrap();
        let verdicts = records.verify_device_trails().await.unwrap();
        let b03 = verdicts.iter().find(|v| v.device == "button:B03").unwrap();
        assert!(!b03.verdict.is_intact(), "{b03:?}");
    }
}
