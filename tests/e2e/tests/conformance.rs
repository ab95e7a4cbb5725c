//! Both builds against the same black-box conformance suite (`conformance/`):
//! the microservices behind the real edge, and the monolith on its own
//! public port, each started by the launcher. Each run prints which build it
//! tested and its pass/fail count. Every exchange of each run is then held
//! to `openapi/twinshop.yaml` (see `twinshop_e2e::openapi`).

use std::collections::BTreeSet;

use twinshop_conformance::{Report, Target, run};
use twinshop_e2e::{
    Shop,
    openapi::{Contract, document_path},
    plan,
};
use twinshop_launcher::Build;

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
