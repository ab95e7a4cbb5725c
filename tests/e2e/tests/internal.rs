//! What both builds answer on their internal ports, held to
//! `openapi/internal.yaml`: probes, metrics, the fault flags (enabled here,
//! as a lab enables them) and the user lookup, including their errors. The
//! run must see every documented operation succeed on some process. gRPC
//! on the same port: only the payment service serves any.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use twinshop_client::{
    Client, ExchangeLog, Method, Payments,
    internal::{Code, HealthStatus},
};
use twinshop_e2e::{
    Shop,
    openapi::{Contract, internal_document_path},
    plan,
};
use twinshop_launcher::{Build, Service};
use twinshop_platform::problem::ErrorCode;

/// A recording client of each process's internal port, by service.
fn internal_clients(shop: &Shop, log: &ExchangeLog) -> Vec<(Service, Client)> {
    shop.system()
        .processes()
        .into_iter()
        .map(|p| {
            let client = Client::builder()
                .recorder(log.recorder())
                .build(&p.internal_url())
                .expect("a client of the internal port");
            (p.id.service, client)
        })
        .collect()
}

fn areas(service: Service) -> &'static [&'static str] {
    match service {
        Service::User => &["user"],
        Service::Payment => &["payment"],
        Service::Order => &["order"],
        Service::Monolith => &["user", "payment", "order"],
    }
}

/// Every operation of the internal port, and its errors, on one process.
async fn exercise(service: Service, internal: &Client, user_id: &str) {
    for path in ["/livez", "/readyz", "/metrics", "/faults"] {
        let res = internal.get(path).send().await.expect(path);
        assert_eq!(res.status(), 200, "{service:?} {path}: {}", res.text());
    }
    for area in areas(service) {
        let at = format!("/faults/{area}");
        let res = internal.request(Method::PUT, &at).json(&json!({"latency_ms": 1})).send().await.expect("put");
        assert_eq!(res.status(), 200, "{}", res.text());
        let view: Value = internal.get(&at).send().await.expect("get").json().expect("json");
        assert_eq!(view["flags"]["latency_ms"], 1, "{view}");
        for bad in [json!({"leak_kb": 1}), json!({"burn_cores": 99}), json!({"latency_ms": -1})] {
            let res = internal.request(Method::PUT, &at).json(&bad).send().await.expect("put");
            assert_eq!(res.status(), 400, "{bad}: {}", res.text());
        }
        let res = internal.request(Method::PUT, &at).body(Some("application/json"), "leak!").send().await;
        assert_eq!(res.expect("put").status(), 400);
        let res = internal.request(Method::DELETE, &at).send().await.expect("delete");
        assert_eq!(res.status(), 204);
    }
    for (method, path, status) in [
        (Method::GET, "/faults/shipping", 404),
        (Method::DELETE, "/faults/shipping", 404),
        (Method::GET, "/nothing-here", 404),
        (Method::POST, "/livez", 405),
    ] {
        let res = internal.request(method.clone(), path).send().await.expect(path);
        assert_eq!(res.status(), status, "{method} {path}: {}", res.text());
    }
    let lookup = internal.get(format!("/internal/v1/users/{user_id}")).send().await.expect("lookup");
    match service {
        Service::User => {
            assert_eq!(lookup.status(), 200, "{}", lookup.text());
            let missing = internal.get("/internal/v1/users/0190a7a4-0000-7000-8000-000000000000").send().await;
            assert_eq!(missing.expect("lookup").status(), 404);
            let malformed = internal.get("/internal/v1/users/not-an-id").send().await.expect("lookup");
            assert_eq!(malformed.status(), 404);
        }
        // Only the user service serves the lookup over the network.
        _ => assert_eq!(lookup.status(), 404, "{service:?}"),
    }
    // gRPC: only the payment service serves any (the monolith's areas call
    // Payments in-process); elsewhere every call is UNIMPLEMENTED.
    let grpc = Payments::new(internal.base_url()).expect("a gRPC client");
    match service {
        Service::Payment => assert_eq!(grpc.health("").await.expect("health"), HealthStatus::Serving),
        _ => {
            let err = grpc.health("").await.expect_err("no gRPC here");
            assert_eq!(err.code(), Some(Code::Unimplemented), "{service:?}: {err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_builds_internal_ports_answer_as_openapi_internal_yaml_says() {
    let contract = Contract::load(&internal_document_path()).expect("openapi/internal.yaml loads");
    let log = ExchangeLog::new();
    for build in [Build::Microservices, Build::Monolith] {
        let mut plan = plan(build, &format!("internal-{}", build.name()));
        for service in build.services() {
            plan = plan.env(*service, format!("{}FAULTS_ENABLED", service.env_prefix()), "true");
        }
        let shop = Shop::start(plan).await;
        let (_, user_id) = shop.user(true).await;
        for (service, internal) in internal_clients(&shop, &log) {
            exercise(service, &internal, &user_id.to_string()).await;
        }
        shop.stop().await;
    }
    let exchanges = log.exchanges();
    let problems = contract.check(&exchanges);
    assert!(
        problems.is_empty(),
        "{} of {} answers disagree with openapi/internal.yaml:\n{}",
        problems.len(),
        exchanges.len(),
        problems.join("\n")
    );
    let coverage = contract.coverage(&exchanges);
    assert!(
        coverage.operations_without_success.is_empty(),
        "never succeeded: {:?}",
        coverage.operations_without_success
    );
    assert!(coverage.codes_never_seen.is_empty(), "codes never seen: {:?}", coverage.codes_never_seen);
}

#[test]
fn the_internal_documents_error_codes_are_the_platforms() {
    let contract = Contract::load(&internal_document_path()).expect("openapi/internal.yaml loads");
    let platform: BTreeMap<String, (u16, String)> = ErrorCode::ALL
        .iter()
        .map(|code| (code.as_str().to_owned(), (code.status().as_u16(), code.title().to_owned())))
        .collect();
    for (code, documented) in &contract.error_table {
        assert_eq!(platform.get(code), Some(documented), "{code}");
    }
}
