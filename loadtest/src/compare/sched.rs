//! Waiting for a core, per process: the kernel's run-queue delay and the
//! context switches of every thread of a watched process tree, from
//! `/proc/<pid>/task/<tid>/schedstat` and `…/status` (Linux only).
//!
//! Why it exists: on two cores, a request's time includes the moments its
//! thread was ready to run and no core was free. No span can see that;
//! the scheduler counts it for every thread (`run_delay`, the second
//! field of `schedstat`, needs `CONFIG_SCHEDSTATS`, on in every distribution
//! kernel). Divided by the requests of a step it is the mean wait for a
//! core per request, per process: the trace map's "waiting for a worker".
//! Threads that exit during the window take their counts with them, so
//! the figures are lower bounds for processes that start and stop threads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::procs::{Scope, Watch, all_processes, tree};

/// Scheduler counts of one name, summed over its threads, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sched {
    /// Nanoseconds runnable but not running.
    pub run_delay_ns: u64,
    /// Voluntary (blocked, woke later) and involuntary (preempted) switches.
    pub voluntary: u64,
    pub involuntary: u64,
}

/// Parses the second field of a `schedstat` line (`cpu_ns run_delay_ns slices`).
pub fn parse_run_delay(line: &str) -> Option<u64> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `(voluntary, involuntary)` context switches from a `status` file.
pub fn parse_switches(status: &str) -> (u64, u64) {
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok()).unwrap_or(0);
    (field("voluntary_ctxt_switches:"), field("nonvoluntary_ctxt_switches:"))
}

fn of_process(pid: u32) -> Sched {
    let mut total = Sched::default();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return total };
    for task in tasks.flatten() {
        let dir = task.path();
        if let Some(delay) = std::fs::read_to_string(dir.join("schedstat")).ok().as_deref().and_then(parse_run_delay) {
            total.run_delay_ns += delay;
        }
        let (voluntary, involuntary) =
            std::fs::read_to_string(dir.join("status")).map(|s| parse_switches(&s)).unwrap_or_default();
        total.voluntary += voluntary;
        total.involuntary += involuntary;
    }
    total
}

/// The counts of every name of `watch` now (trees as their live members).
pub fn sample(watch: &Watch) -> BTreeMap<String, Sched> {
    let procs = all_processes();
    let mut out: BTreeMap<String, Sched> = BTreeMap::new();
    for (name, root, scope) in &watch.roots {
        let members = match scope {
            Scope::Tree => tree(&procs, *root),
            Scope::Own => vec![*root],
            Scope::Reaped => continue,
        };
        let entry = out.entry(name.clone()).or_default();
        for pid in members {
            let s = of_process(pid);
            entry.run_delay_ns += s.run_delay_ns;
            entry.voluntary += s.voluntary;
            entry.involuntary += s.involuntary;
        }
    }
    out
}

/// Per request between two samples: µs waiting for a core, and switches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PerRequest {
    pub run_delay_us: f64,
    pub voluntary: f64,
    pub involuntary: f64,
}

/// `after − before` per name, divided by `requests` (names in both only;
/// a count that went down, a thread gone, counts as 0).
pub fn per_request(
    before: &BTreeMap<String, Sched>,
    after: &BTreeMap<String, Sched>,
    requests: u64,
) -> BTreeMap<String, PerRequest> {
    let n = requests.max(1) as f64;
    after
        .iter()
        .filter_map(|(name, a)| {
            let b = before.get(name)?;
            Some((
                name.clone(),
                PerRequest {
                    run_delay_us: a.run_delay_ns.saturating_sub(b.run_delay_ns) as f64 / 1e3 / n,
                    voluntary: a.voluntary.saturating_sub(b.voluntary) as f64 / n,
                    involuntary: a.involuntary.saturating_sub(b.involuntary) as f64 / n,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        assert_eq!(parse_run_delay("123456 7890 12\n"), Some(7890));
        assert_eq!(parse_run_delay("garbage"), None);
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t40\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(parse_switches(status), (40, 3));
    }

    #[test]
    fn this_process_is_counted() {
        let mut watch = Watch::default();
        watch.add_scoped("me", Some(std::process::id()), true, Scope::Own);
        let before = sample(&watch);
        // Give the scheduler something to count: a thread that blocks once.
        std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(5))).join().ok();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let after = sample(&watch);
        assert!(after["me"].voluntary > before["me"].voluntary, "{before:?} {after:?}");
        let per = per_request(&before, &after, 2);
        assert!(per["me"].voluntary > 0.0);
    }
}
