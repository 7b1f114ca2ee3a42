//! An entity as one JSON record under its key, and the layout of the other keys.

use serde::Serialize;
use serde::de::DeserializeOwned;

use centinela_core::brigade::Brigade;
use centinela_core::button::Button;
use centinela_core::camera::Camera;
use centinela_core::ids::{ButtonId, PressId};
use centinela_core::incident::Incident;
use centinela_core::seal::AuditKey;
use centinela_store::Kv;

use crate::error::{Error, Result};

/// The root of every key Centinela's records live under (the cluster's membership and
/// election keys live beside them).
pub const ROOT: &str = "/centinela/";

/// An entity stored as one JSON value under `{ROOT}{PREFIX}{id}`.
pub trait Record: Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static {
    const KIND: &'static str;
    /// Below [`ROOT`], with a trailing slash.
    const PREFIX: &'static str;
    fn record_id(&self) -> &str;

    /// Called by every write of the record, last, with the record as the writer read it
    /// (`None` for a new one): incidents refresh their audit seal
    /// ([`Incident::seal`](centinela_core::incident::Incident::seal)); other records have none.
    fn seal(&mut self, _stored: Option<&Self>, _key: &AuditKey) {}

    fn key_of(id: &str) -> String {
        format!("{ROOT}{}{id}", Self::PREFIX)
    }
    fn prefix() -> String {
        format!("{ROOT}{}", Self::PREFIX)
    }
}

/// Implements [`Record`] for an entity whose `id` field is one of the core id newtypes.
macro_rules! record {
    ($entity:ty, $kind:literal, $prefix:literal $(, $sealed:item)?) => {
        impl Record for $entity {
            const KIND: &'static str = $kind;
            const PREFIX: &'static str = $prefix;
            fn record_id(&self) -> &str {
                self.id.as_str()
            }
            $($sealed)?
        }
    };
}

record!(Button, "button", "buttons/");
record!(Camera, "camera", "cameras/");
record!(Brigade, "brigade", "brigades/");
record!(
    Incident,
    "incident",
    "incidents/",
    fn seal(&mut self, stored: Option<&Self>, key: &AuditKey) {
        Incident::seal(self, stored, key);
    }
);

/// `presses/{button}/{press_id}`: the incident a press was recorded in.
pub(crate) fn press_key(button: &ButtonId, press: &PressId) -> String {
    format!("{ROOT}presses/{button}/{press}")
}

/// `open/{button}`: the id of the button's open incident.
pub(crate) fn open_key(button: &str) -> String {
    format!("{ROOT}open/{button}")
}

/// `open-incidents/{incident}`: the index of open incidents (value: the incident id). Written in
/// the transaction that opens an incident, removed in the one that closes it, so listing the
/// open incidents reads this index and never walks `incidents/` (which also holds the closed
/// ones kept for the retention window).
pub(crate) fn open_index_key(incident: &str) -> String {
    format!("{}{incident}", open_index_prefix())
}

pub(crate) fn open_index_prefix() -> String {
    format!("{ROOT}open-incidents/")
}

/// `layout/open-incidents`: present once the index of open incidents is complete (written by
/// [`Records::build_open_index`](crate::Records::build_open_index) on a keyspace from before
/// the index, and never removed). Until then, open incidents are listed by walking `incidents/`.
pub(crate) fn open_index_marker_key() -> String {
    format!("{ROOT}layout/open-incidents")
}

pub(crate) fn decode<T: DeserializeOwned>(kv: &Kv) -> Result<T> {
    serde_json::from_slice(&kv.value).map_err(|e| Error::Corrupt {
        key: kv.key.clone(),
        reason: e.to_string(),
    })
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("domain records always serialize")
}

/// The incident id a pointer key (`presses/...`, `open/...`) holds.
pub(crate) fn incident_id_in(kv: &Kv) -> Result<centinela_core::ids::IncidentId> {
    let corrupt = |reason: String| Error::Corrupt {
        key: kv.key.clone(),
        reason,
    };
    let text = std::str::from_utf8(&kv.value).map_err(|e| corrupt(e.to_string()))?;
    centinela_core::ids::IncidentId::new(text).map_err(|e| corrupt(e.to_string()))
}
