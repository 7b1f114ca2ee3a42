//! The camera's picture in the incident panel, against simulated ONVIF cameras over real HTTP
//! and a real Chromium: after a press the live view receives frames (distinct JPEGs over the
//! MJPEG endpoint, and the panel's `<img>` decodes to a size), the PTZ buttons move the camera
//! (the simulated camera's pose changes), and "save still" adds a hash-chained audit entry
//! whose image the node serves back byte for byte with the recorded SHA-256.

use std::time::Duration;

use serde_json::json;

use centinela_console::Config;
use centinela_testkit::browser::{self, Browser};
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};

use crate::{DEADLINE, artifacts_dir, js, no_page_problems, signed_in_live};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_panel_shows_the_camera_live_steers_it_and_saves_stills() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let scenario = ScenarioBuilder::new("cameras")
        .button(
            Button::new("B1", -12.0464, -77.0300)
                .aim(20.0, -15.0)
                .zoom(3.0),
        )
        .button(Button::new("B2", -12.0470, -77.0310))
        .brigade(Brigade::new("U1", "foot", -12.0465, -77.0301))
        .build();
    let (node, mut fleet) = crate::node_with_camera_fleet(
        "node-cameras",
        scenario,
        "clave-camara",
        Config::demo(),
        |_| {},
    )
    .await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;
    page.goto(&node.http_url("/?lang=en")).await;
    signed_in_live(&page).await;

    let incident = node.press("B1", "camera-press-1").await.incident_id;
    crate::select_incident(&page, &incident).await;
    page.wait_for(
        "the camera on target",
        "document.getElementById('cam-status')?.textContent === 'on target'",
        DEADLINE,
    )
    .await;
    // The panel's picture decodes (MJPEG in an <img>).
    let size = page
        .wait_for(
            "a decoded picture in the panel",
            "(() => { const i = document.getElementById('cam-live');
                return i && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null; })()",
            DEADLINE,
        )
        .await;
    assert_eq!(size, json!([640, 360]));

    // The MJPEG endpoint, read by the browser until it has shown 5 distinct JPEG frames (a
    // frozen stream repeats one). The deadline is generous: a busy machine slows the frame
    // rate, which this does not measure.
    let distinct = page
        .eval(
            "(async () => {
                const r = await fetch('/api/cameras/C-B1/live.mjpeg');
                const type = r.headers.get('content-type');
                const reader = r.body.getReader();
                const until = Date.now() + 25000; // under the DevTools call timeout (30 s)
                let buffer = new Uint8Array(0);
                const seen = new Set();
                while (seen.size < 5 && Date.now() < until) {
                  const { value, done } = await Promise.race([
                    reader.read(),
                    new Promise((ok) => setTimeout(() => ok({ value: null, done: false }), 500)),
                  ]);
                  if (done) break;
                  if (!value) continue;
                  const joined = new Uint8Array(buffer.length + value.length);
                  joined.set(buffer); joined.set(value, buffer.length); buffer = joined;
                  // Whole frames: FF D8 ... FF D9.
                  for (;;) {
                    let start = -1, end = -1;
                    for (let i = 0; i + 1 < buffer.length; i++) {
                      if (start < 0 && buffer[i] === 0xFF && buffer[i + 1] === 0xD8) start = i;
                      if (start >= 0 && buffer[i] === 0xFF && buffer[i + 1] === 0xD9) { end = i + 2; break; }
                    }
                    if (end < 0) break;
                    const frame = buffer.slice(start, end);
                    const digest = await crypto.subtle.digest('SHA-256', frame);
                    seen.add([...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join(''));
                    buffer = buffer.slice(end);
                  }
                }
                reader.cancel();
                return { type, distinct: seen.size };
              })()",
        )
        .await
        .unwrap();
    assert!(
        distinct["type"]
            .as_str()
            .unwrap()
            .starts_with("multipart/x-mixed-replace; boundary="),
        "{distinct}"
    );
    let frames = distinct["distinct"].as_u64().unwrap();
    assert!(frames >= 5, "distinct JPEG frames within 25 s: {frames}");

    // The PTZ buttons move the camera: pan right turns the simulated camera.
    let camera = fleet.get("C-B1").unwrap();
    let before = camera.pose();
    page.click("[data-ptz='right']").await;
    centinela_testkit::wait::until("the camera panned right", || async {
        let now = camera.pose();
        (now.pan > before.pan + 0.03).then_some(())
    })
    .await;
    page.click("[data-ptz='home']").await;
    centinela_testkit::wait::until("the camera back at the button", || async {
        camera.pose().near(&before, 0.01).then_some(())
    })
    .await;

    // Save still: an audit entry with the image's SHA-256, which the node serves back.
    page.click("#act-still").await;
    let link = page
        .wait_for(
            "the saved still in the panel",
            "document.querySelector('#cam-stills a')?.getAttribute('href')",
            DEADLINE,
        )
        .await;
    let link = link.as_str().unwrap().to_string();
    let sha = link
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".jpg")
        .to_string();
    let check = page
        .eval(&format!(
            "(async () => {{
                const r = await fetch({});
                const bytes = new Uint8Array(await r.arrayBuffer());
                const digest = await crypto.subtle.digest('SHA-256', bytes);
                return {{ status: r.status, type: r.headers.get('content-type'),
                  sha: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('') }};
              }})()",
            js(&link)
        ))
        .await
        .unwrap();
    assert_eq!(check["status"], json!(200));
    assert_eq!(check["type"], json!("image/jpeg"));
    assert_eq!(
        check["sha"],
        json!(sha),
        "the image is the one the audit names"
    );
    let record = node.incident(&incident).await;
    let entry = record
        .audit
        .iter()
        .find(|e| e.action == "still_saved")
        .expect("a still_saved audit entry");
    assert!(entry.detail.contains(&sha), "{}", entry.detail);
    assert_eq!(entry.actor, "operator:demo");
    assert_eq!(entry.hash.len(), 64, "in the hash chain");
    let verdict = node
        .operator()
        .verify_audit(centinela_proto::v1::VerifyAuditRequest::default())
        .await
        .unwrap()
        .into_inner();
    let chain = verdict
        .incidents
        .iter()
        .find(|v| v.incident_id == incident)
        .expect("the verifier covers the incident");
    assert!(chain.intact, "{chain:?}");

    page.screenshot(&artifacts_dir().join("console-camera.png"))
        .await;

    // A camera that stops answering: the console counts it offline, with the reason.
    assert!(fleet.stop("C-B2"));
    let offline = page
        .wait_for(
            "the offline camera in the header",
            "(() => { const c = document.getElementById('cameras-offline');
                return c ? [c.textContent, c.title] : null; })()",
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(offline[0], json!("1 camera offline"), "{offline}");
    assert!(
        offline[1].as_str().unwrap().starts_with("C-B2: "),
        "{offline}"
    );
    no_page_problems(&browser);
    drop(page);
    browser.close().await;
    node.shutdown().await;
    drop(fleet);
}

/// Opens `path` as `cookie` and reads only the answer's head: a live view stays open (and
/// holds its slot) while the returned stream lives. The status, and the stream.
async fn open_view(
    addr: std::net::SocketAddr,
    path: &str,
    cookie: &str,
) -> (u16, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(DEADLINE, stream.read(&mut byte))
            .await
            .expect("the answer's head in time")
            .unwrap();
        assert_eq!(read, 1, "the connection closed before the head ended");
        received.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&received);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, stream)
}

/// Issue 21: one operator could take every live-view slot of a node. Now one operator holds
/// at most `LIVE_STREAMS_PER_OPERATOR_MAX` views (the next is 429 with the reason), another
/// operator still gets one, and a closed view gives its slot back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_operator_cannot_take_every_live_view() {
    use centinela_console::limits::LIVE_STREAMS_PER_OPERATOR_MAX;

    let scenario = ScenarioBuilder::new("views")
        .button(Button::new("B1", -12.0464, -77.0300))
        .brigade(Brigade::new("U1", "foot", -12.0465, -77.0301))
        .build();
    let (node, _fleet) = crate::node_with_camera_fleet(
        "node-views",
        scenario,
        "clave-camara",
        crate::operators(),
        |_| {},
    )
    .await;
    let addr = node.http_addr();
    let sign_in = |who: (&str, &str)| {
        let body = json!({ "operator": who.0, "password": who.1 }).to_string();
        async move {
            crate::http::post(addr, "/api/login", None, &body)
                .await
                .cookie()
        }
    };
    let (ana, luis) = (sign_in(crate::ANA).await, sign_in(crate::LUIS).await);
    let path = "/api/cameras/C-B1/live.mjpeg";

    let mut views = Vec::new();
    for _ in 0..LIVE_STREAMS_PER_OPERATOR_MAX {
        let (status, stream) = open_view(addr, path, &ana).await;
        assert_eq!(status, 200);
        views.push(stream);
    }
    let refused = crate::http::get(addr, path, Some(&ana)).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("close one first"),
        "{}",
        refused.body
    );
    let (status, _luis_view) = open_view(addr, path, &luis).await;
    assert_eq!(status, 200, "another operator still gets a view");

    // Closing one of Ana's views gives its slot back (once the node notices the closed socket).
    drop(views.pop());
    centinela_testkit::wait::until("ana's closed view freed", || async {
        let (status, stream) = open_view(addr, path, &ana).await;
        (status == 200).then_some(stream)
    })
    .await;
    node.shutdown().await;
}
