//! What an operator saw: the processes' logs during the run, counted.
//!
//! The launcher writes each process's JSON log lines to `<name>.log`. The
//! report shows, per process, how many lines were ERROR and WARN, and how
//! the outbox relay spoke during the outages (one line when publishing
//! starts failing, a summary while it does, one line when it recovers),
//! against the one line per event per attempt it used to write.

use std::{collections::BTreeMap, path::Path};

use serde::Serialize;

use super::nemesis::Injected;

/// Counts from one run's logs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogSummary {
    /// `(process, ERROR lines, WARN lines)`.
    pub per_process: Vec<(String, usize, usize)>,
    /// The distinct ERROR messages and how often each appeared.
    pub errors: Vec<(String, usize)>,
    /// "events cannot be published yet" (one per outage and area).
    pub relay_failing: usize,
    /// "outbox backlog" summaries.
    pub relay_summaries: usize,
    /// "events are published again".
    pub relay_recovered: usize,
    /// The old per-event, per-attempt line (now DEBUG: 0 at INFO).
    pub relay_per_event: usize,
}

fn field<'a>(line: &'a serde_json::Value, name: &str) -> &'a str {
    line.get(name).and_then(serde_json::Value::as_str).unwrap_or("")
}

/// Reads every `*.log` under `dir`.
pub fn summarize(dir: &Path, _faults: &[Injected]) -> LogSummary {
    let mut s = LogSummary::default();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return s };
    let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "log")) {
        let name = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let (mut e, mut w) = (0, 0);
        for line in text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
            let message = field(&line, "message");
            match field(&line, "level") {
                "ERROR" => {
                    e += 1;
                    *errors.entry(format!("{name}: {message}")).or_default() += 1;
                }
                "WARN" => w += 1,
                _ => {}
            }
            match message {
                "events cannot be published yet; they wait in the outbox" => s.relay_failing += 1,
                "outbox backlog" | "outbox backlog unknown" => s.relay_summaries += 1,
                "events are published again" => s.relay_recovered += 1,
                "publish failed, will retry" => s.relay_per_event += 1,
                _ => {}
            }
        }
        s.per_process.push((name, e, w));
    }
    let mut errors: Vec<(String, usize)> = errors.into_iter().collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.1));
    s.errors = errors;
    s
}
