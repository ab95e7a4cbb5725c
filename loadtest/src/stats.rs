//! Where every measured request ends up: HDR histograms (overall and per
//! endpoint) and counters, and the serializable summaries read from them.
//!
//! Why it exists: percentiles must be exact enough to compare two builds
//! (3 significant digits, microsecond resolution, up to 60 s), and the
//! accounting rules must live in one place:
//! - *latency* is measured from the request's intended send time in the
//!   open model and from its actual send time in the closed model (the
//!   engine decides; this module only records `done - start`);
//! - *service time* is always from the actual send (what a naive tool
//!   reports; shown beside latency so the gap is visible);
//! - every request that got an HTTP answer is recorded, whatever its
//!   status; a timeout is recorded at its duration (a lower bound), so a
//!   server that stops answering pushes the percentiles up instead of
//!   vanishing from them; a connection failure is only counted (its
//!   duration says nothing about the server).
//!
//! It depends on nothing but hdrhistogram and serde.

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use twinshop_client::TransportError;

/// The largest value a histogram holds: 60 s in microseconds (larger
/// values are clamped to it).
pub const MAX_TRACKABLE_US: u64 = 60_000_000;
/// Significant digits kept by every histogram.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A histogram of microseconds, 1 µs … 60 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail.
    Histogram::new_with_bounds(1, MAX_TRACKABLE_US, SIGNIFICANT_DIGITS).expect("valid histogram bounds")
}

/// Records a duration, in microseconds (at least 1, at most 60 s).
pub fn record(histogram: &mut Histogram<u64>, duration: Duration) {
    let us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_TRACKABLE_US);
    histogram.saturating_record(us);
}

/// What one request produced, as the operation that sent it saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The route template, e.g. `"POST /v1/orders"`.
    pub endpoint: &'static str,
    /// The HTTP status, or why there was none.
    pub status: Result<u16, TransportError>,
    /// The problem `code` of an error answer.
    pub code: Option<String>,
    /// A domain label to count, e.g. `"order.confirmed"`.
    pub tag: Option<&'static str>,
}

impl Outcome {
    /// Whether this counts as an error: no answer, or a 4xx/5xx.
    pub fn is_error(&self) -> bool {
        !matches!(self.status, Ok(s) if s < 400)
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Percentiles {
    /// Reads the percentiles of a histogram (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }

    /// `(label, value)` pairs in the order reports show them.
    pub fn labelled(&self) -> [(&'static str, u64); 5] {
        [
            ("p50", self.p50_us),
            ("p90", self.p90_us),
            ("p99", self.p99_us),
            ("p99.9", self.p999_us),
            ("max", self.max_us),
        ]
    }
}

/// Everything measured for one endpoint (or for all of them together).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointStats {
    /// The route template, or `"all"`.
    pub name: String,
    /// Requests issued (answered, timed out or failed).
    pub count: u64,
    /// Answers with a status below 400.
    pub ok: u64,
    /// Answers with a status of 400 or more, plus transport errors and timeouts.
    pub errors: u64,
    /// `errors / count` (0 when nothing was sent).
    pub error_rate: f64,
    /// Requests completed per second of the measured window.
    pub throughput_rps: f64,
    /// From the intended send time (open model) or the actual one (closed).
    pub latency: Percentiles,
    /// From the actual send time, always.
    pub service_time: Percentiles,
    /// Answers by HTTP status (`"201"`, `"409"`, ...).
    pub statuses: BTreeMap<String, u64>,
    /// Error answers by problem `code` (`"(none)"` when the body had none).
    pub problem_codes: BTreeMap<String, u64>,
    /// Requests without an answer, by kind (`"timeout"`, `"transport"`).
    pub transport_errors: BTreeMap<String, u64>,
}

/// The running tally of one endpoint.
#[derive(Debug)]
struct Acc {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    count: u64,
    ok: u64,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
    codes: BTreeMap<String, u64>,
    transport: BTreeMap<&'static str, u64>,
}

impl Acc {
    fn new() -> Self {
        Self {
            latency: new_histogram(),
            service: new_histogram(),
            count: 0,
            ok: 0,
            errors: 0,
            statuses: BTreeMap::new(),
            codes: BTreeMap::new(),
            transport: BTreeMap::new(),
        }
    }

    fn add(&mut self, outcome: &Outcome, latency: Duration, service: Duration) {
        self.count += 1;
        if outcome.is_error() {
            self.errors += 1;
        } else {
            self.ok += 1;
        }
        match outcome.status {
            Ok(status) => {
                *self.statuses.entry(status).or_default() += 1;
                if status >= 400 {
                    let code = outcome.code.clone().unwrap_or_else(|| "(none)".to_owned());
                    *self.codes.entry(code).or_default() += 1;
                }
            }
            Err(e) => *self.transport.entry(e.as_str()).or_default() += 1,
        }
        if outcome.status != Err(TransportError::Io) {
            record(&mut self.latency, latency);
            record(&mut self.service, service);
        }
    }

    fn stats(&self, name: &str, window: Duration) -> EndpointStats {
        EndpointStats {
            name: name.to_owned(),
            count: self.count,
            ok: self.ok,
            errors: self.errors,
            error_rate: ratio(self.errors, self.count),
            throughput_rps: per_second(self.count, window),
            latency: Percentiles::of(&self.latency),
            service_time: Percentiles::of(&self.service),
            statuses: self.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
            problem_codes: self.codes.clone(),
            transport_errors: self.transport.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
        }
    }
}

/// A duration in microseconds, for people: `850µs`, `12.3ms`, `1.20s`.
pub fn fmt_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0}µs")
    } else if us < 10_000.0 {
        format!("{:.2}ms", us / 1_000.0)
    } else if us < 1_000_000.0 {
        format!("{:.1}ms", us / 1_000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

/// `part / whole`, 0 when `whole` is 0.
pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// `count` per second of `window` (0 for an empty window).
pub fn per_second(count: u64, window: Duration) -> f64 {
    let secs = window.as_secs_f64();
    if secs <= 0.0 { 0.0 } else { count as f64 / secs }
}

#[derive(Debug)]
struct Tally {
    overall: Acc,
    endpoints: BTreeMap<&'static str, Acc>,
    /// How late requests left compared with their intended time.
    send_lag: Histogram<u64>,
    tags: BTreeMap<&'static str, u64>,
    /// Requests that had to wait for an in-flight slot before being sent.
    backlogged: u64,
    /// Scheduled requests never sent (the run's hard stop came first).
    unsent: u64,
    last_done: Option<Instant>,
    /// Progress-line window: requests, since the last [`Recorder::progress`].
    window_count: u64,
}

/// The thread-safe sink of a run's samples.
///
/// One uncontended mutex per request: on 2 cores at a few thousand
/// requests per second this costs far less than a channel hop to a
/// collector task would, and the progress line can read it directly.
#[derive(Debug)]
pub struct Recorder {
    tally: Mutex<Tally>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// What the progress line shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub count: u64,
    pub errors: u64,
    /// Requests completed since the previous call.
    pub window_count: u64,
    pub p99_us: u64,
}

/// Everything a measured phase produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub overall: EndpointStats,
    pub endpoints: Vec<EndpointStats>,
    /// Domain outcomes counted by label (e.g. `"order.confirmed"`).
    pub tags: BTreeMap<String, u64>,
    /// Actual minus intended send time (generator lag; 0 in the closed model).
    pub send_lag: Percentiles,
    /// Requests that waited for an in-flight slot (their wait is in their latency).
    pub backlogged: u64,
    /// Scheduled requests never sent; counted as errors of `overall`.
    pub unsent: u64,
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            tally: Mutex::new(Tally {
                overall: Acc::new(),
                endpoints: BTreeMap::new(),
                send_lag: new_histogram(),
                tags: BTreeMap::new(),
                backlogged: 0,
                unsent: 0,
                last_done: None,
                window_count: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one request: `start` is the intended send time (open model)
    /// or the actual one (closed model).
    pub fn record(&self, outcome: &Outcome, start: Instant, sent: Instant, done: Instant) {
        let latency = done.saturating_duration_since(start);
        let service = done.saturating_duration_since(sent);
        let mut t = self.lock();
        t.overall.add(outcome, latency, service);
        t.endpoints.entry(outcome.endpoint).or_insert_with(Acc::new).add(outcome, latency, service);
        record(&mut t.send_lag, sent.saturating_duration_since(start));
        if let Some(tag) = outcome.tag {
            *t.tags.entry(tag).or_default() += 1;
        }
        t.last_done = Some(t.last_done.map_or(done, |d| d.max(done)));
        t.window_count += 1;
    }

    /// Notes that a request waited for an in-flight slot.
    pub fn backlogged(&self) {
        self.lock().backlogged += 1;
    }

    /// Notes `n` scheduled requests that were never sent; they count as errors.
    pub fn unsent(&self, n: u64) {
        let mut t = self.lock();
        t.unsent += n;
        t.overall.count += n;
        t.overall.errors += n;
        *t.overall.transport.entry("not_sent").or_default() += n;
    }

    /// When the last request completed.
    pub fn last_done(&self) -> Option<Instant> {
        self.lock().last_done
    }

    /// Totals so far, and the requests completed since the previous call.
    pub fn progress(&self) -> Progress {
        let mut t = self.lock();
        let window_count = std::mem::take(&mut t.window_count);
        let p99_us = if t.overall.latency.is_empty() { 0 } else { t.overall.latency.value_at_quantile(0.99) };
        Progress { count: t.overall.count, errors: t.overall.errors, window_count, p99_us }
    }

    /// The summary, with throughput over `window` (the measured time).
    pub fn summary(&self, window: Duration) -> Summary {
        let t = self.lock();
        Summary {
            overall: t.overall.stats("all", window),
            endpoints: t.endpoints.iter().map(|(name, acc)| acc.stats(name, window)).collect(),
            tags: t.tags.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
            send_lag: Percentiles::of(&t.send_lag),
            backlogged: t.backlogged,
            unsent: t.unsent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(endpoint: &'static str, status: u16) -> Outcome {
        Outcome { endpoint, status: Ok(status), code: None, tag: None }
    }

    #[test]
    fn percentiles_of_a_uniform_spread_are_within_three_significant_digits() {
        let mut h = new_histogram();
        for ms in 1..=1000u64 {
            record(&mut h, Duration::from_millis(ms));
        }
        let p = Percentiles::of(&h);
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.001 + 1.0;
        assert_eq!(p.count, 1000);
        assert!(close(p.p50_us, 500_000), "p50 {}", p.p50_us);
        assert!(close(p.p90_us, 900_000), "p90 {}", p.p90_us);
        assert!(close(p.p99_us, 990_000), "p99 {}", p.p99_us);
        assert!(close(p.p999_us, 999_000), "p99.9 {}", p.p999_us);
        assert!(close(p.max_us, 1_000_000), "max {}", p.max_us);
        assert!(close(p.min_us, 1_000), "min {}", p.min_us);
    }

    #[test]
    fn durations_beyond_sixty_seconds_are_clamped_not_lost() {
        let mut h = new_histogram();
        record(&mut h, Duration::from_secs(3600));
        record(&mut h, Duration::ZERO);
        assert_eq!(h.len(), 2);
        assert!(h.max() >= MAX_TRACKABLE_US && h.max() <= MAX_TRACKABLE_US + MAX_TRACKABLE_US / 1000);
        assert_eq!(h.min(), 1);
    }

    #[test]
    fn durations_read_in_the_unit_people_expect() {
        assert_eq!(fmt_us(850.0), "850µs");
        assert_eq!(fmt_us(1_234.0), "1.23ms");
        assert_eq!(fmt_us(12_345.0), "12.3ms");
        assert_eq!(fmt_us(1_200_000.0), "1.20s");
    }

    #[test]
    fn an_empty_histogram_reads_as_zeros() {
        assert_eq!(Percentiles::of(&new_histogram()), Percentiles::default());
    }

    #[test]
    fn errors_are_counted_by_status_code_problem_code_and_transport_kind() {
        let r = Recorder::new();
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        r.record(&ok("GET /v1/products", 200), t, t, ms(1));
        r.record(
            &Outcome {
                endpoint: "POST /v1/orders",
                status: Ok(503),
                code: Some("payment_unavailable".into()),
                tag: Some("order.failed"),
            },
            t,
            t,
            ms(2),
        );
        r.record(&ok("POST /v1/orders", 201), t, t, ms(3));
        r.record(&Outcome { endpoint: "POST /v1/orders", status: Ok(502), code: None, tag: None }, t, t, ms(4));
        r.record(
            &Outcome { endpoint: "GET /v1/products", status: Err(TransportError::Timeout), code: None, tag: None },
            t,
            t,
            ms(10_000),
        );
        r.record(
            &Outcome { endpoint: "GET /v1/products", status: Err(TransportError::Io), code: None, tag: None },
            t,
            t,
            ms(5),
        );
        let s = r.summary(Duration::from_secs(2));
        assert_eq!(s.overall.count, 6);
        assert_eq!(s.overall.ok, 2);
        assert_eq!(s.overall.errors, 4);
        assert!((s.overall.error_rate - 4.0 / 6.0).abs() < 1e-9);
        assert!((s.overall.throughput_rps - 3.0).abs() < 1e-9);
        // The connection failure is counted but not timed; the timeout is timed.
        assert_eq!(s.overall.latency.count, 5);
        assert!(s.overall.latency.max_us >= 10_000_000);
        let orders = s.endpoints.iter().find(|e| e.name == "POST /v1/orders").expect("orders endpoint");
        assert_eq!(orders.statuses.get("503"), Some(&1));
        assert_eq!(orders.problem_codes.get("payment_unavailable"), Some(&1));
        assert_eq!(orders.problem_codes.get("(none)"), Some(&1));
        let products = s.endpoints.iter().find(|e| e.name == "GET /v1/products").expect("products endpoint");
        assert_eq!(products.transport_errors.get("timeout"), Some(&1));
        assert_eq!(products.transport_errors.get("transport"), Some(&1));
        assert_eq!(s.tags.get("order.failed"), Some(&1));
    }

    #[test]
    fn latency_counts_from_the_start_given_and_service_time_from_the_send() {
        let r = Recorder::new();
        let intended = Instant::now();
        let sent = intended + Duration::from_millis(900);
        let done = sent + Duration::from_millis(1);
        r.record(&ok("GET /v1/products", 200), intended, sent, done);
        let s = r.summary(Duration::from_secs(1));
        assert!((901_000..=902_000).contains(&s.overall.latency.p50_us), "{:?}", s.overall.latency);
        assert!((1_000..=1_001).contains(&s.overall.service_time.p50_us), "{:?}", s.overall.service_time);
        assert!((900_000..=901_000).contains(&s.send_lag.max_us), "{:?}", s.send_lag);
    }

    #[test]
    fn unsent_requests_are_errors_of_the_whole_run() {
        let r = Recorder::new();
        r.unsent(7);
        let s = r.summary(Duration::from_secs(1));
        assert_eq!((s.unsent, s.overall.count, s.overall.errors), (7, 7, 7));
        assert_eq!(s.overall.transport_errors.get("not_sent"), Some(&7));
    }

    #[test]
    fn the_progress_window_resets_on_each_read() {
        let r = Recorder::new();
        let t = Instant::now();
        r.record(&ok("GET /v1/products", 200), t, t, t);
        r.record(&ok("GET /v1/products", 200), t, t, t);
        assert_eq!(r.progress().window_count, 2);
        assert_eq!(r.progress().window_count, 0);
        assert_eq!(r.progress().count, 2);
    }
}
