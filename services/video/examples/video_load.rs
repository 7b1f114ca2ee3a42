//! What live video costs the node: CPU and memory of this process (the node's video path)
//! while it pulls `STREAMS` cameras and hands each to `VIEWERS` viewers, against the same
//! process idle. The cameras are GStreamer's RTSP server (`centinela-testkit`'s
//! `rtsp_camera.py`, run with Debian's `/usr/bin/python3`): separate processes, so their
//! encoding is not counted.
//!
//! ```sh
//! cargo run --release -p centinela-video --example video_load -- STREAMS VIEWERS SECONDS [WxH]
//! ```
//!
//! Each viewer takes every event and builds the message a WebSocket would carry (a copy of
//! the access unit); the WebSocket write itself (a syscall per frame, TLS when in front) is
//! not in the figure. Prints one line of `key=value`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use centinela_core::ids::CameraId;
use centinela_onvif::credentials::Credentials;
use centinela_testkit::process::{cpu_seconds, rss_mib};
use centinela_testkit::rtsp_camera::RtspCamera;
use centinela_video::{Event, Video};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| args.get(i).map_or(default, |a| a.parse().unwrap());
    let (streams, viewers, seconds) = (number(0, 1), number(1, 1), number(2, 20));
    let size = args
        .get(3)
        .and_then(|s| s.split_once('x'))
        .map(|(w, h)| (w.parse().unwrap(), h.parse().unwrap()))
        .unwrap_or((1920, 1080));
    let mut cameras = Vec::new();
    for _ in 0..streams {
        cameras.push(
            RtspCamera::start_sized("centinela", "clave-camara", Some(size))
                .await
                .expect("GStreamer's RTSP server (scripts/test.sh installs it)"),
        );
    }
    let video = Video::new(Credentials::shared("centinela", "clave-camara"));

    // Idle baseline: the process with its cameras started, nothing pulled.
    let (cpu0, at0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_cores = (cpu_seconds() - cpu0) / at0.elapsed().as_secs_f64();
    let idle_rss = rss_mib();

    let (started_tx, mut started_rx) = tokio::sync::mpsc::channel::<()>(1024);
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (i, camera) in cameras.iter().enumerate() {
        let id = CameraId::new(format!("C-{i}")).unwrap();
        for _ in 0..viewers {
            let mut viewer = video.watch(&id, &camera.uri()).unwrap();
            let started = started_tx.clone();
            let (frames, bytes) = (frames.clone(), bytes.clone());
            tasks.push(tokio::spawn(async move {
                let mut first = true;
                while let Some(event) = viewer.next().await {
                    if let Event::Frame(frame) = event {
                        bytes.fetch_add(frame.message().len() as u64, Ordering::Relaxed);
                        frames.fetch_add(1, Ordering::Relaxed);
                        if first {
                            first = false;
                            let _ = started.send(()).await;
                        }
                    }
                }
            }));
        }
    }
    for _ in 0..streams * viewers {
        tokio::time::timeout(Duration::from_secs(60), started_rx.recv())
            .await
            .expect("every viewer gets a key frame within 60 s");
    }
    let (cpu1, at1) = (cpu_seconds(), Instant::now());
    let (frames1, bytes1) = (
        frames.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
    );
    let mut rss_max = rss_mib();
    while at1.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_max = rss_max.max(rss_mib());
    }
    let busy_cores = (cpu_seconds() - cpu1) / at1.elapsed().as_secs_f64();
    let elapsed = at1.elapsed().as_secs_f64();
    let delivered = frames.load(Ordering::Relaxed) - frames1;
    let mbit = (bytes.load(Ordering::Relaxed) - bytes1) as f64 * 8.0 / elapsed / 1e6;
    for task in tasks {
        task.abort();
    }
    println!(
        "streams={streams} viewers_per_stream={viewers} size={}x{} seconds={elapsed:.1} \
         sessions={} frames_per_viewer_s={:.1} mbit_s_out={mbit:.1} cpu_cores={busy_cores:.4} \
         idle_cpu_cores={idle_cores:.4} rss_mib_max={rss_max:.1} idle_rss_mib={idle_rss:.1}",
        size.0,
        size.1,
        video.sessions_opened(),
        delivered as f64 / elapsed / (streams * viewers) as f64,
    );
    drop(cameras);
}
