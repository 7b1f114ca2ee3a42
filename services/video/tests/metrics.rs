//! The live video's metrics move, read back through the OpenTelemetry SDK's in-memory
//! exporter (the same instruments and gauges the node exports over OTLP), against GStreamer's
//! RTSP camera: views and upstreams counted while they are open and back to zero after,
//! sessions, frames and bytes relayed, frames skipped by a slow viewer, a refused account,
//! and a camera that dies.
//!
//! Its own test binary: it installs the process's global meter provider.

use std::time::Duration;

use opentelemetry::global;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

use centinela_core::ids::CameraId;
use centinela_onvif::credentials::Credentials;
use centinela_telemetry::metrics::{
    self, Metric, VIDEO_BYTES, VIDEO_FRAMES, VIDEO_FRAMES_SKIPPED, VIDEO_RECONNECTS, VIDEO_REFUSED,
    VIDEO_SESSIONS, VIDEO_UPSTREAMS, VIDEO_VIEWERS,
};
use centinela_testkit::rtsp_camera::RtspCamera;
use centinela_testkit::wait;
use centinela_video::{Event, Status, Video, Viewer};

const DEADLINE: Duration = Duration::from_secs(60);

/// The global meter provider, exporting into memory when flushed.
struct Readback {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

impl Readback {
    fn install() -> Readback {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        global::set_meter_provider(provider.clone());
        metrics::register_gauges();
        Readback { provider, exporter }
    }

    /// `metric`'s current value (cumulative for counters), summed over the points whose
    /// attributes include `attribute`; 0 when it has none yet.
    fn value(&self, metric: &Metric, attribute: Option<(&str, &str)>) -> f64 {
        tokio::task::block_in_place(|| {
            self.exporter.reset();
            self.provider.force_flush().expect("metrics flushed");
            let exported = self.exporter.get_finished_metrics().expect("metrics read");
            let Some(last) = exported.last() else {
                return 0.0;
            };
            let matches = |attributes: Vec<(String, String)>| match attribute {
                None => true,
                Some((key, value)) => attributes.iter().any(|(k, v)| k == key && v == value),
            };
            let pairs = |kvs: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
                kvs.map(|kv| (kv.key.to_string(), kv.value.to_string()))
                    .collect::<Vec<_>>()
            };
            let mut total = 0.0;
            for scope in last.scope_metrics() {
                for m in scope.metrics().filter(|m| m.name() == metric.name) {
                    match m.data() {
                        AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                            for point in sum.data_points() {
                                if matches(pairs(&mut point.attributes())) {
                                    total += point.value() as f64;
                                }
                            }
                        }
                        AggregatedMetrics::I64(MetricData::Gauge(gauge)) => {
                            for point in gauge.data_points() {
                                if matches(pairs(&mut point.attributes())) {
                                    total += point.value() as f64;
                                }
                            }
                        }
                        other => panic!("{}: unexpected data {other:?}", metric.name),
                    }
                }
            }
            total
        })
    }
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

/// Waits for a status `wanted`; frames in between are ignored.
async fn status_until(viewer: &mut Viewer, wanted: impl Fn(&Status) -> bool) {
    loop {
        let event = tokio::time::timeout(DEADLINE, viewer.next())
            .await
            .expect("a status within the deadline")
            .expect("the stream goes on");
        if let Event::Status(status) = event
            && wanted(&status)
        {
            return;
        }
    }
}

/// Reads `viewer` up to its first frame (after its decoder configuration).
async fn first_frame(viewer: &mut Viewer) {
    while !matches!(next_media(viewer).await, Event::Frame(_)) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_video_metrics_move_with_views_frames_skips_and_failures() {
    let Some(mut camera) = RtspCamera::start("centinela", "clave-camara").await else {
        return;
    };
    let readback = Readback::install();
    let id = CameraId::new("C-1").unwrap();
    let video = Video::new(Credentials::shared("centinela", "clave-camara"));

    // Two views of one camera: one upstream, one session, frames and bytes relayed to both.
    let mut first = video.watch(&id, &camera.uri()).unwrap();
    let mut second = video.watch(&id, &camera.uri()).unwrap();
    assert_eq!(readback.value(&VIDEO_VIEWERS, None), 2.0);
    assert_eq!(readback.value(&VIDEO_UPSTREAMS, None), 1.0);
    first_frame(&mut first).await;
    first_frame(&mut second).await;
    for _ in 0..30 {
        next_media(&mut first).await;
    }
    assert_eq!(readback.value(&VIDEO_SESSIONS, None), 1.0);
    let frames = readback.value(&VIDEO_FRAMES, None);
    assert!(frames >= 30.0 + 1.0, "frames relayed: {frames}");
    let bytes = readback.value(&VIDEO_BYTES, None);
    assert!(
        bytes > frames * 10.0,
        "bytes relayed: {bytes} for {frames} frames"
    );

    // A view that stops reading falls out of the broadcast: its skip is counted as `behind`.
    let mut slow = video.watch(&id, &camera.uri()).unwrap();
    for _ in 0..(centinela_video::limits::BROADCAST_FRAMES_MAX + 30) {
        next_media(&mut first).await;
    }
    first_frame(&mut slow).await;
    let behind = readback.value(&VIDEO_FRAMES_SKIPPED, Some(("reason", "behind")));
    assert!(behind >= 1.0, "frames skipped behind: {behind}");
    assert_eq!(readback.value(&VIDEO_VIEWERS, None), 3.0);
    drop((second, slow));
    assert_eq!(readback.value(&VIDEO_VIEWERS, None), 1.0);

    // The camera refuses another node's account: counted as refused, not as a reconnect.
    assert_eq!(readback.value(&VIDEO_REFUSED, None), 0.0);
    let wrong = Video::new(Credentials::shared("centinela", "otra-clave"));
    let mut refused = wrong
        .watch(&CameraId::new("C-2").unwrap(), &camera.uri())
        .unwrap();
    status_until(&mut refused, |s| matches!(s, Status::Refused { .. })).await;
    assert!(readback.value(&VIDEO_REFUSED, None) >= 1.0);
    assert_eq!(readback.value(&VIDEO_RECONNECTS, None), 0.0);
    drop(refused);

    // The camera dies: the failed session is counted as a reconnect.
    camera.kill().await;
    status_until(&mut first, |s| matches!(s, Status::Reconnecting { .. })).await;
    assert!(readback.value(&VIDEO_RECONNECTS, None) >= 1.0);

    // Everyone leaves: no views at once, no upstreams after the linger.
    drop(first);
    assert_eq!(readback.value(&VIDEO_VIEWERS, None), 0.0);
    wait::until("the upstreams closed after the linger", || async {
        (readback.value(&VIDEO_UPSTREAMS, None) == 0.0).then_some(())
    })
    .await;
}
