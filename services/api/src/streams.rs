//! Caps on long-lived streams, per identity and per node.
//!
//! A server stream holds a task, channel buffers and (for `Watch`) a feed subscriber for as long
//! as the client keeps it open: 10,000 `Watch` streams of one operator took a node from 75 to
//! 1,029 MiB. So each kind of stream takes slots from a [`Streams`] table before it starts, and
//! gives them back when its response body is dropped (the stream ended, the client went away or
//! reset it). Past a cap the call is refused with `RESOURCE_EXHAUSTED` saying which cap.
//!
//! | stream | caps ([`StreamLimits`]) |
//! |---|---|
//! | `Operator.Watch` | per operator (the anonymous caller of an open node is one operator), and per node |
//! | `grpc.health.v1.Health/Watch` | per node (anyone may call it) |
//! | console `/api/events` | per operator (`centinela_console`), besides its own per-node cap |
//!
//! Device streams need no table: a camera's `Commands` and a unit's `Assignments` are one per
//! device by construction (the device's actor holds one channel; docs/security.md).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use opentelemetry::KeyValue;
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tower::Service;

use centinela_telemetry::metrics;

use crate::auth::Caller;
use crate::limits::{HEALTH_WATCHES_MAX, WATCH_STREAMS_MAX, WATCH_STREAMS_PER_OPERATOR};

/// The caps; [`Default`] is the limits module's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    pub watch_per_operator: usize,
    pub watch_total: usize,
    pub health_watches: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            watch_per_operator: WATCH_STREAMS_PER_OPERATOR,
            watch_total: WATCH_STREAMS_MAX,
            health_watches: HEALTH_WATCHES_MAX,
        }
    }
}

/// Streams open per key (`watch`, `watch:operator:ana`, `health`, ...).
pub struct Streams {
    limits: StreamLimits,
    open: Mutex<HashMap<String, usize>>,
}

/// A stream's place under one cap, freed on drop.
pub struct Slot {
    streams: Arc<Streams>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().expect("stream table poisoned");
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

impl Streams {
    pub fn new(limits: StreamLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new(HashMap::new()),
        })
    }

    pub fn limits(&self) -> StreamLimits {
        self.limits
    }

    /// Streams open under `key` now.
    pub fn open(&self, key: &str) -> usize {
        self.open
            .lock()
            .expect("stream table poisoned")
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// A slot under each `(key, cap)`, all or none; `Err` names the first full cap.
    pub fn admit(self: &Arc<Self>, caps: &[(String, usize)]) -> Result<Vec<Slot>, (String, usize)> {
        let mut open = self.open.lock().expect("stream table poisoned");
        if let Some((key, cap)) = caps
            .iter()
            .find(|(key, cap)| open.get(key).copied().unwrap_or(0) >= *cap)
        {
            return Err((key.clone(), *cap));
        }
        Ok(caps
            .iter()
            .map(|(key, _)| {
                *open.entry(key.clone()).or_insert(0) += 1;
                Slot {
                    streams: self.clone(),
                    key: key.clone(),
                }
            })
            .collect())
    }

    /// The caps a call takes, by its path and caller; none for calls that are not capped.
    fn caps_of(
        &self,
        request: &http::Request<Body>,
    ) -> Option<(&'static str, Vec<(String, usize)>)> {
        match request.uri().path() {
            "/centinela.v1.Operator/Watch" => {
                let operator = request
                    .extensions()
                    .get::<Caller>()
                    .and_then(|caller| caller.operator.as_ref())
                    .map_or_else(|| "anonymous".to_string(), |me| me.id.to_string());
                Some((
                    "watch",
                    vec![
                        ("watch".to_string(), self.limits.watch_total),
                        (
                            format!("watch:operator:{operator}"),
                            self.limits.watch_per_operator,
                        ),
                    ],
                ))
            }
            "/grpc.health.v1.Health/Watch" => Some((
                "health_watch",
                vec![("health".to_string(), self.limits.health_watches)],
            )),
            _ => None,
        }
    }

    /// Wraps a service so its capped streams take their slots ([`Streams::caps_of`]).
    pub fn cap<S>(self: &Arc<Self>, inner: S) -> Capped<S> {
        Capped {
            inner,
            streams: self.clone(),
        }
    }
}

/// The refusal of a stream over `cap`.
pub fn refusal(stream: &'static str, key: &str, cap: usize) -> Status {
    metrics::instruments()
        .streams_refused
        .add(1, &[KeyValue::new("stream", stream)]);
    let whose = match key.split_once(":operator:") {
        Some((_, operator)) => format!("operator {operator} has"),
        None => "this node has".to_string(),
    };
    tracing::debug!(stream, key, cap, "stream refused at its cap");
    Status::resource_exhausted(format!(
        "{whose} {cap} live {stream} streams, the most allowed; close one (or use another node)"
    ))
}

/// A service whose long-lived streams are capped ([`Streams`]).
#[derive(Clone)]
pub struct Capped<S> {
    inner: S,
    streams: Arc<Streams>,
}

impl<S: NamedService> NamedService for Capped<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Capped<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let slots = match self.streams.caps_of(&request) {
            None => Vec::new(),
            Some((stream, caps)) => match self.streams.admit(&caps) {
                Ok(slots) => slots,
                Err((key, cap)) => {
                    let status = refusal(stream, &key, cap);
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            },
        };
        // The clone that was polled ready serves this call; a fresh clone waits for the next.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(async move {
            let response = inner.call(request).await?;
            if slots.is_empty() {
                return Ok(response);
            }
            // The slots live as long as the response body: until the stream ends or the
            // client goes away.
            Ok(response.map(|body| {
                Body::new(Holding {
                    body,
                    _slots: slots,
                })
            }))
        })
    }
}

/// A response body that holds its stream's slots.
struct Holding {
    body: Body,
    _slots: Vec<Slot>,
}

impl http_body::Body for Holding {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_all_or_none_and_come_back() {
        let streams = Streams::new(StreamLimits::default());
        let caps = |who: &str| {
            vec![
                ("watch".to_string(), 3),
                (format!("watch:operator:{who}"), 2),
            ]
        };
        let a1 = streams.admit(&caps("ana")).unwrap();
        let _a2 = streams.admit(&caps("ana")).unwrap();
        let (key, cap) = streams.admit(&caps("ana")).err().unwrap();
        assert_eq!((key.as_str(), cap), ("watch:operator:ana", 2));
        // The refusal took nothing.
        assert_eq!(streams.open("watch"), 2);
        let _b1 = streams.admit(&caps("bob")).unwrap();
        let (key, _) = streams.admit(&caps("bob")).err().unwrap();
        assert_eq!(key, "watch");
        drop(a1);
        assert_eq!(streams.open("watch:operator:ana"), 1);
        assert!(streams.admit(&caps("bob")).is_ok());
        let status = refusal("watch", "watch:operator:ana", 2);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status
                .message()
                .contains("operator ana has 2 live watch streams")
        );
    }
}
