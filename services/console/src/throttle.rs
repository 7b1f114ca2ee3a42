//! Throttling of password guesses, shared by the console's sign-in and the gRPC `Basic`
//! credentials (both go through [`Auth`](crate::auth::Auth)).
//!
//! Three counters, each over [`LOGIN_FAILURE_WINDOW`]:
//! - one source against one account: locked out after [`LOGIN_PAIR_FAILURES_MAX`] failures
//!   for [`LOGIN_LOCKOUT`] — stops one guesser without touching anyone else;
//! - one source against all accounts: locked out after [`LOGIN_SOURCE_FAILURES_MAX`] — stops
//!   spraying one password over every name;
//! - one account from all sources: slowed, never locked, after [`LOGIN_ACCOUNT_FAILURES_MAX`]
//!   to one attempt per [`LOGIN_ACCOUNT_SPACING`] — a guesser with many addresses is held to
//!   that pace, while the operator is never locked out of their own account from elsewhere.
//!
//! A locked attempt is refused before any password check, so a lockout also saves the argon2
//! work. An attempt counts from the moment it is let through ([`Attempt`]), so a burst of
//! concurrent guesses is held to the same bound as guesses one after another. A success
//! forgets that source's failures on that account, and makes that source known for the account
//! for [`LOGIN_KNOWN_SOURCE_TTL`]: a known source skips the account-wide pace, so a guesser who
//! takes every paced slot still does not keep the operator out from their usual position.
//! Unknown account names are counted exactly like known ones (a lockout must not reveal who
//! exists). Memory is bounded by [`LOGIN_TRACKED_KEYS_MAX`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::limits::{
    LOGIN_ACCOUNT_FAILURES_MAX, LOGIN_ACCOUNT_SPACING, LOGIN_FAILURE_WINDOW,
    LOGIN_KNOWN_SOURCE_TTL, LOGIN_LOCKOUT, LOGIN_PAIR_FAILURES_MAX, LOGIN_PENDING_RETRY,
    LOGIN_SOURCE_FAILURES_MAX, LOGIN_TRACKED_KEYS_MAX,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// One source (or "unknown source") against one account.
    Pair(String, Option<IpAddr>),
    Source(IpAddr),
    Account(String),
    /// A source the account signed in from ([`LOGIN_KNOWN_SOURCE_TTL`]).
    Known(String, IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    /// Attempts let through whose password check has not finished: they count against the
    /// bound, so a burst of concurrent guesses cannot all pass before the first one fails.
    pending: u32,
    locked_until: Option<Instant>,
    /// The last attempt let through (the account-wide pace).
    last_attempt: Option<Instant>,
    /// Until when a [`Key::Known`] source stays known.
    known_until: Option<Instant>,
    touched: Instant,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            failures: 0,
            pending: 0,
            locked_until: None,
            last_attempt: None,
            known_until: None,
            touched: now,
        }
    }

    fn locked(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    fn failures(&self, now: Instant) -> u32 {
        if now.saturating_duration_since(self.window_start) >= LOGIN_FAILURE_WINDOW {
            0
        } else {
            self.failures
        }
    }

    /// Why an attempt must wait now, if it must: locked out, or the failures so far plus the
    /// checks still running reach `max` (then retry once those have finished).
    fn refusal(&self, now: Instant, max: u32) -> Option<Duration> {
        self.locked(now).or_else(|| {
            (self.failures(now).saturating_add(self.pending) >= max).then_some(LOGIN_PENDING_RETRY)
        })
    }

    fn stale(&self, now: Instant) -> bool {
        self.locked(now).is_none()
            && self.failures(now) == 0
            && self.pending == 0
            && self.known_until.is_none_or(|until| until <= now)
            && self
                .last_attempt
                .is_none_or(|at| now.saturating_duration_since(at) >= LOGIN_ACCOUNT_SPACING)
    }
}

/// The login throttle of one node.
#[derive(Default)]
pub struct Throttle {
    entries: Mutex<HashMap<Key, Entry>>,
}

/// One admitted attempt: report its outcome with [`Attempt::failed`] or
/// [`Attempt::succeeded`]; dropped without one (the client went away mid-check, or the check
/// could not run), it only stops counting as pending.
#[must_use = "an attempt reports its outcome"]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    account: String,
    source: Option<IpAddr>,
    reported: bool,
}

impl Attempt<'_> {
    /// A wrong password (or an unknown account).
    pub fn failed(mut self) {
        self.reported = true;
        self.throttle.failed(&self.account, self.source);
    }

    /// The right password: that source's failures on that account are forgotten.
    pub fn succeeded(mut self) {
        self.reported = true;
        self.throttle.succeeded(&self.account, self.source);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.reported {
            let mut entries = self.throttle.entries.lock().expect("throttle poisoned");
            release(&mut entries, &self.account, self.source);
        }
    }
}

impl Throttle {
    /// Admits an attempt on `account` from `source` to check a password now, or says how long
    /// until it may. Unknown accounts are admitted and counted exactly like known ones.
    pub fn begin(&self, account: &str, source: Option<IpAddr>) -> Result<Attempt<'_>, Duration> {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("throttle poisoned");
        let pair = Key::Pair(account.to_string(), source);
        if let Some(wait) = entries
            .get(&pair)
            .and_then(|e| e.refusal(now, LOGIN_PAIR_FAILURES_MAX))
        {
            return Err(wait);
        }
        if let Some(source) = source
            && let Some(wait) = entries
                .get(&Key::Source(source))
                .and_then(|e| e.refusal(now, LOGIN_SOURCE_FAILURES_MAX))
        {
            return Err(wait);
        }
        let known = source.is_some_and(|source| {
            entries
                .get(&Key::Known(account.to_string(), source))
                .and_then(|e| e.known_until)
                .is_some_and(|until| until > now)
        });
        let key = Key::Account(account.to_string());
        if !known
            && let Some(entry) = entries.get_mut(&key)
            && entry.failures(now) >= LOGIN_ACCOUNT_FAILURES_MAX
        {
            if let Some(at) = entry.last_attempt {
                let next = at + LOGIN_ACCOUNT_SPACING;
                if next > now {
                    return Err(next - now);
                }
            }
            entry.last_attempt = Some(now);
            entry.touched = now;
        }
        let mut keys = vec![pair];
        keys.extend(source.map(Key::Source));
        for key in keys {
            if !entries.contains_key(&key) {
                make_room(&mut entries, now);
            }
            let entry = entries.entry(key).or_insert_with(|| Entry::new(now));
            entry.pending = entry.pending.saturating_add(1);
            entry.touched = now;
        }
        Ok(Attempt {
            throttle: self,
            account: account.to_string(),
            source,
            reported: false,
        })
    }

    fn failed(&self, account: &str, source: Option<IpAddr>) {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("throttle poisoned");
        release(&mut entries, account, source);
        let mut count = |key: Key, max: u32, lock: bool| {
            if !entries.contains_key(&key) {
                make_room(&mut entries, now);
            }
            let entry = entries.entry(key).or_insert_with(|| Entry::new(now));
            if entry.failures(now) == 0 {
                entry.window_start = now;
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.touched = now;
            if lock && entry.failures >= max {
                entry.locked_until = Some(now + LOGIN_LOCKOUT);
                entry.failures = 0;
                entry.window_start = now;
            }
        };
        count(
            Key::Pair(account.to_string(), source),
            LOGIN_PAIR_FAILURES_MAX,
            true,
        );
        if let Some(source) = source {
            count(Key::Source(source), LOGIN_SOURCE_FAILURES_MAX, true);
        }
        count(
            Key::Account(account.to_string()),
            LOGIN_ACCOUNT_FAILURES_MAX,
            false,
        );
    }

    fn succeeded(&self, account: &str, source: Option<IpAddr>) {
        let mut entries = self.entries.lock().expect("throttle poisoned");
        release(&mut entries, account, source);
        let pair = Key::Pair(account.to_string(), source);
        if entries.get(&pair).is_some_and(|e| e.pending == 0) {
            entries.remove(&pair);
        } else if let Some(entry) = entries.get_mut(&pair) {
            entry.failures = 0;
        }
        if let Some(source) = source {
            let now = Instant::now();
            let key = Key::Known(account.to_string(), source);
            if !entries.contains_key(&key) {
                make_room(&mut entries, now);
            }
            let entry = entries.entry(key).or_insert_with(|| Entry::new(now));
            entry.known_until = Some(now + LOGIN_KNOWN_SOURCE_TTL);
            entry.touched = now;
        }
    }

    /// Keys tracked now (for tests and the bound).
    pub fn tracked(&self) -> usize {
        self.entries.lock().expect("throttle poisoned").len()
    }
}

/// An attempt's check has finished (or will not): it no longer counts as pending.
fn release(entries: &mut HashMap<Key, Entry>, account: &str, source: Option<IpAddr>) {
    let mut keys = vec![Key::Pair(account.to_string(), source)];
    keys.extend(source.map(Key::Source));
    for key in keys {
        // An entry pushed out by `make_room` meanwhile has nothing to release.
        if let Some(entry) = entries.get_mut(&key) {
            entry.pending = entry.pending.saturating_sub(1);
        }
    }
}

/// Below [`LOGIN_TRACKED_KEYS_MAX`] before an insert: stale entries go first, then the least
/// recently touched eighth (in one pass, so a flood of new keys costs O(1) amortized each).
fn make_room(entries: &mut HashMap<Key, Entry>, now: Instant) {
    if entries.len() < LOGIN_TRACKED_KEYS_MAX {
        return;
    }
    entries.retain(|_, entry| !entry.stale(now));
    if entries.len() < LOGIN_TRACKED_KEYS_MAX * 7 / 8 {
        return;
    }
    let mut touched: Vec<Instant> = entries.values().map(|entry| entry.touched).collect();
    let cut = LOGIN_TRACKED_KEYS_MAX / 8;
    let (_, threshold, _) = touched.select_nth_unstable(cut);
    let threshold = *threshold;
    tracing::warn!(
        tracked = entries.len(),
        "login throttle full: forgetting the least recently seen sources"
    );
    entries.retain(|_, entry| entry.touched > threshold);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn fail(throttle: &Throttle, account: &str, source: Option<IpAddr>) {
        throttle.begin(account, source).unwrap().failed();
    }

    #[tokio::test(start_paused = true)]
    async fn a_guessing_source_is_locked_out_of_that_account_only_until_the_lockout_ends() {
        let throttle = Throttle::default();
        let (guesser, operator) = (ip("10.0.0.66"), ip("10.0.0.7"));
        for _ in 0..LOGIN_PAIR_FAILURES_MAX {
            fail(&throttle, "ana", guesser);
        }
        let wait = throttle.begin("ana", guesser).err().unwrap();
        assert!(wait > LOGIN_PENDING_RETRY && wait <= LOGIN_LOCKOUT);
        // The operator from their own position, and the guesser on another account: not locked.
        throttle.begin("ana", operator).unwrap().succeeded();
        throttle.begin("luis", guesser).unwrap().succeeded();
        tokio::time::advance(LOGIN_LOCKOUT).await;
        throttle.begin("ana", guesser).unwrap().succeeded();
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_guesses_count_before_their_checks_finish() {
        let throttle = Throttle::default();
        let guesser = ip("10.0.0.66");
        let burst: Vec<Attempt<'_>> = (0..LOGIN_PAIR_FAILURES_MAX)
            .map(|_| throttle.begin("ana", guesser).unwrap())
            .collect();
        // Five checks running: a sixth waits, it is not let through to race them.
        assert_eq!(
            throttle.begin("ana", guesser).err(),
            Some(LOGIN_PENDING_RETRY)
        );
        // A check that never reported (client gone) stops counting.
        let mut burst = burst.into_iter();
        drop(burst.next());
        throttle.begin("ana", guesser).unwrap().failed();
        for attempt in burst {
            attempt.failed();
        }
        assert!(throttle.begin("ana", guesser).err().unwrap() > LOGIN_PENDING_RETRY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spraying_source_is_locked_out_of_every_account() {
        let throttle = Throttle::default();
        let sprayer = ip("10.0.0.66");
        for i in 0..LOGIN_SOURCE_FAILURES_MAX {
            fail(&throttle, &format!("op{i}"), sprayer);
        }
        assert!(throttle.begin("ana", sprayer).is_err());
        throttle.begin("ana", ip("10.0.0.7")).unwrap().succeeded();
    }

    #[tokio::test(start_paused = true)]
    async fn many_sources_slow_an_account_down_but_never_lock_it() {
        let throttle = Throttle::default();
        // Ana signed in from her position earlier in the shift.
        let position = ip("10.0.0.9");
        throttle.begin("ana", position).unwrap().succeeded();
        for i in 0..LOGIN_ACCOUNT_FAILURES_MAX {
            fail(&throttle, "ana", ip(&format!("10.0.1.{i}")));
        }
        // Now one attempt per spacing, from anywhere.
        throttle.begin("ana", ip("10.0.0.7")).unwrap().succeeded();
        let wait = throttle.begin("ana", ip("10.0.0.8")).err().unwrap();
        assert!(wait <= LOGIN_ACCOUNT_SPACING);
        // Her known position is not held to the pace, even right after another attempt.
        throttle.begin("ana", position).unwrap().succeeded();
        throttle.begin("ana", position).unwrap().succeeded();
        tokio::time::advance(LOGIN_ACCOUNT_SPACING).await;
        throttle.begin("ana", ip("10.0.0.8")).unwrap().succeeded();
        // Known only for a while.
        tokio::time::advance(LOGIN_KNOWN_SOURCE_TTL).await;
        for i in 0..LOGIN_ACCOUNT_FAILURES_MAX {
            fail(&throttle, "ana", ip(&format!("10.0.2.{i}")));
        }
        throttle.begin("ana", ip("10.0.0.7")).unwrap().succeeded();
        assert!(throttle.begin("ana", position).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_forgets_and_memory_stays_bounded() {
        let throttle = Throttle::default();
        let source = ip("10.0.0.7");
        for _ in 0..LOGIN_PAIR_FAILURES_MAX - 1 {
            fail(&throttle, "ana", source);
        }
        throttle.begin("ana", source).unwrap().succeeded();
        fail(&throttle, "ana", source);
        throttle.begin("ana", source).unwrap().succeeded();

        for i in 0..(LOGIN_TRACKED_KEYS_MAX as u32 + 100) {
            let source = Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            fail(&throttle, &format!("n{i}"), source);
        }
        assert!(throttle.tracked() <= LOGIN_TRACKED_KEYS_MAX);
    }
}
