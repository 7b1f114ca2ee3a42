//! Cameras driven over ONVIF by an in-process node, against cameras on real HTTP sockets: the
//! simulated ONVIF camera (the one an independent ONVIF client checks in the devices tests),
//! one whose password is wrong, one that accepts connections and never answers, and one that
//! answers garbage. A press aims its camera through `GotoPreset` or `AbsoluteMove`, and the
//! camera is `on_target` once its PTZ status reports the move done; a failing camera is
//! offline with the reason, and the others are unaffected.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use centinela_devices::onvif_camera::{CameraSpec, OnvifCamera};
use centinela_node::CameraCredentials;
use centinela_onvif::ptz::Pose;
use centinela_proto::v1;
use centinela_testkit::node::{NodeBuilder, TestNode};
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
use centinela_testkit::wait;

const USER: &str = "centinela";
const PASSWORD: &str = "correct horse";

/// A preset token's pose on the camera: what an installer saved, not what the scenario says
/// (the scenario's pan/tilt are for `AbsoluteMove`, and ignored when a token is named).
const SAVED_POLE: Pose = Pose {
    pan: -0.4,
    tilt: -0.3,
    zoom: 0.2,
};

fn spec(password: &str) -> CameraSpec {
    CameraSpec {
        name: "CAM".into(),
        pole: SAVED_POLE,
        username: USER.into(),
        password: password.into(),
        home: Pose {
            pan: 0.0,
            tilt: 0.0,
            zoom: 0.0,
        },
        presets: vec![("pole".into(), SAVED_POLE)],
    }
}

async fn sim_camera(password: &str) -> OnvifCamera {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    OnvifCamera::start(listener, spec(password)).unwrap()
}

/// A "camera" that accepts connections and never answers.
async fn stalled_camera() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/onvif/device_service",
        listener.local_addr().unwrap()
    );
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

/// A "camera" that answers every request with HTTP 200 and a body that is not XML.
async fn garbage_camera() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/onvif/device_service",
        listener.local_addr().unwrap()
    );
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = socket.read(&mut buf).await;
                let body = "<?xml version=\"1.0\"?><Envelope><Body><unclosed";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/soap+xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, task)
}

async fn cameras(node: &TestNode) -> Vec<v1::Camera> {
    node.operator()
        .list_cameras(v1::ListCamerasRequest {})
        .await
        .expect("cameras listed")
        .into_inner()
        .cameras
}

async fn wait_camera(
    node: &TestNode,
    id: &str,
    what: &str,
    condition: impl Fn(&v1::Camera) -> bool,
) -> v1::Camera {
    wait::until(format!("camera {id}: {what}"), || async {
        let camera = cameras(node)
            .await
            .into_iter()
            .find(|c| c.id == id)
            .expect("camera listed");
        if condition(&camera) {
            Ok(camera)
        } else {
            Err(format!("{camera:?}"))
        }
    })
    .await
}

fn on_target(camera: &v1::Camera) -> bool {
    camera.state == v1::CameraState::OnTarget as i32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presses_aim_onvif_cameras_and_failing_cameras_are_offline_with_the_reason() {
    let absolute = sim_camera(PASSWORD).await;
    let preset = sim_camera(PASSWORD).await;
    let locked = sim_camera("another password").await;
    let (stalled_url, _stalled) = stalled_camera().await;
    let (garbage_url, _garbage) = garbage_camera().await;
    // A port nothing listens on yet: the camera is down when the node starts.
    let late_addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let scenario = ScenarioBuilder::new("onvif")
        .button(
            Button::new("B1", -12.0464, -77.0300)
                .aim(90.0, -45.0)
                .onvif(absolute.device_url(), None),
        )
        .button(Button::new("B2", -12.0466, -77.0302).onvif(preset.device_url(), Some("pole")))
        .button(Button::new("B3", -12.0468, -77.0304).onvif(locked.device_url(), None))
        .button(Button::new("B4", -12.0470, -77.0306).onvif(stalled_url, None))
        .button(Button::new("B5", -12.0472, -77.0308).onvif(garbage_url, None))
        .button(Button::new("B6", -12.0474, -77.0310))
        .button(
            Button::new("B7", -12.0476, -77.0312)
                .onvif(format!("http://{late_addr}/onvif/device_service"), None),
        )
        .brigade(Brigade::new("U1", "foot", -12.0465, -77.0301))
        .build();
    let node = NodeBuilder::new("n1")
        .scenario(scenario)
        .cameras(CameraCredentials::shared(USER, PASSWORD))
        .start()
        .await;

    // Every ONVIF camera is driven; the native one waits for its device.
    let listed = cameras(&node).await;
    let driver = |id: &str| {
        let c = listed.iter().find(|c| c.id == id).unwrap();
        c.driver.clone()
    };
    assert_eq!(driver("C-B1"), "onvif");
    assert_eq!(driver("C-B6"), "native");
    let good = wait_camera(&node, "C-B1", "online", |c| c.online).await;
    assert!(
        good.stream_uri
            .as_deref()
            .is_some_and(|u| u.starts_with("rtsp://")),
        "the stream URI is learned: {good:?}"
    );
    wait_camera(&node, "C-B2", "online", |c| c.online).await;

    // Wrong password: offline, unauthorized, said so.
    let locked_camera = wait_camera(&node, "C-B3", "offline with a reason", |c| {
        !c.online && c.fault.is_some()
    })
    .await;
    let fault = locked_camera.fault.unwrap();
    assert!(fault.contains("NotAuthorized"), "{fault}");
    // Stalled: a bounded wait, then offline with a timeout.
    let stalled = wait_camera(&node, "C-B4", "offline with a reason", |c| {
        !c.online && c.fault.is_some()
    })
    .await;
    let fault = stalled.fault.unwrap();
    assert!(fault.contains("no answer within"), "{fault}");
    // Garbage: offline, malformed XML.
    let garbage = wait_camera(&node, "C-B5", "offline with a reason", |c| {
        !c.online && c.fault.is_some()
    })
    .await;
    let fault = garbage.fault.unwrap();
    assert!(fault.contains("malformed XML"), "{fault}");

    // Presses: AbsoluteMove to the scenario's pan/tilt, GotoPreset to the saved token. The
    // failing cameras' presses are acknowledged like any other.
    let mut incidents = Vec::new();
    for (button, press) in [("B1", "p1"), ("B2", "p2"), ("B4", "p4"), ("B5", "p5")] {
        let reply = node.press(button, press).await;
        assert!(!reply.incident_id.is_empty());
        incidents.push(reply.incident_id);
    }
    wait_camera(&node, "C-B1", "on target", on_target).await;
    // The incident records where its footage is: the camera's stream.
    let recorded = node
        .wait_incident(&incidents[0], "the stream URI recorded", |i| {
            i.stream_uri.is_some()
        })
        .await;
    assert_eq!(recorded.stream_uri, good.stream_uri);
    wait_camera(&node, "C-B2", "on target", on_target).await;
    let expected =
        Pose::from_preset(&centinela_core::camera::PtzPreset::new(90.0, -45.0, 2.0).unwrap());
    assert!(
        absolute.pose().near(&expected, 0.01),
        "AbsoluteMove reached {:?}, expected {expected:?}",
        absolute.pose()
    );
    assert!(
        preset.pose().near(&SAVED_POLE, 0.01),
        "GotoPreset reached {:?}",
        preset.pose()
    );
    // The failing cameras stay aiming (the aim waits for them), and offline.
    for id in ["C-B4", "C-B5"] {
        let camera = wait_camera(&node, id, "aiming", |c| {
            c.state == v1::CameraState::Aiming as i32
        })
        .await;
        assert!(!camera.online);
    }

    // An operator's manual move, then back to the button (its preset token).
    let mut operator = node.operator();
    let to = v1::PtzPreset {
        pan_deg: -90.0,
        tilt_deg: 0.0,
        zoom: 1.0,
    };
    operator
        .steer_camera(v1::SteerCameraRequest {
            camera_id: "C-B2".into(),
            to: Some(to),
        })
        .await
        .expect("steered");
    let away = Pose {
        pan: -0.5,
        tilt: 0.0,
        zoom: 0.0,
    };
    wait::until("the camera turned away", || async {
        preset.pose().near(&away, 0.01)
    })
    .await;
    operator
        .steer_camera(v1::SteerCameraRequest {
            camera_id: "C-B2".into(),
            to: None,
        })
        .await
        .expect("back to the button");
    wait::until("the camera back at its pole", || async {
        preset.pose().near(&SAVED_POLE, 0.01)
    })
    .await;
    // Refused with the reason: a native camera, an offline one, a preset out of range.
    let refused = |camera: &str, to: Option<v1::PtzPreset>| {
        let mut operator = node.operator();
        let camera = camera.to_string();
        async move {
            operator
                .steer_camera(v1::SteerCameraRequest {
                    camera_id: camera,
                    to,
                })
                .await
                .expect_err("refused")
        }
    };
    let native = refused("C-B6", None).await;
    assert_eq!(native.code(), tonic::Code::FailedPrecondition, "{native:?}");
    let offline = refused("C-B3", None).await;
    assert_eq!(offline.code(), tonic::Code::FailedPrecondition);
    assert!(offline.message().contains("offline"), "{offline:?}");
    let out_of_range = refused(
        "C-B1",
        Some(v1::PtzPreset {
            pan_deg: 400.0,
            tilt_deg: 0.0,
            zoom: 1.0,
        }),
    )
    .await;
    assert_eq!(out_of_range.code(), tonic::Code::InvalidArgument);

    // A camera that was down when its button was pressed gets the aim once it answers.
    let late = wait_camera(&node, "C-B7", "offline, unreachable", |c| {
        !c.online && c.fault.is_some()
    })
    .await;
    assert!(late.fault.unwrap().contains("unreachable"));
    node.press("B7", "p7").await;
    wait_camera(&node, "C-B7", "aiming", |c| {
        c.state == v1::CameraState::Aiming as i32
    })
    .await;
    let listener = TcpListener::bind(late_addr)
        .await
        .expect("the port is free again");
    let back = OnvifCamera::start(listener, spec(PASSWORD)).unwrap();
    let camera = wait_camera(&node, "C-B7", "back, on target", on_target).await;
    assert!(camera.online && camera.fault.is_none(), "{camera:?}");
    assert!(back.pose().near(
        &Pose::from_preset(&centinela_core::camera::PtzPreset::new(0.0, -10.0, 2.0).unwrap()),
        0.01
    ));
    node.shutdown().await;
}
