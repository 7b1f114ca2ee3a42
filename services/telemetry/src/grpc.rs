//! A tower layer for a node's gRPC server: every call gets a server span (its parent taken from
//! the caller's `traceparent`, so a press's trace crosses nodes and devices) and its duration
//! recorded in [`GRPC_SERVER`](crate::metrics::GRPC_SERVER).
//!
//! Health checks and reflection are left out: probes every second would bury the calls that
//! matter.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use opentelemetry::KeyValue;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::metrics::instruments;
use crate::propagation::extract_headers;

#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct TraceService<S> {
    inner: S,
}

fn is_infrastructure(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

impl<S, B, R> Service<http::Request<B>> for TraceService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_string();
        if is_infrastructure(&path) {
            return Box::pin(self.inner.call(request));
        }
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %path,
            otel.kind = "server",
            rpc = %path,
            trace_id = tracing::field::Empty,
        );
        let parent = extract_headers(request.headers());
        {
            use opentelemetry::trace::TraceContextExt;
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            if parent.span().span_context().is_valid() {
                let _ = span.set_parent(parent);
            }
            let context = span.context();
            let trace = context.span().span_context().trace_id();
            if context.span().span_context().is_valid() {
                span.record("trace_id", tracing::field::display(trace));
            }
        }
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(
            async move {
                let result = future.await;
                let status = match &result {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0")
                        .to_string(),
                    Err(_) => "transport".to_string(),
                };
                instruments().grpc_server.record(
                    started.elapsed().as_secs_f64() * 1000.0,
                    &[KeyValue::new("rpc", path), KeyValue::new("status", status)],
                );
                result
            }
            .instrument(span),
        )
    }
}
