//! Live video in the incident panel, against a camera that is not ours: GStreamer's RTSP
//! server (password-protected, H.264) started by the test, the simulated ONVIF camera naming
//! it in `GetStreamUri`, a real node and a real Chromium decoding with WebCodecs.
//!
//! - after a press the panel decodes at least 25 frames in 5 s (counted by the page's own
//!   hook, `window.centinelaVideo`) and the canvas shows a picture, not a blank;
//! - two consoles watching the camera share one upstream RTSP session (counted at the
//!   camera), and closing both ends it;
//! - a camera killed and restarted: the panel says it is reconnecting, then plays again;
//! - a wrong camera password: the panel says the camera refused the node's account, and
//!   keeps showing the stills;
//! - the test camera's picture carries its capture time, which the panel reads back from
//!   its canvas: the glass-to-glass latency of docs/benchmarks.md;
//! - the camera wall: two incidents on two cameras are two tiles decoding video (the page's
//!   hook `window.centinelaWall`), a tile enlarges to the window and steers its camera, the
//!   panel and the wall share one upstream session, and a closed incident's tile goes;
//! - a browser without WebCodecs plays the same stream through Media Source Extensions, in
//!   the panel (with a bounded buffer) and on the wall.

use std::time::Duration;

use serde_json::json;

use centinela_console::Config;
use centinela_devices::onvif_fleet::OnvifFleet;
use centinela_testkit::browser::{self, Browser, Page};
use centinela_testkit::node::TestNode;
use centinela_testkit::rtsp_camera::RtspCamera;
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
use centinela_testkit::wait;

use crate::{DEADLINE, artifacts_dir, js, no_page_problems, signed_in_live};

/// A node whose camera C-B1 streams from `camera`; the node signs in with `node_password`.
async fn node_watching(camera: &RtspCamera, node_password: &str) -> (TestNode, OnvifFleet) {
    node_with_streams(&[camera], node_password).await
}

/// A node with a button B1, B2… per camera, whose camera C-B1, C-B2… streams from it.
async fn node_with_streams(cameras: &[&RtspCamera], node_password: &str) -> (TestNode, OnvifFleet) {
    let mut scenario = ScenarioBuilder::new("video");
    for i in 0..cameras.len() {
        let offset = i as f64 * 0.001;
        scenario = scenario.button(Button::new(
            format!("B{}", i + 1),
            -12.0464 - offset,
            -77.0300 - offset,
        ));
    }
    let scenario = scenario
        .brigade(Brigade::new("U1", "foot", -12.0465, -77.0301))
        .build();
    crate::node_with_camera_fleet(
        "node-video",
        scenario,
        node_password,
        Config::demo(),
        |fleet| {
            for (i, camera) in cameras.iter().enumerate() {
                fleet
                    .get(&format!("C-B{}", i + 1))
                    .unwrap()
                    .set_stream_uri(Some(&camera.uri()));
            }
        },
    )
    .await
}

/// Opens the console on `incident`'s panel.
async fn open_panel(page: &Page<'_>, node: &TestNode, incident: &str) {
    page.goto(&node.http_url("/?lang=en")).await;
    signed_in_live(page).await;
    crate::select_incident(page, incident).await;
}

async fn frames_decoded(page: &Page<'_>) -> u64 {
    page.eval("window.centinelaVideo.framesDecoded")
        .await
        .unwrap()
        .as_u64()
        .unwrap()
}

/// Waits until the page has decoded more than `after` frames of the camera.
async fn video_plays(page: &Page<'_>, after: u64) {
    page.wait_for(
        "decoded video frames",
        &format!(
            "window.centinelaVideo.state === 'playing' && window.centinelaVideo.framesDecoded > {after}"
        ),
        Duration::from_secs(60),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_panel_plays_the_camera_shares_one_session_and_reconnects() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let Some(mut camera) = RtspCamera::start("centinela", "clave-camara").await else {
        return;
    };
    let (node, fleet) = node_watching(&camera, "clave-camara").await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let first = browser.new_page().await;
    first.goto(&node.http_url("/?lang=en")).await;
    signed_in_live(&first).await;
    let incident = node.press("B1", "video-press-1").await.incident_id;
    open_panel(&first, &node, &incident).await;

    // Decoded by the page's WebCodecs decoder, at the camera's pace: at least 25 in 5 s.
    video_plays(&first, 0).await;
    let rate = first
        .eval(
            "(async () => {
                const before = window.centinelaVideo.framesDecoded;
                await new Promise((ok) => setTimeout(ok, 5000));
                return window.centinelaVideo.framesDecoded - before;
              })()",
        )
        .await
        .unwrap();
    let decoded = rate.as_u64().unwrap();
    assert!(decoded >= 25, "frames decoded in 5 s: {decoded}");
    // The canvas shows the camera's picture (colour bars), not a blank.
    let picture = first
        .eval(
            "(() => {
                const canvas = document.getElementById('cam-video');
                const image = document.getElementById('cam-live');
                const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                const colours = new Set();
                for (let i = 0; i < data.length; i += 4 * 97) colours.add(`${data[i] >> 4},${data[i + 1] >> 4},${data[i + 2] >> 4}`);
                return { width: canvas.width, height: canvas.height, colours: colours.size,
                  canvasShown: !canvas.hidden, stillsShown: !image.hidden && image.hasAttribute('src') };
              })()",
        )
        .await
        .unwrap();
    assert_eq!(picture["width"], json!(640), "{picture}");
    assert_eq!(picture["height"], json!(360), "{picture}");
    assert!(picture["colours"].as_u64().unwrap() >= 5, "{picture}");
    assert_eq!(picture["canvasShown"], json!(true), "{picture}");
    assert_eq!(picture["stillsShown"], json!(false), "{picture}");
    first
        .screenshot(&artifacts_dir().join("console-video.png"))
        .await;

    // A second console on the same camera: one upstream session at the camera.
    let second = browser.new_page().await;
    open_panel(&second, &node, &incident).await;
    video_plays(&second, 0).await;
    assert_eq!(camera.served().sessions, 1, "{:?}", camera.log());
    assert_eq!(camera.served().clients_open(), 1, "{:?}", camera.log());

    // The PTZ controls keep working while the video plays.
    let pose = fleet.get("C-B1").unwrap();
    let before = pose.pose();
    first.click("[data-ptz='right']").await;
    wait::until("the camera panned right", || async {
        (pose.pose().pan > before.pan + 0.03).then_some(())
    })
    .await;

    // The camera dies: both consoles say so; it comes back: both play again, still one session.
    camera.kill().await;
    for page in [&first, &second] {
        page.wait_for(
            "the panel says the video is reconnecting",
            "window.centinelaVideo.state === 'reconnecting'
               && document.getElementById('cam-video-status').textContent.startsWith('Video reconnecting')
               && !document.getElementById('cam-video-status').hidden",
            Duration::from_secs(60),
        )
        .await;
    }
    camera.restart().await;
    for page in [&first, &second] {
        let decoded = frames_decoded(page).await;
        video_plays(page, decoded + 10).await;
    }
    assert_eq!(
        camera.served().sessions,
        2,
        "the restarted camera serves both consoles with one (new) session: {:?}",
        camera.log()
    );
    assert_eq!(camera.served().clients_open(), 1, "{:?}", camera.log());

    // Both consoles leave: the node closes the session (after its linger).
    first.goto("about:blank").await;
    second.goto("about:blank").await;
    wait::until("the camera's session closed", || async {
        (camera.served().clients_open() == 0).then_some(())
    })
    .await;
    no_page_problems(&browser);
    browser.close().await;
    node.shutdown().await;
}

/// The glass-to-glass figure of docs/benchmarks.md: the test camera stamps each picture with
/// its capture time, the panel reads the stamp back from its canvas after drawing the decoded
/// frame. `CENTINELA_GLASS_SIZE` (e.g. `1920x1080`; default 640x360) and
/// `CENTINELA_GLASS_SAMPLES` (default 150, about 5 s) set the run; the figure is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_panel_reads_the_capture_time_in_the_picture_for_a_glass_to_glass_latency() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let size = std::env::var("CENTINELA_GLASS_SIZE").ok().map(|s| {
        let (w, h) = s
            .split_once('x')
            .expect("CENTINELA_GLASS_SIZE is WIDTHxHEIGHT");
        (w.parse().unwrap(), h.parse().unwrap())
    });
    let wanted: usize = std::env::var("CENTINELA_GLASS_SAMPLES")
        .ok()
        .map_or(150, |n| n.parse().unwrap());
    let Some(camera) = RtspCamera::start_sized("centinela", "clave-camara", size).await else {
        return;
    };
    let (node, _fleet) = node_watching(&camera, "clave-camara").await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;
    page.goto(&node.http_url("/")).await;
    signed_in_live(&page).await;
    let incident = node.press("B1", "glass-press").await.incident_id;
    open_panel(&page, &node, &incident).await;
    video_plays(&page, 0).await;
    page.eval("window.centinelaVideo.measureGlass = true")
        .await
        .unwrap();
    page.wait_for(
        "stamped frames read back",
        &format!("window.centinelaVideo.glass.samples.length >= {wanted}"),
        Duration::from_secs(120),
    )
    .await;
    let glass = page.eval("window.centinelaVideo.glass").await.unwrap();
    let mut samples: Vec<u64> = serde_json::from_value(glass["samples"].clone()).unwrap();
    let decoded = frames_decoded(&page).await;
    // The node-to-screen part, as supervisors see it (the last frame's).
    let node_to_screen = page.eval("window.centinelaVideo.latencyMs").await.unwrap();
    // Every stamp that checked decodes to a capture before the frame was drawn (one clock):
    // a misread stamp would land anywhere in 2^32 ms.
    assert!(
        samples.iter().all(|&ms| ms < 60_000),
        "capture to canvas, ms: {samples:?}"
    );
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "glass-to-glass: size={} samples={} p50_ms={} p95_ms={} max_ms={} unreadable={} decoded={decoded} node_to_screen_ms={node_to_screen}",
        size.map_or("640x360".into(), |(w, h): (u32, u32)| format!("{w}x{h}")),
        samples.len(),
        at(0.5),
        at(0.95),
        samples[samples.len() - 1],
        glass["unreadable"],
    );
    no_page_problems(&browser);
    browser.close().await;
    node.shutdown().await;
}

/// The wall's tile of `camera`, as the page's hook reports it.
fn wall_tile(camera: &str) -> String {
    format!(
        "window.centinelaWall.tiles().find((t) => t.camera === {})",
        js(camera)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_wall_plays_every_open_incidents_camera_and_enlarges() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let Some(first_camera) = RtspCamera::start("centinela", "clave-camara").await else {
        return;
    };
    let Some(second_camera) = RtspCamera::start("centinela", "clave-camara").await else {
        return;
    };
    let (node, fleet) = node_with_streams(&[&first_camera, &second_camera], "clave-camara").await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;
    page.goto(&node.http_url("/")).await;
    signed_in_live(&page).await;
    page.click("#wall-open").await;
    page.wait_for(
        "the empty wall",
        "window.centinelaWall.open && window.centinelaWall.tiles().length === 0
           && !document.getElementById('wall-empty').hidden",
        DEADLINE,
    )
    .await;

    // Two incidents on two cameras: two tiles, each decoding its camera's video.
    let first = node.press("B1", "wall-press-1").await.incident_id;
    let second = node.press("B2", "wall-press-2").await.incident_id;
    for camera in ["C-B1", "C-B2"] {
        page.wait_for(
            &format!("{camera}'s tile decoding frames"),
            &format!(
                "(() => {{ const t = {}; return t && t.state === 'playing' && t.framesDecoded > 10; }})()",
                wall_tile(camera)
            ),
            Duration::from_secs(60),
        )
        .await;
    }
    let tiles = page
        .eval("window.centinelaWall.tiles().map((t) => [t.camera, t.incidents, t.mode])")
        .await
        .unwrap();
    assert_eq!(
        tiles,
        json!([["C-B1", [first], "video"], ["C-B2", [second], "video"]]),
        "{tiles}"
    );
    // The canvases show the cameras' pictures (colour bars), not blanks.
    let colours = page
        .eval(
            "[...document.querySelectorAll('#wall-tiles canvas')].map((canvas) => {
                const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                const colours = new Set();
                for (let i = 0; i < data.length; i += 4 * 97) colours.add(`${data[i] >> 4},${data[i + 1] >> 4},${data[i + 2] >> 4}`);
                return canvas.hidden ? 0 : colours.size;
              })",
        )
        .await
        .unwrap();
    let colours: Vec<u64> = serde_json::from_value(colours).unwrap();
    assert_eq!(colours.len(), 2);
    assert!(colours.iter().all(|&c| c >= 5), "{colours:?}");

    // Enlarge: the tile fills the window; its PTZ controls steer the camera.
    page.click("[data-camera='C-B1'] [data-wall-enlarge]").await;
    page.wait_for(
        "the enlarged tile",
        "(() => { const el = document.querySelector('[data-camera=\"C-B1\"]');
            const r = el.getBoundingClientRect();
            return window.centinelaWall.enlarged === 'C-B1' && el.hasAttribute('data-enlarged')
              && r.width >= window.innerWidth * 0.95 && r.height >= window.innerHeight * 0.95; })()",
        DEADLINE,
    )
    .await;
    let pose = fleet.get("C-B1").unwrap();
    let before = pose.pose();
    page.click("[data-camera='C-B1'] [data-wall-ptz='right']")
        .await;
    wait::until("the camera panned right from the wall", || async {
        (pose.pose().pan > before.pan + 0.03).then_some(())
    })
    .await;
    page.screenshot(&artifacts_dir().join("console-wall-enlarged.png"))
        .await;
    page.click("[data-camera='C-B1'] [data-wall-enlarge]").await;
    page.wait_for(
        "the tile back in the wall",
        "window.centinelaWall.enlarged === null && !document.querySelector('[data-enlarged]')",
        DEADLINE,
    )
    .await;
    page.screenshot(&artifacts_dir().join("console-wall.png"))
        .await;

    // The incident panel and the wall watch C-B1 through one upstream session.
    assert_eq!(
        first_camera.served().sessions,
        1,
        "{:?}",
        first_camera.log()
    );
    assert_eq!(
        first_camera.served().clients_open(),
        1,
        "{:?}",
        first_camera.log()
    );
    assert_eq!(
        second_camera.served().sessions,
        1,
        "{:?}",
        second_camera.log()
    );

    // The second incident closes: its tile goes, and with it the node's session (after its
    // linger); the first tile plays on.
    node.operator()
        .mark_prank(centinela_proto::v1::MarkPrankRequest {
            incident_id: second.clone(),
            operator_id: "op-cli".into(),
        })
        .await
        .expect("prank through the CLI's path");
    page.wait_for(
        "C-B2's tile gone",
        &format!(
            "!{} && window.centinelaWall.tiles().length === 1",
            wall_tile("C-B2")
        ),
        DEADLINE,
    )
    .await;
    wait::until("C-B2's session closed", || async {
        (second_camera.served().clients_open() == 0).then_some(())
    })
    .await;
    let decoded = page
        .eval(&format!("{}.framesDecoded", wall_tile("C-B1")))
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    page.wait_for(
        "C-B1's tile still playing",
        &format!("{}.framesDecoded > {}", wall_tile("C-B1"), decoded + 10),
        Duration::from_secs(60),
    )
    .await;

    no_page_problems(&browser);
    browser.close().await;
    node.shutdown().await;
}

/// A browser without WebCodecs (Chromium with `VideoDecoder` removed before the page's scripts
/// run) plays the same WebSocket's access units through Media Source Extensions: fmp4.js's
/// fragmented MP4 in a `<video>`, in place of the canvas, with a bounded buffer; and so does
/// the wall's tile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_webcodecs_the_panel_plays_through_media_source_extensions() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let Some(camera) = RtspCamera::start("centinela", "clave-camara").await else {
        return;
    };
    let (node, _fleet) = node_watching(&camera, "clave-camara").await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;
    page.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": "delete window.VideoDecoder;" }),
    )
    .await
    .unwrap();
    page.goto(&node.http_url("/")).await;
    signed_in_live(&page).await;
    assert_eq!(
        page.eval("[window.centinelaVideo.mode, 'VideoDecoder' in window]")
            .await
            .unwrap(),
        json!(["mse", false])
    );
    let incident = node.press("B1", "video-press-mse").await.incident_id;
    open_panel(&page, &node, &incident).await;

    let shown = page
        .wait_for(
            "25 frames shown by the MSE <video>",
            "(() => { const v = document.getElementById('cam-mse');
                return window.centinelaVideo.mode === 'mse' && window.centinelaVideo.framesShown >= 25
                  && v.videoWidth > 0 && !v.hidden
                  ? { width: v.videoWidth, height: v.videoHeight,
                      canvasShown: !document.getElementById('cam-video').hidden,
                      stillsShown: !document.getElementById('cam-live').hidden,
                      state: window.centinelaVideo.state }
                  : null; })()",
            Duration::from_secs(90),
        )
        .await;
    assert_eq!(shown["width"], json!(640), "{shown}");
    assert_eq!(shown["height"], json!(360), "{shown}");
    assert_eq!(shown["canvasShown"], json!(false), "{shown}");
    assert_eq!(shown["stillsShown"], json!(false), "{shown}");
    assert_eq!(shown["state"], json!("playing"), "{shown}");
    page.screenshot(&artifacts_dir().join("console-video-mse.png"))
        .await;

    // The buffer stays bounded: after 15 s of playback, what is kept behind the playhead is
    // about fmp4.js's 6 s (checked with room to spare for a busy machine), not everything.
    let kept = page
        .wait_for(
            "15 s of MSE playback",
            "(() => { const v = document.getElementById('cam-mse');
                return v.buffered.length > 0 && v.currentTime >= 15
                  ? { behind: v.currentTime - v.buffered.start(0), ranges: v.buffered.length } : null; })()",
            Duration::from_secs(120),
        )
        .await;
    assert!(kept["behind"].as_f64().unwrap() <= 9.0, "{kept}");

    // The wall's tile plays the same way.
    page.click("#wall-open").await;
    page.wait_for(
        "the wall's tile showing frames through MSE",
        &format!(
            "(() => {{ const t = {}; const v = document.querySelector('[data-camera=\"C-B1\"] video');
                return t && t.state === 'playing' && t.framesDecoded >= 25 && v && !v.hidden && v.videoWidth > 0; }})()",
            wall_tile("C-B1")
        ),
        Duration::from_secs(90),
    )
    .await;
    no_page_problems(&browser);
    browser.close().await;
    node.shutdown().await;
    drop(camera);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_camera_password_is_shown_as_refused() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let Some(camera) = RtspCamera::start("centinela", "clave-camara").await else {
        return;
    };
    let (node, _fleet) = node_watching(&camera, "otra-clave").await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;
    page.goto(&node.http_url("/?lang=en")).await;
    signed_in_live(&page).await;
    let incident = node.press("B1", "video-press-2").await.incident_id;
    open_panel(&page, &node, &incident).await;
    let shown = page
        .wait_for(
            "the refusal in the panel",
            "(() => { const s = document.getElementById('cam-video-status');
                return s && !s.hidden && s.dataset.state === 'refused' ? s.textContent : null; })()",
            Duration::from_secs(60),
        )
        .await;
    let shown = shown.as_str().unwrap();
    assert!(
        shown.starts_with("Video refused by the camera: the camera refused the node's account"),
        "{shown}"
    );
    assert!(shown.contains("401"), "{shown}");
    assert!(shown.contains("CENTINELA_ONVIF_PASSWORD"), "{shown}");
    assert!(!shown.contains("otra-clave"), "{shown}");
    // The stills stay (the ONVIF account works for them).
    page.wait_for(
        "the stills under the refusal",
        "(() => { const i = document.getElementById('cam-live');
            return !i.hidden && i.naturalWidth > 0; })()",
        DEADLINE,
    )
    .await;
    assert_eq!(frames_decoded(&page).await, 0);
    page.screenshot(&artifacts_dir().join("console-video-refused.png"))
        .await;
    no_page_problems(&browser);
    browser.close().await;
    node.shutdown().await;
    drop(camera);
}

/// The WebSocket route's refusals, over plain HTTP (no browser, no RTSP camera needed): not
/// signed in, another site's page, an unknown camera, a camera without a stream; and a view
/// that opens starts with the stream's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_video_socket_refuses_clearly_and_starts_with_a_status() {
    let scenario = ScenarioBuilder::new("video-http")
        .button(Button::new("B1", -12.0464, -77.0300))
        .button(Button::new("B2", -12.0470, -77.0310))
        .brigade(Brigade::new("U1", "foot", -12.0465, -77.0301))
        .build();
    let (node, _fleet) = crate::node_with_camera_fleet(
        "node-video-http",
        scenario,
        "clave-camara",
        crate::operators(),
        // Nothing answers RTSP there: the view opens and says so.
        |fleet| {
            fleet
                .get("C-B2")
                .unwrap()
                .set_stream_uri(Some("rtsp://127.0.0.1:9/main"));
        },
    )
    .await;
    let addr = node.http_addr();
    let login = json!({ "operator": crate::ANA.0, "password": crate::ANA.1 }).to_string();
    let ana = crate::http::post(addr, "/api/login", None, &login)
        .await
        .cookie();
    let ana = Some(ana.as_str());

    let reply = crate::http::upgrade(addr, "/api/cameras/C-B2/live.ws", None, None).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    let evil = Some("http://evil.example");
    let reply = crate::http::upgrade(addr, "/api/cameras/C-B2/live.ws", ana, evil).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "permission_denied");
    let reply = crate::http::upgrade(addr, "/api/cameras/NOPE/live.ws", ana, None).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    // C-B1 names no stream (ONVIF GetStreamUri refused) once its driver has connected.
    wait::until("C-B1 online without a stream", || async {
        let cameras = node
            .operator()
            .list_cameras(centinela_proto::v1::ListCamerasRequest::default())
            .await
            .ok()?
            .into_inner()
            .cameras;
        cameras
            .iter()
            .find(|c| c.id == "C-B1" && c.online)
            .map(|c| assert_eq!(c.stream_uri, None))
    })
    .await;
    let reply = crate::http::upgrade(addr, "/api/cameras/C-B1/live.ws", ana, None).await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("live.mjpeg"), "{message}");

    wait::until("C-B2's stream URI learned", || async {
        let cameras = node
            .operator()
            .list_cameras(centinela_proto::v1::ListCamerasRequest::default())
            .await
            .ok()?
            .into_inner()
            .cameras;
        cameras
            .iter()
            .find(|c| c.id == "C-B2" && c.stream_uri.is_some())
            .map(|_| ())
    })
    .await;
    let origin = format!("http://{addr}");
    let reply = crate::http::upgrade(addr, "/api/cameras/C-B2/live.ws", ana, Some(&origin)).await;
    assert_eq!(reply.status, 101, "{}", reply.body);
    let first: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(first["type"], "status", "{first}");
    // Nothing answers at port 9: connecting, or already reconnecting with the reason.
    assert!(
        first["state"] == "connecting" || first["state"] == "reconnecting",
        "{first}"
    );
    node.shutdown().await;
}
