//! Plain reads: a record, every record of a kind, their ids, the open incidents.

use centinela_core::brigade::Brigade;
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId};
use centinela_core::incident::Incident;
use centinela_store::Revision;

use crate::Records;
use crate::error::Result;
use crate::record::{Record, decode, incident_id_in, open_key};

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

    pub async fn open_incidents_snapshot(&self) -> Result<(Vec<Incident>, Revision)> {
        let (mut incidents, revision) = self.snapshot::<Incident>().await?;
        incidents.retain(Incident::is_open);
        Ok((incidents, revision))
    }

    /// Incidents oldest first; closed ones too when asked.
    pub async fn incidents(&self, include_closed: bool) -> Result<Vec<Incident>> {
        let (mut incidents, _) = self.snapshot::<Incident>().await?;
        if !include_closed {
            incidents.retain(Incident::is_open);
        }
        incidents.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(incidents)
    }
}
