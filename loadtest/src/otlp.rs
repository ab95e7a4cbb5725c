//! An OTLP/gRPC trace receiver inside the generator: the services export
//! their spans to it, and `compare` reads them back as [`SpanRecord`]s.
//!
//! Why it exists: the trace map (where a placed order's time goes, hop by
//! hop and stage by stage) needs the spans of the requests the generator
//! timed, and nothing may be installed on this machine to collect them.
//! The receiver is opentelemetry-proto's generated `TraceService` on the
//! workspace's one tonic; it keeps only what the map reads (ids, names,
//! kinds, times, a few attributes), in memory, for one build at a time.
//!
//! It costs the run little because little reaches it: the services record
//! only the requests the generator marks as sampled (a parent-based
//! sampler follows the `traceparent` the generator sends), a dozen orders
//! a second.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, Result};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
};
use tokio_util::sync::CancellationToken;

/// What a span is, as OTLP numbers it (`SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl Kind {
    fn from_otlp(kind: i32) -> Self {
        match kind {
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Internal,
        }
    }
}

/// One received span, as much of it as the trace map reads.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: u128,
    pub span_id: u64,
    /// 0 for a root.
    pub parent_id: u64,
    /// The exporting process's `service.name`.
    pub service: Arc<str>,
    pub name: String,
    pub kind: Kind,
    /// Unix nanoseconds.
    pub start_ns: u64,
    pub end_ns: u64,
    /// tracing-opentelemetry's time entered (polled) and not.
    pub busy_ns: Option<i64>,
    pub idle_ns: Option<i64>,
    /// `db.unit` of a connection's span (`order.create`, ...).
    pub unit: Option<String>,
}

impl SpanRecord {
    /// The span's duration in µs.
    pub fn duration_us(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e3
    }
}

fn string(value: Option<&AnyValue>) -> Option<String> {
    match value?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(value: Option<&AnyValue>) -> Option<i64> {
    match value?.value.as_ref()? {
        Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref())
}

fn id<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}

/// The spans of one export request, flattened.
pub fn records(request: ExportTraceServiceRequest) -> Vec<SpanRecord> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let attributes = resource_spans.resource.map(|r| r.attributes).unwrap_or_default();
        let service: Arc<str> = string(attribute(&attributes, "service.name")).unwrap_or_default().into();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            let (Some(trace), Some(own)) = (id::<16>(&span.trace_id), id::<8>(&span.span_id)) else { continue };
            out.push(SpanRecord {
                trace_id: u128::from_be_bytes(trace),
                span_id: u64::from_be_bytes(own),
                parent_id: id::<8>(&span.parent_span_id).map_or(0, u64::from_be_bytes),
                service: service.clone(),
                kind: Kind::from_otlp(span.kind),
                start_ns: span.start_time_unix_nano,
                end_ns: span.end_time_unix_nano,
                busy_ns: int(attribute(&span.attributes, "busy_ns")),
                idle_ns: int(attribute(&span.attributes, "idle_ns")),
                unit: string(attribute(&span.attributes, "db.unit")),
                name: span.name,
            });
        }
    }
    out
}

/// The spans received so far.
#[derive(Debug, Clone, Default)]
pub struct Collected(Arc<Mutex<Vec<SpanRecord>>>);

impl Collected {
    /// Takes everything received so far.
    pub fn take(&self) -> Vec<SpanRecord> {
        self.0.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }

    /// How many spans are held.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |v| v.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[tonic::async_trait]
impl TraceService for Collected {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = records(request.into_inner());
        self.0.lock().map_err(|_| tonic::Status::internal("poisoned"))?.extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// A running receiver.
#[derive(Debug)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>`: the services' `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    pub collected: Collected,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("binding the OTLP receiver")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let collected = Collected::default();
        let stop = CancellationToken::new();
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collected.clone()))
            .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
        let task = tokio::spawn(async move {
            if let Err(e) = server.await {
                eprintln!("otlp     the receiver failed: {e}");
            }
        });
        Ok(Self { endpoint, collected, stop, task })
    }

    /// Stops listening.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::{
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span},
    };

    use super::*;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..KeyValue::default() }
    }

    #[test]
    fn an_export_becomes_records_with_the_fields_the_map_reads() {
        let span = Span {
            trace_id: vec![0xab; 16],
            span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
            parent_span_id: vec![],
            name: "db.tx".into(),
            kind: 3,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 251_000,
            attributes: vec![
                kv("db.unit", Value::StringValue("order.create".into())),
                kv("busy_ns", Value::IntValue(40_000)),
            ],
            ..Span::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", Value::StringValue("order".into()))],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans { spans: vec![span], ..ScopeSpans::default() }],
                ..ResourceSpans::default()
            }],
        };
        let got = records(request);
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert_eq!(r.trace_id, u128::from_be_bytes([0xab; 16]));
        assert_eq!((r.span_id, r.parent_id), (0x0102_0304_0506_0708, 0));
        assert_eq!((&*r.service, r.kind), ("order", Kind::Client));
        assert_eq!(r.unit.as_deref(), Some("order.create"));
        assert_eq!((r.busy_ns, r.idle_ns), (Some(40_000), None));
        assert!((r.duration_us() - 250.0).abs() < 1e-9);
    }
}
