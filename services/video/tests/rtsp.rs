//! The node's RTSP upstreams against a camera that is not ours (GStreamer's RTSP server,
//! digest auth, RTP over TCP): viewers share one session, get decodable frames, skip to a key
//! frame when they fall behind, see a refused password, a camera that goes and comes back, and
//! one that hangs without closing its connection.

use std::sync::Arc;
use std::time::Duration;

use centinela_core::ids::CameraId;
use centinela_onvif::credentials::Credentials;
use centinela_testkit::rtsp_camera::RtspCamera;
use centinela_testkit::wait;
use centinela_video::{Event, Status, Video, Viewer};

const DEADLINE: Duration = Duration::from_secs(60);

fn camera_id() -> CameraId {
    CameraId::new("C-1").unwrap()
}

/// The next event that is not a status, within the deadline.
async fn next_media(viewer: &mut Viewer) -> Event {
    loop {
        let event = tokio::time::timeout(DEADLINE, viewer.next())
            .await
            .expect("an event within the deadline")
            .expect("the stream goes on");
        if !matches!(event, Event::Status(_)) {
            return event;
        }
    }
}

/// Waits for `wanted` among the viewer's statuses; frames in between are ignored.
async fn status_until(viewer: &mut Viewer, wanted: impl Fn(&Status) -> bool) -> Status {
    loop {
        let event = tokio::time::timeout(DEADLINE, viewer.next())
            .await
            .expect("a status within the deadline")
            .expect("the stream goes on");
        if let Event::Status(status) = event
            && wanted(&status)
        {
            return status;
        }
    }
}

/// A first frame: the decoder configuration, then a key frame.
async fn starts_with_config_and_key_frame(viewer: &mut Viewer) {
    let Event::Config(parameters) = next_media(viewer).await else {
        panic!("the first media event configures the decoder");
    };
    assert!(
        parameters.codec.starts_with("avc1.") && parameters.codec.len() == 11,
        "{}",
        parameters.codec
    );
    assert_eq!((parameters.width, parameters.height), (640, 360));
    assert_eq!(parameters.description[0], 1, "an avcC record (version 1)");
    let Event::Frame(frame) = next_media(viewer).await else {
        panic!("a frame follows its configuration");
    };
    assert!(frame.key, "a viewer starts at a key frame");
    assert!(Arc::ptr_eq(&frame.parameters, &parameters));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_share_one_session_which_closes_after_the_last_leaves() {
    let Some(camera) = RtspCamera::start("centinela", "clave-camara").await else {
        return;
    };
    let video = Video::new(Credentials::shared("centinela", "clave-camara"));
    let mut first = video.watch(&camera_id(), &camera.uri()).unwrap();
    starts_with_config_and_key_frame(&mut first).await;
    let mut second = video.watch(&camera_id(), &camera.uri()).unwrap();
    starts_with_config_and_key_frame(&mut second).await;
    // Frames keep coming, in order, to both.
    let mut last = -1;
    for _ in 0..30 {
        if let Event::Frame(frame) = next_media(&mut first).await {
            assert!(frame.timestamp_us > last, "timestamps increase");
            last = frame.timestamp_us;
        }
    }
    assert_eq!(video.upstreams(), 1);
    assert_eq!(video.sessions_opened(), 1);
    assert_eq!(camera.served().sessions, 1, "{:?}", camera.log());

    // A viewer that stops reading falls behind the bounded broadcast and, when it reads
    // again, skips to the next key frame instead of replaying what it missed.
    let mut slow = video.watch(&camera_id(), &camera.uri()).unwrap();
    for _ in 0..(centinela_video::limits::BROADCAST_FRAMES_MAX + 30) {
        next_media(&mut first).await;
    }
    starts_with_config_and_key_frame(&mut slow).await;
    assert!(slow.skipped() > 0, "the slow viewer skipped frames");

    drop((first, second, slow));
    wait::until("the camera's session closed after the linger", || async {
        (camera.served().clients_open() == 0).then_some(())
    })
    .await;
    assert_eq!(video.upstreams(), 0);
    assert_eq!(camera.served().sessions, 1, "{:?}", camera.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_with_a_reason() {
    let Some(camera) = RtspCamera::start("centinela", "clave-camara").await else {
        return;
    };
    let video = Video::new(Credentials::shared("centinela", "otra-clave"));
    let mut viewer = video.watch(&camera_id(), &camera.uri()).unwrap();
    let status = status_until(&mut viewer, |s| !matches!(s, Status::Connecting)).await;
    let Status::Refused { reason } = status else {
        panic!("refused, not {status:?}");
    };
    assert!(reason.contains("401"), "{reason}");
    assert!(reason.contains("CENTINELA_ONVIF_PASSWORD"), "{reason}");
    assert!(!reason.contains("otra-clave"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_goes_and_comes_back_is_reconnected() {
    let Some(mut camera) = RtspCamera::start("centinela", "clave-camara").await else {
        return;
    };
    let video = Video::new(Credentials::shared("centinela", "clave-camara"));
    let mut viewer = video.watch(&camera_id(), &camera.uri()).unwrap();
    starts_with_config_and_key_frame(&mut viewer).await;
    camera.kill().await;
    let status = status_until(&mut viewer, |s| matches!(s, Status::Reconnecting { .. })).await;
    println!("while down: {status:?}");
    camera.restart().await;
    status_until(&mut viewer, |s| *s == Status::Playing).await;
    starts_with_config_and_key_frame(&mut viewer).await;
    assert_eq!(video.sessions_opened(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_hangs_is_noticed_and_reopened() {
    let Some(camera) = RtspCamera::start("centinela", "clave-camara").await else {
        return;
    };
    let video = Video::new(Credentials::shared("centinela", "clave-camara"));
    let mut viewer = video.watch(&camera_id(), &camera.uri()).unwrap();
    starts_with_config_and_key_frame(&mut viewer).await;
    // Connected but silent: only the stall bound notices.
    camera.freeze();
    let status = status_until(&mut viewer, |s| matches!(s, Status::Reconnecting { .. })).await;
    camera.thaw();
    let Status::Reconnecting { reason } = status else {
        unreachable!()
    };
    assert!(
        reason.starts_with("no video from the camera for"),
        "{reason}"
    );
    status_until(&mut viewer, |s| *s == Status::Playing).await;
    starts_with_config_and_key_frame(&mut viewer).await;
}

#[test]
fn uris_that_are_not_rtsp_are_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let video = Video::new(Credentials::default());
        let e = video
            .watch(&camera_id(), "http://127.0.0.1/main")
            .err()
            .unwrap();
        assert!(e.to_string().contains("rtsp"), "{e}");
        assert_eq!(video.upstreams(), 0);
    });
}
