//! Test scenarios written in the deployment TOML format (see `centinela_core::scenario`), so the
//! parser production uses reads them: [`ScenarioBuilder`] collects buttons and brigades and
//! gives the text ([`ScenarioBuilder::to_toml`], for a `--scenario` file) or the parsed
//! [`Scenario`] ([`ScenarioBuilder::build`]).
//!
//! ```
//! use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
//!
//! let scenario = ScenarioBuilder::new("small")
//!     .button(Button::new("B1", -12.0464, -77.03))
//!     .brigade(Brigade::new("U1", "foot", -12.0470, -77.031).capabilities(&["first_aid"]))
//!     .build();
//! assert_eq!(scenario.buttons[0].camera.id.as_str(), "C-B1");
//! ```
//!
//! Coordinates are written with Rust's shortest round-trip formatting (`{:?}`), so the parsed
//! value is exactly the `f64` given.

use std::fmt::Write as _;
use std::path::Path;

pub use centinela_core::scenario::Scenario;

/// A button and its camera. Defaults: name `Button {id}`, camera `C-{id}` at pan 0°, tilt
/// -10°, zoom 2.
#[derive(Clone, Debug, PartialEq)]
pub struct Button {
    pub id: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub camera: String,
    pub pan_deg: f64,
    pub tilt_deg: f64,
    pub zoom: f64,
    /// The camera's ONVIF device service URL, for a camera driven over ONVIF.
    pub onvif: Option<String>,
    /// A preset token saved on that camera.
    pub preset: Option<String>,
    /// A verify-first site holding its brigade this many seconds (`verify_hold_s`).
    pub verify_hold_s: Option<u64>,
}

impl Button {
    pub fn new(id: impl Into<String>, lat: f64, lon: f64) -> Button {
        let id = id.into();
        Button {
            name: format!("Button {id}"),
            camera: format!("C-{id}"),
            id,
            lat,
            lon,
            pan_deg: 0.0,
            tilt_deg: -10.0,
            zoom: 2.0,
            onvif: None,
            preset: None,
            verify_hold_s: None,
        }
    }

    /// Drives the camera over ONVIF at `url`, with the preset token `preset` if any.
    pub fn onvif(mut self, url: impl Into<String>, preset: Option<&str>) -> Button {
        self.onvif = Some(url.into());
        self.preset = preset.map(str::to_string);
        self
    }

    /// A verify-first site: a press holds the brigade until an operator confirms on camera
    /// or `hold_s` seconds pass.
    pub fn verify_first(mut self, hold_s: u64) -> Button {
        self.verify_hold_s = Some(hold_s);
        self
    }

    /// The camera's pan and tilt, in degrees.
    pub fn aim(mut self, pan_deg: f64, tilt_deg: f64) -> Button {
        self.pan_deg = pan_deg;
        self.tilt_deg = tilt_deg;
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Button {
        self.name = name.into();
        self
    }

    /// The camera's id.
    pub fn camera(mut self, id: impl Into<String>) -> Button {
        self.camera = id.into();
        self
    }

    pub fn zoom(mut self, zoom: f64) -> Button {
        self.zoom = zoom;
        self
    }
}

/// A brigade. Defaults: callsign `Unit {id}`, no capabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct Brigade {
    pub id: String,
    pub callsign: String,
    /// `foot`, `motorcycle` or `car`.
    pub mode: String,
    /// `non_lethal_armed`, `first_aid`.
    pub capabilities: Vec<String>,
    pub lat: f64,
    pub lon: f64,
}

impl Brigade {
    pub fn new(id: impl Into<String>, mode: &str, lat: f64, lon: f64) -> Brigade {
        let id = id.into();
        Brigade {
            callsign: format!("Unit {id}"),
            id,
            mode: mode.to_string(),
            capabilities: Vec::new(),
            lat,
            lon,
        }
    }

    pub fn callsign(mut self, callsign: impl Into<String>) -> Brigade {
        self.callsign = callsign.into();
        self
    }

    pub fn capabilities(mut self, capabilities: &[&str]) -> Brigade {
        self.capabilities = capabilities.iter().map(|c| c.to_string()).collect();
        self
    }
}

/// A scenario under construction; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioBuilder {
    name: String,
    notes: Option<String>,
    buttons: Vec<Button>,
    brigades: Vec<Brigade>,
}

impl ScenarioBuilder {
    pub fn new(name: impl Into<String>) -> ScenarioBuilder {
        ScenarioBuilder {
            name: name.into(),
            notes: None,
            buttons: Vec::new(),
            brigades: Vec::new(),
        }
    }

    pub fn notes(mut self, notes: impl Into<String>) -> ScenarioBuilder {
        self.notes = Some(notes.into());
        self
    }

    pub fn button(mut self, button: Button) -> ScenarioBuilder {
        self.buttons.push(button);
        self
    }

    pub fn buttons(self, buttons: impl IntoIterator<Item = Button>) -> ScenarioBuilder {
        buttons.into_iter().fold(self, Self::button)
    }

    pub fn brigade(mut self, brigade: Brigade) -> ScenarioBuilder {
        self.brigades.push(brigade);
        self
    }

    pub fn brigades(self, brigades: impl IntoIterator<Item = Brigade>) -> ScenarioBuilder {
        brigades.into_iter().fold(self, Self::brigade)
    }

    /// The scenario in the deployment format.
    pub fn to_toml(&self) -> String {
        let mut toml = format!("name = {}\n", quote(&self.name));
        if let Some(notes) = &self.notes {
            let _ = writeln!(toml, "notes = {}", quote(notes));
        }
        for b in &self.buttons {
            let mut onvif = String::new();
            if let Some(url) = &b.onvif {
                let _ = write!(onvif, ", onvif = {}", quote(url));
            }
            if let Some(preset) = &b.preset {
                let _ = write!(onvif, ", preset = {}", quote(preset));
            }
            let _ = write!(
                toml,
                "\n[[buttons]]\nid = {id}\nname = {name}\nlat = {lat:?}\nlon = {lon:?}\n\
                 camera = {{ id = {camera}, pan_deg = {pan:?}, tilt_deg = {tilt:?}, zoom = {zoom:?}{onvif} }}\n",
                id = quote(&b.id),
                name = quote(&b.name),
                lat = b.lat,
                lon = b.lon,
                camera = quote(&b.camera),
                pan = b.pan_deg,
                tilt = b.tilt_deg,
                zoom = b.zoom,
            );
            if let Some(hold_s) = b.verify_hold_s {
                let _ = writeln!(toml, "verify_first = true\nverify_hold_s = {hold_s}");
            }
        }
        for u in &self.brigades {
            let capabilities: Vec<String> = u.capabilities.iter().map(|c| quote(c)).collect();
            let _ = write!(
                toml,
                "\n[[brigades]]\nid = {id}\ncallsign = {callsign}\nmode = {mode}\n\
                 capabilities = [{capabilities}]\nlat = {lat:?}\nlon = {lon:?}\n",
                id = quote(&u.id),
                callsign = quote(&u.callsign),
                mode = quote(&u.mode),
                capabilities = capabilities.join(", "),
                lat = u.lat,
                lon = u.lon,
            );
        }
        toml
    }

    /// The parsed and validated scenario. Panics with the text when it is invalid.
    #[track_caller]
    pub fn build(&self) -> Scenario {
        let toml = self.to_toml();
        Scenario::from_toml(&toml)
            .unwrap_or_else(|e| panic!("test scenario is invalid: {e}\n{toml}"))
    }

    /// Writes [`ScenarioBuilder::to_toml`] to `path`.
    #[track_caller]
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.to_toml())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", c as u32);
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    use centinela_core::brigade::{Capability, Mode};

    #[test]
    fn builds_what_it_was_told_with_the_defaults_for_the_rest() {
        let built = ScenarioBuilder::new("small")
            .notes("a \"quoted\" note")
            .button(Button::new("B1", -12.0464, -77.03).zoom(3.0))
            .button(
                Button::new("B2", -12.0474, -77.03)
                    .name("corner B2")
                    .camera("Q2"),
            )
            .brigade(
                Brigade::new("U1", "motorcycle", -12.05, -77.04)
                    .callsign("Moto 1")
                    .capabilities(&["non_lethal_armed", "first_aid"]),
            )
            .brigade(Brigade::new("U2", "foot", -12.06, -77.04))
            .build();
        assert_eq!(
            (built.name.as_str(), built.notes.as_str()),
            ("small", "a \"quoted\" note")
        );
        let [b1, b2] = &built.buttons[..] else {
            panic!("two buttons: {:?}", built.buttons)
        };
        assert_eq!((b1.id.as_str(), b1.name.as_str()), ("B1", "Button B1"));
        assert_eq!((b1.lat, b1.lon), (-12.0464, -77.03));
        assert_eq!(b1.camera.id.as_str(), "C-B1");
        assert_eq!(
            (b1.camera.pan_deg, b1.camera.tilt_deg, b1.camera.zoom),
            (0.0, -10.0, 3.0)
        );
        assert_eq!(
            (b2.name.as_str(), b2.camera.id.as_str()),
            ("corner B2", "Q2")
        );
        assert_eq!(b2.camera.zoom, 2.0);
        let [u1, u2] = &built.brigades[..] else {
            panic!("two brigades: {:?}", built.brigades)
        };
        assert_eq!(
            (u1.callsign.as_str(), u1.mode),
            ("Moto 1", Mode::Motorcycle)
        );
        assert!(u1.capabilities.contains(Capability::FirstAid));
        assert!(u1.capabilities.contains(Capability::NonLethalArmed));
        assert_eq!((u2.callsign.as_str(), u2.mode), ("Unit U2", Mode::Foot));
        assert!(!u2.capabilities.contains(Capability::FirstAid));
        assert_eq!((u2.lat, u2.lon), (-12.06, -77.04));
    }

    #[test]
    fn coordinates_round_trip_exactly() {
        let lat = -12.0464 + 0.1 * 3.0_f64.sqrt();
        let built = ScenarioBuilder::new("x")
            .button(Button::new("B1", lat, -77.0))
            .brigade(Brigade::new("U1", "car", lat, -77.0))
            .build();
        assert_eq!(built.buttons[0].lat.to_bits(), lat.to_bits());
        assert_eq!(built.brigades[0].lat.to_bits(), lat.to_bits());
    }

    #[test]
    #[should_panic(expected = "test scenario is invalid: scenario has no brigades")]
    fn an_invalid_scenario_fails_with_its_text() {
        ScenarioBuilder::new("x")
            .button(Button::new("B1", 0.0, 0.0))
            .build();
    }
}
