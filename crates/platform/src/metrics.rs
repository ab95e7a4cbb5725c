//! Prometheus metrics: one process-wide recorder rendered on `/metrics`.
//!
//! What is recorded, by whom:
//! - `http_requests_total{route,method,status,code}` and
//!   `http_request_duration_seconds{route,method}`: the [`track_http`]
//!   middleware, for every router that installs it (`code` is the problem
//!   code of an error response, `none` otherwise, so errors are countable by
//!   route and code);
//! - `dependency_up{dependency}`: set by every `/readyz` probe;
//! - `build_info{version,commit,release,profile}`: always 1, set once by
//!   `host::main` (see [`crate::build_info`]);
//! - outbox and consumer counters: the relay and the consumer runner;
//!   [`consumer`] makes a consumer's counters exist (at 0) from the start,
//!   so "nothing dead-lettered" is a 0 on a dashboard rather than no data;
//! - read at scrape time by [`Scrape`]: the process's CPU, memory, threads
//!   and file descriptors (`process_*`, the names every Prometheus client
//!   library uses) and each database pool's connections
//!   (`db_pool_connections{area,state}`, `db_pool_max_connections{area}`).
//!
//! The dashboards that read these are in `deploy/grafana/`.

use std::{
    sync::{Arc, OnceLock},
    time::Instant,
};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
    routing::get,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

use crate::{build_info::BuildInfo, problem::ProblemCode};

/// Latency buckets: fine-grained at the low end where our SLO (25 ms) is.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the global recorder once per process; later calls reuse it.
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|err| tracing::error!(error = %err, "metrics recorder not installed"))
                .ok()
        })
        .as_ref()
}

/// Installs the recorder (idempotent). Call early in `main`.
pub fn init() {
    if handle().is_some() {
        describe();
    }
}

/// The `# HELP` lines of what this crate records itself.
fn describe() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        metrics_process::Collector::default().describe();
        metrics::describe_counter!(
            "http_requests_total",
            "Requests answered, by matched route, status and problem code."
        );
        metrics::describe_histogram!(
            "http_request_duration_seconds",
            metrics::Unit::Seconds,
            "Time from request to response, by matched route."
        );
        metrics::describe_gauge!("db_pool_connections", "Open database connections of an area's pool, idle or in use.");
        metrics::describe_gauge!("db_pool_max_connections", "The most connections an area's pool opens.");
        metrics::describe_gauge!("outbox_backlog", "Events in an area's outbox not yet published.");
        metrics::describe_gauge!(
            "outbox_oldest_age_seconds",
            metrics::Unit::Seconds,
            "Age of the oldest unpublished event of an area's outbox (0 when none)."
        );
        metrics::describe_histogram!(
            "outbox_relay_delay_seconds",
            metrics::Unit::Seconds,
            "From the transaction that wrote an event to its confirmed publication."
        );
        metrics::describe_counter!(
            "outbox_relay_passes_total",
            "Relay passes of an area's outbox, by whether they claimed any event (none: a wake-up for nothing)."
        );
        metrics::describe_counter!("consumer_processed_total", "Events a consumer applied (or found applied).");
        metrics::describe_counter!("consumer_retries_total", "Failed attempts of a consumer that will be retried.");
        metrics::describe_counter!("consumer_dead_lettered_total", "Events a consumer gave up on.");
    });
}

/// The Prometheus text exposition of every metric so far.
pub fn render() -> String {
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

/// Middleware: counts and times every request by matched route.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let res = next.run(req).await;
    let code = res.extensions().get::<ProblemCode>().map_or("none", |c| c.0);
    metrics::histogram!("http_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("http_requests_total", "route" => route, "method" => method,
        "status" => res.status().as_u16().to_string(), "code" => code)
    .increment(1);
    res
}

/// Makes `consumer`'s counters exist at 0 (they are only incremented when
/// something happens; a series that does not exist yet shows no data).
pub fn consumer(consumer: &'static str) {
    for name in ["consumer_processed_total", "consumer_retries_total", "consumer_dead_lettered_total"] {
        metrics::counter!(name, "consumer" => consumer).increment(0);
    }
}

/// What `/metrics` reads at the moment it is scraped, rather than counts as
/// it happens: the process's CPU, memory, threads and open files, and how
/// many connections each area's pool holds.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    process: metrics_process::Collector,
    /// Each pool with the area it serves (its `area` label).
    pools: Arc<[(&'static str, PgPool)]>,
}

impl Scrape {
    /// A scrape of this process and of `pools` (area, pool).
    pub fn new(pools: Vec<(&'static str, PgPool)>) -> Self {
        Self { process: metrics_process::Collector::default(), pools: pools.into() }
    }

    /// Sets the scrape-time gauges, then renders every metric.
    pub fn render(&self) -> String {
        self.process.collect();
        for (area, pool) in self.pools.iter() {
            let open = pool.size() as usize;
            let idle = pool.num_idle().min(open);
            metrics::gauge!("db_pool_connections", "area" => *area, "state" => "idle").set(idle as f64);
            metrics::gauge!("db_pool_connections", "area" => *area, "state" => "in_use").set((open - idle) as f64);
            metrics::gauge!("db_pool_max_connections", "area" => *area)
                .set(f64::from(pool.options().get_max_connections()));
        }
        render()
    }
}

/// `GET /metrics`: merge it into the internal router.
pub fn router(scrape: Scrape) -> Router {
    Router::new()
        .route("/metrics", get(|State(scrape): State<Scrape>| async move { scrape.render() }))
        .with_state(scrape)
}

/// `dependency_up{dependency}`: 1 when the last check passed.
pub fn dependency_up(name: &'static str, up: bool) {
    metrics::gauge!("dependency_up", "dependency" => name).set(if up { 1.0 } else { 0.0 });
}

/// `build_info{version,commit,release,profile}`, always 1: which build this
/// process runs (join it to any other series on `instance` to break that
/// series down by release).
pub fn build_info(build: &BuildInfo) {
    metrics::gauge!("build_info", "version" => build.version, "commit" => build.commit,
        "release" => build.release, "profile" => build.profile)
    .set(1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series `name{labels}` exactly as rendered.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[tokio::test]
    async fn a_scrape_reads_the_process_and_each_pool() {
        init();
        let options = sqlx::postgres::PgConnectOptions::new().host("127.0.0.1").port(1);
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(7).connect_lazy_with(options);
        let text = Scrape::new(vec![("scrape-test", pool)]).render();
        let rss = value(&text, "process_resident_memory_bytes").expect("resident memory");
        assert!(rss > 1e6, "a process holds more than a megabyte: {rss}");
        let cpu = value(&text, "process_cpu_seconds_total").expect("cpu seconds");
        assert!(cpu >= 0.0, "{cpu}");
        assert_eq!(value(&text, r#"db_pool_max_connections{area="scrape-test"}"#), Some(7.0), "{text}");
        // Lazy: nothing connected yet.
        assert_eq!(value(&text, r#"db_pool_connections{area="scrape-test",state="in_use"}"#), Some(0.0));
        assert_eq!(value(&text, r#"db_pool_connections{area="scrape-test",state="idle"}"#), Some(0.0));
        assert!(text.contains("# HELP db_pool_connections "), "described");
    }

    #[test]
    fn a_consumer_reports_zero_dead_letters_before_any() {
        init();
        consumer("metrics-test-consumer");
        let text = render();
        for name in ["consumer_processed_total", "consumer_retries_total", "consumer_dead_lettered_total"] {
            assert_eq!(value(&text, &format!(r#"{name}{{consumer="metrics-test-consumer"}}"#)), Some(0.0), "{name}");
        }
    }

    #[test]
    fn build_info_is_one_series_labelled_with_the_identity() {
        init();
        build_info(&BuildInfo::new("0.1.0", Some("3f2a9c"), Some("r2"), false));
        let text = render();
        assert!(
            text.lines()
                .any(|l| l == r#"build_info{version="0.1.0",commit="3f2a9c",release="r2",profile="release"} 1"#),
            "{text}"
        );
    }
}
