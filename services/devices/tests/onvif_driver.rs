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
            username: "admin".into(),
            password: "s3cret".into(),
            home: Pose {
                pan: 0.0,
                tilt: 0.0,
                zoom: 0.0,
            },
            presets: vec![("pole".into(), POLE)],
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
