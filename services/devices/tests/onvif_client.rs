//! The simulated ONVIF camera against an ONVIF client nobody here wrote: Python's
//! `onvif-zeep-async` (PyPI; zeep with the official ONVIF WSDLs and its own WS-Security
//! digest), installed by scripts/test.sh. It keeps the camera honest to the standard, so the
//! node's driver, tested against the same camera, is tested against what real cameras answer.
//! Without the library the test fails under CI and skips (saying so) elsewhere. curl, another
//! HTTP Digest implementation nobody here wrote, fetches the camera's snapshot too.

use std::process::Command;

use serde_json::Value;
use tokio::net::TcpListener;

use centinela_devices::onvif_camera::{CameraSpec, OnvifCamera};
use centinela_onvif::ptz::Pose;

fn python_client_available() -> bool {
    Command::new("python3")
        .args(["-c", "import onvif, zeep"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_onvif_client_drives_the_simulated_camera() {
    if !python_client_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "Python's onvif-zeep-async is missing (pip install onvif-zeep-async; scripts/test.sh does)"
        );
        eprintln!("onvif-zeep-async not installed: skipping outside CI");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pole = Pose {
        pan: 0.5,
        tilt: -0.2,
        zoom: 0.3,
    };
    let camera = OnvifCamera::start(
        listener,
        CameraSpec {
            name: "CAM-01".into(),
            username: "operador".into(),
            password: "clave-de-prueba".into(),
            home: Pose {
                pan: 0.0,
                tilt: 0.0,
                zoom: 0.0,
            },
            presets: vec![("pole".into(), pole)],
            pole,
        },
    )
    .unwrap();
    let addr = camera.addr();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/onvif_client.py");
    // The client is blocking from here: run it off the runtime that serves the camera.
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([
                script,
                &addr.ip().to_string(),
                &addr.port().to_string(),
                "operador",
                "clave-de-prueba",
                "-0.25",
                "0.4",
                "0.6",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the client failed:\n{stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("client output is not JSON ({e}):\n{stderr}"));
    eprintln!("the client saw: {seen}");

    assert_eq!(seen["profiles"], serde_json::json!(["main"]));
    assert!(seen["utc_year"].as_i64().unwrap() >= 2025);
    assert_eq!(seen["idle"], true, "the move finished");
    let moved: Vec<f64> = seen["moved_to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let target = Pose {
        pan: -0.25,
        tilt: 0.4,
        zoom: 0.6,
    };
    let reported = Pose {
        pan: moved[0],
        tilt: moved[1],
        zoom: moved[2],
    };
    assert!(reported.near(&target, 1e-6), "{reported:?}");
    assert_eq!(
        seen["snapshot_uri"],
        format!("http://{addr}/snapshot.jpg").as_str()
    );
    assert_eq!(seen["stream_uri"], format!("rtsp://{addr}/main").as_str());
    let refused = seen["wrong_password"].as_str().unwrap();
    assert_ne!(refused, "accepted");
    // The snapshot URI, fetched with requests' HTTP Digest authentication: a JPEG each time,
    // the second on the first one's nonce; a wrong password is refused.
    for key in ["snapshot", "snapshot_again"] {
        let snapshot = &seen[key];
        assert_eq!(snapshot["status"], 200, "{key}: {snapshot}");
        assert_eq!(snapshot["type"], "image/jpeg", "{key}");
        assert_eq!(snapshot["cache"], "no-store", "{key}");
        assert_eq!(
            snapshot["jpeg"], true,
            "{key}: starts with FF D8, over 1000 bytes"
        );
    }
    assert_eq!(camera.frames_served(), 2);
    // One challenge for the two good GETs (requests answers the second on the same nonce
    // with nc=2), two for the wrong password (challenged, answered, refused).
    assert_eq!(camera.challenges_sent(), 3);
    assert_eq!(seen["snapshot_wrong_password"], 401);
    // GotoPreset came last: the camera turns to the pole.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !camera.pose().near(&pole, 1e-9) {
        assert!(
            std::time::Instant::now() < deadline,
            "never reached the pole preset"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn curl_available() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs curl with HTTP Digest authentication (it answers the first challenge, SHA-256 here);
/// returns the HTTP status and what it saved.
async fn curl_digest(user_password: String, url: String) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot.jpg");
    let out = file.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args([
                "--silent",
                "--show-error",
                "--max-time",
                "10",
                "--digest",
                "-u",
            ])
            .arg(&user_password)
            .arg("-o")
            .arg(&out)
            .args(["-w", "%{http_code}"])
            .arg(&url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status = String::from_utf8_lossy(&output.stdout).into_owned();
    (status, std::fs::read(&file).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_the_snapshot_with_http_digest() {
    if !curl_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "curl is missing (apt-get install curl; scripts/test.sh does)"
        );
        eprintln!("curl not installed: skipping outside CI");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let home = Pose {
        pan: 0.0,
        tilt: -0.1,
        zoom: 0.0,
    };
    let camera = OnvifCamera::start(
        listener,
        CameraSpec {
            name: "CAM-02".into(),
            username: "operador".into(),
            password: "clave-de-prueba".into(),
            home,
            presets: vec![],
            pole: home,
        },
    )
    .unwrap();
    let (status, jpeg) =
        curl_digest("operador:clave-de-prueba".into(), camera.snapshot_url()).await;
    assert_eq!(status, "200");
    assert!(jpeg.len() > 1000, "{} bytes", jpeg.len());
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "JPEG start of image");
    let mut decoder = jpeg_decoder::Decoder::new(&jpeg[..]);
    decoder.decode().expect("a decodable JPEG");
    let info = decoder.info().unwrap();
    assert_eq!((info.width, info.height), (640, 360));
    eprintln!("curl saved a {}-byte JPEG", jpeg.len());
    assert_eq!(camera.frames_served(), 1);
    assert_eq!(camera.challenges_sent(), 1);

    let (status, _) = curl_digest("operador:otra".into(), camera.snapshot_url()).await;
    assert_eq!(status, "401");
    assert_eq!(camera.frames_served(), 1);
}
