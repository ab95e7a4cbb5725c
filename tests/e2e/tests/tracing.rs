//! One trace across every hop: the HTTP request into the order service
//! (through the edge, which passes `traceparent` on), the HTTP lookup in the
//! user service, the gRPC charge in the payment service, and the AMQP
//! messages and their consumers. Proven by collecting the spans the three
//! real processes export over OTLP into a receiver in this test.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value as AnyValue,
};
use serde_json::json;
use twinshop_e2e::{Shop, plan};
use twinshop_launcher::Build;
use twinshop_testkit::eventually;

/// (service.name, span name, trace id as hex)
type Collected = Arc<Mutex<Vec<(String, String, String)>>>;

#[derive(Clone, Default)]
struct Receiver(Collected);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().map_err(|_| tonic::Status::internal("poisoned"))?;
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    let trace: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                    spans.push((service.clone(), span.name, trace));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

async fn start_receiver() -> (SocketAddr, Collected) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let receiver = Receiver::default();
    let collected = receiver.0.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver))
            .serve_with_incoming(tokio_stream_from(listener)),
    );
    (addr, collected)
}

fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let accepted = l.accept().await.map(|(s, _)| s);
        Some((accepted, l))
    })
}

fn spans_of(collected: &Collected, trace: &str) -> BTreeSet<(String, String)> {
    collected
        .lock()
        .map(|v| v.iter().filter(|(_, _, t)| t == trace).map(|(s, n, _)| (s.clone(), n.clone())).collect())
        .unwrap_or_default()
}

fn has(spans: &BTreeSet<(String, String)>, service: &str, name: &str) -> bool {
    spans.contains(&(service.to_owned(), name.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_id_spans_http_grpc_and_amqp_hops_of_a_placement_and_a_cancellation() {
    let (addr, collected) = start_receiver().await;
    let plan = plan(Build::Microservices, "tracing").env_all("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"));
    let shop = Shop::start(plan).await;
    let (buyer, _) = shop.user(true).await;
    buyer.top_up(10_000, None).await.expect("top up");

    // The client starts the trace; every hop must continue it.
    let place_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let res = buyer
        .post("/v1/orders")
        .header("traceparent", &format!("00-{place_trace}-00f067aa0ba902b7-01"))
        .json(&json!({"items": [{"product_id": "sku-tea", "quantity": 1}]}))
        .send()
        .await
        .expect("place");
    assert_eq!(res.status(), 201);
    let answered = res.header("traceresponse").unwrap_or_default().to_owned();
    assert!(answered.starts_with(&format!("00-{place_trace}-")), "the answer names the caller's trace: {answered:?}");
    let order: serde_json::Value = res.json().expect("json");
    assert_eq!(order["status"], "confirmed");

    // Without a traceparent the service starts the trace, and its answer
    // names it (`traceresponse`): the id a client shows is the one the
    // spans carry (the storefront links it to Jaeger).
    let res = buyer.get("/v1/wallet").send().await.expect("wallet");
    let started = res.header("traceresponse").and_then(|v| v.split('-').nth(1)).expect("traceresponse").to_owned();

    let cancel_trace = "0af7651916cd43dd8448eb211c80319c";
    let id = order["id"].as_str().expect("id");
    let res = buyer
        .post(format!("/v1/orders/{id}/cancel"))
        .header("traceparent", &format!("00-{cancel_trace}-b7ad6b7169203331-01"))
        .send()
        .await
        .expect("cancel");
    assert_eq!(res.status(), 200);

    let placement = eventually("the placement's spans from all three services", Duration::from_secs(30), || {
        let spans = spans_of(&collected, place_trace);
        async move {
            (has(&spans, "order", "POST /v1/orders")
                && has(&spans, "user", "GET /internal/v1/users/{id}")
                && has(&spans, "payment", "twinshop.payment.v1.Payments/Charge")
                && has(&spans, "order", "order.confirmed publish")
                && has(&spans, "user", "order.confirmed process"))
            .then_some(spans)
        }
    })
    .await;
    assert!(
        has(&placement, "order", "twinshop.payment.v1.Payments/Charge"),
        "the client side of the gRPC hop: {placement:?}"
    );
    eventually("the span of the trace a traceresponse named", Duration::from_secs(30), || {
        let spans = spans_of(&collected, &started);
        async move { has(&spans, "payment", "GET /v1/wallet").then_some(()) }
    })
    .await;

    eventually("the cancellation's spans through both AMQP hops", Duration::from_secs(30), || {
        let spans = spans_of(&collected, cancel_trace);
        async move {
            (has(&spans, "order", "POST /v1/orders/{id}/cancel")
                && has(&spans, "order", "order.cancelled publish")
                && has(&spans, "payment", "order.cancelled process")
                && has(&spans, "payment", "payment.refunded publish")
                && has(&spans, "order", "payment.refunded process")
                && has(&spans, "user", "order.cancelled process"))
            .then_some(())
        }
    })
    .await;
    shop.stop().await;
}
