//! A camera's pose in ONVIF's generic normalized spaces: pan and tilt in [-1, 1]
//! (`PositionGenericSpace`), zoom in [0, 1] (`PositionGenericSpace` for zoom), which every
//! Profile S PTZ camera supports whatever its mechanics. A scenario's preset (pan in degrees
//! from -180 to 180, tilt from -90 to 90, optical zoom from 1x to 40x) maps onto them linearly;
//! an installer who frames each pole by hand names a preset token instead (GotoPreset).

use centinela_core::camera::PtzPreset;

/// The generic pan/tilt position space (ONVIF Profile S, PTZ service).
pub const PAN_TILT_GENERIC_SPACE: &str =
    "http://www.onvif.org/ver10/tptz/PanTiltSpaces/PositionGenericSpace";
/// The generic zoom position space.
pub const ZOOM_GENERIC_SPACE: &str =
    "http://www.onvif.org/ver10/tptz/ZoomSpaces/PositionGenericSpace";

/// A pose in the generic spaces.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    /// -1 (full left) to 1 (full right).
    pub pan: f64,
    /// -1 (full down) to 1 (full up).
    pub tilt: f64,
    /// 0 (widest) to 1 (narrowest).
    pub zoom: f64,
}

impl Pose {
    /// The pose that frames a scenario preset.
    pub fn from_preset(preset: &PtzPreset) -> Self {
        Self {
            pan: preset.pan_deg() / 180.0,
            tilt: preset.tilt_deg() / 90.0,
            zoom: (preset.zoom() - PtzPreset::ZOOM_MIN)
                / (PtzPreset::ZOOM_MAX - PtzPreset::ZOOM_MIN),
        }
    }

    /// The pose within the generic spaces (a camera's report may overshoot by rounding).
    pub fn clamped(self) -> Self {
        Self {
            pan: self.pan.clamp(-1.0, 1.0),
            tilt: self.tilt.clamp(-1.0, 1.0),
            zoom: self.zoom.clamp(0.0, 1.0),
        }
    }

    /// Whether `other` is this pose within `tolerance` on every axis.
    pub fn near(&self, other: &Pose, tolerance: f64) -> bool {
        (self.pan - other.pan).abs() <= tolerance
            && (self.tilt - other.tilt).abs() <= tolerance
            && (self.zoom - other.zoom).abs() <= tolerance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_map_linearly_onto_the_generic_spaces() {
        let pose = |pan, tilt, zoom| Pose::from_preset(&PtzPreset::new(pan, tilt, zoom).unwrap());
        assert_eq!(
            pose(0.0, 0.0, 1.0),
            Pose {
                pan: 0.0,
                tilt: 0.0,
                zoom: 0.0
            }
        );
        assert_eq!(
            pose(180.0, 90.0, 40.0),
            Pose {
                pan: 1.0,
                tilt: 1.0,
                zoom: 1.0
            }
        );
        assert_eq!(
            pose(-90.0, -45.0, 20.5),
            Pose {
                pan: -0.5,
                tilt: -0.5,
                zoom: 0.5
            }
        );
        let over = Pose {
            pan: 1.2,
            tilt: -1.5,
            zoom: -0.1,
        }
        .clamped();
        assert_eq!(
            over,
            Pose {
                pan: 1.0,
                tilt: -1.0,
                zoom: 0.0
            }
        );
        assert!(over.near(
            &Pose {
                pan: 0.995,
                tilt: -1.0,
                zoom: 0.005
            },
            0.01
        ));
        assert!(!over.near(
            &Pose {
                pan: 0.9,
                tilt: -1.0,
                zoom: 0.0
            },
            0.01
        ));
    }
}
