//! A short real run of the `loadtest` binary against a monolith the
//! launcher started: it must set up its users, send traffic, pass the
//! correctness check and write its three reports. Nothing here asserts speed.
//!
//! Needs the backing services and the monolith's debug binary
//! (`cargo build --bins -p twinshop-monolith`), like the end-to-end tests.

use std::time::Duration;

use twinshop_launcher::{LogTarget, Plan, System, plan::workspace_root};
use twinshop_loadtest::report::RunReport;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_open_model_run_against_the_monolith_stays_correct_and_writes_its_reports() {
    let logs = workspace_root().join("target/loadtest-test-logs").join(format!("monolith-run-{}", uuid_like()));
    let plan = Plan::monolith()
        .without_edge()
        .logs(LogTarget::Dir(logs.clone()))
        .drain(Duration::from_secs(10))
        .env_all("SHUTDOWN_TIMEOUT", "5");
    let mono = System::start(plan).await.unwrap_or_else(|e| panic!("starting the monolith: {e:#}"));
    let base_url = mono.processes().first().map(|p| p.public_url()).expect("the monolith runs");
    let out = std::env::temp_dir().join(format!("loadtest-e2e-{}", uuid_like()));
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["run", "--base-url", &base_url, "--rate", "30", "--duration", "3s", "--warmup", "1s"])
        .args(["--setup-users", "6", "--seed", "42", "--quiet", "--label", "e2e"])
        .arg("--out")
        .arg(&out)
        .output()
        .await
        .expect("run the loadtest binary");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "loadtest failed ({}):\n{stdout}\n{stderr}", run.status);

    for file in ["results.json", "report.md", "report.html"] {
        assert!(out.join(file).is_file(), "{file} is missing from {}", out.display());
    }
    let json = std::fs::read_to_string(out.join("results.json")).expect("read results.json");
    let report: RunReport = serde_json::from_str(&json).expect("results.json parses");
    assert_eq!(report.steps.len(), 1);
    let step = &report.steps[0];
    assert_eq!(step.summary.overall.count, 90, "3 s at 30 rps: {:#?}", step.summary.overall);
    assert!(step.orders.confirmed > 0, "some orders were placed and confirmed: {:?}", step.orders);
    let check = step.check.as_ref().expect("the check ran");
    assert!(check.passed, "violations: {:#?}", check.violations);
    assert_eq!(check.users_checked, 6);
    assert!(check.orders_checked as u64 >= step.orders.confirmed);
    let markdown = std::fs::read_to_string(out.join("report.md")).expect("read report.md");
    assert!(markdown.contains("**Correctness: PASSED**"), "{markdown}");

    let _ = std::fs::remove_dir_all(&out);
    let stopped = mono.stop().await.expect("stop");
    assert!(stopped.problems.is_empty(), "{:?}", stopped.problems);
    let _ = std::fs::remove_dir_all(&logs);
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}
