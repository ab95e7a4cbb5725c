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
//! - outbox and consumer counters: the relay and the consumer runner.

use std::{sync::OnceLock, time::Instant};

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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
    let _ = handle();
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
