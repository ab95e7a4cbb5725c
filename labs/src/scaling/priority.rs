//! The lab's claim on a shared machine: the shop's processes, the edge and
//! the load generator run before other work on the machine, so that the
//! only scarce CPU is the quota of the scaled replicas.
//!
//! Two knobs, as a node gives its pods priority over the rest:
//! - the capped replicas' cgroups (and the launcher's levels above them)
//!   get the weight of [`WEIGHT_CORES`] busy processes
//!   ([`Cgroup::set_cpu_weight`](twinshop_launcher::cgroups::Cgroup::set_cpu_weight),
//!   the kubelet's `cpu.shares` for the `kubepods` slice);
//! - every other process of the lab (the build's uncapped services, nginx
//!   and its workers, the generator itself) gets niceness [`NICE`], thread
//!   by thread (Linux keeps one per thread; threads started later inherit
//!   their creator's).
//!
//! - PostgreSQL forks one backend process per connection: the backends of
//!   the build's own databases (found in `pg_stat_activity`) get [`NICE`]
//!   too, while the server's shared processes, Redis and RabbitMQ (the
//!   machine's, shared with others) keep theirs.
//!
//! None of it lifts a quota: a capped replica still gets at most its share
//! per period. Raising a priority needs root (as the cgroups do); without it
//! the lab runs on and says so.

use anyhow::{Context as _, Result};
use rustix::process::{Pid, setpriority_process};
use sqlx::{Connection as _, PgConnection};
use twinshop_launcher::{ProcessId, Service, System};
use twinshop_loadtest::compare::procs;

use crate::common::say;

/// The niceness of the lab's uncapped processes (weight 9548 against a
/// nice-0 process's 1024).
pub const NICE: i32 = -10;

/// The CPU weight of the capped replicas' groups, in busy nice-0 processes
/// (about what [`NICE`] gives one thread).
pub const WEIGHT_CORES: f64 = 9.0;

/// Gives every thread of `pid` niceness `nice`; returns how many it set.
pub fn renice(pid: u32, nice: i32) -> Result<usize> {
    let tasks =
        std::fs::read_dir(format!("/proc/{pid}/task")).with_context(|| format!("listing the threads of {pid}"))?;
    let mut set = 0;
    for tid in tasks.filter_map(Result::ok).filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()) {
        // A thread may end between the listing and the call.
        if let Some(tid) = Pid::from_raw(tid)
            && setpriority_process(Some(tid), nice).is_ok()
        {
            set += 1;
        }
    }
    if set == 0 {
        anyhow::bail!("could not set the niceness of any thread of {pid} (root is needed for a negative one)");
    }
    Ok(set)
}

/// Gives `pid` and its descendants niceness `nice`.
fn renice_tree(pid: u32, nice: i32) -> Result<()> {
    for p in procs::tree(&procs::all_processes(), pid) {
        renice(p, nice)?;
    }
    Ok(())
}

/// The weight for the groups of `capped`, the niceness for every running
/// process of `system`, its database backends, the edge and the generator.
/// Run again after a process starts or a pool grows. Failing, it says why
/// and returns false.
pub async fn claim(system: &System, capped: &[ProcessId]) -> bool {
    match try_claim(system, capped).await {
        Ok(()) => true,
        Err(e) => {
            say(&format!(
                "  (could not raise the lab's CPU priority: {e:#}; other work on the machine competes with it)"
            ));
            false
        }
    }
}

async fn try_claim(system: &System, capped: &[ProcessId]) -> Result<()> {
    for id in capped {
        let group = system.cgroup(*id).with_context(|| format!("{id} has no cgroup"))?;
        group.set_cpu_weight(WEIGHT_CORES).with_context(|| format!("weighting {id}'s group"))?;
    }
    for p in system.processes() {
        if let Some(pid) = p.pid {
            renice(pid, NICE)?;
        }
    }
    if let Some(pid) = system.edge().and_then(|e| e.supervisor().pid()) {
        renice_tree(pid, NICE)?;
    }
    renice(std::process::id(), NICE)?;
    for pid in backends(system).await? {
        // A backend may end between the query and the call.
        let _ = renice(pid, NICE);
    }
    Ok(())
}

/// The names of the build's databases, and a connection to one of them.
pub(crate) async fn build_databases(system: &System) -> Result<(Vec<String>, PgConnection)> {
    let services = [Service::User, Service::Payment, Service::Order, Service::Monolith];
    let names: Vec<String> = services.iter().filter_map(|s| system.database(*s)).map(str::to_owned).collect();
    let url = services.iter().find_map(|s| system.database_url(*s)).context("the build has no database")?;
    let conn = PgConnection::connect(&url).await.context("connecting to PostgreSQL")?;
    Ok((names, conn))
}

/// The PostgreSQL backends serving the build's databases.
async fn backends(system: &System) -> Result<Vec<u32>> {
    let (names, mut conn) = build_databases(system).await?;
    let pids: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = ANY($1) AND pid <> pg_backend_pid()")
            .bind(&names)
            .fetch_all(&mut conn)
            .await
            .context("listing the build's backends")?;
    let _ = conn.close().await;
    Ok(pids.into_iter().filter_map(|p| u32::try_from(p).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The niceness of thread `tid` of this process, from its stat line;
    /// `None` if the thread has ended since it was listed (under `cargo
    /// test`, other tests' threads share the process).
    fn nice_of(tid: &str) -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        let after_comm = stat.rsplit_once(')').expect("comm").1;
        // Fields after the command: state is field 3, nice field 19.
        Some(after_comm.split_whitespace().nth(16).expect("nice").parse().expect("a number"))
    }

    #[test]
    fn every_thread_of_a_process_gets_the_niceness_asked_for() {
        let _extra = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(300)));
        // Its own niceness again: allowed without root, and still a real call per thread.
        let now = rustix::process::getpriority_process(None).expect("getpriority");
        let set = renice(std::process::id(), now).expect("renice");
        let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
            .expect("tasks")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(set >= 2, "{set} threads set");
        assert!(threads.iter().all(|t| nice_of(t).is_none_or(|n| n == now)), "every thread at {now}");
    }

    #[test]
    fn a_process_that_is_gone_is_an_error() {
        assert!(renice(u32::MAX - 1, 0).is_err());
    }
}
