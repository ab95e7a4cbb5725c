//! The crate documentation's lab, end to end: two order replicas in their
//! own namespaces under a quarter-core quota, two payment replicas behind
//! the internal gRPC balancer; kill one order replica, cut order from
//! payment, heal, and roll payment under order placements.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use common::{client, eventually, place_order, plan, user_with_money};
use twinshop_launcher::{Limits, Plan, ProcessId, RestartPolicy, Service, System};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_partition_heal_and_roll_in_namespaces() {
    twinshop_launcher::prereq::ensure("iptables", "iptables").expect("iptables");
    let plan = plan(Plan::microservices(), "lab")
        .replicas(Service::Order, 2)
        .replicas(Service::Payment, 2)
        .namespaces(true)
        .limits(Service::Order, Limits::cpu(0.25))
        .restart(RestartPolicy::on_exit())
        .env(Service::Order, "ORDER_PAYMENT_DEADLINE_MS", "1000");
    let system = Arc::new(System::start(plan).await.expect("start"));
    let edge = system.url().expect("edge");
    let http = client();
    let token = user_with_money(&http, &edge).await;
    let confirmed = |o: &Option<(u16, Option<String>)>| matches!(o, Some((201, Some(s))) if s == "confirmed");

    // Namespaced order replicas reach payment through the balancer on the host.
    assert!(confirmed(&place_order(&http, &edge, &token, "lab-1").await));

    // SIGKILL: it comes back by itself.
    let order1 = ProcessId::new(Service::Order, 1);
    system.kill(order1).await.expect("kill");
    let sup = system.supervisor(order1).expect("sup").clone();
    eventually("order-1 is back", Duration::from_secs(30), || {
        let s = sup.status();
        async move { s.restarts == 1 && s.ready }
    })
    .await;

    // Order cut from payment: placing an order cannot confirm; healed, it does.
    system.partition_services(Service::Order, Service::Payment).await.expect("partition");
    let t = Instant::now();
    let cut = place_order(&http, &edge, &token, "lab-2").await;
    assert!(!confirmed(&cut), "no order confirms while payment is unreachable: {cut:?}");
    assert!(t.elapsed() >= Duration::from_millis(900), "the call hung until the payment deadline ({:?})", t.elapsed());
    system.heal_services(Service::Order, Service::Payment).await.expect("heal");
    assert!(confirmed(&place_order(&http, &edge, &token, "lab-3").await), "healed");

    // Rolling payment under order placements fails none.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let worker = {
        let (stop, ok, failed, http, edge, token) =
            (stop.clone(), ok.clone(), failed.clone(), http.clone(), edge.clone(), token.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let outcome = place_order(&http, &edge, &token, &format!("lab-roll-{n}")).await;
                let counter = if confirmed(&outcome) { &ok } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let rollout = system.rolling_replace(Service::Payment, None).await.expect("roll payment");
    stop.store(true, Ordering::Relaxed);
    worker.await.expect("worker");
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("lab: payment rolled in {:?} under {ok} order placements, {failed} failed", rollout.took);
    assert_eq!(failed, 0);
    assert!(ok >= 3, "orders were placed during the roll ({ok})");

    let system = Arc::into_inner(system).expect("sole owner");
    let report = system.stop().await.expect("stop");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
