//! Stills operators attach to an incident: the JPEG is kept under
//! `{ROOT}stills/{incident}/{sha256}`, content-addressed (saving the same picture twice writes
//! the same key), and the incident's audit chain records the hash, so a still that is changed
//! or swapped no longer matches what the audit says was saved.

use centinela_core::ids::IncidentId;

use crate::Records;
use crate::error::{Error, Result};
use crate::record::ROOT;

/// Largest still kept: a 640×360 to 1920×1080 JPEG is 25 to 400 KB; etcd takes requests
/// up to 1.5 MiB.
pub const STILL_BYTES_MAX: usize = 1024 * 1024;

fn still_key(incident: &IncidentId, sha256_hex: &str) -> String {
    format!("{ROOT}stills/{incident}/{sha256_hex}")
}

/// Whether `hex` is a SHA-256 in lowercase hex.
pub fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Records {
    /// Keeps `jpeg` for `incident` under its SHA-256 (the caller computed it).
    pub async fn put_still(
        &self,
        incident: &IncidentId,
        sha256_hex: &str,
        jpeg: &[u8],
    ) -> Result<()> {
        if !is_sha256_hex(sha256_hex) {
            return Err(Error::Invalid(format!(
                "{sha256_hex:?} is not a SHA-256 in hex"
            )));
        }
        if jpeg.len() > STILL_BYTES_MAX {
            return Err(Error::Invalid(format!(
                "a still of {} bytes is over the {STILL_BYTES_MAX}-byte limit",
                jpeg.len()
            )));
        }
        self.store
            .put(&still_key(incident, sha256_hex), jpeg.to_vec(), None)
            .await?;
        Ok(())
    }

    /// The still `sha256_hex` of `incident`, if saved.
    pub async fn still(&self, incident: &IncidentId, sha256_hex: &str) -> Result<Option<Vec<u8>>> {
        if !is_sha256_hex(sha256_hex) {
            return Ok(None);
        }
        Ok(self
            .store
            .get(&still_key(incident, sha256_hex))
            .await?
            .map(|kv| kv.value))
    }
}
