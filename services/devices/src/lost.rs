//! Why the simulated devices' channels end, counted by cause and logged at info every
//! [`LOST_LOG_INTERVAL`] (only when some ended): a run at scale shows its churn (an attach
//! storm's refusals, connections declared dead) without the per-device debug log, which at
//! 100,000 devices is millions of lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use centinela_proto::redirect;

use crate::sleep_or_stop;

/// How often the counts are logged (and start again from zero).
pub const LOST_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The causes, in the order they are logged.
const CAUSES: [&str; 7] = [
    "refused",
    "redirected",
    "keep_alive",
    "deadline",
    "cancelled",
    "transport",
    "other",
];

static LOST: [AtomicU64; CAUSES.len()] = [const { AtomicU64::new(0) }; CAUSES.len()];

/// The cause `status` is counted under. A transport error's cause is in its source chain
/// (hyper's "keep-alive timed out" under tonic's "transport error"), so the whole chain is read.
fn cause(status: &tonic::Status) -> usize {
    let mut message = status.message().to_ascii_lowercase();
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        message.push_str(": ");
        message.push_str(&error.to_string().to_ascii_lowercase());
        source = error.source();
    }
    if redirect::owner_of(status).is_some() {
        1
    } else if status.code() == tonic::Code::ResourceExhausted {
        0
    } else if message.contains("keep-alive") || message.contains("keepalive") {
        2
    } else if status.code() == tonic::Code::DeadlineExceeded {
        3
    } else if status.code() == tonic::Code::Cancelled {
        4
    } else if centinela_proto::client::is_node_failure(status) {
        5
    } else {
        6
    }
}

/// Counts one channel that ended with `status`.
pub fn count(status: &tonic::Status) {
    LOST[cause(status)].fetch_add(1, Ordering::Relaxed);
}

/// Logs the counts every [`LOST_LOG_INTERVAL`] until `stop`.
pub async fn report(mut stop: watch::Receiver<bool>) {
    while !sleep_or_stop(LOST_LOG_INTERVAL, &mut stop).await {
        let counts: Vec<u64> = LOST.iter().map(|c| c.swap(0, Ordering::Relaxed)).collect();
        if counts.iter().all(|&n| n == 0) {
            continue;
        }
        tracing::info!(
            refused = counts[0],
            redirected = counts[1],
            keep_alive = counts[2],
            deadline = counts[3],
            cancelled = counts[4],
            transport = counts[5],
            other = counts[6],
            "devices: channels ended"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_end_is_counted_under_its_cause() {
        let cases = [
            (
                tonic::Status::resource_exhausted("busy; retry in 1 s"),
                "refused",
            ),
            (
                tonic::Status::unavailable("error trying to connect: keep-alive timed out"),
                "keep_alive",
            ),
            (
                tonic::Status::deadline_exceeded("timeout expired"),
                "deadline",
            ),
            (tonic::Status::cancelled("h2 stream reset"), "cancelled"),
            (tonic::Status::unavailable("transport error"), "transport"),
            (tonic::Status::invalid_argument("camera_id: empty"), "other"),
        ];
        for (status, expected) in cases {
            assert_eq!(CAUSES[cause(&status)], expected, "{status:?}");
        }
        // tonic's transport error, hyper's reason underneath.
        let mut dead = tonic::Status::unavailable("transport error");
        dead.set_source(std::sync::Arc::new(std::io::Error::other(
            "keep-alive timed out",
        )));
        assert_eq!(CAUSES[cause(&dead)], "keep_alive");
    }
}
