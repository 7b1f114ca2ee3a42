//! The device edge's attach admission: at most [`ATTACHES_IN_PROGRESS_MAX`] device channels
//! being attached at once on a node; past it a device is refused with `RESOURCE_EXHAUSTED` and
//! a `retry-after` (whole seconds, as HTTP's header).
//!
//! The wait it is told follows the node's pace. Every [`PACE_WINDOW`] the node compares the
//! attaches it refused with those it completed: refusing more than it completes means more
//! devices are coming back than it can take, so the wait grows (by the ratio, at most twice per
//! window); refusing fewer, it shrinks, down to [`ATTACH_RETRY_AFTER_MIN`]. The refused devices
//! then come back at about the pace the node attaches, instead of all within a second: a fixed
//! 1 s made 110,000 waiting devices a storm of 10,000 refusals a second on three nodes that
//! attach a few hundred a second (docs/benchmarks.md, "The size on three nodes").

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::limits::{
    ATTACH_RETRY_AFTER_MAX, ATTACH_RETRY_AFTER_MIN, ATTACHES_IN_PROGRESS_MAX, PACE_WINDOW,
};

/// Admission of device channels to attach on one node.
#[derive(Clone)]
pub struct Admission {
    attaching: Arc<Semaphore>,
    pace: Arc<Mutex<Pace>>,
}

/// One admitted attach; its slot is given back, and the attach counted as completed, on drop.
pub struct Attaching {
    _permit: OwnedSemaphorePermit,
    pace: Arc<Mutex<Pace>>,
}

impl Drop for Attaching {
    fn drop(&mut self) {
        lock(&self.pace).completed(Instant::now());
    }
}

impl Default for Admission {
    fn default() -> Self {
        Self::new()
    }
}

impl Admission {
    pub fn new() -> Self {
        Self {
            attaching: Arc::new(Semaphore::new(ATTACHES_IN_PROGRESS_MAX)),
            pace: Arc::new(Mutex::new(Pace::new(Instant::now()))),
        }
    }

    /// A slot to attach `device`'s channel in, or the refusal telling it when to come back.
    pub fn admit(&self, device: &str) -> Result<Attaching, Status> {
        match self.attaching.clone().try_acquire_owned() {
            Ok(permit) => Ok(Attaching {
                _permit: permit,
                pace: self.pace.clone(),
            }),
            Err(_) => {
                let wait = lock(&self.pace).refused(Instant::now());
                tracing::debug!(
                    device,
                    wait_s = wait,
                    "device attach refused: too many in progress"
                );
                Err(refusal(wait))
            }
        }
    }
}

/// The pace of one node's attaches: refusals and completions in the current window, and the
/// wait refused devices are told.
#[derive(Debug)]
struct Pace {
    window_start: Instant,
    refused: u32,
    completed: u32,
    /// The wait told now, in seconds (fractional: it moves by ratios; told rounded up).
    wait: f64,
}

impl Pace {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            refused: 0,
            completed: 0,
            wait: ATTACH_RETRY_AFTER_MIN.as_secs_f64(),
        }
    }

    /// One attach refused at `now`; the whole seconds to tell it to wait.
    fn refused(&mut self, now: Instant) -> u64 {
        self.roll(now);
        self.refused = self.refused.saturating_add(1);
        self.wait.ceil() as u64
    }

    fn completed(&mut self, now: Instant) {
        self.roll(now);
        self.completed = self.completed.saturating_add(1);
    }

    /// Closes the window if it is over: the wait moves by the ratio of refused to completed
    /// attaches in it (bounded to halving or doubling); after a quiet window or more with
    /// nothing refused, the wait starts again from the least.
    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < PACE_WINDOW {
            return;
        }
        let (min, max) = (
            ATTACH_RETRY_AFTER_MIN.as_secs_f64(),
            ATTACH_RETRY_AFTER_MAX.as_secs_f64(),
        );
        self.wait = if self.refused == 0 || elapsed >= 2 * PACE_WINDOW {
            min
        } else {
            let ratio = f64::from(self.refused) / f64::from(self.completed.max(1));
            (self.wait * ratio.clamp(0.5, 2.0)).clamp(min, max)
        };
        self.window_start = now;
        self.refused = 0;
        self.completed = 0;
    }
}

fn lock(pace: &Mutex<Pace>) -> std::sync::MutexGuard<'_, Pace> {
    // The pace holds counters only: one poisoned by a panic elsewhere is still usable.
    pace.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The refusal of an attach past [`ATTACHES_IN_PROGRESS_MAX`]: the wait is in the message and
/// in `retry-after`, as for a throttled sign-in.
fn refusal(seconds: u64) -> Status {
    let seconds = seconds.max(1);
    let mut status = Status::resource_exhausted(format!(
        "this node is attaching {ATTACHES_IN_PROGRESS_MAX} device channels, the most at once; \
         retry in {seconds} s"
    ));
    if let Ok(value) = seconds.to_string().parse() {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An instant just past the `n`th [`PACE_WINDOW`] from `start`.
    fn window(start: Instant, n: u32) -> Instant {
        start + PACE_WINDOW * n + Duration::from_millis(1)
    }

    #[test]
    fn attaches_past_the_bound_are_refused_with_a_retry_after_until_one_finishes() {
        let admission = Admission::new();
        let mut held: Vec<_> = (0..ATTACHES_IN_PROGRESS_MAX)
            .map(|i| admission.admit(&format!("C{i}")).expect("under the bound"))
            .collect();
        let refused = admission.admit("C-late").err().expect("past the bound");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("retry in 1 s"), "{refused:?}");
        let retry_after = refused.metadata().get("retry-after").expect("retry-after");
        assert_eq!(retry_after.to_str().unwrap(), "1");
        // An attach that finished (its slot given back) makes room for exactly one more.
        held.pop();
        let _late = admission.admit("C-late").expect("room after one finished");
        assert!(admission.admit("C-later").is_err(), "full again");
    }

    #[test]
    fn the_wait_follows_refusals_against_completions_and_is_bounded() {
        let start = Instant::now();
        let mut pace = Pace::new(start);
        let mut told = Vec::new();
        // A storm: 10,000 refused a second against 300 completed, for a minute.
        for second in 1..=60 {
            for _ in 0..300 {
                pace.completed(window(start, second - 1));
            }
            for _ in 0..10_000 {
                pace.refused(window(start, second - 1));
            }
            told.push(pace.refused(window(start, second)));
        }
        // Doubling a window at most: 1 s told for the storm's first second, then 2, 4, 8, 16,
        // and never past the bound.
        assert_eq!(&told[..5], &[2, 4, 8, 16, 30]);
        assert!(told.iter().all(|&s| s <= ATTACH_RETRY_AFTER_MAX.as_secs()));
        // Devices coming back at the node's pace (as many refused as completed): it holds.
        let held = pace.wait;
        let second = 61;
        for _ in 0..300 {
            pace.completed(window(start, second));
            pace.refused(window(start, second));
        }
        pace.roll(window(start, second + 1));
        assert_eq!(pace.wait, held);
        // Fewer refused than completed: it halves; a quiet spell: back to the least.
        for _ in 0..300 {
            pace.completed(window(start, second + 1));
        }
        pace.refused(window(start, second + 1));
        pace.roll(window(start, second + 2));
        assert_eq!(pace.wait, held / 2.0);
        assert_eq!(pace.refused(window(start, second + 10)), 1);
    }
}
