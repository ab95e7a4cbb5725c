//! CPU time and memory of the processes a comparison involves, from
//! `/proc` (Linux only; elsewhere every number is simply absent).
//!
//! Why it exists: "CPU time per placed order by process" needs to know
//! which processes are which, and to count CPU that processes which exit
//! during the window took with them. Both are handled here:
//!
//! - **Which**: a [`Watch`] is a list of named *roots*, each attributed to
//!   its name. The services and the monolith are the pids the launcher
//!   reports for the run (each process alone: they start no children), the
//!   edge is its nginx master's tree (the workers are its children); with
//!   given URLs, processes are found anywhere by command name, when exactly
//!   one has it. Postgres, Redis and RabbitMQ are found by the process
//!   listening on their port, so a containerised Postgres or RabbitMQ on the
//!   same host (another compose stack) is never counted as ours. The
//!   generator counts its own process only (see [`Scope`]): the launcher's
//!   log pumps run in it, the build's processes are counted under their
//!   own names.
//! - **Exited processes**: a tree's CPU is the sum over its live processes
//!   of `utime + stime + cutime + cstime` (`/proc/<pid>/stat`). A child that
//!   exits is reaped by its parent, and its whole CPU time moves into the
//!   parent's `cutime`/`cstime`, so a Postgres backend that ends in the
//!   window still counts (its postmaster reaps it). Nothing is counted twice:
//!   a live process's time is in its own fields, a reaped one's in its
//!   parent's.
//! - **The rest of the machine**: busy time from `/proc/stat` minus what
//!   was attributed is reported as `other` (kernel threads, other sessions'
//!   work, a docker build): a comparison run next to a busy neighbour says
//!   so instead of hiding it.
//!
//! Memory: the peak resident set since start (`VmHWM`) of each process we
//! started, and for the long-lived backing services the proportional set
//! size (`Pss`, shared pages divided among their sharers) summed over the
//! tree when sampled.
//!
//! One process's own figures (CPU time, peak resident set) are the
//! launcher's (`twinshop_launcher::processes`); what is here is what the
//! launcher has no use for: process trees, reaped children, the machine's
//! busy time, listeners and `Pss`.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs,
};

use twinshop_launcher::processes::{cpu_time, peak_rss_bytes};

/// Clock ticks per second of `/proc` times (fixed by the Linux ABI).
const USER_HZ: f64 = 100.0;

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    pub comm: String,
    pub ppid: u32,
    /// `utime + stime` of the process itself (all threads), in ticks.
    pub own_ticks: u64,
    /// `cutime + cstime`: reaped children, in ticks.
    pub children_ticks: u64,
}

/// Parses a `/proc/<pid>/stat` line. The command (field 2) is in
/// parentheses and may hold spaces, so fields are counted from the last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line[..open].trim().parse().ok()?;
    let comm = line.get(open + 1..close)?.to_owned();
    let f: Vec<&str> = line[close + 1..].split_whitespace().collect();
    // After ")": state is index 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14.
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        pid,
        comm,
        ppid: u32::try_from(n(1)?).ok()?,
        own_ticks: n(11)? + n(12)?,
        children_ticks: n(13)? + n(14)?,
    })
}

/// Every process on the machine, by pid.
pub fn all_processes() -> HashMap<u32, Stat> {
    let Ok(dir) = fs::read_dir("/proc") else { return HashMap::new() };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| parse_stat(&s)))
        .map(|s| (s.pid, s))
        .collect()
}

/// `root` and all its descendants among `procs`.
pub fn tree(procs: &HashMap<u32, Stat>, root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for s in procs.values() {
        children.entry(s.ppid).or_default().push(s.pid);
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    let mut seen = HashSet::new();
    while let Some(pid) = todo.pop() {
        if procs.contains_key(&pid) && seen.insert(pid) {
            out.push(pid);
            todo.extend(children.get(&pid).into_iter().flatten());
        }
    }
    out
}

/// The CPU seconds of a tree: own and reaped-children time of every live member.
pub fn tree_cpu_s(procs: &HashMap<u32, Stat>, root: u32) -> f64 {
    tree(procs, root).iter().filter_map(|p| procs.get(p)).map(|s| (s.own_ticks + s.children_ticks) as f64).sum::<f64>()
        / USER_HZ
}

/// The busy CPU seconds of the whole machine so far (all cores), from the
/// first line of `/proc/stat`: everything but idle and iowait.
pub fn machine_busy_s() -> Option<f64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    parse_machine_busy(text.lines().next()?)
}

/// Busy ticks of a `cpu  user nice system idle iowait irq softirq steal ...` line, in seconds.
pub fn parse_machine_busy(line: &str) -> Option<f64> {
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle) as f64 / USER_HZ)
}

/// The pid listening on TCP `port` in this network namespace, if this
/// process may see it (root, or the same user).
pub fn listener_pid(port: u16) -> Option<u32> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else { continue };
        inodes.extend(listening_inodes(&text, port));
    }
    if inodes.is_empty() {
        return None;
    }
    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.filter_map(Result::ok).any(|fd| {
                fs::read_link(fd.path())
                    .ok()
                    .and_then(|l| {
                        l.to_str().and_then(|s| s.strip_prefix("socket:[")?.strip_suffix(']')?.parse::<u64>().ok())
                    })
                    .is_some_and(|inode| inodes.contains(&inode))
            })
        })
    })
}

/// Socket inodes of `/proc/net/tcp{,6}` rows in LISTEN state (`0A`) on `port`.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let f: Vec<&str> = row.split_whitespace().collect();
            let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *f.get(3)? == "0A").then(|| f.get(9)?.parse().ok())?
        })
        .collect()
}

/// The only top-level process named `comm` on the machine, if exactly one.
pub fn find_unique(procs: &HashMap<u32, Stat>, comm: &str) -> Option<u32> {
    let tops: Vec<u32> = procs
        .values()
        .filter(|s| s.comm == comm && procs.get(&s.ppid).is_none_or(|p| p.comm != comm))
        .map(|s| s.pid)
        .collect();
    (tops.len() == 1).then(|| tops[0])
}

/// The peak resident set of a process since it started, in MiB.
fn peak_mib(pid: u32) -> Option<f64> {
    peak_rss_bytes(pid).map(|bytes| bytes as f64 / (1024.0 * 1024.0))
}

/// The proportional set size of a process, in MiB (`/proc/<pid>/smaps_rollup`).
pub fn pss_mib(pid: u32) -> Option<f64> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
}

/// What of a root process counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The process and all its descendants (the edge and its workers,
    /// Postgres and its backends).
    Tree,
    /// The process alone: a service, or the generator (whose children
    /// would be what it runs, counted under their own names).
    Own,
    /// Only the children the process has reaped (pgbench and psql, run by
    /// the generator and waited for).
    Reaped,
}

/// Named process trees to account for.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// `(name, root pid, scope)`; a name may have several roots (summed).
    pub roots: Vec<(String, u32, Scope)>,
    /// Names whose memory is reported as `VmHWM` (processes we started);
    /// the others as sampled `Pss` summed over the tree.
    pub started: HashSet<String>,
}

impl Watch {
    /// Adds the tree of `pid` under `name`.
    pub fn add(&mut self, name: &str, pid: Option<u32>, started: bool) {
        self.add_scoped(name, pid, started, Scope::Tree);
    }

    pub fn add_scoped(&mut self, name: &str, pid: Option<u32>, started: bool, scope: Scope) {
        if let Some(pid) = pid {
            self.roots.push((name.to_owned(), pid, scope));
            if started {
                self.started.insert(name.to_owned());
            }
        }
    }

    /// CPU seconds so far per name, plus `machine` busy seconds.
    pub fn sample(&self) -> Sample {
        let procs = all_processes();
        let mut cpu_s: BTreeMap<String, f64> = BTreeMap::new();
        for (name, root, scope) in &self.roots {
            let ticks = |f: fn(&Stat) -> u64| procs.get(root).map_or(0.0, |s| f(s) as f64 / USER_HZ);
            *cpu_s.entry(name.clone()).or_default() += match scope {
                Scope::Tree => tree_cpu_s(&procs, *root),
                Scope::Own => cpu_time(*root).map_or(0.0, |t| t.as_secs_f64()),
                Scope::Reaped => ticks(|s| s.children_ticks),
            };
        }
        Sample { cpu_s, machine_s: machine_busy_s() }
    }

    /// Memory per name, in MiB: `VmHWM` summed over the tree for processes we
    /// started, `Pss` summed over the tree for the others.
    pub fn memory(&self) -> BTreeMap<String, f64> {
        let procs = all_processes();
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        for (name, root, scope) in &self.roots {
            let members = match scope {
                Scope::Tree => tree(&procs, *root),
                Scope::Own => vec![*root],
                Scope::Reaped => continue,
            };
            let mib: f64 = if self.started.contains(name) {
                members.iter().filter_map(|p| peak_mib(*p)).sum()
            } else {
                members.iter().filter_map(|p| pss_mib(*p)).sum()
            };
            *out.entry(name.clone()).or_default() += mib;
        }
        out
    }
}

/// CPU seconds per name at one moment.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub cpu_s: BTreeMap<String, f64>,
    pub machine_s: Option<f64>,
}

/// The name of the machine's unattributed busy time.
pub const OTHER: &str = "other (machine)";

/// CPU milliseconds per name between two samples, plus [`OTHER`]: machine
/// busy time not attributed to any name (never negative).
pub fn cpu_delta_ms(before: &Sample, after: &Sample) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = after
        .cpu_s
        .iter()
        .map(|(k, v)| (k.clone(), ((v - before.cpu_s.get(k).copied().unwrap_or(*v)) * 1e3).max(0.0)))
        .collect();
    if let (Some(a), Some(b)) = (before.machine_s, after.machine_s) {
        let attributed: f64 = out.values().sum();
        out.insert(OTHER.to_owned(), ((b - a) * 1e3 - attributed).max(0.0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(pid: u32, comm: &str, ppid: u32, own: u64, children: u64) -> Stat {
        Stat { pid, comm: comm.into(), ppid, own_ticks: own, children_ticks: children }
    }

    #[test]
    fn stat_lines_are_read_after_the_command_name_with_reaped_children() {
        let line = "4242 (postgres: x (y)) S 77 4242 4242 0 -1 4194560 1000 0 0 0 250 130 40 2 20 0 8 0 100 0 0";
        assert_eq!(parse_stat(line), Some(stat(4242, "postgres: x (y)", 77, 380, 42)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_tree_counts_live_members_and_what_they_reaped_and_nothing_else() {
        let procs: HashMap<u32, Stat> = [
            stat(1, "init", 0, 1000, 0),
            stat(10, "postgres", 1, 100, 500),
            stat(11, "postgres", 10, 30, 0),
            stat(12, "postgres", 10, 20, 0),
            stat(13, "other", 1, 999, 0),
        ]
        .into_iter()
        .map(|s| (s.pid, s))
        .collect();
        let mut members = tree(&procs, 10);
        members.sort_unstable();
        assert_eq!(members, [10, 11, 12]);
        assert!((tree_cpu_s(&procs, 10) - 6.5).abs() < 1e-9);
        assert_eq!(find_unique(&procs, "postgres"), Some(10));
        assert_eq!(find_unique(&procs, "nginx"), None);
    }

    #[test]
    fn machine_busy_time_leaves_out_idle_and_iowait() {
        assert_eq!(parse_machine_busy("cpu  100 0 50 1000 30 5 5 0 0 0"), Some(1.6));
    }

    #[test]
    fn listening_sockets_are_found_by_port_and_state() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   110        0 22031 1\n\
            1: 0100007F:1538 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000   110        0 99999 1\n";
        assert_eq!(listening_inodes(table, 5432), [22031]);
        assert!(listening_inodes(table, 6379).is_empty());
    }

    #[test]
    fn deltas_attribute_the_rest_of_the_machine_to_other() {
        let before = Sample { cpu_s: BTreeMap::from([("a".into(), 1.0), ("b".into(), 2.0)]), machine_s: Some(10.0) };
        let after = Sample { cpu_s: BTreeMap::from([("a".into(), 1.5), ("b".into(), 2.25)]), machine_s: Some(11.0) };
        let d = cpu_delta_ms(&before, &after);
        assert_eq!((d["a"], d["b"], d[OTHER]), (500.0, 250.0, 250.0));
    }
}
