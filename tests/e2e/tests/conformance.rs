//! Both builds against the same black-box conformance suite (`conformance/`):
//! the microservices behind the real edge, and the monolith. Each run prints
//! which build it tested and its pass/fail count. Every exchange of each run
//! is then held to `openapi/twinshop.yaml` (see `twinshop_e2e::openapi`).

use std::collections::BTreeSet;

use twinshop_conformance::{Report, Target, run};
use twinshop_e2e::{
    Edge, Monolith, Options, Stack, Svc,
    openapi::{Contract, document_path},
};

/// Codes only a failing dependency produces. The conformance suite runs
/// against a healthy deployment, so it cannot see them; the failure tests
/// (`tests/failures.rs`) provoke them and check the problem they carry.
const CODES_ONLY_ON_FAILURE: [&str; 2] = ["dependency_unavailable", "payment_unavailable"];

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
    let stack = Stack::start(Options::default()).await;
    let edge =
        Edge::start(&stack.public_addr(Svc::User), &stack.public_addr(Svc::Payment), &stack.public_addr(Svc::Order))
            .await;
    let report = run(&Target { name: "microservices".into(), base_url: edge.url() }, None).await;
    assert_conforms(&report);
    drop(edge);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monolith_passes_the_conformance_suite() {
    let monolith = Monolith::start("strict").await;
    let report = run(&Target { name: "monolith".into(), base_url: monolith.url() }, None).await;
    assert_conforms(&report);
    monolith.stop().await;
}
