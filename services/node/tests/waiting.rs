//! The gauges the on-call alerts watch, against an in-process node over real gRPC: how long the
//! oldest caller has waited for an operator and for a brigade, and how many cameras have no
//! device connected (docs/observability.md, "Alerts"). The gauges are process-wide, and each
//! test runs in its own process under nextest.

use std::sync::atomic::Ordering;

use centinela_proto::v1;
use centinela_proto::v1::camera_gateway_client::CameraGatewayClient;
use centinela_telemetry::metrics::GAUGES;
use centinela_testkit::node::{NodeBuilder, TestNode, radio_all_available};
use centinela_testkit::scenario::{Brigade, Button, ScenarioBuilder};
use centinela_testkit::wait;

fn gauge(value: &std::sync::atomic::AtomicI64) -> i64 {
    value.load(Ordering::Relaxed)
}

/// One brigade, busy with another incident: a press then waits for an operator and for a
/// brigade, and the leader reports both waits; an operator's acknowledgement ends the first.
/// Cameras with no device are counted offline until their device connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_incidents_and_offline_cameras_are_reported() {
    let scenario = ScenarioBuilder::new("waiting")
        .button(Button::new("B1", -12.0464, -77.0300))
        .button(Button::new("B2", -12.0470, -77.0310))
        .brigade(Brigade::new("U1", "foot", -12.0465, -77.0301))
        .build();
    let node = NodeBuilder::new("n1").scenario(scenario).start().await;
    node.wait_for_dispatcher().await;
    // No terminal here: the unit (offline until heard from) is set available by radio.
    radio_all_available(&mut node.operator()).await;
    wait::until("the cameras without a device counted offline", || async {
        (gauge(&GAUGES.cameras_offline) == 2).then_some(())
    })
    .await;
    assert_eq!(
        gauge(&GAUGES.unacknowledged_oldest_s),
        0,
        "nothing waits yet"
    );
    assert_eq!(gauge(&GAUGES.unassigned_oldest_s), 0, "nothing waits yet");

    // The only brigade goes to B2's incident, which an operator acknowledges.
    let busy = node.press("B2", "p-busy").await;
    node.wait_incident(&busy.incident_id, "a brigade assigned", |i| {
        !i.units.is_empty()
    })
    .await;
    acknowledge(&node, &busy.incident_id).await;

    let pressed = node.press("B1", "p-1").await;
    wait::until(
        "B1's incident waiting for an operator and a brigade",
        || async {
            let acked = gauge(&GAUGES.unacknowledged_oldest_s);
            let assigned = gauge(&GAUGES.unassigned_oldest_s);
            (acked >= 2 && assigned >= 2).then_some(())
        },
    )
    .await;

    acknowledge(&node, &pressed.incident_id).await;
    wait::until(
        "the acknowledged incident no longer waiting for an operator",
        || async { (gauge(&GAUGES.unacknowledged_oldest_s) == 0).then_some(()) },
    )
    .await;
    assert!(
        gauge(&GAUGES.unassigned_oldest_s) >= 2,
        "still waiting for a brigade"
    );

    // B1's camera device connects: one camera offline left.
    let mut cameras = CameraGatewayClient::new(node.channel.clone());
    let commands = cameras
        .commands(v1::CameraSubscribe {
            camera_id: "C-B1".into(),
        })
        .await
        .expect("the camera's channel opens")
        .into_inner();
    wait::until("the connected camera counted online", || async {
        (gauge(&GAUGES.cameras_offline) == 1).then_some(())
    })
    .await;
    drop(commands);
    node.shutdown().await;
}

async fn acknowledge(node: &TestNode, incident: &str) {
    node.operator()
        .acknowledge(v1::AcknowledgeRequest {
            incident_id: incident.into(),
            operator_id: "op-1".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("acknowledge {incident}: {e}"));
}
