//! Waiting on a condition instead of sleeping: poll a probe until it holds, and fail the test
//! naming what it waited for (and what it saw last) once a generous deadline has passed.
//!
//! A probe answers with any [`Outcome`]: `bool` (holds or not), `Option<T>` (the value once
//! there), or `Result<T, E>` (the value, or what is wrong so far: the last one goes into the
//! failure message).
//!
//! ```no_run
//! # async fn example(ready: impl Fn() -> bool) {
//! use std::time::Duration;
//! use centinela_testkit::wait::{self, Wait};
//!
//! wait::until("the node to be ready", || async { ready() }).await;
//! // A deadline and a pace of its own:
//! const PATIENCE: Wait = Wait::up_to(Duration::from_secs(20)).every(Duration::from_millis(10));
//! PATIENCE.until("the actor to restart", || async { ready() }).await;
//! // From a test's own thread, with no runtime (process-level tests):
//! wait::until_blocking("the banner", || ready());
//! # }
//! ```
//!
//! The async form measures its deadline and sleeps on tokio's clock, so it works under paused
//! time (`start_paused`, `tokio::time::pause`): the deadline is then simulated time too, and a
//! waiting test lets the clock jump ahead. The blocking form uses the system clock and
//! `std::thread::sleep`.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// How long a condition may take by default. Generous on purpose: a cold start, an election or
/// a failover on a busy 2-core CI machine; a wait that succeeds returns at once anyway.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// How often a condition is looked at by default.
pub const POLL: Duration = Duration::from_millis(20);

/// What a probe answers: whether the condition holds, with a value to return when it does, and
/// maybe what it saw when it does not.
pub trait Outcome {
    /// What the wait returns once the condition holds.
    type Value;
    /// `Ok(value)` when the condition holds; else `Err` with what was seen, when known.
    fn into_outcome(self) -> Result<Self::Value, Option<String>>;
}

impl Outcome for bool {
    type Value = ();
    fn into_outcome(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn into_outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Outcome for Result<T, E> {
    type Value = T;
    fn into_outcome(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// What a wait on an async probe returning `Fut` gives back.
pub type Value<Fut> = <<Fut as Future>::Output as Outcome>::Value;

/// How long to wait and how often to look; [`Wait::DEFAULT`] is [`DEADLINE`] and [`POLL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    pub deadline: Duration,
    pub poll: Duration,
}

impl Default for Wait {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Wait {
    pub const DEFAULT: Wait = Wait {
        deadline: DEADLINE,
        poll: POLL,
    };

    /// Gives up after `deadline`, looking every [`POLL`].
    pub const fn up_to(deadline: Duration) -> Wait {
        Wait {
            deadline,
            poll: POLL,
        }
    }

    /// The same deadline, looking every `poll`.
    pub const fn every(self, poll: Duration) -> Wait {
        Wait { poll, ..self }
    }

    /// Polls `probe` until it holds; its value. Panics naming `what` after the deadline.
    #[track_caller]
    pub fn until<F, Fut>(self, what: impl Display, probe: F) -> impl Future<Output = Value<Fut>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output: Outcome>,
    {
        let caller = std::panic::Location::caller();
        async move {
            match self.try_until(probe).await {
                Ok(value) => value,
                Err(last) => self.give_up(&what, last, caller),
            }
        }
    }

    /// Polls `probe` until it holds (its value) or the deadline passes (what it saw last, when
    /// it said): for a caller with something to do before it fails.
    pub async fn try_until<F, Fut>(self, mut probe: F) -> Result<Value<Fut>, Option<String>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output: Outcome>,
    {
        let give_up = tokio::time::Instant::now() + self.deadline;
        loop {
            let last = match probe().await.into_outcome() {
                Ok(value) => return Ok(value),
                Err(last) => last,
            };
            if tokio::time::Instant::now() >= give_up {
                return Err(last);
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// [`Wait::until`] for synchronous code (a test's own thread, no runtime).
    #[track_caller]
    pub fn until_blocking<O: Outcome>(
        self,
        what: impl Display,
        mut probe: impl FnMut() -> O,
    ) -> O::Value {
        let caller = std::panic::Location::caller();
        let give_up = std::time::Instant::now() + self.deadline;
        loop {
            let last = match probe().into_outcome() {
                Ok(value) => return value,
                Err(last) => last,
            };
            if std::time::Instant::now() >= give_up {
                self.give_up(&what, last, caller);
            }
            std::thread::sleep(self.poll);
        }
    }

    fn give_up(
        &self,
        what: &dyn Display,
        last: Option<String>,
        caller: &std::panic::Location<'_>,
    ) -> ! {
        let last = last.map(|last| format!("; last seen: {last}"));
        panic!(
            "timed out after {:?} waiting for {what}{} (wait at {caller})",
            self.deadline,
            last.unwrap_or_default()
        )
    }
}

/// [`Wait::until`] with the default deadline and pace.
#[track_caller]
pub fn until<F, Fut>(what: impl Display, probe: F) -> impl Future<Output = Value<Fut>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output: Outcome>,
{
    Wait::DEFAULT.until(what, probe)
}

/// [`Wait::until_blocking`] with the default deadline and pace.
#[track_caller]
pub fn until_blocking<O: Outcome>(what: impl Display, probe: impl FnMut() -> O) -> O::Value {
    Wait::DEFAULT.until_blocking(what, probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::cell::Cell;

    #[tokio::test(start_paused = true)]
    async fn returns_the_value_once_the_probe_holds() {
        let mut n = 0;
        let value = until("three looks", || {
            n += 1;
            let n = n;
            async move { (n >= 3).then_some(n) }
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_is_on_tokio_time_so_paused_time_works() {
        let start = tokio::time::Instant::now();
        Wait::up_to(Duration::from_secs(600))
            .every(Duration::from_millis(100))
            .until("ten simulated minutes less a second", || async move {
                start.elapsed() >= Duration::from_secs(599)
            })
            .await;
        assert!(start.elapsed() < Duration::from_secs(600));
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "timed out after 1s waiting for nothing; last seen: still 7")]
    async fn fails_naming_what_and_the_last_thing_seen() {
        Wait::up_to(Duration::from_secs(1))
            .until("nothing", || async { Err::<(), _>("still 7") })
            .await;
    }

    #[test]
    fn blocking_form_polls_too() {
        let looks = Cell::new(0);
        let wait = Wait::up_to(Duration::from_secs(5)).every(Duration::from_millis(1));
        wait.until_blocking("two looks", || {
            looks.set(looks.get() + 1);
            looks.get() == 2
        });
        assert_eq!(looks.get(), 2);
    }

    #[test]
    #[should_panic(expected = "timed out after 10ms waiting for never")]
    fn blocking_form_gives_up() {
        Wait::up_to(Duration::from_millis(10)).until_blocking("never", || None::<()>);
    }
}
