//! Logs and traces: one JSON object per line on stdout, and OpenTelemetry
//! spans exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! Why it is built this way:
//! - An `SdkTracerProvider` is installed even without an exporter, because
//!   only a real tracer assigns trace and span ids; the logs carry them
//!   either way, so a log line can always be joined to its trace.
//! - The batch processor exports from its own thread with a bounded queue:
//!   a collector that is down drops spans, it never slows a request.
//! - [`Telemetry::shutdown`] flushes what is queued; call it last.
//! - Which requests are recorded is the standard `OTEL_TRACES_SAMPLER`
//!   (and `_ARG`), parsed here so a typo exits 64; parent-based samplers
//!   follow the caller's `traceparent`, which is how `loadtest compare`
//!   records exactly the requests it times (see [`SamplerName`]).
//! - The OpenTelemetry layer is told to do less than its defaults, each cut
//!   measured (issue 16, `docs/loadtest/ab-2026-12-06/`): it does not make
//!   a span's OpenTelemetry context the thread's current one on every enter
//!   and exit (every poll of an instrumented future; our code asks a span
//!   for its context, [`crate::propagation`], and the log lines find it
//!   from the span, [`JsonLines`]), and it adds no thread or source-location
//!   attributes (which thread polled a span says nothing in async code).
//!   Busy and idle time stay: the trace map reads them.
//! - A binary's first log line is its build identity
//!   ([`crate::build_info`]), and its spans carry it as resource
//!   attributes (`service.version`, `twinshop.commit`, `twinshop.release`).

use std::{
    fmt, io,
    sync::{Arc, OnceLock},
    time::Duration,
};

use opentelemetry::{
    KeyValue, global,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracer, SdkTracerProvider},
};
use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::{Dispatch, Event, Subscriber, dispatcher::WeakDispatch, field::Field};
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::LevelFilter,
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter,
        format::{JsonFields, Writer},
        time::{FormatTime, SystemTime},
    },
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

use crate::build_info::BuildInfo;

/// `OTEL_*`: the standard OpenTelemetry variable names.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TelemetryConfig {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://jaeger:4317`. Unset: no export.
    pub exporter_otlp_endpoint: Option<String>,
    /// `OTEL_SERVICE_NAME`: overrides the binary's own name in traces.
    pub service_name: Option<String>,
    /// `OTEL_TRACES_SAMPLER`: which requests are recorded (the
    /// specification's names); unset: `parentbased_always_on`.
    pub traces_sampler: Option<SamplerName>,
    /// `OTEL_TRACES_SAMPLER_ARG`: the ratio of the `*traceidratio`
    /// samplers, 0 to 1; unset: 1.
    pub traces_sampler_arg: Option<Ratio>,
}

/// The samplers of the OpenTelemetry specification's `OTEL_TRACES_SAMPLER`.
///
/// The SDK would read the variable itself, but fall back to the default on
/// a value it does not know; read here, a typo stops the process (exit 64)
/// like any other malformed variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerName {
    AlwaysOn,
    AlwaysOff,
    Traceidratio,
    ParentbasedAlwaysOn,
    ParentbasedAlwaysOff,
    /// A caller's decision is followed (its `traceparent`'s sampled flag);
    /// a request without one is recorded with probability `ratio`.
    ParentbasedTraceidratio,
}

/// A probability, 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio(pub f64);

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(serde::de::Error::custom("must be a number from 0 to 1"))
        }
    }
}

impl TelemetryConfig {
    /// The sampler these variables name.
    pub fn sampler(&self) -> Sampler {
        let ratio = self.traces_sampler_arg.map_or(1.0, |r| r.0);
        match self.traces_sampler.unwrap_or(SamplerName::ParentbasedAlwaysOn) {
            SamplerName::AlwaysOn => Sampler::AlwaysOn,
            SamplerName::AlwaysOff => Sampler::AlwaysOff,
            SamplerName::Traceidratio => Sampler::TraceIdRatioBased(ratio),
            SamplerName::ParentbasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            SamplerName::ParentbasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            SamplerName::ParentbasedTraceidratio => Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))),
        }
    }
}

/// Owns the tracer provider; flush it with [`Telemetry::shutdown`].
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Installs the global subscriber (JSON to stdout, level from
    /// `RUST_LOG`, default `info`), the W3C propagator and the tracer.
    /// Must run inside the tokio runtime (the OTLP client lives there).
    pub fn init(default_service: &str, config: &TelemetryConfig) -> anyhow::Result<Self> {
        Self::init_with_writer(default_service, config, io::stdout)
    }

    /// Like [`Telemetry::init`] but writing log lines to `writer`.
    pub fn init_with_writer<W>(default_service: &str, config: &TelemetryConfig, writer: W) -> anyhow::Result<Self>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        let service = config.service_name.clone().unwrap_or_else(|| default_service.to_owned());
        let provider = sampled_tracer_provider(&service, config.exporter_otlp_endpoint.as_deref(), config.sampler())?;
        global::set_text_map_propagator(TraceContextPropagator::new());
        global::set_tracer_provider(provider.clone());
        let filter = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into()).from_env_lossy();
        // Only spans at INFO and above become OTel spans: keeps hyper/h2
        // internals (and the exporter's own connection) out of traces.
        let otel = otel_layer(provider.tracer(service.clone())).with_filter(LevelFilter::INFO);
        let json = JsonLines::default();
        let logs = tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(json.clone())
            .with_writer(writer);
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(filter).with(otel).with(logs));
        json.attach(&dispatch);
        // A second init in one process (tests) keeps the first subscriber.
        let _ = dispatch.try_init();
        // Nothing has logged before this line: it is the process's first.
        if let Some(build) = BuildInfo::current() {
            tracing::info!(
                version = build.version,
                commit = build.commit,
                release = build.release,
                profile = build.profile,
                "{service} {build} starting"
            );
        }
        Ok(Self { provider })
    }

    /// Exports every queued span (bounded by the SDK's 5 s limit), then stops.
    pub async fn shutdown(self) {
        let provider = self.provider;
        // The flush blocks; keep it off the async worker threads.
        let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(err)) = result {
            tracing::warn!(error = %err, "telemetry flush failed");
        }
    }
}

/// A provider that always assigns ids; it exports only when an endpoint is
/// set, and records what the default sampler (`parentbased_always_on`) says.
pub fn tracer_provider(service: &str, endpoint: Option<&str>) -> anyhow::Result<SdkTracerProvider> {
    sampled_tracer_provider(service, endpoint, TelemetryConfig::default().sampler())
}

/// [`tracer_provider`] with another sampler. A span the sampler drops still
/// has ids (log lines keep their `trace_id`); it is neither recorded nor
/// exported.
pub fn sampled_tracer_provider(
    service: &str,
    endpoint: Option<&str>,
    sampler: Sampler,
) -> anyhow::Result<SdkTracerProvider> {
    let mut resource = Resource::builder().with_service_name(service.to_owned());
    if let Some(build) = BuildInfo::current() {
        resource = resource.with_attributes([
            KeyValue::new("service.version", build.version),
            KeyValue::new("twinshop.commit", build.commit),
            KeyValue::new("twinshop.release", build.release),
        ]);
    }
    let resource = resource.build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource).with_sampler(sampler);
    if let Some(endpoint) = endpoint.filter(|e| !e.is_empty()) {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(3))
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// The OpenTelemetry layer as every binary installs it (see the module
/// documentation for what it leaves out, and why).
pub fn otel_layer<S>(tracer: SdkTracer) -> tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_context_activation(false)
        .with_threads(false)
        .with_location(false)
}

/// Formats each event as one JSON object: `timestamp`, `level`, `target`,
/// `message`, the event's fields, the current span's name and fields, and
/// `trace_id`/`span_id` when a span is active.
///
/// The ids are read from the event's span through the subscriber it is part
/// of ([`JsonLines::attach`]): the OpenTelemetry layer does not make a
/// span's context the current one on enter (see [`otel_layer`]).
#[derive(Debug, Clone, Default)]
pub struct JsonLines {
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl JsonLines {
    /// Tells the formatter the subscriber it formats for, so it can ask the
    /// OpenTelemetry layer for a span's ids. Without it, lines carry none.
    pub fn attach(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    /// The trace and span id of the span with `id`, if it has a valid one.
    fn ids(&self, id: &tracing::span::Id) -> Option<opentelemetry::trace::SpanContext> {
        let dispatch = self.dispatch.get()?.upgrade()?;
        let cx = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
        let span_context = cx.span().span_context().clone();
        span_context.is_valid().then_some(span_context)
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        let mut ts = String::new();
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        line.insert("timestamp".into(), ts.into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());

        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        if let Some(message) = fields.remove("message") {
            line.insert("message".into(), message);
        }
        if !fields.is_empty() {
            line.insert("fields".into(), Value::Object(fields));
        }
        let mut span_id = None;
        if let Some(span) = ctx.parent_span() {
            let mut span_json = Map::new();
            span_json.insert("name".into(), span.name().into());
            if let Some(formatted) = span.extensions().get::<FormattedFields<N>>()
                && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&formatted.fields)
            {
                span_json.extend(map);
            }
            line.insert("span".into(), Value::Object(span_json));
            span_id = Some(span.id());
        }
        // After the span's extensions are released: the OTel layer locks them.
        if let Some(span_context) = span_id.and_then(|id| self.ids(&id)) {
            line.insert("trace_id".into(), span_context.trace_id().to_string().into());
            line.insert("span_id".into(), span_context.span_id().to_string().into());
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().map_err(|_| io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn telemetry(vars: &[(&str, &str)]) -> Result<TelemetryConfig, crate::config::ConfigError> {
        crate::config::from_vars("OTEL_", vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn the_sampler_is_the_standard_variable_and_a_typo_names_it() {
        let parent_ratio =
            telemetry(&[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.25")])
                .expect("valid");
        assert_eq!(parent_ratio.traces_sampler, Some(SamplerName::ParentbasedTraceidratio));
        assert_eq!(format!("{:?}", parent_ratio.sampler()), "ParentBased(TraceIdRatioBased(0.25))");
        let default = telemetry(&[]).expect("valid");
        assert_eq!(format!("{:?}", default.sampler()), "ParentBased(AlwaysOn)");
        let typo = telemetry(&[("OTEL_TRACES_SAMPLER", "parentbased_traceratio")]).expect_err("unknown sampler");
        assert_eq!(typo.variable, "OTEL_TRACES_SAMPLER");
        let out_of_range = telemetry(&[("OTEL_TRACES_SAMPLER_ARG", "1.5")]).expect_err("not a probability");
        assert_eq!(out_of_range.variable, "OTEL_TRACES_SAMPLER_ARG");
    }

    #[test]
    fn a_binary_logs_its_identity_first() {
        BuildInfo::new("0.1.0", Some("3f2a9c"), Some("r2"), false).install();
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let telemetry = Telemetry::init_with_writer("order", &TelemetryConfig::default(), move || writer.clone());
        assert!(telemetry.is_ok());
        tracing::info!("later");
        let out = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf8");
        let first: Value = serde_json::from_str(out.lines().next().expect("a line")).expect("JSON");
        assert_eq!(first["message"], "order 0.1.0 (commit 3f2a9c, release r2, profile release) starting");
        assert_eq!(first["fields"]["release"], "r2");
        assert_eq!(first["fields"]["commit"], "3f2a9c");
    }

    #[test]
    fn log_lines_are_json_with_trace_and_span_ids_inside_a_span() {
        let buffer = Buffer::default();
        let provider = tracer_provider("test", None).expect("provider");
        let writer = buffer.clone();
        let json = JsonLines::default();
        let subscriber = tracing_subscriber::registry().with(otel_layer(provider.tracer("test"))).with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(json.clone())
                .with_writer(move || writer.clone()),
        );
        let dispatch = Dispatch::new(subscriber);
        json.attach(&dispatch);
        let (mut outer, mut inner) = (None, None);
        tracing::dispatcher::with_default(&dispatch, || {
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            tracing::info!(outside = 1, "no span");
            let span = tracing::info_span!("use_case", user_id = "u-1");
            span.in_scope(|| tracing::info!(n = 2, "inside"));
            let child = span.in_scope(|| tracing::info_span!("step"));
            child.in_scope(|| tracing::info!("in the child"));
            outer = Some(span.context().span().span_context().clone());
            inner = Some(child.context().span().span_context().clone());
        });
        let out = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf8");
        let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["message"], "no span");
        assert!(lines[0].get("trace_id").is_none());
        assert_eq!(lines[1]["fields"]["n"], 2);
        assert_eq!(lines[1]["span"]["name"], "use_case");
        assert_eq!(lines[1]["span"]["user_id"], "u-1");
        // The ids are the span's own, as its OpenTelemetry context has them;
        // a child span is in the same trace, with an id of its own.
        let (outer, inner) = (outer.expect("outer context"), inner.expect("inner context"));
        assert_eq!(lines[1]["trace_id"], outer.trace_id().to_string());
        assert_eq!(lines[1]["span_id"], outer.span_id().to_string());
        assert_eq!(lines[2]["span"]["name"], "step");
        assert_eq!(lines[2]["trace_id"], outer.trace_id().to_string());
        assert_eq!(lines[2]["span_id"], inner.span_id().to_string());
        assert_ne!(inner.span_id(), outer.span_id());
    }
}
