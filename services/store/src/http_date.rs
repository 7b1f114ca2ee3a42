//! The HTTP `date` header of our gRPC servers, from a wall clock we choose.
//!
//! hyper stamps every response that has no `date` header with the system's wall clock. In a
//! turmoil simulation that is real time leaking into simulated bytes: HPACK encodes the header
//! as a one-byte index while the second stays the same and as a new literal when it changes, so
//! how many real seconds a run takes changed frame sizes, then how h2 split writes into TCP
//! segments, then every latency drawn after them (docs/simulation.md, "Determinism"). With
//! [`DateLayer`] the servers set the header themselves from a clock that follows `tokio::time`
//! (the system's wall clock in production, the simulated one in a simulation), and hyper
//! leaves it alone.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::Entry;
use http::{HeaderValue, Response, header};
use tokio::time::Instant;

/// A wall clock: milliseconds since the Unix epoch.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system's wall clock read once, then advanced with `tokio::time` (so it follows a paused
/// or simulated tokio clock). Call inside a tokio runtime.
pub fn anchored_at(base_ms: u64) -> WallClock {
    let start = Instant::now();
    Arc::new(move || base_ms.saturating_add(start.elapsed().as_millis() as u64))
}

/// [`anchored_at`] the system's wall clock now.
pub fn system() -> WallClock {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    anchored_at(now)
}

/// Sets `date` on every response that has none, from a [`WallClock`].
#[derive(Clone)]
pub struct DateLayer {
    clock: WallClock,
}

impl DateLayer {
    pub fn new(clock: WallClock) -> Self {
        DateLayer { clock }
    }
}

impl<S> tower::Layer<S> for DateLayer {
    type Service = DateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DateService {
            inner,
            clock: self.clock.clone(),
        }
    }
}

/// The service [`DateLayer`] wraps around another.
#[derive(Clone)]
pub struct DateService<S> {
    inner: S,
    clock: WallClock,
}

impl<S, Req, B> tower::Service<Req> for DateService<S>
where
    S: tower::Service<Req, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Response<B>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let future = self.inner.call(request);
        let clock = self.clock.clone();
        Box::pin(async move {
            let mut response = future.await?;
            if let Entry::Vacant(entry) = response.headers_mut().entry(header::DATE) {
                entry.insert(date_value(clock()));
            }
            Ok(response)
        })
    }
}

/// `Thu, 01 Jan 2026 00:00:00 GMT` for `ms` since the Unix epoch.
fn date_value(ms: u64) -> HeaderValue {
    let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms));
    HeaderValue::from_str(&text).expect("an HTTP date is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::date_value;

    #[test]
    fn formats_http_dates() {
        assert_eq!(
            date_value(1_767_225_600_000),
            "Thu, 01 Jan 2026 00:00:00 GMT"
        );
        assert_eq!(
            date_value(1_767_225_601_999),
            "Thu, 01 Jan 2026 00:00:01 GMT"
        );
    }
}
