//! Both builds against the same black-box conformance suite (`conformance/`):
//! the microservices behind the real edge, and the monolith on its own
//! public port, each started by the launcher. Each run prints which build it
//! tested and its pass/fail count. Every exchange of each run is then held
//! to `openapi/twinshop.yaml` (see `twinshop_e2e::openapi`).
//!
//! The suite's internal mode checks the microservices' user and payment
//! services alone, as a port of either would be checked. The monolith has
//! no network internal contract (its areas call each other in-process; its
//! internal port serves no lookup and no gRPC, `tests/internal.rs`), so
//! only the public suite applies to it.

use std::collections::BTreeSet;

use twinshop_conformance::{
    Report, Target,
    internal::{self, InternalTarget},
    run,
};
use twinshop_e2e::{
    Service, Shop,
    openapi::{Contract, document_path, internal_document_path},
    plan,
};
use twinshop_launcher::{Build, ProcessId, plan::workspace_root};

/// Codes a healthy deployment under the suite's light load never gives.
/// Only a failing dependency produces the first two: the failure tests
/// (`tests/failures.rs`) provoke them. `overloaded` is the answer beyond a
/// process's bound of requests in flight (`crates/platform/src/http/shed.rs`
/// tests it), and `too_many_requests` comes after ten failed logins of one
/// account (`services/user/tests/api.rs`); the suite neither floods a process
/// nor hammers one account's password.
const CODES_ONLY_ON_FAILURE: [&str; 4] =
    ["dependency_unavailable", "payment_unavailable", "overloaded", "too_many_requests"];

/// The suite passed, every answer agrees with the OpenAPI document, and the
/// run reached every documented operation and every error code a healthy
/// deployment can give.
fn assert_conforms(report: &Report) {
    eprintln!("{report}");
    assert!(report.failed.is_empty() && !report.passed.is_empty(), "{report}");

    let contract = Contract::load(&document_path()).expect("openapi/twinshop.yaml loads");
    let problems = contract.check(&report.exchanges);
    assert!(
        problems.is_empty(),
        "{} of {} answers disagree with openapi/twinshop.yaml:\n{}",
        problems.len(),
        report.exchanges.len(),
        problems.join("\n")
    );
    let coverage = contract.coverage(&report.exchanges);
    assert!(
        coverage.operations_without_success.is_empty(),
        "documented operations the run never saw succeed: {:?}",
        coverage.operations_without_success
    );
    let expected_unseen: BTreeSet<String> = CODES_ONLY_ON_FAILURE.iter().map(|c| (*c).to_owned()).collect();
    assert_eq!(coverage.codes_never_seen, expected_unseen, "error codes the run never saw");
    eprintln!(
        "openapi ({}): {} answers agree with the document; documented responses not exercised: {}",
        report.build,
        report.exchanges.len(),
        coverage.responses_never_seen.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_microservices_build_behind_the_edge_passes_the_conformance_suite() {
    let shop = Shop::start(plan(Build::Microservices, "conformance-microservices")).await;
    let base_url = shop.client().base_url().to_owned();
    let report = run(&Target { name: "microservices".into(), base_url }, None).await;
    assert_conforms(&report);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monolith_passes_the_conformance_suite() {
    // No edge: the monolith itself answers every request, unknown routes
    // and oversized bodies included.
    let shop = Shop::start(plan(Build::Monolith, "conformance-monolith").without_edge()).await;
    let base_url = shop.client().base_url().to_owned();
    let report = run(&Target { name: "monolith".into(), base_url }, None).await;
    assert_conforms(&report);
    shop.stop().await;
}

/// The internal suite passed every case it selected, and every lookup
/// answer agrees with `openapi/internal.yaml`, every public one with
/// `openapi/twinshop.yaml`.
fn assert_internal_conforms(report: &Report, expected_cases: usize) {
    eprintln!("{report}");
    assert!(report.failed.is_empty(), "{report}");
    assert_eq!(report.passed.len(), expected_cases, "{report}");
    for (document, exchanges) in
        [(internal_document_path(), &report.internal_exchanges), (document_path(), &report.exchanges)]
    {
        let problems = Contract::load(&document).expect("the document loads").check(exchanges);
        assert!(problems.is_empty(), "{} disagrees:\n{}", document.display(), problems.join("\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_microservices_user_and_payment_services_pass_the_internal_suite_alone() {
    let shop = Shop::start(plan(Build::Microservices, "conformance-internal")).await;
    let process = |service| shop.system().process(ProcessId::new(service, 1)).expect("the service runs");
    let (user, payment) = (process(Service::User), process(Service::Payment));
    let all = internal::cases();
    let of = |contract| all.iter().filter(|(c, _)| *c == contract).count();
    let (lookup_cases, payments_cases) = (of(internal::Contract::UserLookup), of(internal::Contract::Payments));

    // Both contracts, users registered and logged in through the edge.
    let both = InternalTarget {
        name: "microservices, users via the edge".into(),
        base_url: shop.client().base_url().to_owned(),
        user_internal: Some(user.internal_url()),
        payment_grpc: Some(payment.internal_url()),
        signing_key: None,
    };
    assert!(lookup_cases > 0 && payments_cases > 0);
    assert_internal_conforms(&internal::run(&both, None).await, all.len());

    // The payment service alone, as a port of it is checked: its own public
    // port and tokens the suite signs with the development key.
    let key = std::fs::read_to_string(workspace_root().join("dev/keys/jwt-private.pem")).expect("the dev key");
    let payment_alone = InternalTarget {
        name: "payment service alone".into(),
        base_url: payment.public_url(),
        user_internal: None,
        payment_grpc: Some(payment.internal_url()),
        signing_key: Some(key),
    };
    assert_internal_conforms(&internal::run(&payment_alone, None).await, payments_cases);

    // The user service alone: users registered on its own public port.
    let user_alone = InternalTarget {
        name: "user service alone".into(),
        base_url: user.public_url(),
        user_internal: Some(user.internal_url()),
        payment_grpc: None,
        signing_key: None,
    };
    assert_internal_conforms(&internal::run(&user_alone, None).await, lookup_cases);

    // And it can fail: the order service's internal port serves no Payments
    // (every call is UNIMPLEMENTED), and the payment service's serves no
    // lookup (every id is 404, which only the 404 case expects).
    let impostor = InternalTarget {
        name: "not a payment service".into(),
        base_url: shop.client().base_url().to_owned(),
        user_internal: Some(payment.internal_url()),
        payment_grpc: Some(process(Service::Order).internal_url()),
        signing_key: None,
    };
    let report = internal::run(&impostor, None).await;
    eprintln!("{report}");
    assert_eq!(report.passed, ["the_lookup_of_an_unknown_or_malformed_id_is_404_not_found"], "{report}");
    assert_eq!(report.failed.len(), all.len() - 1, "{report}");
    shop.stop().await;
}
