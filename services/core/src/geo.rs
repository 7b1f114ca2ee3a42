//! Positions on the Earth and the distances between them.
//!
//! A [`Position`] can only be built valid, so everything downstream (distances, the spatial
//! index) can rely on finite, in-range coordinates.

use std::fmt;

/// Mean Earth radius (IUGG), in metres. The error of a spherical model over a city is well under
/// one percent, far below the uncertainty of street travel.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("coordinates ({lat}, {lon}) are not finite")]
    NotFinite { lat: f64, lon: f64 },
    #[error("latitude {0} is outside [-90, 90]")]
    LatitudeOutOfRange(f64),
    #[error("longitude {0} is outside [-180, 180]")]
    LongitudeOutOfRange(f64),
}

/// A WGS84 latitude/longitude in degrees. Serialized as `{"lat": .., "lon": ..}`; deserializing
/// goes through [`Position::new`], so invalid coordinates are refused at the edge.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawPosition")]
pub struct Position {
    lat: f64,
    lon: f64,
}

/// The unvalidated wire shape of a [`Position`].
#[derive(serde::Deserialize)]
struct RawPosition {
    lat: f64,
    lon: f64,
}

impl TryFrom<RawPosition> for Position {
    type Error = Error;

    fn try_from(raw: RawPosition) -> Result<Self, Error> {
        Position::new(raw.lat, raw.lon)
    }
}

impl Position {
    pub fn new(lat: f64, lon: f64) -> Result<Self, Error> {
        if !lat.is_finite() || !lon.is_finite() {
            return Err(Error::NotFinite { lat, lon });
        }
        if !(-90.0..=90.0).contains(&lat) {
            return Err(Error::LatitudeOutOfRange(lat));
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(Error::LongitudeOutOfRange(lon));
        }
        Ok(Self { lat, lon })
    }

    pub fn lat(&self) -> f64 {
        self.lat
    }

    pub fn lon(&self) -> f64 {
        self.lon
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance_m(&self, other: &Position) -> f64 {
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let half_dlat = (lat2 - lat1) / 2.0;
        let half_dlon = (other.lon - self.lon).to_radians() / 2.0;
        let a = half_dlat.sin().powi(2) + lat1.cos() * lat2.cos() * half_dlon.sin().powi(2);
        // Rounding can push `a` a hair above 1 for antipodal points; asin would return NaN.
        let central_angle = 2.0 * a.sqrt().min(1.0).asin();
        let distance = EARTH_RADIUS_M * central_angle;
        debug_assert!(distance.is_finite() && distance >= 0.0);
        distance
    }

    /// This position as a point on the unit sphere (earth-centred, earth-fixed axes).
    ///
    /// The straight-line (chord) distance between two such points is `2 sin(θ/2)` for central
    /// angle θ, strictly increasing on [0, π]: ordering by chord is ordering by great-circle
    /// distance, so a plain Euclidean R-tree over these points finds the nearest brigades exactly,
    /// with no distortion near the poles or the antimeridian.
    pub fn unit_vector(&self) -> [f64; 3] {
        let (lat, lon) = (self.lat.to_radians(), self.lon.to_radians());
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:.6}, {:.6})", self.lat, self.lon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chord(a: [f64; 3], b: [f64; 3]) -> f64 {
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
    }

    #[test]
    fn validates_ranges() {
        assert!(Position::new(-12.05, -77.04).is_ok());
        assert!(Position::new(90.0, 180.0).is_ok());
        assert!(Position::new(-90.0, -180.0).is_ok());
        assert_eq!(
            Position::new(90.5, 0.0).unwrap_err().to_string(),
            "latitude 90.5 is outside [-90, 90]"
        );
        assert_eq!(
            Position::new(0.0, -181.0).unwrap_err(),
            Error::LongitudeOutOfRange(-181.0)
        );
        assert!(matches!(
            Position::new(f64::NAN, 0.0),
            Err(Error::NotFinite { .. })
        ));
        assert!(Position::new(0.0, f64::INFINITY).is_err());
    }

    #[test]
    fn known_distances() {
        // Plaza Mayor to Plaza San Martín, Lima: about 780 m.
        let mayor = Position::new(-12.0464, -77.0300).unwrap();
        let san_martin = Position::new(-12.0515, -77.0347).unwrap();
        let d = mayor.distance_m(&san_martin);
        assert!((750.0..820.0).contains(&d), "{d}");
        assert_eq!(mayor.distance_m(&mayor), 0.0);
        // One degree of latitude is about 111.2 km on this sphere.
        let a = Position::new(0.0, 0.0).unwrap();
        let b = Position::new(1.0, 0.0).unwrap();
        assert!((a.distance_m(&b) - 111_195.08).abs() < 1.0);
        // Antipodes: half the circumference, not NaN.
        let c = Position::new(0.0, 180.0).unwrap();
        let half = std::f64::consts::PI * EARTH_RADIUS_M;
        assert!((a.distance_m(&c) - half).abs() < 1e-3);
    }

    #[test]
    fn unit_vector_is_on_the_sphere_and_chord_matches_angle() {
        let a = Position::new(-12.05, -77.04).unwrap();
        let b = Position::new(-12.0, -77.1).unwrap();
        let (ua, ub) = (a.unit_vector(), b.unit_vector());
        assert!((chord(ua, [0.0; 3]) - 1.0).abs() < 1e-12);
        let theta = a.distance_m(&b) / EARTH_RADIUS_M;
        assert!((chord(ua, ub) - 2.0 * (theta / 2.0).sin()).abs() < 1e-12);
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let p = Position::new(-12.05, -77.04).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"lat":-12.05,"lon":-77.04}"#);
        assert_eq!(serde_json::from_str::<Position>(&json).unwrap(), p);
        let err = serde_json::from_str::<Position>(r#"{"lat":-120.0,"lon":0.0}"#).unwrap_err();
        assert!(
            err.to_string().contains("latitude -120 is outside"),
            "{err}"
        );
    }
}
