//! Plain reads: a record, every record of a kind, their ids, the open incidents (through
//! their index), and the one-time build of that index on a keyspace from before it.

use centinela_core::brigade::Brigade;
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId};
use centinela_core::incident::Incident;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use centinela_store::{Fence, Kv, Revision};
use futures::{StreamExt, TryStreamExt};

use crate::cas::{Commit, Freshness, Read};
use crate::error::{Error, Result};
use crate::record::{
    Record, decode, incident_id_in, open_index_key, open_index_marker_key, open_index_prefix,
    open_key,
};
use crate::{Records, limits};

impl Records {
    /// The store's current revision.
    pub async fn revision(&self) -> Result<Revision> {
        Ok(self.store.status().await?.revision)
    }

    pub async fn get<T: Record>(&self, id: &str) -> Result<Option<T>> {
        match self.store.get(&T::key_of(id)).await? {
            Some(kv) => decode(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// Several records of one kind in one read-only transaction (current, as [`Records::get`]
    /// is): what a node starting many entity actors at once reads, so that a wave of starts
    /// (taking over a member's share, devices reconnecting) costs the store a request per
    /// batch, not one per entity. At most [`limits::READ_BATCH_MAX`] ids; the records come in
    /// the order of `ids`, `None` where there is none.
    pub async fn get_many<T: Record>(&self, ids: &[&str]) -> Result<Vec<Option<T>>> {
        if ids.len() > limits::READ_BATCH_MAX {
            return Err(Error::Invalid(format!(
                "{} {} records in one read; at most {}",
                ids.len(),
                T::KIND,
                limits::READ_BATCH_MAX
            )));
        }
        let keys: Vec<String> = ids.iter().map(|id| T::key_of(id)).collect();
        let read = self.read(&keys, Freshness::Current).await?;
        keys.iter().map(|key| read.decode::<T>(key)).collect()
    }

    pub async fn button(&self, id: &ButtonId) -> Result<Option<Button>> {
        self.get(id.as_str()).await
    }

    pub async fn camera(&self, id: &CameraId) -> Result<Option<Camera>> {
        self.get(id.as_str()).await
    }

    pub async fn brigade(&self, id: &BrigadeId) -> Result<Option<Brigade>> {
        self.get(id.as_str()).await
    }

    pub async fn incident(&self, id: &IncidentId) -> Result<Option<Incident>> {
        self.get(id.as_str()).await
    }

    /// The button's open incident, if it has one (its `open/{button}` pointer).
    pub async fn open_incident_of(&self, button: &ButtonId) -> Result<Option<IncidentId>> {
        match self.store.get(&open_key(button.as_str())).await? {
            Some(kv) => incident_id_in(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// A record with the revision of its last change.
    pub async fn get_at<T: Record>(&self, id: &str) -> Result<Option<(T, Revision)>> {
        match self.store.get(&T::key_of(id)).await? {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    pub async fn incident_at(&self, id: &IncidentId) -> Result<Option<(Incident, Revision)>> {
        self.get_at(id.as_str()).await
    }

    pub async fn brigade_at(&self, id: &BrigadeId) -> Result<Option<(Brigade, Revision)>> {
        self.get_at(id.as_str()).await
    }

    /// Every record of a kind, and the revision they were read at.
    pub async fn snapshot<T: Record>(&self) -> Result<(Vec<T>, Revision)> {
        let (kvs, revision) = self.store.get_prefix(&T::prefix()).await?;
        let values = kvs.iter().map(decode).collect::<Result<Vec<T>>>()?;
        Ok((values, revision))
    }

    /// The ids of every record of kind `T`, in key order, without reading the records (a
    /// keys-only read: what the ownership reconciler needs to place entities).
    pub async fn ids<T: Record>(&self) -> Result<Vec<String>> {
        let prefix = T::prefix();
        let (kvs, _) = self.store.get_prefix_keys(&prefix).await?;
        Ok(kvs
            .into_iter()
            .filter_map(|kv| kv.key.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }

    /// The open incidents, read through their index at one revision (returned: watch from
    /// `revision + 1` to follow them without a gap). Costs one read of the index plus one read
    /// per open incident, however many closed incidents the store still holds; only on a
    /// keyspace whose index is not built yet ([`Records::build_open_index`]) does it walk
    /// `incidents/`.
    pub async fn open_incidents_snapshot(&self) -> Result<(Vec<Incident>, Revision)> {
        if !self.open_index_built().await? {
            let (mut incidents, revision) = self.snapshot::<Incident>().await?;
            incidents.retain(Incident::is_open);
            return Ok((incidents, revision));
        }
        let mut attempt = 1;
        loop {
            match self.read_open_index().await {
                // The store compacted the revision between the two reads: read again.
                Err(e) if e.is_compacted() && attempt < limits::OPEN_INDEX_SNAPSHOT_ATTEMPTS => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The index at one revision, then each incident it names as of that revision.
    async fn read_open_index(&self) -> Result<(Vec<Incident>, Revision)> {
        let prefix = open_index_prefix();
        let (entries, revision) = self.store.get_prefix_keys(&prefix).await?;
        let keys: Vec<String> = entries
            .iter()
            .filter_map(|kv| kv.key.strip_prefix(&prefix))
            .map(Incident::key_of)
            .collect();
        // Owned futures (a clone of the client each): borrowed ones make the caller's future
        // lose `Send` for lifetime reasons the compiler cannot see through.
        let reads = keys.into_iter().map(|key| {
            let store = self.store.clone();
            async move { store.get_at(&key, revision).await }
        });
        let found: Vec<Option<Kv>> = futures::stream::iter(reads)
            .buffered(limits::OPEN_INDEX_READS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut incidents = Vec::with_capacity(found.len());
        for kv in found.iter().flatten() {
            let incident: Incident = decode(kv)?;
            // Every entry names an open incident, except one left by an interrupted build
            // (removed with its incident): skipped.
            if incident.is_open() {
                incidents.push(incident);
            }
        }
        Ok((incidents, revision))
    }

    /// Whether the index of open incidents is complete (its marker written).
    async fn open_index_built(&self) -> Result<bool> {
        if self.open_index_ready.load(Ordering::Acquire) {
            return Ok(true);
        }
        let built = self.store.get(&open_index_marker_key()).await?.is_some();
        if built {
            self.open_index_ready.store(true, Ordering::Release);
        }
        Ok(built)
    }

    /// Builds the index of open incidents on a keyspace written before it existed: an entry
    /// for each open incident that lacks one, then the marker that makes listings read the
    /// index. The leader calls it as it takes office, with its `fence`; once the marker exists
    /// it is one read (or none). Each batch of entries is guarded on its incidents' revisions,
    /// so an incident closed meanwhile is never indexed; a conflict starts the pass over.
    /// Returns how many entries it wrote.
    pub async fn build_open_index(&self, fence: Option<&Fence>) -> Result<usize> {
        if self.open_index_built().await? {
            return Ok(0);
        }
        let mut written = 0;
        'pass: for attempt in 0..limits::CAS_ATTEMPTS_MAX {
            let (kvs, _) = self.store.get_prefix(&Incident::prefix()).await?;
            let prefix = open_index_prefix();
            let (entries, _) = self.store.get_prefix_keys(&prefix).await?;
            let indexed: BTreeSet<&str> = entries
                .iter()
                .filter_map(|kv| kv.key.strip_prefix(&prefix))
                .collect();
            let mut missing = Vec::new();
            for kv in kvs {
                let incident: Incident = decode(&kv)?;
                if incident.is_open() && !indexed.contains(incident.id.as_str()) {
                    missing.push((kv, incident.id));
                }
            }
            for batch in missing.chunks(limits::OPEN_INDEX_BUILD_BATCH) {
                let read = Read {
                    kvs: batch
                        .iter()
                        .map(|(kv, _)| (kv.key.clone(), Some(kv.clone())))
                        .collect(),
                };
                let writes = batch
                    .iter()
                    .map(|(_, id)| {
                        let entry = open_index_key(id.as_str());
                        (entry, Some(id.as_str().as_bytes().to_vec()))
                    })
                    .collect();
                match self.commit(&read, fence, writes).await? {
                    Commit::Done(_) => written += batch.len(),
                    Commit::Conflict => {
                        Self::backoff(attempt).await;
                        continue 'pass;
                    }
                }
            }
            let marker = open_index_marker_key();
            // Done, or a conflict: another builder wrote the marker after its own full pass.
            // Either way the index is complete.
            self.commit(
                &Read::absent([&marker]),
                fence,
                vec![(marker.clone(), Some(b"1".to_vec()))],
            )
            .await?;
            self.open_index_ready.store(true, Ordering::Release);
            return Ok(written);
        }
        Err(Error::Contention {
            attempts: limits::CAS_ATTEMPTS_MAX,
        })
    }

    /// Incidents oldest first; closed ones too when asked.
    pub async fn incidents(&self, include_closed: bool) -> Result<Vec<Incident>> {
        let (mut incidents, _) = match include_closed {
            // The closed ones the store still holds: those within the retention window.
            true => self.snapshot::<Incident>().await?,
            false => self.open_incidents_snapshot().await?,
        };
        incidents.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(incidents)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use centinela_core::ids::PressId;
    use centinela_core::incident::{Actor, Resolution};
    use centinela_core::time::Timestamp;

    use super::*;
    use crate::record::encode;
    use crate::testing::{NOW, button_id, lima};

    const DEBOUNCE: Duration = Duration::from_secs(60);

    /// Opens an incident at each of `buttons`.
    async fn open_at(records: &Records, buttons: &[&str]) -> Vec<Incident> {
        let mut opened = Vec::new();
        for (n, id) in buttons.iter().enumerate() {
            let button = records.button(&button_id(id)).await.unwrap().unwrap();
            let press = PressId::new(format!("p-{n}")).unwrap();
            let outcome = records
                .press(&button, &press, NOW, DEBOUNCE, None)
                .await
                .unwrap();
            opened.push(outcome.incident);
        }
        opened
    }

    fn ids(incidents: &[Incident]) -> Vec<String> {
        incidents.iter().map(|i| i.id.to_string()).collect()
    }

    #[tokio::test]
    async fn open_incidents_are_listed_from_their_index_not_from_incidents() {
        let (_embedded, records) = lima().await;
        records.build_open_index(None).await.unwrap();
        let opened = open_at(&records, &["B01", "B02", "B03"]).await;
        let later = Timestamp::from_millis(NOW.as_millis() + 1_000);
        records
            .close_incident(&opened[1].id, Resolution::Prank, Actor::System, later)
            .await
            .unwrap();
        // A record under `incidents/` that does not even decode: a walk of `incidents/` fails
        // on it, a read of the index never meets it (it is not open, so not indexed).
        records
            .store()
            .put(&Incident::key_of("closed-long-ago"), "not json", None)
            .await
            .unwrap();

        let (open, revision) = records.open_incidents_snapshot().await.unwrap();
        assert_eq!(ids(&open), ids(&[opened[0].clone(), opened[2].clone()]));
        assert!(revision > 0);
        let listed = records.incidents(false).await.unwrap();
        assert_eq!(ids(&listed), ids(&open));
        let (entries, _) = records
            .store()
            .get_prefix_keys(&open_index_prefix())
            .await
            .unwrap();
        assert_eq!(entries.len(), 2, "the close removed its entry: {entries:?}");
        assert!(
            records.incidents(true).await.is_err(),
            "the walk of incidents/ does meet the bad record"
        );
    }

    #[tokio::test]
    async fn an_index_listing_is_one_snapshot() {
        let (_embedded, records) = lima().await;
        records.build_open_index(None).await.unwrap();
        let opened = open_at(&records, &["B01", "B02"]).await;
        let (before, revision) = records.open_incidents_snapshot().await.unwrap();
        // Changes after the listing's revision are what a watch from `revision + 1` reports.
        records
            .update_incident(&opened[0].id, |i| {
                i.acknowledge(centinela_core::ids::OperatorId::new("ana").unwrap(), NOW)?;
                Ok(())
            })
            .await
            .unwrap();
        let (again, _) = records.open_incidents_snapshot().await.unwrap();
        assert_eq!(ids(&before), ids(&again));
        let key = Incident::key_of(opened[0].id.as_str());
        let then = records
            .store()
            .get_at(&key, revision)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(decode::<Incident>(&then).unwrap(), before[0]);
        assert_ne!(again[0], before[0], "the later read sees the change");
    }

    #[tokio::test]
    async fn a_keyspace_from_before_the_index_is_indexed_once() {
        let (_embedded, records) = lima().await;
        // Incidents as the previous version wrote them: records only, no index, no marker.
        let mut written = Vec::new();
        for (n, button) in ["B01", "B02", "B03"].iter().enumerate() {
            let button = records.button(&button_id(button)).await.unwrap().unwrap();
            let id = IncidentId::new(format!("old-{n}")).unwrap();
            let mut incident = Incident::open(id, button.id, button.camera, button.position, NOW);
            if n == 1 {
                incident
                    .close(Resolution::Handled, Actor::System, NOW)
                    .unwrap();
            }
            incident.seal(None, records.audit_key());
            records
                .store()
                .put(
                    &Incident::key_of(incident.id.as_str()),
                    encode(&incident),
                    None,
                )
                .await
                .unwrap();
            written.push(incident);
        }
        let expected = ids(&[written[0].clone(), written[2].clone()]);
        // Before the build, listings walk `incidents/` and still find them.
        let (open, _) = records.open_incidents_snapshot().await.unwrap();
        assert_eq!(ids(&open), expected);

        assert_eq!(records.build_open_index(None).await.unwrap(), 2);
        let marker = records.store().get(&open_index_marker_key()).await.unwrap();
        assert!(marker.is_some(), "the marker says the index is complete");
        let (open, _) = records.open_incidents_snapshot().await.unwrap();
        assert_eq!(ids(&open), expected);
        // Another node (fresh `Records`, nothing cached) reads the index too, and builds nothing.
        let other = Records::new(records.store().clone());
        assert_eq!(other.build_open_index(None).await.unwrap(), 0);
        let (open, _) = other.open_incidents_snapshot().await.unwrap();
        assert_eq!(ids(&open), expected);
        // Closing an indexed old incident removes its entry like any other.
        other
            .close_incident(&written[0].id, Resolution::Prank, Actor::System, NOW)
            .await
            .unwrap();
        let (open, _) = other.open_incidents_snapshot().await.unwrap();
        assert_eq!(ids(&open), vec![written[2].id.to_string()]);
    }
}
