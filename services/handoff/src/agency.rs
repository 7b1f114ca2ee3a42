//! The agencies file: which agencies take hand-offs, at which URL, with which key.
//!
//! `CENTINELA_AGENCIES_FILE` names it (docs/product.md §5.7, docs/handoff.md):
//!
//! ```toml
//! # Optional: the CAP `sender` and `senderName` of every message.
//! sender = "centinela@serenazgo.example"
//! sender_name = "Serenazgo de Lima - Centinela"
//!
//! [[agencies]]
//! id = "pnp"                                   # what `centinela handoff --to` names
//! name = "Policía Nacional del Perú"
//! url = "http://cad.pnp.example/cap"           # where the CAP messages are POSTed (http only)
//! hmac_key = "a long shared secret"            # signs both ways
//! kinds = ["robbery", "assault"]               # optional: the kinds it takes (all if absent)
//! ```
//!
//! Agencies are configuration, never changed over the API: an operator can only hand an
//! incident to an agency the node's operator set up.

use std::fmt;
use std::path::Path;

use centinela_core::ids::AgencyId;
use centinela_core::incident::IncidentKind;

/// The variable naming the agencies file.
pub const FILE_VAR: &str = "CENTINELA_AGENCIES_FILE";
/// The CAP `sender` when the file names none.
pub const SENDER_DEFAULT: &str = "centinela@serenazgo.invalid";
/// The CAP `senderName` when the file names none.
pub const SENDER_NAME_DEFAULT: &str = "Serenazgo - Centinela";
/// Most agencies one file declares: a city has a handful.
pub const AGENCIES_MAX: usize = 64;
/// Shortest HMAC key accepted, in bytes: shorter keys are guessable.
pub const HMAC_KEY_LEN_MIN: usize = 16;
/// Largest agencies file read.
const FILE_BYTES_MAX: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("agencies file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("agencies file: {0}")]
    Invalid(String),
}

/// One agency. `Debug` does not show the key.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agency {
    pub id: AgencyId,
    pub name: String,
    pub url: String,
    pub hmac_key: String,
    /// The incident kinds it takes; `None`: every kind.
    #[serde(default)]
    pub kinds: Option<Vec<IncidentKind>>,
}

impl fmt::Debug for Agency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agency")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("hmac_key", &"<redacted>")
            .field("kinds", &self.kinds)
            .finish()
    }
}

impl Agency {
    /// Whether it takes incidents of `kind` (an unclassified incident goes to any agency).
    pub fn takes(&self, kind: IncidentKind) -> bool {
        kind == IncidentKind::Unclassified
            || self
                .kinds
                .as_ref()
                .is_none_or(|kinds| kinds.contains(&kind))
    }
}

/// The agencies file, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agencies {
    #[serde(default)]
    pub sender: Option<String>,
    #[serde(default)]
    pub sender_name: Option<String>,
    #[serde(default)]
    pub agencies: Vec<Agency>,
}

impl Agencies {
    /// No agencies: hand-offs are refused.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn parse(text: &str) -> Result<Self, Error> {
        let agencies: Agencies = toml::from_str(text).map_err(|e| Error::Invalid(e.to_string()))?;
        agencies.validate()?;
        Ok(agencies)
    }

    pub fn load(path: &Path) -> Result<Self, Error> {
        let read = |reason: String| Error::Read {
            path: path.display().to_string(),
            reason,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| read(e.to_string()))?
            .len();
        if size > FILE_BYTES_MAX {
            return Err(read(format!("{size} bytes, at most {FILE_BYTES_MAX}")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| read(e.to_string()))?;
        Self::parse(&text)
    }

    /// The file [`FILE_VAR`] names, or no agencies when it is unset or empty.
    pub fn from_env() -> Result<Self, Error> {
        match std::env::var(FILE_VAR) {
            Ok(path) if !path.trim().is_empty() => Self::load(Path::new(path.trim())),
            _ => Ok(Self::none()),
        }
    }

    fn validate(&self) -> Result<(), Error> {
        if self.agencies.len() > AGENCIES_MAX {
            return Err(Error::Invalid(format!(
                "{} agencies, at most {AGENCIES_MAX}",
                self.agencies.len()
            )));
        }
        for sender in [&self.sender, &self.sender_name].into_iter().flatten() {
            if sender.trim().is_empty() || sender.len() > 256 {
                return Err(Error::Invalid(
                    "sender and sender_name: 1 to 256 bytes".into(),
                ));
            }
        }
        if let Some(sender) = &self.sender
            && sender.contains([' ', ',', '<', '&'])
        {
            return Err(Error::Invalid(format!(
                "sender {sender:?}: CAP forbids spaces, commas, < and & in it"
            )));
        }
        for (i, agency) in self.agencies.iter().enumerate() {
            let id = &agency.id;
            if self.agencies[..i].iter().any(|a| a.id == *id) {
                return Err(Error::Invalid(format!("agency {id} is declared twice")));
            }
            // The sender has no TLS connector yet: an https:// agency could never be
            // delivered to, so it is refused here rather than left queued forever.
            if agency.url.starts_with("https://") {
                return Err(Error::Invalid(format!(
                    "agency {id}: url {:?}: https:// is not supported yet; use http:// through a \
                     TLS-terminating proxy (docs/handoff.md)",
                    agency.url
                )));
            }
            let parsed = agency.url.parse::<http::Uri>().ok();
            let usable = agency.url.starts_with("http://")
                && parsed.as_ref().is_some_and(|u| u.host().is_some());
            if !usable {
                return Err(Error::Invalid(format!(
                    "agency {id}: url {:?} is not an http:// URL with a host",
                    agency.url
                )));
            }
            if agency.hmac_key.len() < HMAC_KEY_LEN_MIN {
                return Err(Error::Invalid(format!(
                    "agency {id}: hmac_key has {} bytes, at least {HMAC_KEY_LEN_MIN}",
                    agency.hmac_key.len()
                )));
            }
            if agency.name.trim().is_empty() || agency.name.len() > 256 {
                return Err(Error::Invalid(format!(
                    "agency {id}: name of 1 to 256 bytes"
                )));
            }
        }
        Ok(())
    }

    pub fn get(&self, id: &AgencyId) -> Option<&Agency> {
        self.agencies.iter().find(|a| a.id == *id)
    }

    pub fn sender(&self) -> &str {
        self.sender.as_deref().unwrap_or(SENDER_DEFAULT)
    }

    pub fn sender_name(&self) -> &str {
        self.sender_name.as_deref().unwrap_or(SENDER_NAME_DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
sender = "centinela@lima.example"

[[agencies]]
id = "pnp"
name = "Policía Nacional del Perú"
url = "http://cad.pnp.example/cap"
hmac_key = "0123456789abcdef0123"
kinds = ["robbery", "assault"]

[[agencies]]
id = "samu"
name = "SAMU"
url = "http://127.0.0.1:9000/cap"
hmac_key = "fedcba9876543210fedc"
"#;

    #[test]
    fn parses_the_documented_file() {
        let agencies = Agencies::parse(FILE).unwrap();
        assert_eq!(agencies.sender(), "centinela@lima.example");
        assert_eq!(agencies.sender_name(), SENDER_NAME_DEFAULT);
        let pnp = agencies.get(&AgencyId::new("pnp").unwrap()).unwrap();
        assert!(pnp.takes(IncidentKind::Robbery));
        assert!(pnp.takes(IncidentKind::Unclassified));
        assert!(!pnp.takes(IncidentKind::Medical));
        let samu = agencies.get(&AgencyId::new("samu").unwrap()).unwrap();
        assert!(samu.takes(IncidentKind::Medical));
        assert!(
            !format!("{pnp:?}").contains("0123456789"),
            "the key is never logged"
        );
    }

    #[test]
    fn refuses_bad_files() {
        for (bad, why) in [
            (FILE.replace("id = \"samu\"", "id = \"pnp\""), "twice"),
            (FILE.replace("http://cad", "ftp://cad"), "http"),
            (
                FILE.replace("http://cad", "https://cad"),
                "not supported yet",
            ),
            (
                FILE.replace("http://cad.pnp.example/cap", "http://"),
                "with a host",
            ),
            (FILE.replace("0123456789abcdef0123", "short"), "hmac_key"),
            (
                FILE.replace("kinds = [\"robbery\"", "kinds = [\"arson\""),
                "arson",
            ),
            (
                FILE.replace("sender =", "colour = \"red\"\nsender ="),
                "colour",
            ),
            (FILE.replace("centinela@lima.example", "a b"), "CAP forbids"),
        ] {
            let error = Agencies::parse(&bad).unwrap_err().to_string();
            assert!(error.contains(why), "{why}: {error}");
        }
    }
}
