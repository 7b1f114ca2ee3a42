//! The node's ONVIF client (`centinela_onvif::client`) against cameras over real HTTP on
//! loopback: the simulated camera (the same one an independent client drives in
//! onvif_client.rs), and cameras that misbehave — a wrong password, one that accepts the
//! connection and never answers, one that answers garbage. Each failure is a bounded error
//! naming what went wrong, never a hang or a panic.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use tokio::net::TcpListener;

use centinela_core::time::Timestamp;
use centinela_devices::onvif_camera::{CameraSpec, OnvifCamera};
use centinela_onvif::Error;
use centinela_onvif::client::{Client, EXCHANGE_TIMEOUT, Target};
use centinela_onvif::ptz::Pose;

fn now() -> Timestamp {
    Timestamp::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    )
}

const POLE: Pose = Pose {
    pan: 0.5,
    tilt: -0.2,
    zoom: 0.3,
};

async fn camera() -> OnvifCamera {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    OnvifCamera::start(
        listener,
        CameraSpec {
            name: "CAM-01".into(),
            username: "admin".into(),
            password: "s3cret".into(),
            home: Pose {
                pan: 0.0,
                tilt: 0.0,
                zoom: 0.0,
            },
            presets: vec![("pole".into(), POLE)],
            pole: POLE,
        },
    )
    .unwrap()
}

fn client(device_url: String, password: &str) -> Client {
    Client::new(Target {
        device_url,
        username: "admin".into(),
        password: password.into(),
    })
}

/// Polls the camera's status until idle; returns where it stopped.
async fn until_idle(client: &Client) -> Pose {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.status().await.expect("status");
        if !status.moving {
            return status.pose.expect("a position");
        }
        assert!(Instant::now() < deadline, "the camera never stopped moving");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_finds_the_camera_moves_it_and_reads_its_status() {
    let cam = camera().await;
    let mut client = client(cam.device_url(), "s3cret");
    let session = client.connect(now()).await.expect("connected").clone();
    assert_eq!(session.profile, "main");
    assert!(
        session
            .endpoints
            .ptz
            .as_deref()
            .unwrap()
            .ends_with("/onvif/ptz_service")
    );

    client.goto(Some("pole"), POLE).await.expect("GotoPreset");
    assert!(until_idle(&client).await.near(&POLE, 1e-9));
    assert!(cam.pose().near(&POLE, 1e-9));

    let wide = Pose {
        pan: -0.75,
        tilt: 0.1,
        zoom: 0.0,
    };
    client.goto(None, wide).await.expect("AbsoluteMove");
    assert!(until_idle(&client).await.near(&wide, 1e-9));

    let snapshot = client.snapshot_uri().await.expect("snapshot URI");
    assert_eq!(snapshot, format!("http://{}/snapshot.jpg", cam.addr()));
    let stream = client.stream_uri().await.expect("stream URI");
    assert!(stream.starts_with("rtsp://"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_with_the_cameras_reason() {
    let cam = camera().await;
    let mut client = client(cam.device_url(), "guess");
    let refused = client.connect(now()).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Fault { code, reason } if code == "ter:NotAuthorized" && reason.contains("password")),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_stalls_or_answers_garbage_is_a_bounded_error() {
    // Accepts connections and never answers.
    let stalled = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalled_addr = stalled.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = stalled.accept().await.unwrap();
            held.push(socket);
        }
    });
    let started = Instant::now();
    let mut silent = client(format!("http://{stalled_addr}/onvif/device_service"), "x");
    let error = silent.connect(now()).await.unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(
        started.elapsed() < EXCHANGE_TIMEOUT * 4,
        "bounded: {:?}",
        started.elapsed()
    );
    holder.abort();

    // Answers every request with garbage, then with a page that is not SOAP.
    for answer in ["<<<not xml", "<html><body>login</body></html>"] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/onvif/device_service", post(move || async move { answer }));
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut confused = client(format!("http://{addr}/onvif/device_service"), "x");
        let error = confused.connect(now()).await.unwrap_err();
        assert!(
            matches!(error, Error::Xml(_) | Error::Unexpected(_)),
            "{answer}: {error:?}"
        );
        server.abort();
    }

    // Nothing listening at all.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let mut gone = client(format!("http://{closed_addr}/onvif/device_service"), "x");
    assert!(matches!(
        gone.connect(now()).await.unwrap_err(),
        Error::Transport(_)
    ));
}

/// Decodes a snapshot, checking it is the simulated camera's 640 × 360 JPEG.
fn decoded(jpeg: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    assert_eq!(&jpeg[jpeg.len() - 2..], &[0xFF, 0xD9]);
    let mut decoder = jpeg_decoder::Decoder::new(jpeg);
    let pixels = decoder.decode().expect("a decodable JPEG");
    let info = decoder.info().unwrap();
    assert_eq!((info.width, info.height), (640, 360));
    pixels
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_come_behind_digest_authentication_one_challenge_for_many() {
    let cam = camera().await;
    let mut client = client(cam.device_url(), "s3cret");
    client.connect(now()).await.expect("connected");
    client.goto(Some("pole"), POLE).await.expect("GotoPreset");
    until_idle(&client).await;
    // Sent to its pole, the camera shows a caller there: the simulated press. Nobody, first.
    cam.set_caller(false);

    let first = client.snapshot().await.expect("a snapshot");
    let empty = decoded(&first);
    assert_eq!(cam.challenges_sent(), 1, "the first snapshot is challenged");
    assert_eq!(cam.frames_served(), 1);
    let mut last = first.clone();
    for _ in 0..4 {
        last = client.snapshot().await.expect("a snapshot");
    }
    assert_eq!(
        cam.challenges_sent(),
        1,
        "later snapshots answer the same challenge again (nc 2, 3, ...)"
    );
    assert_eq!(cam.frames_served(), 5);
    assert_ne!(first, last, "every frame is a new picture");

    // Someone at the button: the picture shows them beside the pole.
    cam.set_caller(true);
    let there = decoded(&client.snapshot().await.expect("a snapshot"));
    let beside: u64 = (100..330)
        .flat_map(|y| (360..520).map(move |x| (y * 640 + x) * 3))
        .flat_map(|i| i..i + 3)
        .map(|i| u64::from(empty[i].abs_diff(there[i])))
        .sum();
    // A mean difference of 10 per channel over that area at least.
    assert!(beside > 160 * 230 * 3 * 10, "the caller is drawn: {beside}");

    // Another client is challenged on its own; the first keeps its nonce.
    let other = client_with_uri(&cam, "s3cret");
    other.snapshot().await.expect("a snapshot");
    assert_eq!(cam.challenges_sent(), 2);
    client.snapshot().await.expect("a snapshot");
    assert_eq!(cam.challenges_sent(), 2);
}

fn client_with_uri(cam: &OnvifCamera, password: &str) -> Client {
    let client = client(cam.device_url(), password);
    client.use_snapshot_uri(&cam.snapshot_url());
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_gets_no_snapshot_but_an_unauthorized_error() {
    let cam = camera().await;
    let refused = client_with_uri(&cam, "guess").snapshot().await.unwrap_err();
    assert!(matches!(refused, Error::Unauthorized(_)), "{refused:?}");
    let message = refused.to_string();
    assert!(
        message.starts_with("unauthorized (HTTP 401)") && message.contains("password"),
        "{message}"
    );
    assert_eq!(cam.frames_served(), 0);
    assert_eq!(
        cam.challenges_sent(),
        2,
        "challenged, answered wrong, refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_is_no_jpeg_is_refused() {
    use axum::http::header;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/page",
            axum::routing::get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html>") }),
        )
        .route(
            "/gif",
            axum::routing::get(|| async { ([(header::CONTENT_TYPE, "image/jpeg")], "GIF89a....") }),
        )
        .route(
            "/huge",
            axum::routing::get(|| async {
                let mut body = vec![0u8; centinela_onvif::client::SNAPSHOT_BYTES_MAX + 1];
                body[..2].copy_from_slice(&[0xFF, 0xD8]);
                ([(header::CONTENT_TYPE, "image/jpeg")], body)
            }),
        )
        .route(
            "/gone",
            axum::routing::get(|| async { axum::http::StatusCode::NOT_FOUND }),
        );
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    for path in ["page", "gif", "huge"] {
        let client = client(format!("http://{addr}/onvif/device_service"), "x");
        client.use_snapshot_uri(&format!("http://{addr}/{path}"));
        let error = client.snapshot().await.unwrap_err();
        assert!(matches!(error, Error::Unexpected(_)), "{path}: {error:?}");
    }
    let client = client(format!("http://{addr}/onvif/device_service"), "x");
    client.use_snapshot_uri(&format!("http://{addr}/gone"));
    let error = client.snapshot().await.unwrap_err();
    assert!(
        matches!(&error, Error::Transport(m) if m.contains("404")),
        "{error:?}"
    );
    server.abort();
}
