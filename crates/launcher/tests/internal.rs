//! Several user and payment replicas: the order service reaches them through
//! the launcher's internal balancers (HTTP for the user lookup, gRPC for
//! payment), so rolling them fails no order placement either.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use common::{client, place_order, plan, user_with_money};
use twinshop_launcher::{Plan, Service, System};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_user_and_payment_behind_the_internal_balancers_fails_no_order() {
    let plan = plan(Plan::microservices(), "internal").replicas(Service::User, 2).replicas(Service::Payment, 2);
    let system = Arc::new(System::start(plan).await.expect("start"));
    let edge = system.url().expect("edge");
    let balancer = system.edge().expect("edge").balancer().expect("an internal balancer");
    let conf = std::fs::read_to_string(balancer.prefix().join("nginx.conf")).expect("conf");
    assert!(conf.contains("grpc_pass grpc://twinshop_internal_payment;") && conf.contains("twinshop_internal_user"));

    let http = client();
    let token = user_with_money(&http, &edge).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (confirmed, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..2 {
        let (stop, confirmed, failed, failures) = (stop.clone(), confirmed.clone(), failed.clone(), failures.clone());
        let (edge, token, http) = (edge.clone(), token.clone(), http.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("launcher-{w}-{n}");
                let outcome = place_order(&http, &edge, &token, &key).await;
                match outcome {
                    Some((201, Some(s))) if s == "confirmed" => confirmed.fetch_add(1, Ordering::Relaxed),
                    other => {
                        failures.lock().expect("lock").push(format!("{other:?}"));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let payments = system.rolling_replace(Service::Payment, None).await.expect("roll payment");
    let users = system.rolling_replace(Service::User, None).await.expect("roll user");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let (confirmed, failed) = (confirmed.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "orders during the rolls: {confirmed} confirmed, {failed} failed; payment roll {:?}, user roll {:?}",
        payments.took, users.took
    );
    assert_eq!(failed, 0, "{:?}", failures.lock().expect("lock"));
    assert!(confirmed >= 5, "orders kept flowing ({confirmed})");
    // Killing the edge leaves the balancer, so order still reaches payment.
    system.kill_edge().await.expect("kill the edge");
    assert!(balancer.supervisor().pid().is_some(), "the balancer is a process of its own");
    let system = Arc::into_inner(system).expect("sole owner");
    let report = system.stop().await.expect("stop");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
