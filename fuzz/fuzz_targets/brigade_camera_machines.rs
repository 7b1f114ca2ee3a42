//! Arbitrary sequences of brigade and camera steps: no panic; a refused brigade step changes
//! nothing; a brigade holds an incident exactly while assigned; a camera keeps its bookmarks
//! within their limit.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

use centinela_core::brigade::{Brigade, Capabilities, Mode};
use centinela_core::camera::{Camera, PtzPreset};
use centinela_core::geo::Position;
use centinela_core::ids::{BrigadeId, ButtonId, CameraId, IncidentId};
use centinela_core::limits::BOOKMARKS_MAX;
use centinela_core::time::Timestamp;

#[derive(Arbitrary, Debug)]
enum Step {
    Dispatch(u8),
    Acknowledge(u8),
    EnRoute,
    OnScene,
    Clear,
    Release,
    OutOfService,
    BackInService,
    GoOffline,
    ComeOnline,
    MoveTo(f64, f64),
    Aim(u8),
    OnTarget,
    ReleaseCamera,
}

fn incident(n: u8) -> IncidentId {
    IncidentId::new(format!("I{}", n % 8)).unwrap()
}

fuzz_target!(|steps: Vec<(u8, Step)>| {
    let mut now = Timestamp::from_millis(1_000);
    let position = Position::new(-12.05, -77.04).unwrap();
    let mut brigade = Brigade::new(
        BrigadeId::new("U1").unwrap(),
        "Unit 1".into(),
        Mode::Foot,
        Capabilities::EMPTY,
        position,
        now,
    );
    let mut camera = Camera::new(
        CameraId::new("C01").unwrap(),
        ButtonId::new("B01").unwrap(),
        PtzPreset::new(10.0, -5.0, 2.0).unwrap(),
        now,
    );
    for (advance, step) in steps.into_iter().take(2_000) {
        now = Timestamp::from_millis(now.as_millis() + u64::from(advance));
        let before = brigade.clone();
        let result = match step {
            Step::Dispatch(n) => Some(brigade.dispatch(incident(n), now)),
            Step::Acknowledge(n) => Some(brigade.acknowledge(&incident(n), now)),
            Step::EnRoute => Some(brigade.en_route(now)),
            Step::OnScene => Some(brigade.on_scene(now)),
            Step::Clear => Some(brigade.clear(now)),
            Step::Release => Some(brigade.release(now)),
            Step::OutOfService => Some(brigade.out_of_service(now)),
            Step::BackInService => Some(brigade.back_in_service(now)),
            Step::GoOffline => Some(brigade.go_offline(now)),
            Step::ComeOnline => Some(brigade.come_online(now)),
            Step::MoveTo(lat, lon) => {
                if let Ok(to) = Position::new(lat, lon) {
                    brigade.move_to(to);
                }
                None
            }
            Step::Aim(n) => {
                let bookmark = camera.aim(incident(n), now);
                assert_eq!(bookmark.incident, incident(n));
                None
            }
            Step::OnTarget => {
                let _ = camera.on_target(now);
                None
            }
            Step::ReleaseCamera => {
                camera.release(now);
                None
            }
        };
        if let Some(Err(_)) = result {
            assert_eq!(brigade, before, "a refused step changed the brigade");
        }
        assert_eq!(
            brigade.incident.is_some(),
            brigade.status.is_assigned(),
            "an incident exactly while assigned: {brigade:?}"
        );
        assert!(camera.bookmarks.len() <= BOOKMARKS_MAX);
    }
});
