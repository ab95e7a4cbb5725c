//! cgroup limits for real, on this machine's hierarchy (v1 here; the v2
//! path has unit tests of what it writes, in `src/cgroups_tests.rs`): a
//! spinning process under a quarter-core quota gets about a quarter of a
//! core, its quota and weight can be changed while it runs, and one that
//! outgrows its memory limit is OOM-killed and reported so.

use std::time::{Duration, Instant};

use twinshop_launcher::{
    EventKind, Events, Limits, LogTarget, RestartPolicy,
    cgroups::{CgroupRun, Hierarchy},
    processes::{ProcessSpec, cpu_time},
    supervisor::Supervisor,
};

#[tokio::test]
async fn a_spinning_process_under_a_quarter_core_quota_uses_a_quarter_core() {
    let run = CgroupRun::new(Hierarchy::detect().expect("a cgroup hierarchy"));
    let group = run.group("spinner", Limits::cpu(0.25)).expect("group");
    let spec = ProcessSpec::new("spinner", "/bin/sh").args(["-c", "while :; do :; done"]).cgroup(group.clone());
    let sup = Supervisor::start(spec, RestartPolicy::Never, Events::new(), LogTarget::Discard);
    sup.wait_ready(Duration::from_secs(5)).await.expect("started");
    let pid = sup.pid().expect("pid");
    // Let it join its group and exec, then measure windows of 2 s of wall
    // time. The quota caps every window; a window may fall short of it only
    // when the machine is busy (other tests on 2 cores), so up to 4 are tried.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut windows = Vec::new();
    for _ in 0..4 {
        let (cpu0, t0) = (cpu_time(pid).expect("cpu"), Instant::now());
        tokio::time::sleep(Duration::from_secs(2)).await;
        windows.push((cpu_time(pid).expect("cpu") - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64());
        if windows.last().is_some_and(|used| (0.2..=0.3).contains(used)) {
            break;
        }
    }
    let throttled = std::fs::read_to_string(group.dirs().last().expect("cpu dir").join("cpu.stat")).expect("cpu.stat");
    eprintln!("cgroup v{}: a spinner under a 0.25-core quota used {windows:.3?} cores", run.hierarchy().version());
    sup.stop(Duration::from_secs(2)).await.expect("stop");
    run.remove().await.expect("remove the groups");
    assert!(group.dirs().iter().all(|d| !d.exists()), "groups removed");
    assert!(windows.iter().all(|used| *used <= 0.3), "the quota caps it: {windows:.3?}");
    assert!(windows.iter().any(|used| *used >= 0.2), "it gets its quarter core: {windows:.3?}");
    let nr_throttled =
        throttled.lines().find_map(|l| l.strip_prefix("nr_throttled ")).and_then(|n| n.parse::<u64>().ok());
    assert!(nr_throttled.is_some_and(|n| n > 0), "the kernel throttled it: {throttled}");
}

#[tokio::test]
async fn a_process_over_its_memory_limit_is_oom_killed_and_reported_so() {
    let run = CgroupRun::new(Hierarchy::detect().expect("a cgroup hierarchy"));
    let group = run.group("hog", Limits::memory(64 << 20)).expect("group");
    // `tail` keeps the current line in memory, and /dev/zero has no newline.
    let spec = ProcessSpec::new("hog", "/usr/bin/tail").args(["/dev/zero"]).cgroup(group.clone());
    let events = Events::new();
    let started = Instant::now();
    let _sup = Supervisor::start(spec, RestartPolicy::Never, events.clone(), LogTarget::Discard);
    let exited = events
        .wait_for(Duration::from_secs(30), |e| matches!(e.kind, EventKind::Exited(_)))
        .await
        .expect("the hog exits");
    let EventKind::Exited(info) = exited.kind else { unreachable!("matched above") };
    eprintln!("a 64 MiB hog ended after {:?}: {} ({info:?})", started.elapsed(), info.reason());
    assert_eq!(info.signal, Some(9), "killed by SIGKILL");
    assert!(info.oom_killed, "reported as OOM-killed");
    assert_eq!(info.reason(), "OOM-killed");
    assert_eq!(group.oom_kills(), 1);
    assert!(events.snapshot().iter().any(|e| e.kind == EventKind::OomKilled && e.process == "hog"));
    run.remove().await.expect("remove the groups");
}

#[tokio::test]
async fn a_cpu_quota_is_changed_in_place_and_the_kernel_reports_the_new_one() {
    let run = CgroupRun::new(Hierarchy::detect().expect("a cgroup hierarchy"));
    let group = run.group("resized", Limits::cpu(0.25)).expect("group");
    assert_eq!(group.cpu_quota(), Some(0.25));
    group.set_cpu(0.5).expect("resize");
    assert_eq!(group.cpu_quota(), Some(0.5), "read back from the kernel");
    assert_eq!(group.limits, Limits::cpu(0.25), "the limits it was created with are kept as they were");
    run.remove().await.expect("remove the groups");
}

#[tokio::test]
async fn a_cpu_weight_reaches_the_kernel_for_the_group_and_the_launchers_levels_above_it() {
    let hierarchy = Hierarchy::detect().expect("a cgroup hierarchy");
    let run = CgroupRun::new(hierarchy.clone());
    let group = run.group("weighted", Limits::cpu(0.25)).expect("group");
    group.set_cpu_weight(8.0).expect("weight");
    let (file, want) = match hierarchy {
        Hierarchy::V1 { .. } => ("cpu.shares", "8192"),
        Hierarchy::V2 { .. } => ("cpu.weight", "800"),
    };
    let dir = group.dirs().last().expect("a cpu directory").clone();
    for level in dir.ancestors().take(3) {
        let read = std::fs::read_to_string(level.join(file)).expect("read the weight");
        assert_eq!(read.trim(), want, "{}", level.display());
    }
    run.remove().await.expect("remove the groups");
}
