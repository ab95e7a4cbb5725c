//! Unit tests of the cgroup module. The v2 path cannot run on this machine
//! (cgroup v1), so its tests check *what it writes* into a fake tree in a
//! temporary directory; the v1 path is exercised for real by
//! `tests/cgroups.rs`.

use super::*;

const HYBRID: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
35 30 0:31 / /sys/fs/cgroup/cpu rw,nosuid shared:15 - cgroup cgroup rw,cpu
36 30 0:32 / /sys/fs/cgroup/memory rw,nosuid shared:16 - cgroup cgroup rw,memory
";

const PURE_V2: &str = "\
25 1 0:22 / / rw - ext4 /dev/vda1 rw
31 25 0:27 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

fn fake_root(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("launcher-cgv2-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("fake root");
    std::fs::write(dir.join("cgroup.controllers"), "cpuset cpu io memory pids\n").expect("controllers");
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_hybrid_machine_uses_v1_and_a_unified_one_v2() {
    let h = Hierarchy::from_mountinfo(HYBRID, |_| Some(String::new())).expect("v1");
    assert_eq!(h, Hierarchy::V1 { memory: "/sys/fs/cgroup/memory".into(), cpu: "/sys/fs/cgroup/cpu".into() });
    let h = Hierarchy::from_mountinfo(PURE_V2, |_| Some("cpu io memory pids".into())).expect("v2");
    assert_eq!(h, Hierarchy::V2 { root: "/sys/fs/cgroup".into() });
    assert!(Hierarchy::from_mountinfo(PURE_V2, |_| Some("io pids".into())).is_err(), "v2 without controllers");
}

#[test]
fn v2_unit_test_fake_tree_limits_are_written_as_memory_max_and_cpu_max() {
    let root = fake_root("limits");
    let run = CgroupRun::new(Hierarchy::V2 { root: root.clone() });
    let group = run.group("order-1", Limits::cpu(0.25).with_memory(256 << 20)).expect("group");
    let dir = &group.dirs()[0];
    assert!(dir.starts_with(root.join("twinshop")), "{}", dir.display());
    assert_eq!(read(&dir.join("memory.max")), (256u64 << 20).to_string());
    assert_eq!(read(&dir.join("cpu.max")), "25000 100000");
    assert_eq!(group.procs_files(), vec![dir.join("cgroup.procs")]);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn v2_unit_test_fake_tree_every_ancestor_delegates_the_controllers() {
    let root = fake_root("delegate");
    let run = CgroupRun::new(Hierarchy::V2 { root: root.clone() });
    let group = run.group("user-1", Limits::memory(64 << 20)).expect("group");
    let leaf = group.dirs()[0].clone();
    let run_dir = leaf.parent().expect("run dir").to_path_buf();
    for dir in [root.clone(), root.join("twinshop"), run_dir] {
        assert_eq!(read(&dir.join("cgroup.subtree_control")), "+memory", "{}", dir.display());
    }
    assert!(!leaf.join("cgroup.subtree_control").exists(), "a leaf holds processes, it delegates nothing");
    assert!(!leaf.join("cpu.max").exists(), "no CPU limit asked for");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn v2_unit_test_fake_tree_oom_kills_are_read_from_memory_events() {
    let root = fake_root("oom");
    let run = CgroupRun::new(Hierarchy::V2 { root: root.clone() });
    let group = run.group("monolith-1", Limits::memory(1 << 20)).expect("group");
    std::fs::write(group.dirs()[0].join("memory.events"), "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\n").expect("w");
    assert_eq!(group.oom_kills(), 1);
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn v2_unit_test_fake_tree_a_cpu_quota_is_changed_in_place_and_read_back() {
    let root = fake_root("resize");
    let run = CgroupRun::new(Hierarchy::V2 { root: root.clone() });
    let group = run.group("order-1", Limits::cpu(0.25)).expect("group");
    assert_eq!(group.cpu_quota(), Some(0.25));
    group.set_cpu(1.0).expect("resize");
    assert_eq!(read(&group.dirs()[0].join("cpu.max")), "100000 100000");
    assert_eq!(group.cpu_quota(), Some(1.0));
    assert_eq!(group.limits, Limits::cpu(0.25), "the limits it was created with");
    std::fs::write(group.dirs()[0].join("cpu.max"), "max 100000\n").expect("w");
    assert_eq!(group.cpu_quota(), None, "unlimited");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn v2_unit_test_fake_tree_a_cpu_weight_is_written_to_the_group_and_the_launchers_levels_above_it() {
    let root = fake_root("weight");
    let run = CgroupRun::new(Hierarchy::V2 { root: root.clone() });
    let group = run.group("order-1", Limits::cpu(0.25)).expect("group");
    group.set_cpu_weight(8.0).expect("weight");
    let dir = &group.dirs()[0];
    for level in [dir.clone(), dir.join(".."), dir.join("../..")] {
        assert_eq!(read(&level.join("cpu.weight")), "800", "{}", level.display());
    }
    assert!(!root.join("cpu.weight").exists(), "the hierarchy's root is left alone");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn quotas_are_fractions_of_the_period_and_never_below_a_millisecond() {
    assert_eq!(Limits::quota_us(0.25), 25_000);
    assert_eq!(Limits::quota_us(1.5), 150_000);
    assert_eq!(Limits::quota_us(0.001), 1_000);
}
