//! The live progress line on stderr, once per second while a phase runs:
//! elapsed time, the rate of the last second, p99 so far, errors.
//!
//! Why it exists: a run takes minutes, and a stall or an error storm
//! should be visible while it happens, not only in the report. On a
//! terminal it is one line rewritten in place (`\r`); when stderr is a
//! file or a pipe (CI logs) it prints plain lines instead.

use std::{
    io::{IsTerminal as _, Write as _},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::stats::{Progress, Recorder, fmt_us};

/// A running progress line; [`ProgressLine::finish`] stops it.
#[derive(Debug)]
pub struct ProgressLine {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ProgressLine {
    /// Starts printing the progress of `recorder` under `label`.
    pub fn spawn(label: String, recorder: Arc<Recorder>) -> Self {
        let stop = CancellationToken::new();
        let tty = std::io::stderr().is_terminal();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let started = Instant::now();
                let mut last = started;
                recorder.progress();
                let mut ticks =
                    tokio::time::interval_at((started + Duration::from_secs(1)).into(), Duration::from_secs(1));
                let mut printed = false;
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        _ = ticks.tick() => {}
                    }
                    let now = Instant::now();
                    let line = format_line(&label, now - started, &recorder.progress(), now - last);
                    last = now;
                    let mut err = std::io::stderr().lock();
                    // A progress line that cannot be written is not worth failing a run for.
                    let _ = if tty { write!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
                    let _ = err.flush();
                    printed = true;
                }
                if tty && printed {
                    let _ = writeln!(std::io::stderr());
                }
            }
        });
        Self { stop, task }
    }

    /// Stops the line (ending it with a newline on a terminal).
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// One progress line: `measure   12s   498 req/s  p99 3.21ms  errors 0 (of 5976)`.
pub fn format_line(label: &str, elapsed: Duration, p: &Progress, window: Duration) -> String {
    let rate = if window.is_zero() { 0.0 } else { p.window_count as f64 / window.as_secs_f64() };
    format!(
        "{label:<8} {:>4}s {rate:>7.0} req/s  p99 {:>8}  errors {} (of {})",
        elapsed.as_secs(),
        fmt_us(p.p99_us as f64),
        p.errors,
        p.count
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_elapsed_rate_p99_and_errors() {
        let p = Progress { count: 5976, errors: 3, window_count: 498, p99_us: 3_210 };
        let line = format_line("measure", Duration::from_millis(12_400), &p, Duration::from_secs(1));
        assert_eq!(line, "measure    12s     498 req/s  p99   3.21ms  errors 3 (of 5976)");
    }
}
