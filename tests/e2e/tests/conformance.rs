//! Both builds against the same black-box conformance suite (`conformance/`):
//! the microservices behind the real edge, and the monolith. Each run prints
//! which build it tested and its pass/fail count.

use twinshop_conformance::{Target, run};
use twinshop_e2e::{Edge, Monolith, Options, Stack, Svc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_microservices_build_behind_the_edge_passes_the_conformance_suite() {
    let stack = Stack::start(Options::default()).await;
    let edge =
        Edge::start(&stack.public_addr(Svc::User), &stack.public_addr(Svc::Payment), &stack.public_addr(Svc::Order))
            .await;
    let report = run(&Target { name: "microservices".into(), base_url: edge.url() }, None).await;
    eprintln!("{report}");
    assert!(report.failed.is_empty() && !report.passed.is_empty(), "{report}");
    drop(edge);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monolith_passes_the_conformance_suite() {
    let monolith = Monolith::start("strict").await;
    let report = run(&Target { name: "monolith".into(), base_url: monolith.url() }, None).await;
    eprintln!("{report}");
    assert!(report.failed.is_empty() && !report.passed.is_empty(), "{report}");
    monolith.stop().await;
}
