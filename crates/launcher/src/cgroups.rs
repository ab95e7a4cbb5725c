//! Memory and CPU limits per process through cgroups, as a container
//! runtime sets a pod's `resources.limits`: labs need a quarter-core order
//! service (scaling), a memory-capped monolith that the OOM killer ends
//! (isolation), and to tell an OOM kill from any other SIGKILL.
//!
//! Both hierarchies are supported and chosen at run time ([`Hierarchy::detect`]):
//! - **v1** (this machine): separate `memory` and `cpu` mounts;
//!   `memory.limit_in_bytes`, `cpu.cfs_period_us` + `cpu.cfs_quota_us`; OOM
//!   kills counted in `memory.oom_control` (`oom_kill N`).
//! - **v2**: one tree; the parents' `cgroup.subtree_control` must enable the
//!   controllers first; `memory.max`, `cpu.max` (`quota period`); OOM kills
//!   in `memory.events`.
//!
//! Groups live under `<mount>/twinshop/l<pid>-<n>/<process>`, so a later
//! start finds the groups of a launcher that died ([`remove_leftovers`]).
//! A process joins its group by a tiny shell wrapper writing its own pid to
//! `cgroup.procs` before `exec` (no `pre_exec`: unsafe code is forbidden here).

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

/// The CFS period used for CPU quotas (100 ms, the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// Limits of one process.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// Memory limit in bytes; above it the OOM killer ends the process.
    pub memory_bytes: Option<u64>,
    /// CPU quota in cores (0.25: a quarter of one core per period).
    pub cpu_cores: Option<f64>,
}

impl Limits {
    /// A memory limit only.
    pub fn memory(bytes: u64) -> Self {
        Self { memory_bytes: Some(bytes), cpu_cores: None }
    }

    /// A CPU quota only, in cores.
    pub fn cpu(cores: f64) -> Self {
        Self { memory_bytes: None, cpu_cores: Some(cores) }
    }

    /// These limits plus a memory limit.
    pub fn with_memory(self, bytes: u64) -> Self {
        Self { memory_bytes: Some(bytes), ..self }
    }

    /// These limits plus a CPU quota.
    pub fn with_cpu(self, cores: f64) -> Self {
        Self { cpu_cores: Some(cores), ..self }
    }

    fn quota_us(cores: f64) -> u64 {
        // The kernel refuses quotas under 1 ms.
        ((cores * CPU_PERIOD_US as f64).round() as u64).max(1_000)
    }
}

/// Which cgroup hierarchy the machine has, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v1: one mount per controller.
    V1 {
        /// The `memory` controller's mount.
        memory: PathBuf,
        /// The `cpu` controller's mount.
        cpu: PathBuf,
    },
    /// cgroup v2: the unified tree's mount.
    V2 {
        /// Its root.
        root: PathBuf,
    },
}

impl Hierarchy {
    /// Reads `/proc/self/mountinfo`: v1 when the `memory` and `cpu`
    /// controllers have v1 mounts (also on hybrid machines, whose v2 tree
    /// then has no controllers), else v2 when a cgroup2 tree offers both.
    pub fn detect() -> Result<Self> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
        Self::from_mountinfo(&info, |root| std::fs::read_to_string(root.join("cgroup.controllers")).ok())
    }

    fn from_mountinfo(info: &str, controllers: impl Fn(&Path) -> Option<String>) -> Result<Self> {
        let (mut memory, mut cpu, mut v2) = (None, None, None);
        for line in info.lines() {
            // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else { continue };
            let (Some(mountpoint), Some(fstype), Some(sup)) =
                (fields.get(4), fields.get(dash + 1), fields.get(dash + 3))
            else {
                continue;
            };
            match *fstype {
                "cgroup" => {
                    let opts: Vec<&str> = sup.split(',').collect();
                    if opts.contains(&"memory") {
                        memory = Some(PathBuf::from(mountpoint));
                    }
                    if opts.contains(&"cpu") {
                        cpu = Some(PathBuf::from(mountpoint));
                    }
                }
                "cgroup2" => v2 = Some(PathBuf::from(mountpoint)),
                _ => {}
            }
        }
        if let (Some(memory), Some(cpu)) = (memory, cpu) {
            return Ok(Self::V1 { memory, cpu });
        }
        if let Some(root) = v2 {
            let offered = controllers(&root).unwrap_or_default();
            let has = |c: &str| offered.split_whitespace().any(|o| o == c);
            if has("memory") && has("cpu") {
                return Ok(Self::V2 { root });
            }
        }
        bail!("no cgroup hierarchy with the memory and cpu controllers is mounted")
    }

    /// `v1` or `v2`.
    pub fn version(&self) -> u8 {
        match self {
            Self::V1 { .. } => 1,
            Self::V2 { .. } => 2,
        }
    }

    fn bases(&self) -> Vec<PathBuf> {
        match self {
            Self::V1 { memory, cpu } => vec![memory.join("twinshop"), cpu.join("twinshop")],
            Self::V2 { root } => vec![root.join("twinshop")],
        }
    }
}

/// The groups of one launcher run: `twinshop/l<pid>-<n>`.
#[derive(Debug, Clone)]
pub struct CgroupRun {
    hierarchy: Hierarchy,
    name: String,
}

/// One process's group.
#[derive(Debug, Clone)]
pub struct Cgroup {
    hierarchy: Hierarchy,
    /// The group's directory in each mount (v1: memory, cpu; v2: one).
    dirs: Vec<PathBuf>,
    /// Its limits.
    pub limits: Limits,
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
}

impl CgroupRun {
    /// A new run directory name under `hierarchy` (created with its first group).
    pub fn new(hierarchy: Hierarchy) -> Self {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let name = format!("l{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed));
        Self { hierarchy, name }
    }

    /// The hierarchy in use.
    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// Creates `process`'s group with `limits` written.
    pub fn group(&self, process: &str, limits: Limits) -> Result<Cgroup> {
        let rel = Path::new("twinshop").join(&self.name).join(process);
        match &self.hierarchy {
            Hierarchy::V1 { memory, cpu } => {
                let (mem, cpu) = (memory.join(&rel), cpu.join(&rel));
                for dir in [&mem, &cpu] {
                    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                }
                if let Some(bytes) = limits.memory_bytes {
                    write(&mem.join("memory.limit_in_bytes"), &bytes.to_string())?;
                    // With swap, the limit would page out instead of kill: cap both.
                    let memsw = mem.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        let _ = std::fs::write(memsw, bytes.to_string());
                    }
                }
                if let Some(cores) = limits.cpu_cores {
                    write(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    write(&cpu.join("cpu.cfs_quota_us"), &Limits::quota_us(cores).to_string())?;
                }
                Ok(Cgroup { hierarchy: self.hierarchy.clone(), dirs: vec![mem, cpu], limits })
            }
            Hierarchy::V2 { root } => {
                let dir = root.join(&rel);
                let mut wanted = Vec::new();
                if limits.memory_bytes.is_some() {
                    wanted.push("+memory");
                }
                if limits.cpu_cores.is_some() {
                    wanted.push("+cpu");
                }
                // Each ancestor (root included) delegates the controllers to its children.
                let mut parent = root.clone();
                for part in rel.parent().into_iter().flat_map(Path::components) {
                    if !wanted.is_empty() {
                        write(&parent.join("cgroup.subtree_control"), &wanted.join(" "))?;
                    }
                    parent = parent.join(part);
                    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
                }
                if !wanted.is_empty() {
                    write(&parent.join("cgroup.subtree_control"), &wanted.join(" "))?;
                }
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                if let Some(bytes) = limits.memory_bytes {
                    write(&dir.join("memory.max"), &bytes.to_string())?;
                    let swap = dir.join("memory.swap.max");
                    if swap.exists() {
                        let _ = std::fs::write(swap, "0");
                    }
                }
                if let Some(cores) = limits.cpu_cores {
                    write(&dir.join("cpu.max"), &format!("{} {CPU_PERIOD_US}", Limits::quota_us(cores)))?;
                }
                Ok(Cgroup { hierarchy: self.hierarchy.clone(), dirs: vec![dir], limits })
            }
        }
    }

    /// Removes every group of this run (their processes must have exited).
    pub async fn remove(&self) -> Result<()> {
        for base in self.hierarchy.bases() {
            remove_tree(&base.join(&self.name)).await?;
        }
        Ok(())
    }
}

impl Cgroup {
    /// The `cgroup.procs` files a process writes its pid to, to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// The group's directories (v1: memory then cpu; v2: one).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// How many times the OOM killer has killed a process of this group.
    pub fn oom_kills(&self) -> u64 {
        let (file, dir) = match &self.hierarchy {
            Hierarchy::V1 { .. } => ("memory.oom_control", &self.dirs[0]),
            Hierarchy::V2 { .. } => ("memory.events", &self.dirs[0]),
        };
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        text.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse().ok())).unwrap_or(0)
    }

    /// Changes the group's CPU quota while its processes run, as an
    /// in-place resize of a pod's `resources.limits.cpu` does: from the next
    /// period on they get `cores` per period. The group must have been
    /// created with a CPU quota (on v2 only then is the `cpu` controller
    /// enabled for it). [`Cgroup::limits`] keeps the limits it was created
    /// with; [`Cgroup::cpu_quota`] reads the one in force.
    pub fn set_cpu(&self, cores: f64) -> Result<()> {
        match &self.hierarchy {
            Hierarchy::V1 { .. } => {
                let dir = self.dirs.last().context("a v1 group has a cpu directory")?;
                write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&dir.join("cpu.cfs_quota_us"), &Limits::quota_us(cores).to_string())
            }
            Hierarchy::V2 { .. } => {
                write(&self.dirs[0].join("cpu.max"), &format!("{} {CPU_PERIOD_US}", Limits::quota_us(cores)))
            }
        }
    }

    /// Gives the group, and the launcher's two levels above it
    /// (`twinshop/` and this run's directory), the CPU weight of `cores`
    /// busy nice-0 processes (v1 `cpu.shares` 1024 per core, v2
    /// `cpu.weight` 100 per core), as the kubelet weights the `kubepods`
    /// slice by the node's allocatable CPUs: on a busy machine the group
    /// gets its quota before others get more. Without it, on v1, every
    /// group of the launcher together weighs as much as one busy process
    /// outside them. The group must have the CPU controller (a CPU limit).
    pub fn set_cpu_weight(&self, cores: f64) -> Result<()> {
        let (dir, file, value) = match &self.hierarchy {
            Hierarchy::V1 { .. } => {
                let dir = self.dirs.last().context("a v1 group has a cpu directory")?;
                (dir, "cpu.shares", ((cores * 1024.0).round() as u64).clamp(2, 262_144))
            }
            Hierarchy::V2 { .. } => (&self.dirs[0], "cpu.weight", ((cores * 100.0).round() as u64).clamp(1, 10_000)),
        };
        for level in dir.ancestors().take(3) {
            write(&level.join(file), &value.to_string())?;
        }
        Ok(())
    }

    /// The CPU quota in force, in cores, as the kernel has it; `None` when
    /// unlimited or unreadable.
    pub fn cpu_quota(&self) -> Option<f64> {
        let (quota, period) = match &self.hierarchy {
            Hierarchy::V1 { .. } => {
                let dir = self.dirs.last()?;
                let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok()?.trim().parse::<i64>().ok();
                (read("cpu.cfs_quota_us")?, read("cpu.cfs_period_us")?)
            }
            Hierarchy::V2 { .. } => {
                let text = std::fs::read_to_string(self.dirs[0].join("cpu.max")).ok()?;
                let mut parts = text.split_whitespace();
                (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?)
            }
        };
        (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
    }

    /// Memory charged to the group now, in bytes.
    pub fn memory_usage(&self) -> Option<u64> {
        let file = match &self.hierarchy {
            Hierarchy::V1 { .. } => "memory.usage_in_bytes",
            Hierarchy::V2 { .. } => "memory.current",
        };
        std::fs::read_to_string(self.dirs[0].join(file)).ok()?.trim().parse().ok()
    }
}

/// rmdir a group tree, deepest first, killing what still runs in it.
async fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let children: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    for child in children {
        Box::pin(remove_tree(&child)).await?;
    }
    for attempt in 0..50 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|p| p.trim().parse::<u32>().ok()) {
            let _ = crate::processes::signal(pid, rustix::process::Signal::KILL);
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt == 49 => return Err(e).with_context(|| format!("removing {}", dir.display())),
            // Busy until its last process is reaped.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    Ok(())
}

/// Removes the groups of launchers that are gone (a crashed run); returns how many runs.
pub async fn remove_leftovers(hierarchy: &Hierarchy) -> Result<usize> {
    let mut removed = 0;
    for base in hierarchy.bases() {
        let Ok(entries) = std::fs::read_dir(&base) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.strip_prefix('l').and_then(|r| r.split_once('-')).and_then(|(p, _)| p.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                remove_tree(&entry.path()).await?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
#[path = "cgroups_tests.rs"]
mod tests;
