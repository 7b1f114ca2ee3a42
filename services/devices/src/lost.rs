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

/// The index of `other` in [`CAUSES`].
const OTHER: usize = CAUSES.len() - 1;

/// The `other` endings by gRPC code (`tonic::Code` as a number, 0 to 16): a run at scale says
/// which call of which device failed how, without the debug log.
static OTHER_CODES: [AtomicU64; 17] = [const { AtomicU64::new(0) }; 17];

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
    let cause = cause(status);
    LOST[cause].fetch_add(1, Ordering::Relaxed);
    if cause == OTHER
        && let Some(by_code) = OTHER_CODES.get(status.code() as usize)
    {
        by_code.fetch_add(1, Ordering::Relaxed);
    }
}

/// "FailedPrecondition: 12, NotFound: 1": the `other` endings counted by code since the last
/// call, which starts them again from zero.
fn take_other_codes() -> String {
    OTHER_CODES
        .iter()
        .enumerate()
        .filter_map(|(code, count)| {
            let n = count.swap(0, Ordering::Relaxed);
            (n > 0).then(|| format!("{:?}: {n}", tonic::Code::from(code as i32)))
        })
        .collect::<Vec<_>>()
        .join(", ")
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
            other = counts[OTHER],
            "devices: channels ended"
        );
        // A line of its own: the bench sums the numbers of the one above.
        if counts[OTHER] > 0 {
            tracing::info!(codes = %take_other_codes(), "devices: other channel endings");
        }
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

    #[test]
    fn other_endings_are_told_apart_by_code() {
        for _ in 0..2 {
            count(&tonic::Status::failed_precondition("not assigned"));
        }
        count(&tonic::Status::not_found("unit U99"));
        count(&tonic::Status::resource_exhausted("busy"));
        assert_eq!(take_other_codes(), "NotFound: 1, FailedPrecondition: 2");
        assert_eq!(take_other_codes(), "", "counted again from zero");
    }
}
