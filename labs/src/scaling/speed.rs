//! How much work a second of CPU buys on this machine, watched while the lab
//! measures.
//!
//! A CPU quota is a budget of *time*: a quarter core may run 25 ms in every
//! 100. What a replica gets done in that time is its capacity, and on a
//! virtual machine that is not fixed: when other guests share the host's
//! cores, caches or power budget, the same instructions take longer, and
//! the guest counts the time as its own CPU time (this VM's steal counter
//! did not move). A capped replica then serves less at the same quota, and
//! a figure measured in one window differs from the next for nothing in
//! the code.
//!
//! The probe runs a fixed piece of work (integer arithmetic touching no
//! data beyond its own stack) on a thread of its own, about every 50 ms,
//! and records the CPU time each run took (the thread's CPU clock). Each
//! step's window gets the mean of the runs inside it; the lowest of the
//! whole run is the machine at its best. The thread runs beside the load
//! the lab offers, on the same cores, so what it sees includes the lab's
//! own load as well as the host's. The report puts each point's figures beside the
//! machine's speed while they were measured.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

/// Iterations of the work unit: about 0.6 ms of CPU in a debug build (as
/// CI and the labs run).
const UNIT: u64 = 100_000;
/// Pause between runs: the probe takes about 1 % of one core, and a 5 s
/// window holds about a hundred runs.
const PAUSE: Duration = Duration::from_millis(50);

/// A running probe; stops when dropped.
#[derive(Debug)]
pub struct Probe {
    runs: Arc<Mutex<Vec<(Instant, f64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Probe {
    /// Starts the probe; `None` if its thread cannot be started.
    pub fn start() -> Option<Self> {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::Builder::new()
            .name("speed-probe".into())
            .spawn({
                let (runs, stop) = (runs.clone(), stop.clone());
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Some(before) = thread_cpu_ns() else { return };
                        std::hint::black_box(work(std::hint::black_box(UNIT)));
                        let Some(after) = thread_cpu_ns() else { return };
                        let us = after.saturating_sub(before) as f64 / 1e3;
                        if let Ok(mut runs) = runs.lock() {
                            runs.push((Instant::now(), us));
                        }
                        thread::sleep(PAUSE);
                    }
                }
            })
            .ok()?;
        Some(Self { runs, stop, thread: Some(thread) })
    }

    /// The mean CPU µs of one unit of work over the runs that ended between
    /// `from` and `to` (the mean, not the median: a capped replica's
    /// capacity follows the machine's average speed, slow moments included);
    /// `None` with fewer than five.
    pub fn mean_us(&self, from: Instant, to: Instant) -> Option<f64> {
        let runs = self.runs.lock().ok()?;
        let inside: Vec<f64> = runs.iter().filter(|(t, _)| *t >= from && *t <= to).map(|(_, us)| *us).collect();
        (inside.len() >= 5).then(|| inside.iter().sum::<f64>() / inside.len() as f64)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The work unit: a dependent chain of multiplications and shifts, on no
/// data beyond the stack, that no compiler can shorten (its count is
/// hidden from it).
fn work(n: u64) -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..n {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
        x ^= x >> 29;
    }
    x
}

/// This thread's CPU time so far, ns (`CLOCK_THREAD_CPUTIME_ID`, which the
/// kernel brings up to date when asked; a thread's schedstat lags by up to
/// a scheduler tick, longer than the unit of work).
fn thread_cpu_ns() -> Option<u64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec).ok()?.checked_mul(1_000_000_000)?.checked_add(u64::try_from(t.tv_nsec).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_times_its_work_and_a_window_without_runs_has_no_mean() {
        let from = Instant::now();
        let probe = Probe::start().expect("the probe's thread starts");
        // Five runs at least (each under a millisecond of work and a 50 ms pause).
        let deadline = from + Duration::from_secs(10);
        while probe.runs.lock().expect("lock").len() < 5 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        let to = Instant::now();
        let mean = probe.mean_us(from, to).expect("five runs in the window");
        assert!(mean > 0.0, "{mean}");
        assert_eq!(probe.mean_us(to + Duration::from_secs(60), to + Duration::from_secs(61)), None);
    }
}
