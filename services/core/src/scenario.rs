//! Scenarios: the buttons (with their cameras) and brigades a node starts with, read from TOML.
//!
//! The demo runs [`LIMA_CENTRO`]; a deployment points at its own file. Everything is validated on
//! load, and every error names the entry at fault, so a bad file fails at start-up with a message
//! an operator can act on rather than as a mysterious dispatch later.
//!
//! ```toml
//! name = "lima-centro"
//! notes = "optional free text"
//!
//! [[buttons]]
//! id = "BTN-001"
//! name = "Plaza Mayor, Palacio de Gobierno side"
//! lat = -12.0453
//! lon = -77.0303
//! camera = { id = "CAM-001", pan_deg = 15.0, tilt_deg = -20.0, zoom = 3.0 }
//!
//! [[buttons]]
//! id = "BTN-002"
//! name = "Jirón de la Unión, cuadra 5"
//! lat = -12.0489
//! lon = -77.0332
//! # An IP camera driven over ONVIF; `preset` names a preset saved on the camera (GotoPreset),
//! # without it the camera is moved to pan/tilt/zoom (AbsoluteMove). No `onvif`: a native device.
//! camera = { id = "CAM-002", pan_deg = 0.0, tilt_deg = -10.0, zoom = 2.0, onvif = "http://10.20.0.12/onvif/device_service", preset = "1" }
//!
//! [[buttons]]
//! id = "BTN-003"
//! name = "Mercado Central, puerta 2"
//! lat = -12.0478
//! lon = -77.0265
//! camera = { id = "CAM-003", pan_deg = 0.0, tilt_deg = -15.0, zoom = 2.0 }
//! # Verify first: the brigade is recommended and held until an operator confirms on camera,
//! # or until the hold passes (`VERIFY_HOLD`, 90 s; `verify_hold_s` sets this site's, 1..=300).
//! verify_first = true
//!
//! [[brigades]]
//! id = "BR-01"
//! callsign = "Cercado Moto 1"
//! mode = "motorcycle"            # foot | motorcycle | car
//! capabilities = ["non_lethal_armed"]   # and/or "first_aid"; may be empty
//! lat = -12.0470
//! lon = -77.0310
//! ```

use std::collections::BTreeSet;

use crate::brigade::{Brigade, Capabilities, Mode};
use crate::button::Button;
use crate::camera::{self, Camera, OnvifEndpoint, PtzPreset};
use crate::geo::{self, Position};
use crate::ids::{BrigadeId, ButtonId, CameraId};
use crate::limits::{NAME_LEN_MAX, SCENARIO_ENTRIES_MAX, VERIFY_HOLD, VERIFY_HOLD_MAX};
use crate::time::Timestamp;

/// The demo scenario: Lima's historic centre (Cercado de Lima), 15 buttons with their cameras
/// and 12 brigades. Coordinates are approximate public landmarks.
pub const LIMA_CENTRO: &str = include_str!("../../../deploy/scenarios/lima-centro.toml");

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Malformed TOML, an unknown field, a missing field or an invalid id; the message carries
    /// the line.
    #[error("scenario is not valid TOML: {0}")]
    Parse(String),
    #[error("scenario has no {0}; it needs at least one")]
    Empty(&'static str),
    #[error("scenario has {count} {what}, at most {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("scenario declares {kind} {id} more than once")]
    DuplicateId { kind: &'static str, id: String },
    #[error("{entry}: {source}")]
    Position {
        entry: String,
        #[source]
        source: geo::Error,
    },
    #[error("{entry}: camera preset: {source}")]
    Preset {
        entry: String,
        #[source]
        source: camera::Error,
    },
    #[error("{entry}: {source}")]
    Onvif {
        entry: String,
        #[source]
        source: camera::Error,
    },
    #[error("{entry}: `preset` names a preset saved on an ONVIF camera; add its `onvif` URL")]
    PresetWithoutOnvif { entry: String },
    #[error("{entry}: verify_hold_s = {hold_s} needs verify_first = true and 1..={max} seconds")]
    VerifyHold {
        entry: String,
        hold_s: u64,
        max: u64,
    },
    #[error(
        "{entry}: district \"unknown\" is the reports' group of buttons without one; name the district or leave it out"
    )]
    ReservedDistrict { entry: String },
    #[error("{entry}: {field} is empty")]
    EmptyName { entry: String, field: &'static str },
    #[error("{entry}: {field} has {len} bytes, at most {max}")]
    NameTooLong {
        entry: String,
        field: &'static str,
        len: usize,
        max: usize,
    },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub buttons: Vec<ButtonSpec>,
    #[serde(default)]
    pub brigades: Vec<BrigadeSpec>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonSpec {
    pub id: ButtonId,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub camera: CameraSpec,
    /// Hold the recommended brigade until an operator confirms on camera (or the hold
    /// passes); the default is to dispatch at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify_first: bool,
    /// This site's hold in seconds, with `verify_first`; [`VERIFY_HOLD`] without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_hold_s: Option<u64>,
    /// The district or sector the pole is in, as the municipality's reports name it
    /// (`centinela report --by district`); absent: reported as
    /// [`crate::button::DISTRICT_UNKNOWN`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSpec {
    pub id: CameraId,
    pub pan_deg: f64,
    pub tilt_deg: f64,
    pub zoom: f64,
    /// The camera's ONVIF device service; absent for a native device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onvif: Option<String>,
    /// A preset token saved on the camera that frames the button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrigadeSpec {
    pub id: BrigadeId,
    pub callsign: String,
    pub mode: Mode,
    #[serde(default)]
    pub capabilities: Capabilities,
    pub lat: f64,
    pub lon: f64,
}

impl ButtonSpec {
    pub fn position(&self) -> Result<Position, Error> {
        Position::new(self.lat, self.lon).map_err(|source| Error::Position {
            entry: format!("button {}", self.id),
            source,
        })
    }

    /// The camera's ONVIF endpoint, when it has one.
    pub fn onvif(&self) -> Result<Option<OnvifEndpoint>, Error> {
        let c = &self.camera;
        let entry = || format!("button {} camera {}", self.id, c.id);
        match (&c.onvif, &c.preset) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(Error::PresetWithoutOnvif { entry: entry() }),
            (Some(url), preset) => OnvifEndpoint::new(url, preset.as_deref())
                .map(Some)
                .map_err(|source| Error::Onvif {
                    entry: entry(),
                    source,
                }),
        }
    }

    /// How long a press here holds its brigade for a verification on camera; `None` at an
    /// auto-dispatch site.
    pub fn verify_hold(&self) -> Result<Option<std::time::Duration>, Error> {
        let max = VERIFY_HOLD_MAX.as_secs();
        match (self.verify_first, self.verify_hold_s) {
            (false, None) => Ok(None),
            (true, None) => Ok(Some(VERIFY_HOLD)),
            (true, Some(s)) if (1..=max).contains(&s) => {
                Ok(Some(std::time::Duration::from_secs(s)))
            }
            (_, Some(hold_s)) => Err(Error::VerifyHold {
                entry: format!("button {}", self.id),
                hold_s,
                max,
            }),
        }
    }

    pub fn preset(&self) -> Result<PtzPreset, Error> {
        let c = &self.camera;
        PtzPreset::new(c.pan_deg, c.tilt_deg, c.zoom).map_err(|source| Error::Preset {
            entry: format!("button {} camera {}", self.id, c.id),
            source,
        })
    }
}

impl BrigadeSpec {
    pub fn position(&self) -> Result<Position, Error> {
        Position::new(self.lat, self.lon).map_err(|source| Error::Position {
            entry: format!("brigade {}", self.id),
            source,
        })
    }
}

impl Scenario {
    /// Parses and validates a scenario.
    pub fn from_toml(text: &str) -> Result<Scenario, Error> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| Error::Parse(e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The demo scenario, [`LIMA_CENTRO`].
    pub fn lima_centro() -> Scenario {
        Self::from_toml(LIMA_CENTRO).expect("the bundled scenario is valid")
    }

    /// This scenario with its buttons replaced by `buttons` copies of its first one (ids
    /// `B-{i}`, each with its camera `C-{i}`), its brigades kept: many entities at one place,
    /// for tests of seeding and ownership at scale.
    pub fn with_copies_of_first_button(mut self, buttons: usize) -> Scenario {
        let template = self.buttons[0].clone();
        self.buttons = (0..buttons)
            .map(|i| {
                let mut button = template.clone();
                button.id = ButtonId::new(format!("B-{i}")).expect("a valid button id");
                button.camera.id = CameraId::new(format!("C-{i}")).expect("a valid camera id");
                button
            })
            .collect();
        self
    }

    /// Checks everything [`Scenario::from_toml`] checks; for scenarios built in code.
    pub fn validate(&self) -> Result<(), Error> {
        for (what, count) in [
            ("buttons", self.buttons.len()),
            ("brigades", self.brigades.len()),
        ] {
            if count == 0 {
                return Err(Error::Empty(what));
            }
            if count > SCENARIO_ENTRIES_MAX {
                return Err(Error::TooMany {
                    what,
                    count,
                    max: SCENARIO_ENTRIES_MAX,
                });
            }
        }
        let mut button_ids = BTreeSet::new();
        let mut camera_ids = BTreeSet::new();
        for button in &self.buttons {
            if !button_ids.insert(&button.id) {
                return Err(duplicate(ButtonId::KIND, button.id.as_str()));
            }
            // One camera per pole: two buttons sharing one would fight over where it points.
            if !camera_ids.insert(&button.camera.id) {
                return Err(duplicate(CameraId::KIND, button.camera.id.as_str()));
            }
            check_name(&format!("button {}", button.id), "name", &button.name)?;
            button.position()?;
            button.preset()?;
            button.onvif()?;
            button.verify_hold()?;
            if let Some(district) = &button.district {
                let entry = format!("button {}", button.id);
                check_name(&entry, "district", district)?;
                if district.trim() == crate::button::DISTRICT_UNKNOWN {
                    return Err(Error::ReservedDistrict { entry });
                }
            }
        }
        let mut brigade_ids = BTreeSet::new();
        for brigade in &self.brigades {
            if !brigade_ids.insert(&brigade.id) {
                return Err(duplicate(BrigadeId::KIND, brigade.id.as_str()));
            }
            check_name(
                &format!("brigade {}", brigade.id),
                "callsign",
                &brigade.callsign,
            )?;
            brigade.position()?;
        }
        Ok(())
    }

    /// The buttons, online as of `now`.
    pub fn buttons(&self, now: Timestamp) -> Result<Vec<Button>, Error> {
        self.buttons
            .iter()
            .map(|spec| {
                let mut button = Button::new(
                    spec.id.clone(),
                    spec.name.clone(),
                    spec.position()?,
                    spec.camera.id.clone(),
                    now,
                );
                button.verify_hold_s = spec.verify_hold()?.map(|hold| hold.as_secs());
                button.district = spec.district.clone();
                Ok(button)
            })
            .collect()
    }

    /// The cameras, idle as of `now`.
    pub fn cameras(&self, now: Timestamp) -> Result<Vec<Camera>, Error> {
        self.buttons
            .iter()
            .map(|spec| {
                Ok(
                    Camera::new(spec.camera.id.clone(), spec.id.clone(), spec.preset()?, now)
                        .with_onvif(spec.onvif()?),
                )
            })
            .collect()
    }

    /// The brigades, `offline` as of `now` until their terminal or app is heard from.
    pub fn brigades(&self, now: Timestamp) -> Result<Vec<Brigade>, Error> {
        self.brigades
            .iter()
            .map(|spec| {
                Ok(Brigade::new(
                    spec.id.clone(),
                    spec.callsign.clone(),
                    spec.mode,
                    spec.capabilities,
                    spec.position()?,
                    now,
                )
                .offline_until_heard())
            })
            .collect()
    }
}

fn duplicate(kind: &'static str, id: &str) -> Error {
    Error::DuplicateId {
        kind,
        id: id.to_owned(),
    }
}

fn check_name(entry: &str, field: &'static str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(Error::EmptyName {
            entry: entry.to_owned(),
            field,
        });
    }
    if value.len() > NAME_LEN_MAX {
        return Err(Error::NameTooLong {
            entry: entry.to_owned(),
            field,
            len: value.len(),
            max: NAME_LEN_MAX,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brigade::{BrigadeStatus, Capability};
    use crate::button::ButtonHealth;
    use crate::camera::CameraState;

    const SMALL: &str = r#"
name = "small"

[[buttons]]
id = "BTN-1"
name = "Plaza Mayor"
lat = -12.0464
lon = -77.0300
camera = { id = "CAM-1", pan_deg = 10.0, tilt_deg = -15.0, zoom = 2.0 }

[[brigades]]
id = "BR-1"
callsign = "Moto 1"
mode = "motorcycle"
capabilities = ["non_lethal_armed", "first_aid"]
lat = -12.05
lon = -77.04
"#;

    fn err(text: &str) -> String {
        Scenario::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn a_city_of_the_cap_loads_and_one_more_button_is_refused() {
        let small = Scenario::from_toml(SMALL).unwrap();
        let mut city = small.clone();
        city.buttons = (0..SCENARIO_ENTRIES_MAX)
            .map(|i| {
                let mut button = small.buttons[0].clone();
                button.id = ButtonId::new(format!("BTN-{i}")).unwrap();
                button.camera.id = CameraId::new(format!("CAM-{i}")).unwrap();
                button
            })
            .collect();
        city.validate().unwrap();
        city.buttons.push(small.buttons[0].clone());
        assert_eq!(
            city.validate().unwrap_err().to_string(),
            format!(
                "scenario has {} buttons, at most {SCENARIO_ENTRIES_MAX}",
                SCENARIO_ENTRIES_MAX + 1
            )
        );
    }

    #[test]
    fn districts_are_optional_named_and_never_the_unknown_group() {
        let with =
            |extra: &str| SMALL.replacen("zoom = 2.0 }\n", &format!("zoom = 2.0 }}\n{extra}\n"), 1);
        let now = Timestamp::from_millis(0);
        let none = Scenario::from_toml(SMALL).unwrap();
        assert_eq!(none.buttons(now).unwrap()[0].district, None);
        let named = Scenario::from_toml(&with("district = \"Barrios Altos\"")).unwrap();
        assert_eq!(
            named.buttons(now).unwrap()[0].district.as_deref(),
            Some("Barrios Altos")
        );
        let long = format!("district = \"{}\"", "x".repeat(NAME_LEN_MAX + 1));
        for (bad, says) in [
            ("district = \"\"", "district is empty"),
            ("district = \"unknown\"", "district \"unknown\""),
            (long.as_str(), "district has 129 bytes"),
        ] {
            let error = err(&with(bad));
            assert!(error.contains(says), "{bad}: {error}");
        }
        // Every demo button is in a district of the Cercado.
        let lima = Scenario::lima_centro();
        assert!(lima.buttons.iter().all(|b| b.district.is_some()));
        // A button record written before districts existed still reads.
        let mut button = lima.buttons(now).unwrap().remove(0);
        let mut json = serde_json::to_value(&button).unwrap();
        json.as_object_mut().unwrap().remove("district");
        button.district = None;
        assert_eq!(serde_json::from_value::<Button>(json).unwrap(), button);
    }

    #[test]
    fn verify_first_sites_and_their_hold() {
        let with =
            |extra: &str| SMALL.replacen("zoom = 2.0 }\n", &format!("zoom = 2.0 }}\n{extra}\n"), 1);
        let now = Timestamp::from_millis(0);
        let auto = Scenario::from_toml(SMALL).unwrap();
        assert_eq!(auto.buttons(now).unwrap()[0].verify_hold_s, None);
        let default = Scenario::from_toml(&with("verify_first = true")).unwrap();
        assert_eq!(
            default.buttons(now).unwrap()[0].verify_hold_s,
            Some(VERIFY_HOLD.as_secs())
        );
        let own = Scenario::from_toml(&with("verify_first = true\nverify_hold_s = 30")).unwrap();
        assert_eq!(own.buttons(now).unwrap()[0].verify_hold_s, Some(30));
        for bad in [
            "verify_hold_s = 30",
            "verify_first = true\nverify_hold_s = 0",
            "verify_first = true\nverify_hold_s = 301",
        ] {
            let e = err(&with(bad));
            assert!(e.contains("button BTN-1: verify_hold_s"), "{bad}: {e}");
        }
    }

    #[test]
    fn parses_and_builds_domain_values() {
        let s = Scenario::from_toml(SMALL).unwrap();
        assert_eq!(s.name, "small");
        assert_eq!(s.notes, "");
        let now = Timestamp::from_millis(42);
        let buttons = s.buttons(now).unwrap();
        assert_eq!(buttons[0].health, ButtonHealth::Online);
        assert_eq!(buttons[0].camera.as_str(), "CAM-1");
        assert_eq!(buttons[0].last_heartbeat, Some(now));
        let cameras = s.cameras(now).unwrap();
        assert_eq!(cameras[0].state, CameraState::Idle);
        assert_eq!(cameras[0].button.as_str(), "BTN-1");
        assert_eq!(cameras[0].preset.zoom(), 2.0);
        let brigades = s.brigades(now).unwrap();
        // Offline until its terminal or app is heard from.
        assert_eq!(brigades[0].status, BrigadeStatus::Offline);
        assert_eq!(brigades[0].mode, Mode::Motorcycle);
        assert!(brigades[0].capabilities.contains(Capability::FirstAid));
        assert_eq!(brigades[0].status_since, now);
    }

    #[test]
    fn bundled_lima_scenario_is_valid() {
        let s = Scenario::lima_centro();
        assert_eq!(s.buttons.len(), 15);
        assert_eq!(s.brigades.len(), 12);
        let now = Timestamp::from_millis(0);
        let centre = Position::new(-12.05, -77.04).unwrap();
        for b in s.buttons(now).unwrap() {
            assert!(b.position.distance_m(&centre) < 5_000.0, "{} is far", b.id);
        }
        assert!(
            s.brigades(now)
                .unwrap()
                .iter()
                .any(|b| b.mode == Mode::Foot)
        );
    }

    #[test]
    fn needs_buttons_and_brigades() {
        assert_eq!(
            err("name = \"x\""),
            "scenario has no buttons; it needs at least one"
        );
        let no_brigades = SMALL.split("[[brigades]]").next().unwrap();
        assert_eq!(
            err(no_brigades),
            "scenario has no brigades; it needs at least one"
        );
    }

    #[test]
    fn duplicate_ids_are_named() {
        let twice = format!("{SMALL}\n{}", &SMALL[SMALL.find("[[brigades]]").unwrap()..]);
        assert_eq!(err(&twice), "scenario declares brigade BR-1 more than once");
        let cam_twice = SMALL.replace(
            "[[brigades]]",
            "[[buttons]]\nid = \"BTN-2\"\nname = \"x\"\nlat = 0.0\nlon = 0.0\ncamera = { id = \"CAM-1\", pan_deg = 0.0, tilt_deg = 0.0, zoom = 1.0 }\n\n[[brigades]]",
        );
        assert_eq!(
            err(&cam_twice),
            "scenario declares camera CAM-1 more than once"
        );
    }

    #[test]
    fn invalid_values_name_the_entry() {
        assert_eq!(
            err(&SMALL.replace("lat = -12.05\n", "lat = -95.0\n")),
            "brigade BR-1: latitude -95 is outside [-90, 90]"
        );
        assert_eq!(
            err(&SMALL.replace("zoom = 2.0", "zoom = 80.0")),
            "button BTN-1 camera CAM-1: camera preset: zoom 80 is outside [1, 40]"
        );
        assert_eq!(
            err(&SMALL.replace("callsign = \"Moto 1\"", "callsign = \" \"")),
            "brigade BR-1: callsign is empty"
        );
        let long = "x".repeat(NAME_LEN_MAX + 1);
        assert!(
            err(&SMALL.replace("Plaza Mayor", &long))
                .starts_with("button BTN-1: name has 129 bytes")
        );
    }

    #[test]
    fn onvif_cameras_are_configured_and_checked() {
        let url = "http://127.0.0.1:8000/onvif/device_service";
        let with = |extra: &str| SMALL.replace("zoom = 2.0", &format!("zoom = 2.0, {extra}"));
        let s =
            Scenario::from_toml(&with(&format!("onvif = \"{url}\", preset = \"pole\""))).unwrap();
        let camera = &s.cameras(Timestamp::from_millis(0)).unwrap()[0];
        assert_eq!(camera.driver(), camera::DriverKind::Onvif);
        let endpoint = camera.onvif.as_ref().unwrap();
        assert_eq!(
            (endpoint.url.as_str(), endpoint.preset.as_deref()),
            (url, Some("pole"))
        );
        let native = Scenario::from_toml(SMALL).unwrap();
        assert_eq!(
            native.cameras(Timestamp::from_millis(0)).unwrap()[0].driver(),
            camera::DriverKind::Native
        );
        assert_eq!(
            err(&with("preset = \"pole\"")),
            "button BTN-1 camera CAM-1: `preset` names a preset saved on an ONVIF camera; add its `onvif` URL"
        );
        assert_eq!(
            err(&with("onvif = \"rtsp://cam/\"")),
            "button BTN-1 camera CAM-1: ONVIF address \"rtsp://cam/\" is not an http:// URL with a host"
        );
    }

    #[test]
    fn parse_errors_carry_the_problem() {
        let e = err(&SMALL.replace("BR-1", "BR 1"));
        assert!(e.contains("brigade id contains ' '"), "{e}");
        let e = err(&SMALL.replace("\"motorcycle\"", "\"bicycle\""));
        assert!(e.contains("bicycle"), "{e}");
        let e = err(&SMALL.replace("callsign", "call_sign"));
        assert!(e.contains("call_sign"), "{e}");
        assert!(err("[[buttons").starts_with("scenario is not valid TOML"));
    }
}
