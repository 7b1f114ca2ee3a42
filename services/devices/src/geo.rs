//! Flat-earth geometry for moving simulated units over a few kilometres: accurate to well
//! under a metre at city scale, and all the simulator needs.

use centinela_proto::v1::LatLon;

const METRES_PER_DEGREE_LAT: f64 = 111_320.0;

fn metres_per_degree_lon(lat: f64) -> f64 {
    METRES_PER_DEGREE_LAT * lat.to_radians().cos()
}

pub fn distance_m(a: &LatLon, b: &LatLon) -> f64 {
    let dy = (b.lat - a.lat) * METRES_PER_DEGREE_LAT;
    let dx = (b.lon - a.lon) * metres_per_degree_lon(a.lat);
    (dx * dx + dy * dy).sqrt()
}

/// The point `step_m` metres from `from` towards `to`, or `to` when it is closer than that.
pub fn step_towards(from: &LatLon, to: &LatLon, step_m: f64) -> LatLon {
    let distance = distance_m(from, to);
    if distance <= step_m || distance == 0.0 {
        return *to;
    }
    let f = step_m / distance;
    LatLon {
        lat: from.lat + (to.lat - from.lat) * f,
        lon: from.lon + (to.lon - from.lon) * f,
    }
}

/// `from` moved by (`east_m`, `north_m`).
pub fn offset(from: &LatLon, east_m: f64, north_m: f64) -> LatLon {
    LatLon {
        lat: from.lat + north_m / METRES_PER_DEGREE_LAT,
        lon: from.lon + east_m / metres_per_degree_lon(from.lat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_reach_the_target_exactly() {
        let a = LatLon {
            lat: -12.0464,
            lon: -77.03,
        };
        let b = offset(&a, 300.0, 400.0);
        assert!((distance_m(&a, &b) - 500.0).abs() < 0.5);
        let mid = step_towards(&a, &b, 250.0);
        assert!((distance_m(&mid, &b) - 250.0).abs() < 0.5);
        assert_eq!(step_towards(&mid, &b, 1_000.0), b);
    }
}
