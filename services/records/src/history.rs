//! What the leader's archiver (`centinela-archive`) reads and removes: the closed incidents
//! still in the store, what goes to the archive with each (its press ids, stills, camera
//! bookmarks), and the removal of an archived incident once its retention window has passed.

use centinela_core::camera::{Bookmark, Camera};
use centinela_core::incident::Incident;
use centinela_store::{Compare, Fence, Revision, Txn, TxnOp};

use crate::Records;
use crate::error::Result;
use crate::record::{ROOT, Record, decode};

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

    /// Removes an archived incident and its stills, if its record is still at `revision`
    /// (and, with a `fence`, while that leadership term holds). `Ok(false)` when it changed
    /// or the term is over: nothing was removed.
    pub async fn remove_archived(
        &self,
        incident: &Incident,
        revision: Revision,
        fence: Option<&Fence>,
    ) -> Result<bool> {
        let key = Incident::key_of(incident.id.as_str());
        let mut compares = vec![Compare::mod_revision(key.clone()).equal(revision)];
        if let Some(fence) = fence {
            compares.push(fence.compare());
        }
        let txn = Txn::new().when(compares).and_then([
            TxnOp::delete(key),
            TxnOp::delete_prefix(stills_prefix(incident.id.as_str())),
        ]);
        Ok(self.store.txn(txn).await?.succeeded)
    }
}
