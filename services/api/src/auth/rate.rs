//! Token buckets per identity (`button:B01`, `operator:ana`, `peer:n2`).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::Instant;

use crate::limits::{RATE_BUCKETS_MAX, Rate};

struct Bucket {
    tokens: f64,
    at: Instant,
    rate: Rate,
}

impl Bucket {
    fn refilled(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * self.rate.per_s).min(self.rate.burst)
    }
}

/// Token buckets keyed by identity (`button:B01`, `operator:ana`, `peer:n2`), bounded by
/// [`RATE_BUCKETS_MAX`].
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes one token from `key`'s bucket; `false` when it is empty.
    pub fn admit(&self, key: &str, rate: Rate) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock poisoned");
        if let Some(bucket) = buckets.get_mut(key) {
            let tokens = bucket.refilled(now);
            bucket.at = now;
            bucket.rate = rate;
            if tokens >= 1.0 {
                bucket.tokens = tokens - 1.0;
                return true;
            }
            bucket.tokens = tokens;
            return false;
        }
        if buckets.len() >= RATE_BUCKETS_MAX {
            // Full buckets hold no information: forget them first.
            buckets.retain(|_, bucket| bucket.refilled(now) < bucket.rate.burst);
            if buckets.len() >= RATE_BUCKETS_MAX {
                tracing::warn!(
                    buckets = buckets.len(),
                    "rate limiter full of active identities; starting afresh"
                );
                buckets.clear();
            }
        }
        buckets.insert(
            key.to_string(),
            Bucket {
                tokens: rate.burst - 1.0,
                at: now,
                rate,
            },
        );
        true
    }

    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .expect("rate limiter lock poisoned")
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buckets_refill_and_stay_bounded() {
        tokio::time::pause();
        let limiter = RateLimiter::default();
        let rate = Rate {
            per_s: 10.0,
            burst: 3.0,
        };
        assert!((0..3).all(|_| limiter.admit("button:B01", rate)));
        assert!(!limiter.admit("button:B01", rate));
        assert!(limiter.admit("button:B02", rate), "other keys unaffected");
        tokio::time::advance(std::time::Duration::from_millis(100)).await;
        assert!(limiter.admit("button:B01", rate));
        assert!(!limiter.admit("button:B01", rate));
        assert_eq!(limiter.len(), 2);
    }
}
