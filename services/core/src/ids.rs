//! Identifier newtypes: one type per kind of entity, so a button id can never be passed where a
//! brigade id is expected.
//!
//! Every id is validated when built (from code, from a string, or while deserializing): non-empty,
//! at most [`ID_LEN_MAX`] bytes, and only ASCII `[A-Za-z0-9._:-]`. The restricted alphabet keeps ids
//! safe as store keys, URL path segments and log fields without any escaping.

use std::fmt;
use std::str::FromStr;

use crate::limits::ID_LEN_MAX;
use crate::time::Timestamp;

/// Why a string is not a valid id. `kind` names the id ("button", "brigade", ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{kind} id is empty")]
    Empty { kind: &'static str },
    #[error("{kind} id has {len} bytes, at most {max}")]
    TooLong {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{kind} id contains {found:?}")]
    InvalidChar { kind: &'static str, found: char },
}

/// Checks `value` against the id rules; `kind` only labels the error.
fn validate(kind: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::Empty { kind });
    }
    if value.len() > ID_LEN_MAX {
        return Err(Error::TooLong {
            kind,
            len: value.len(),
            max: ID_LEN_MAX,
        });
    }
    if let Some(found) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(Error::InvalidChar { kind, found });
    }
    Ok(())
}

/// Defines a validated string id type. The inner string is private: the only ways in are
/// `new`, `FromStr`, `TryFrom<String>` and deserialization, all of which validate.
macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// What this id identifies, as used in error messages.
            pub const KIND: &'static str = $kind;

            /// Builds the id, refusing strings that break the id rules.
            pub fn new(value: impl Into<String>) -> Result<Self, Error> {
                let value = value.into();
                validate(Self::KIND, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(value: &str) -> Result<Self, Error> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            fn try_from(value: String) -> Result<Self, Error> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;

            fn try_from(value: &str) -> Result<Self, Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

define_id!(
    /// An agency incidents are handed to (police, firefighters, ambulance), as the agencies
    /// file names it.
    AgencyId,
    "agency"
);
define_id!(
    /// A panic button on a pole.
    ButtonId,
    "button"
);
define_id!(
    /// The PTZ camera on a button's pole.
    CameraId,
    "camera"
);
define_id!(
    /// A Serenazgo brigade (unit): a patrol on foot, motorcycle or car.
    BrigadeId,
    "brigade"
);
define_id!(
    /// An incident: one emergency, possibly many presses.
    IncidentId,
    "incident"
);
define_id!(
    /// One press as sent by a device; retries reuse it, which makes presses idempotent.
    PressId,
    "press"
);
define_id!(
    /// A Centinela node in the cluster.
    NodeId,
    "node"
);
define_id!(
    /// A call-center operator.
    OperatorId,
    "operator"
);

impl IncidentId {
    /// The id of a press's new incident: `B01-261127-220512`, the button and the UTC date and
    /// time of the press, unique per button and second and readable over the radio. `taken`
    /// incidents already use that prefix (more than one incident of a button in one second
    /// happens only under load tests): the first is the prefix itself, then `-2`, `-3`...
    pub fn for_press(prefix: &str, taken: usize) -> Result<IncidentId, Error> {
        let id = if taken == 0 {
            prefix.to_string()
        } else {
            format!("{prefix}-{}", taken + 1)
        };
        IncidentId::new(id)
    }

    /// What every id [`IncidentId::for_press`] makes for `button` at `at` starts with.
    pub fn press_prefix(button: &ButtonId, at: Timestamp) -> String {
        let t = at.civil_utc();
        format!(
            "{button}-{:02}{:02}{:02}-{:02}{:02}{:02}",
            t.year % 100,
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second
        )
    }

    /// The button an id made by [`IncidentId::for_press`] names: what precedes `-YYMMDD-HHMMSS`
    /// (and a `-N` suffix). A guess: ids are not parsed for anything that matters.
    pub fn button_part(&self) -> Option<&str> {
        let id = self.as_str();
        let six_digits = |part: &str| part.len() == 6 && part.bytes().all(|b| b.is_ascii_digit());
        let mut rest = id;
        for _ in 0..2 {
            let (head, last) = rest.rsplit_once('-')?;
            if six_digits(last) {
                // Expect exactly the time, then the date.
                let (button, date) = head.rsplit_once('-')?;
                return six_digits(date).then_some(button).filter(|b| !b.is_empty());
            }
            if !last.bytes().all(|b| b.is_ascii_digit()) || !rest.eq(id) {
                return None;
            }
            rest = head; // a `-N` suffix
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_ids_read_as_button_date_time() {
        // 2026-11-27T22:05:12.345Z
        let at = Timestamp::from_millis(1_795_817_112_345);
        let prefix = IncidentId::press_prefix(&ButtonId::new("B01").unwrap(), at);
        let nth = |taken| IncidentId::for_press(&prefix, taken).unwrap();
        assert_eq!(nth(0).as_str(), "B01-261127-220512");
        assert_eq!(nth(1).as_str(), "B01-261127-220512-2");
        assert_eq!(nth(2).as_str(), "B01-261127-220512-3");
    }

    #[test]
    fn the_button_is_read_back_from_an_incident_id() {
        let button = |id: &str| {
            IncidentId::new(id)
                .unwrap()
                .button_part()
                .map(str::to_owned)
        };
        assert_eq!(button("B01-261127-220512").as_deref(), Some("B01"));
        assert_eq!(button("B01-261127-220512-3").as_deref(), Some("B01"));
        assert_eq!(button("av-9-x-261127-220512").as_deref(), Some("av-9-x"));
        assert_eq!(button("av-9-261127-220512-12").as_deref(), Some("av-9"));
        assert_eq!(button("261127-220512"), None);
        assert_eq!(button("B01"), None);
        assert_eq!(button("B01-2611-220512"), None);
        assert_eq!(button("B01-x-3"), None);
    }

    #[test]
    fn accepts_the_allowed_alphabet() {
        let id = ButtonId::new("BTN-001.a_b:c").unwrap();
        assert_eq!(id.as_str(), "BTN-001.a_b:c");
        assert_eq!(id.to_string(), "BTN-001.a_b:c");
        assert_eq!("BTN-001".parse::<ButtonId>().unwrap().as_str(), "BTN-001");
        assert_eq!(
            BrigadeId::try_from(String::from("BR-1")).unwrap().as_str(),
            "BR-1"
        );
    }

    #[test]
    fn refuses_empty() {
        let err = ButtonId::new("").unwrap_err();
        assert_eq!(err, Error::Empty { kind: "button" });
        assert_eq!(err.to_string(), "button id is empty");
    }

    #[test]
    fn refuses_too_long_but_accepts_the_limit() {
        assert!(CameraId::new("c".repeat(ID_LEN_MAX)).is_ok());
        let err = ButtonId::new("b".repeat(70)).unwrap_err();
        assert_eq!(err.to_string(), "button id has 70 bytes, at most 64");
    }

    #[test]
    fn refuses_characters_outside_the_alphabet() {
        let err = ButtonId::new("a\nb").unwrap_err();
        assert_eq!(err.to_string(), "button id contains '\\n'");
        for bad in ["a b", "a/b", "ñ", "a\"b", "a#b"] {
            assert!(IncidentId::new(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            OperatorId::new("op 1").unwrap_err().to_string(),
            "operator id contains ' '"
        );
    }

    #[test]
    fn serde_is_a_plain_string_and_validates() {
        let id = BrigadeId::new("BR-07").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"BR-07\"");
        let back: BrigadeId = serde_json::from_str("\"BR-07\"").unwrap();
        assert_eq!(back, id);
        let err = serde_json::from_str::<BrigadeId>("\"BR 07\"").unwrap_err();
        assert!(err.to_string().contains("brigade id contains ' '"), "{err}");
        assert!(serde_json::from_str::<BrigadeId>("\"\"").is_err());
    }

    #[test]
    fn orders_by_string() {
        let mut ids = [NodeId::new("n2").unwrap(), NodeId::new("n10").unwrap()];
        ids.sort();
        assert_eq!(ids[0].as_str(), "n10");
    }
}
