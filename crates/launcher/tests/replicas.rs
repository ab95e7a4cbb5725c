//! Replicas behind the edge, restarts, pauses and a clean stop, with the
//! real debug binaries, Postgres, Redis, RabbitMQ and nginx.

mod common;

use std::time::Duration;

use common::{client, eventually, plan, requests_served};
use twinshop_launcher::{EventKind, Phase, Plan, ProcessId, RestartPolicy, Service, System};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_order_replicas_share_the_edge_and_a_killed_one_comes_back() {
    let plan = plan(Plan::microservices(), "replicas").replicas(Service::Order, 2).restart(RestartPolicy::on_exit());
    let system = System::start(plan).await.expect("start");
    let edge = system.url().expect("an edge");
    let (o1, o2) = (ProcessId::new(Service::Order, 1), ProcessId::new(Service::Order, 2));
    let conf = std::fs::read_to_string(system.edge().expect("edge").prefix().join("twinshop.conf")).expect("conf");
    let (p1, p2) = (system.process(o1).expect("o1"), system.process(o2).expect("o2"));
    assert!(conf.contains(&format!("server 127.0.0.1:{};\n    server 127.0.0.1:{};", p1.http_port, p2.http_port)));

    // Requests through the edge reach both replicas.
    let http = client();
    for _ in 0..40 {
        let res = http.get(format!("{edge}/v1/products")).send().await.expect("products");
        assert_eq!(res.status(), 200);
    }
    let served = [
        requests_served(&p1.internal_url(), "/v1/products").await,
        requests_served(&p2.internal_url(), "/v1/products").await,
    ];
    assert_eq!(served.iter().sum::<u64>(), 40, "{served:?}");
    assert!(served.iter().all(|&n| n >= 5), "both replicas served requests: {served:?}");

    // Bodies nginx buffers to disk (16-64 KiB) reach the service: no 500 from the edge.
    let body = "x".repeat(20 * 1024);
    let res = http.post(format!("{edge}/v1/orders")).body(body).send().await.expect("post");
    assert_ne!(res.status(), 500, "the edge's client_body folder is readable by its worker");

    // SIGKILL with the restart policy: it comes back by itself, with a new pid.
    let old_pid = p1.pid.expect("pid");
    system.kill(o1).await.expect("kill");
    let sup = system.supervisor(o1).expect("sup").clone();
    eventually("order-1 restarted and ready", Duration::from_secs(30), || {
        let s = sup.status();
        async move { s.restarts == 1 && s.ready }
    })
    .await;
    let info = system.process(o1).expect("o1");
    assert_ne!(info.pid, Some(old_pid));
    let exit = info.last_exit.expect("an exit was recorded");
    assert_eq!((exit.signal, exit.expected, exit.oom_killed), (Some(9), false, false));
    let kinds: Vec<EventKind> =
        system.events().snapshot().into_iter().filter(|e| e.process == "order-1").map(|e| e.kind).collect();
    let pos = |f: &dyn Fn(&EventKind) -> bool| kinds.iter().rposition(f);
    let exited = pos(&|k| matches!(k, EventKind::Exited(i) if i.signal == Some(9))).expect("exit event");
    let scheduled = pos(&|k| matches!(k, EventKind::RestartScheduled { restart: 1, .. })).expect("restart event");
    let restarted = pos(&|k| *k == EventKind::Restarted { restarts: 1 }).expect("restarted event");
    let ready = pos(&|k| *k == EventKind::Ready).expect("ready event");
    assert!(exited < scheduled && scheduled < restarted && restarted < ready, "{kinds:?}");

    // SIGSTOP: the process hangs (its /readyz does not answer), SIGCONT: it answers again.
    system.pause(o2).await.expect("pause");
    assert_eq!(system.process(o2).expect("o2").phase, Phase::Paused);
    let readyz = format!("{}/readyz", p2.internal_url());
    let hung = http.get(&readyz).timeout(Duration::from_millis(800)).send().await;
    assert!(hung.is_err_and(|e| e.is_timeout()), "a paused process does not answer");
    system.resume(o2).await.expect("resume");
    let res = http.get(&readyz).send().await.expect("answers after SIGCONT");
    assert_eq!(res.status(), 200);
    assert_eq!(system.process(o2).expect("o2").phase, Phase::Ready);

    // The edge killed (master and workers) comes back by itself on the same port.
    system.kill_edge().await.expect("kill the edge");
    let edge_sup = system.edge().expect("edge").supervisor().clone();
    eventually("the edge restarted", Duration::from_secs(30), || {
        let s = edge_sup.status();
        async move { s.restarts == 1 && s.ready }
    })
    .await;
    let res = http.get(format!("{edge}/v1/products")).send().await.expect("through the restarted edge");
    assert_eq!(res.status(), 200);

    // A clean stop leaves nothing behind.
    let prefix = system.edge().expect("edge").prefix().to_path_buf();
    let edge_port = system.edge().expect("edge").port();
    let pids: Vec<u32> = system.processes().iter().filter_map(|p| p.pid).collect();
    let report = system.stop().await.expect("stop");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.dropped_databases.len(), 3);
    let broker = report.broker.expect("the run's events namespace was deleted");
    assert!(broker.exchanges == 2 && broker.queues > 0, "{broker:?}");
    assert!(report.exits.iter().all(|(_, e)| e.as_ref().is_some_and(|e| e.expected)), "{:?}", report.exits);
    assert!(pids.iter().all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()), "every process is gone");
    assert!(!prefix.exists(), "the edge's prefix is removed");
    assert!(twinshop_launcher::ports::is_free(edge_port), "no nginx worker outlived its master, holding the port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monolith_runs_as_two_replicas_behind_the_same_edge() {
    let plan = plan(Plan::monolith(), "monolith").replicas(Service::Monolith, 2);
    let system = System::start(plan).await.expect("start");
    let edge = system.url().expect("edge");
    let http = client();
    for path in ["/v1/products", "/v1/products?limit=1"] {
        assert_eq!(http.get(format!("{edge}{path}")).send().await.expect("get").status(), 200);
    }
    let res = http.get(format!("{edge}/v1/wallet")).send().await.expect("wallet");
    assert_eq!(res.status(), 401, "wallet routes reach the monolith too");
    let report = system.stop().await.expect("stop");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
