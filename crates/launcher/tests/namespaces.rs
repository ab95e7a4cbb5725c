//! Each process in its own network namespace: it reaches the backing
//! services on the host's loopback through the gateway, the edge reaches
//! it, a cut between two processes makes connections hang (not refused)
//! until healed, and nothing is left behind, not even by a crashed run.

mod common;

use std::time::Duration;

use common::{Connect, client, connect_from, plan};
use twinshop_launcher::{Limits, Plan, ProcessId, Service, System, netns};

fn run(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program).args(args).output().expect(program);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_processes_reach_postgres_and_a_cut_between_two_hangs_until_healed() {
    twinshop_launcher::prereq::ensure("iptables", "iptables").expect("iptables");
    let order = ProcessId::new(Service::Order, 1);
    let payment = ProcessId::new(Service::Payment, 1);
    let plan = plan(Plan::microservices(), "namespaces")
        .namespaces(true)
        .limits(Service::Order, Limits::cpu(0.25).with_memory(512 << 20));
    let system = System::start(plan).await.expect("start");
    let network = system.network().expect("a network");
    let gateway = network.gateway().to_string();

    // Every process has its own namespace and address on the bridge.
    let infos = system.processes();
    for p in &infos {
        assert!(p.netns.is_some(), "{} is namespaced", p.id);
        assert!(p.address.octets()[..2] == [10, 88] && p.address.octets()[3] > 1, "{}: {}", p.id, p.address);
    }
    let (o, pay) = (system.process(order).expect("order"), system.process(payment).expect("payment"));
    let (ons, pns) = (o.netns.clone().expect("ns"), pay.netns.clone().expect("ns"));

    // They reach Postgres at the gateway (ready means their database answered), and
    // the edge, on the host, reaches order in its namespace.
    assert_eq!(connect_from(&ons, &gateway, 5432, Duration::from_secs(2)), Connect::Established);
    let edge = system.url().expect("edge");
    let res = client().get(format!("{edge}/v1/products")).send().await.expect("through the edge");
    assert_eq!(res.status(), 200);

    // The wrappers put order into its cgroup with the quota, inside its namespace.
    let cg = system.cgroup(order).expect("order's cgroup");
    let cpu_dir = &cg.dirs()[1];
    assert_eq!(std::fs::read_to_string(cpu_dir.join("cpu.cfs_quota_us")).expect("quota").trim(), "25000");
    let procs = std::fs::read_to_string(cpu_dir.join("cgroup.procs")).expect("procs");
    assert!(procs.lines().any(|l| l.trim() == o.pid.expect("pid").to_string()), "order runs in its cgroup");

    // A closed port answers at once; a cut link hangs; healed, it answers again.
    assert_eq!(connect_from(&ons, &pay.address.to_string(), 1, Duration::from_secs(2)), Connect::Refused);
    system.partition(order, payment).await.expect("partition");
    let cut = connect_from(&ons, &pay.address.to_string(), pay.internal_port, Duration::from_secs(2));
    assert_eq!(cut, Connect::Hangs, "a partition makes connections hang");
    let back = connect_from(&pns, &o.address.to_string(), o.internal_port, Duration::from_secs(2));
    assert_eq!(back, Connect::Hangs, "both ways");
    system.heal(order, payment).await.expect("heal");
    let healed = connect_from(&ons, &pay.address.to_string(), pay.internal_port, Duration::from_secs(2));
    assert_eq!(healed, Connect::Established);

    // Cut from a backing service on the host: its database connections hang.
    system.block_host_port(order, 5432).await.expect("block");
    assert_eq!(connect_from(&ons, &gateway, 5432, Duration::from_secs(2)), Connect::Hangs);
    system.unblock_host_port(order, 5432).await.expect("unblock");
    assert_eq!(connect_from(&ons, &gateway, 5432, Duration::from_secs(2)), Connect::Established);

    // The edge cut from order: a request through it hangs (the edge's
    // connection to order is cut mid-way, as in a real partition); healed, 200.
    system.cut_from_edge(order).await.expect("cut from the edge");
    let hung = client().get(format!("{edge}/v1/products")).timeout(Duration::from_secs(3)).send().await;
    assert!(hung.is_err_and(|e| e.is_timeout()), "a request through the cut hangs");
    system.heal_from_edge(order).await.expect("heal");
    let res = client().get(format!("{edge}/v1/products")).send().await.expect("through the edge");
    assert_eq!(res.status(), 200);

    let bridge = network.bridge();
    let comment = format!("twinshop-net-{}", bridge.trim_start_matches("tsbr"));
    let cgroup_dirs = cg.dirs().to_vec();
    let report = system.stop().await.expect("stop");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(!run("ip", &["netns", "list"]).contains(&ons), "namespaces removed");
    assert!(!run("ip", &["-o", "link", "show"]).contains(&format!(": {bridge}:")), "bridge removed");
    for table in ["nat", "filter"] {
        assert!(!run("iptables", &["-t", table, "-S"]).contains(&comment), "{table} rules removed");
    }
    assert!(cgroup_dirs.iter().all(|d| !d.exists()), "cgroups removed");
}

#[tokio::test]
async fn a_crashed_runs_namespace_bridge_and_lock_are_removed_by_the_next_start() {
    twinshop_launcher::prereq::ensure("iptables", "iptables").expect("iptables");
    // A run whose launcher (a pid that cannot exist) died without cleaning up.
    // An index no live run holds (its lock is created here, so none takes it meanwhile).
    let _ = std::fs::create_dir_all("/run/twinshop-launcher");
    let index = (200..=254)
        .rev()
        .find(|i| {
            let lock = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(format!("/run/twinshop-launcher/net-{i}"));
            lock.and_then(|mut f| std::io::Write::write_all(&mut f, b"4194305")).is_ok()
        })
        .expect("a free index");
    let ns = format!("ts{index}-order-1");
    run("ip", &["link", "add", &format!("tsbr{index}"), "type", "bridge"]);
    run("ip", &["netns", "add", &ns]);
    assert!(run("ip", &["netns", "list"]).contains(&ns));

    let removed = netns::remove_leftovers().await.expect("remove leftovers");
    assert!(removed >= 1);
    assert!(!run("ip", &["netns", "list"]).contains(&ns));
    assert!(!run("ip", &["-o", "link", "show"]).contains(&format!("tsbr{index}:")));
    assert!(!std::path::Path::new(&format!("/run/twinshop-launcher/net-{index}")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_dropped_without_stop_leaves_nothing_behind() {
    twinshop_launcher::prereq::ensure("iptables", "iptables").expect("iptables");
    let monolith = ProcessId::new(Service::Monolith, 1);
    let plan = plan(Plan::monolith(), "dropped").namespaces(true).limits(Service::Monolith, Limits::memory(1 << 30));
    let backing = plan.backing.clone();
    let system = System::start(plan).await.expect("start");
    let info = system.process(monolith).expect("monolith");
    let (ns, pid) = (info.netns.expect("ns"), info.pid.expect("pid"));
    let cgroup = info.cgroup.expect("cgroup");
    let prefix = system.edge().expect("edge").prefix().to_path_buf();
    let edge_port = system.edge().expect("edge").port();
    let database = system.database(Service::Monolith).expect("database").to_owned();

    drop(system); // as a failed test would

    assert!(!twinshop_launcher::processes::is_alive(pid), "the process is gone");
    assert!(!run("ip", &["netns", "list"]).contains(&ns), "its namespace is gone");
    assert!(cgroup.iter().all(|d| !d.exists()), "its cgroup is gone");
    assert!(!prefix.exists(), "the edge's prefix is removed");
    assert!(twinshop_launcher::ports::is_free(edge_port), "no nginx worker holds the edge's port");
    let left = twinshop_launcher::databases::exists(&backing, &database).await.expect("look up");
    assert!(!left, "its fresh database is dropped");
}
