//! What the leader's archiver (`centinela-archive`) reads and removes: the closed incidents
//! still in the store, what goes to the archive with each (its press ids, stills, camera
//! bookmarks), and the removal of an archived incident once its retention window has passed,
//! with everything else the store keeps of it.

use centinela_core::camera::{Bookmark, Camera};
use centinela_core::handoff::Handoff;
use centinela_core::incident::Incident;
use centinela_store::{Compare, Fence, Revision, Txn, TxnOp};

use crate::Records;
use crate::error::Result;
use crate::handoffs::handoffs_prefix;
use crate::record::{ROOT, Record, decode, open_index_key};

/// What the archive keeps with a closed incident besides its record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    /// Press ids whose `presses/` key still names the incident (they expire by lease).
    pub presses: Vec<String>,
    /// The stills saved for it: `(sha256 hex, jpeg)`.
    pub stills: Vec<(String, Vec<u8>)>,
    /// Its camera's bookmarks of it (the camera keeps its most recent ones only).
    pub bookmarks: Vec<Bookmark>,
}

fn stills_prefix(incident: &str) -> String {
    format!("{ROOT}stills/{incident}/")
}

impl Records {
    /// The closed incidents the store still holds, each with the revision of its last change.
    /// Bounded by the retention window: closed incidents older than it are removed once
    /// archived.
    pub async fn closed_incidents(&self) -> Result<Vec<(Incident, Revision)>> {
        let (kvs, _) = self.store.get_prefix(&Incident::prefix()).await?;
        let mut closed = Vec::new();
        for kv in &kvs {
            let incident: Incident = decode(kv)?;
            if !incident.is_open() {
                closed.push((incident, kv.mod_revision));
            }
        }
        closed.sort_by(|(a, _), (b, _)| a.closed_at.cmp(&b.closed_at).then(a.id.cmp(&b.id)));
        Ok(closed)
    }

    /// The press ids, stills and bookmarks of `incident` the store holds.
    pub async fn extras(&self, incident: &Incident) -> Result<Extras> {
        let id = incident.id.as_str();
        let presses_prefix = format!("{ROOT}presses/{}/", incident.button);
        let (presses, _) = self.store.get_prefix(&presses_prefix).await?;
        let mut press_ids: Vec<String> = presses
            .iter()
            .filter(|kv| kv.value == id.as_bytes())
            .filter_map(|kv| kv.key.strip_prefix(&presses_prefix).map(str::to_owned))
            .collect();
        press_ids.sort();
        let prefix = stills_prefix(id);
        let (stills, _) = self.store.get_prefix(&prefix).await?;
        let stills = stills
            .into_iter()
            .filter_map(|kv| {
                let sha = kv.key.strip_prefix(&prefix)?.to_owned();
                Some((sha, kv.value))
            })
            .collect();
        let bookmarks = match self.get::<Camera>(incident.camera.as_str()).await? {
            Some(camera) => camera
                .bookmarks
                .into_iter()
                .filter(|b| b.incident == incident.id)
                .collect(),
            None => Vec::new(),
        };
        Ok(Extras {
            presses: press_ids,
            stills,
            bookmarks,
        })
    }

    /// Removes an archived incident with everything else the store keeps of it (its stills,
    /// its hand-offs, a leftover index entry), if its record is still at `revision` (and, with
    /// a `fence`, while that leadership term holds). `Ok(false)` when it changed or the term is
    /// over, and while one of its hand-offs still has a message to deliver (the sender needs
    /// the incident for it): nothing was removed. Press ids leave by their lease.
    pub async fn remove_archived(
        &self,
        incident: &Incident,
        revision: Revision,
        fence: Option<&Fence>,
    ) -> Result<bool> {
        let id = incident.id.as_str();
        // A hand-off changes with its incident (`handoffs`), so the compare on the incident's
        // revision also guards that these are still settled at the removal.
        let handoffs = format!("{}{id}/", handoffs_prefix());
        let (kvs, _) = self.store.get_prefix(&handoffs).await?;
        for kv in &kvs {
            let handoff: Handoff = decode(kv)?;
            if !handoff.is_final() || handoff.pending().is_some() {
                return Ok(false);
            }
        }
        let key = Incident::key_of(id);
        let mut compares = vec![Compare::mod_revision(key.clone()).equal(revision)];
        if let Some(fence) = fence {
            compares.push(fence.compare());
        }
        let txn = Txn::new().when(compares).and_then([
            TxnOp::delete(key),
            TxnOp::delete_prefix(stills_prefix(id)),
            TxnOp::delete_prefix(handoffs),
            // Normally gone with the close; a leftover of an interrupted index build goes too.
            TxnOp::delete(open_index_key(id)),
        ]);
        Ok(self.store.txn(txn).await?.succeeded)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use centinela_core::handoff::{DeliveryState, Reported};
    use centinela_core::ids::{AgencyId, PressId};
    use centinela_core::incident::{Actor, Resolution};
    use centinela_core::time::Timestamp;

    use super::*;
    use crate::limits;
    use crate::testing::{NOW, button_id, handoff_for, lima};

    #[tokio::test(start_paused = true)]
    async fn an_archived_incident_leaves_nothing_in_the_store() {
        let (_embedded, records) = lima().await;
        let (before, _) = records.store().get_prefix_keys(ROOT).await.unwrap();
        let button = records.button(&button_id("B01")).await.unwrap().unwrap();
        let press = PressId::new("p-1").unwrap();
        let opened = records
            .press(&button, &press, NOW, Duration::from_secs(60), None)
            .await
            .unwrap()
            .incident;
        let id = opened.id.clone();
        let pnp = AgencyId::new("pnp").unwrap();
        records
            .create_handoff(&id, &pnp, |incident| handoff_for(incident, &pnp))
            .await
            .unwrap();
        records
            .store()
            .put(&format!("{}ab12", stills_prefix(id.as_str())), "jpeg", None)
            .await
            .unwrap();
        let later = Timestamp::from_millis(NOW.as_millis() + 1_000);
        records
            .close_incident(&id, Resolution::Handled, Actor::System, later)
            .await
            .unwrap();

        // Its hand-off has a message to deliver: the incident stays (the sender needs it).
        let (closed, revision) = records.incident_at(&id).await.unwrap().unwrap();
        assert!(
            !records
                .remove_archived(&closed, revision, None)
                .await
                .unwrap()
        );
        // Delivered, final: now it goes, with everything else of it.
        records
            .update_handoff(&id, &pnp, |handoff, incident| {
                handoff.reported = Reported::of(incident);
                for message in &mut handoff.messages {
                    message.state = DeliveryState::Delivered;
                }
                incident.handoff_acknowledged(&pnp, "delivered", later);
                Ok(true)
            })
            .await
            .unwrap();
        let (closed, revision) = records.incident_at(&id).await.unwrap().unwrap();
        assert!(
            records
                .remove_archived(&closed, revision, None)
                .await
                .unwrap()
        );

        // The press id expires with its lease; then nothing names the incident.
        tokio::time::sleep(limits::PRESS_KEY_TTL + limits::PRESS_LEASE_REUSE * 2).await;
        let (after, _) = records.store().get_prefix(ROOT).await.unwrap();
        let left: Vec<&str> = after
            .iter()
            .filter(|kv| kv.key.contains(id.as_str()) || kv.value == id.as_str().as_bytes())
            .map(|kv| kv.key.as_str())
            .collect();
        assert!(left.is_empty(), "left in the store: {left:?}");
        // And only the keys the seed wrote remain (the button's open pointer went at close).
        let keys = |kvs: &[centinela_store::Kv]| -> Vec<String> {
            kvs.iter().map(|kv| kv.key.clone()).collect()
        };
        let extra: Vec<String> = keys(&after)
            .into_iter()
            .filter(|k| !keys(&before).contains(k))
            .filter(|k| !k.starts_with(&format!("{ROOT}layout/")))
            .collect();
        assert!(extra.is_empty(), "keys the incident added: {extra:?}");
    }
}
