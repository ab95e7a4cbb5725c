//! A rolling replacement under steady load fails no request: each replica
//! leaves the edge (and nginx's old workers finish its requests) before it
//! is stopped, and comes back only once ready.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use common::{client, plan};
use twinshop_launcher::{EventKind, Plan, ProcessId, Service, System};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_every_order_replica_under_load_fails_no_request() {
    let plan = plan(Plan::microservices(), "rolling").replicas(Service::Order, 2);
    let system = Arc::new(System::start(plan).await.expect("start"));
    let edge = system.url().expect("edge");

    // A "new release": the same binary under another directory.
    let release = common::bin_dir().join(format!("launcher-release-{}", std::process::id()));
    std::fs::create_dir_all(&release).expect("release dir");
    let new_binary = release.join("order-service");
    let _ = std::fs::remove_file(&new_binary);
    std::fs::hard_link(common::bin_dir().join("order-service"), &new_binary).expect("link the release");

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, retried) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let (stop, ok, failed, retried) = (stop.clone(), ok.clone(), failed.clone(), retried.clone());
        let (failures, edge) = (failures.clone(), edge.clone());
        workers.push(tokio::spawn(async move {
            let http = client();
            while !stop.load(Ordering::Relaxed) {
                let url = format!("{edge}/v1/products");
                let mut answer = http.get(&url).send().await;
                // A reload makes nginx's old workers close their idle keepalive
                // connections; a request written in that instant gets a reset
                // without having been read. A careful client (as browsers do)
                // retries such a request once on a new connection.
                if answer.as_ref().is_err_and(|e| !e.is_timeout()) {
                    retried.fetch_add(1, Ordering::Relaxed);
                    answer = http.get(&url).send().await;
                }
                match answer {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        let what = other.map(|r| r.status().to_string()).unwrap_or_else(|e| format!("{e:?}"));
                        failures.lock().expect("lock").push(what);
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = ok.load(Ordering::Relaxed);
    let report = system.rolling_replace(Service::Order, Some(&release)).await.expect("rolling replace");
    let during = ok.load(Ordering::Relaxed) - before;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }

    let (ok, failed, retried) =
        (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed), retried.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "failed requests: {:?}", failures.lock().expect("lock"));
    assert!(during >= 20, "the load ran throughout the rollout ({during} requests during it)");
    assert_eq!(report.steps.len(), 2);
    for step in &report.steps {
        assert!(step.exit.as_ref().is_some_and(|e| e.expected && e.code == Some(0)), "{step:?}");
    }
    for r in 1..=2 {
        let info = system.process(ProcessId::new(Service::Order, r)).expect("order");
        assert_eq!(info.program, new_binary, "replica {r} runs the new release");
    }
    let events = system.events().snapshot();
    let outs = events.iter().filter(|e| e.kind == EventKind::OutOfEdge).count();
    let ins = events.iter().filter(|e| e.kind == EventKind::IntoEdge).count();
    assert_eq!((outs, ins), (2, 2));
    eprintln!(
        "rolling replace of 2 order replicas: {:?} in all, {ok} requests ({during} during it), 0 failed, \
         {retried} retried on a new connection; steps: {:?}",
        report.took, report.steps
    );

    let system = Arc::into_inner(system).expect("no other owner");
    let stopped = system.stop().await.expect("stop");
    assert!(stopped.problems.is_empty(), "{:?}", stopped.problems);
    let _ = std::fs::remove_dir_all(release);
}
