//! What live video costs a whole node: CPU and memory of a real node (console, actors,
//! embedded store, simulated ONVIF cameras naming RTSP streams) while `STREAMS` cameras each
//! go to `VIEWERS` headless WebSocket viewers through `/api/cameras/{id}/live.ws`, against the
//! same node idle in the same run.
//!
//! ```sh
//! cargo run --release -p centinela-console --example video_node_load -- STREAMS VIEWERS SECONDS [WxH] [ENCODERS]
//! ```
//!
//! - The cameras are GStreamer's RTSP server (`centinela-testkit`'s `rtsp_camera.py`, Debian's
//!   `/usr/bin/python3`) in processes of their own, so their encoding is not in the figure.
//!   `ENCODERS` camera processes (default: `STREAMS`) serve the streams round-robin; each
//!   process has one encoder shared by its RTSP sessions (as a camera's profile is), so 15
//!   sessions need not cost 15 x264 encoders. The node cannot tell: every stream is its own
//!   camera, URI and RTSP session, depacketized, broadcast and written on its own.
//! - The viewers run in a child process (this binary, `viewers` mode): they sign in as the
//!   demo operator, open the WebSocket views and read every message; their CPU is not the
//!   node's.
//!
//! Prints one line of `key=value`: the node's CPU (cores) and peak resident memory while the
//! viewers watch, and the same node idle (its cameras started, nothing watched) before.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use centinela_console::Config;
use centinela_devices::onvif_fleet::OnvifFleet;
use centinela_onvif::credentials::{Credentials, Login};
use centinela_testkit::node::NodeBuilder;
use centinela_testkit::process::{cpu_seconds, rss_mib};
use centinela_testkit::rtsp_camera::RtspCamera;
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};

/// How long the idle baseline is measured.
const IDLE: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if args.first().map(String::as_str) == Some("viewers") {
        runtime.block_on(viewers(&args[1..]));
    } else {
        runtime.block_on(node(&args));
    }
}

async fn node(args: &[String]) {
    let number = |i: usize, default: u64| args.get(i).map_or(default, |a| a.parse().unwrap());
    let (streams, viewers, seconds) = (number(0, 15), number(1, 2), number(2, 20));
    let size = args
        .get(3)
        .and_then(|s| s.split_once('x'))
        .map(|(w, h)| (w.parse().unwrap(), h.parse().unwrap()))
        .unwrap_or((1920, 1080));
    let encoders = number(4, streams).clamp(1, streams);
    let mut cameras = Vec::new();
    for _ in 0..encoders {
        cameras.push(
            RtspCamera::start_sized("centinela", "clave-camara", Some(size))
                .await
                .expect("GStreamer's RTSP server (scripts/test.sh installs it)"),
        );
    }

    let mut scenario = ScenarioBuilder::new("video-load");
    for i in 0..streams {
        let offset = i as f64 * 0.001;
        scenario = scenario.button(Button::new(
            format!("B{}", i + 1),
            -12.0464 - offset,
            -77.0300 - offset,
        ));
    }
    let mut scenario = scenario
        .brigade(Brigade::new("U1", "foot", -12.0465, -77.0301))
        .build();
    let login = Login {
        username: "centinela".into(),
        password: "clave-camara".into(),
    };
    let credentials = Credentials::shared(&login.username, &login.password);
    let fleet = OnvifFleet::for_scenario(&mut scenario, &credentials, &login)
        .await
        .unwrap();
    for i in 0..streams as usize {
        fleet
            .get(&format!("C-B{}", i + 1))
            .unwrap()
            .set_stream_uri(Some(&cameras[i % cameras.len()].uri()));
    }
    let node = NodeBuilder::new("node-video-load")
        .scenario(scenario)
        .cameras(credentials)
        .console(Config::demo())
        .start()
        .await;
    // Every camera's stream URI learned (its ONVIF driver connected).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let cameras = node
            .operator()
            .list_cameras(centinela_proto::v1::ListCamerasRequest::default())
            .await
            .unwrap()
            .into_inner()
            .cameras;
        if cameras.iter().filter(|c| c.stream_uri.is_some()).count() as u64 == streams {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cameras' stream URIs within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Idle baseline: the node with its cameras online, nothing watched.
    let (cpu0, at0) = (cpu_seconds(), Instant::now());
    let mut idle_rss = rss_mib();
    while at0.elapsed() < IDLE {
        tokio::time::sleep(Duration::from_millis(500)).await;
        idle_rss = idle_rss.max(rss_mib());
    }
    let idle_cores = (cpu_seconds() - cpu0) / at0.elapsed().as_secs_f64();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["viewers", &node.http_addr().to_string()])
        .args([
            streams.to_string(),
            viewers.to_string(),
            seconds.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the viewers' process");
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let ready = tokio::time::timeout(Duration::from_secs(120), lines_rx.recv())
        .await
        .expect("every viewer playing within 120 s")
        .expect("the viewers' process says it is ready");
    assert_eq!(ready, "ready", "viewers: {ready}");
    let (cpu1, at1) = (cpu_seconds(), Instant::now());
    let mut rss_max = rss_mib();
    let report = loop {
        tokio::select! {
            line = lines_rx.recv() => break line.expect("the viewers' report"),
            () = tokio::time::sleep(Duration::from_millis(500)) => rss_max = rss_max.max(rss_mib()),
        }
    };
    let busy_cores = (cpu_seconds() - cpu1) / at1.elapsed().as_secs_f64();
    let _ = child.wait();
    println!(
        "streams={streams} viewers_per_stream={viewers} encoders={encoders} size={}x{} {report} \
         node_cpu_cores={busy_cores:.4} idle_node_cpu_cores={idle_cores:.4} \
         node_rss_mib_max={rss_max:.1} idle_node_rss_mib={idle_rss:.1}",
        size.0, size.1,
    );
    node.shutdown().await;
    drop(cameras);
}

/// The demo console's session cookie, from its front page.
async fn demo_cookie(addr: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    let reply = String::from_utf8_lossy(&reply);
    reply
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().split(';').next().unwrap().to_string())
        })
        .expect("the demo console signs in with a cookie")
}

async fn viewers(args: &[String]) {
    let addr = args[0].clone();
    let number = |i: usize| args[i].parse::<u64>().unwrap();
    let (streams, viewers, seconds) = (number(1), number(2), number(3));
    let cookie = demo_cookie(&addr).await;
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let (started_tx, mut started_rx) = tokio::sync::mpsc::channel::<()>(1024);
    for i in 0..streams {
        for _ in 0..viewers {
            let url = format!("ws://{addr}/api/cameras/C-B{}/live.ws", i + 1);
            let mut request = url.into_client_request().unwrap();
            request
                .headers_mut()
                .insert("cookie", cookie.parse().unwrap());
            let (mut socket, _) = tokio_tungstenite::connect_async(request)
                .await
                .expect("a live view");
            let (frames, bytes, started) = (frames.clone(), bytes.clone(), started_tx.clone());
            tokio::spawn(async move {
                let mut first = true;
                while let Some(Ok(message)) = socket.next().await {
                    if let Message::Binary(data) = message {
                        frames.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        if first {
                            first = false;
                            let _ = started.send(()).await;
                        }
                    }
                }
            });
        }
    }
    for _ in 0..streams * viewers {
        started_rx.recv().await.unwrap();
    }
    println!("ready");
    let (frames0, bytes0, at) = (
        frames.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = at.elapsed().as_secs_f64();
    let delivered = frames.load(Ordering::Relaxed) - frames0;
    let mbit = (bytes.load(Ordering::Relaxed) - bytes0) as f64 * 8.0 / elapsed / 1e6;
    println!(
        "seconds={elapsed:.1} frames_per_viewer_s={:.1} mbit_s_out={mbit:.1}",
        delivered as f64 / elapsed / (streams * viewers) as f64
    );
    std::process::exit(0);
}
