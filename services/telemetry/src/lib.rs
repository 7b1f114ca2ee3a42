//! Telemetry: logs, traces and metrics, configured the standard OpenTelemetry way.
//!
//! - **Logs** go to stderr: readable in the demo and the CLI, JSON in production
//!   (`CENTINELA_LOG_FORMAT=json|pretty`, `RUST_LOG` for levels). Every log line inside a
//!   request carries the request's `trace_id`. Readable logs are coloured only when stderr is
//!   a terminal and `NO_COLOR` is unset or empty (no-color.org): a log redirected to a file or
//!   a pipe holds no escape codes. JSON logs never do.
//! - **Traces and metrics** are exported over OTLP/gRPC when the standard variables ask for it:
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (or the `_TRACES_`/`_METRICS_` variants), `OTEL_SERVICE_NAME`,
//!   `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`(`_ARG`), `OTEL_METRIC_EXPORT_INTERVAL`,
//!   `OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER=none`, `OTEL_METRICS_EXPORTER=none`. With none
//!   set, nothing is exported and the instruments are no-ops.
//! - Export never slows dispatch: spans go through a bounded batch queue drained by a background
//!   thread (a full queue drops spans, it never blocks), metrics are read periodically. A dead
//!   collector costs failed background exports, nothing on the request path.
//!
//! # Layout
//! - [`init`] / [`Telemetry`]: set up the subscriber and the exporters; flush on shutdown.
//! - [`metrics`]: every instrument, its name, unit and meaning, in one place.
//! - [`propagation`]: W3C trace context in gRPC metadata and in stored records.
//! - [`grpc`]: a tower layer giving every gRPC request a server span (parent from its
//!   metadata) and a latency histogram.

pub mod grpc;
pub mod metrics;
pub mod propagation;

use std::io::IsTerminal as _;
use std::time::Duration;

use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: the demo and the CLI.
    Pretty,
    /// One JSON object per line: production, log shippers.
    Json,
}

/// What the binary knows before telemetry starts.
#[derive(Clone, Debug)]
pub struct Options {
    /// Log level when `RUST_LOG` is unset.
    pub default_level: &'static str,
    /// Format when `CENTINELA_LOG_FORMAT` is unset (or neither `json` nor `pretty`: a warning
    /// says so).
    pub log_format: LogFormat,
    /// `service.name` when `OTEL_SERVICE_NAME` is unset.
    pub service_name: &'static str,
    /// `service.instance.id` (the node id), when known.
    pub instance: Option<String>,
}

/// The variable that picks the log format (`json` or `pretty`).
pub const LOG_FORMAT_VAR: &str = "CENTINELA_LOG_FORMAT";

impl LogFormat {
    /// `json` or `pretty`, in any case; `None` for anything else.
    pub fn parse(value: &str) -> Option<LogFormat> {
        match value.trim().to_ascii_lowercase().as_str() {
            "json" => Some(LogFormat::Json),
            "pretty" => Some(LogFormat::Pretty),
            _ => None,
        }
    }
}

/// Whether readable logs get ANSI colours: only on a terminal (a file or a pipe would keep
/// the escape codes), and never when `NO_COLOR` is set to anything but empty (no-color.org).
pub fn colour_wanted(stream_is_terminal: bool, no_color: Option<&str>) -> bool {
    stream_is_terminal && no_color.is_none_or(str::is_empty)
}

/// Keeps the exporters; [`Telemetry::shutdown`] flushes them.
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    log_format: LogFormat,
}

/// How long shutdown waits for the last spans and metrics to leave.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

impl Telemetry {
    /// The format the logs are written in: what the process says on stderr besides its logs
    /// follows it (in JSON, a log shipper reads every line as an object).
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }

    /// Flushes and stops the exporters, waiting [`FLUSH_TIMEOUT`] at most in all: a hung
    /// collector must not hold the process (Kubernetes kills it after its grace period). The
    /// exporters' own flush waits for an export's timeout (10 s by default), so it runs on a
    /// thread of its own that the process does not wait for past the deadline.
    pub fn shutdown(self) {
        if self.tracer.is_none() && self.meter.is_none() {
            return;
        }
        let (done, finished) = std::sync::mpsc::channel();
        let flushing = std::thread::Builder::new()
            .name("otel-shutdown".into())
            .spawn(move || {
                if let Some(tracer) = self.tracer {
                    let _ = tracer.shutdown_with_timeout(FLUSH_TIMEOUT);
                }
                if let Some(meter) = self.meter {
                    let _ = meter.shutdown_with_timeout(FLUSH_TIMEOUT);
                }
                let _ = done.send(());
            });
        if flushing.is_ok() && finished.recv_timeout(FLUSH_TIMEOUT).is_err() {
            tracing::warn!(
                timeout_ms = FLUSH_TIMEOUT.as_millis() as u64,
                "telemetry not flushed in time; exiting without it"
            );
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn exporter_wanted(kind: &str) -> bool {
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return false;
    }
    let selector = format!("OTEL_{}_EXPORTER", kind.to_ascii_uppercase());
    if env(&selector).is_some_and(|v| v.eq_ignore_ascii_case("none")) {
        return false;
    }
    env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || env(&format!(
            "OTEL_EXPORTER_OTLP_{}_ENDPOINT",
            kind.to_ascii_uppercase()
        ))
        .is_some()
}

fn resource(options: &Options) -> Resource {
    let mut builder = Resource::builder();
    if env("OTEL_SERVICE_NAME").is_none() {
        builder = builder.with_service_name(options.service_name);
    }
    if let Some(instance) = &options.instance {
        builder = builder.with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            instance.clone(),
        ));
    }
    builder.build()
}

/// Sets up logging and, when configured, trace and metric export. Call once, inside the tokio
/// runtime (the OTLP exporter's gRPC client needs it), before anything records telemetry.
pub fn init(options: Options) -> Telemetry {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = resource(&options);

    let mut export_errors = Vec::new();
    let tracer = if exporter_wanted("traces") {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource.clone())
                    .build(),
            ),
            Err(e) => {
                export_errors.push(format!("traces: {e}"));
                None
            }
        }
    } else {
        None
    };
    let meter = if exporter_wanted("metrics") {
        match opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => {
                let provider = SdkMeterProvider::builder()
                    .with_reader(PeriodicReader::builder(exporter).build())
                    .with_resource(resource)
                    .build();
                global::set_meter_provider(provider.clone());
                Some(provider)
            }
            Err(e) => {
                export_errors.push(format!("metrics: {e}"));
                None
            }
        }
    } else {
        None
    };
    metrics::register_gauges();

    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(options.default_level));
    let requested = env(LOG_FORMAT_VAR);
    let format = requested
        .as_deref()
        .and_then(LogFormat::parse)
        .unwrap_or(options.log_format);
    let logs = match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(colour_wanted(
                std::io::stderr().is_terminal(),
                std::env::var("NO_COLOR").ok().as_deref(),
            ))
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(false)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // Only our own spans become OpenTelemetry spans: dependencies' internals would drown the
    // one trace per press. A filtered-out span's children attach to the nearest kept ancestor.
    let otel = tracer.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("centinela"))
            .with_filter(filter_fn(|meta| meta.target().starts_with("centinela")))
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(otel)
        .try_init();
    if let Some(value) = requested.filter(|v| LogFormat::parse(v).is_none()) {
        tracing::warn!(
            value = %value,
            using = ?format,
            "{LOG_FORMAT_VAR} is neither `json` nor `pretty`; using the default"
        );
    }
    for error in export_errors {
        tracing::warn!(%error, "OpenTelemetry export not started");
    }
    if tracer.is_some() || meter.is_some() {
        tracing::info!(
            traces = tracer.is_some(),
            metrics = meter.is_some(),
            "OpenTelemetry export on"
        );
    }
    Telemetry {
        tracer,
        meter,
        log_format: format,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_and_never_under_no_color() {
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some("")), "an empty NO_COLOR is unset");
        assert!(!colour_wanted(true, Some("1")));
        assert!(
            !colour_wanted(false, None),
            "a file or a pipe gets no escape codes"
        );
        assert!(!colour_wanted(false, Some("1")));
    }

    #[test]
    fn log_formats_parse_in_any_case() {
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse(" JSON "), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("Pretty"), Some(LogFormat::Pretty));
        assert_eq!(LogFormat::parse("yaml"), None);
    }
}
