//! The traced runs behind the trace map ([`super::tracemap`]): each build
//! started once more, its spans exported to the generator's receiver, the
//! default mix at each map level with a dozen placed orders a second
//! traced, and the run-queue delay of every process sampled at the
//! window's edges.
//!
//! Why apart from the measured runs: exporting spans costs the services a
//! little CPU; the comparison's numbers come from runs without it, and the
//! map's steps report their own latency so the two can be set side by side.

use std::{collections::BTreeMap, sync::Arc};

use anyhow::{Context as _, Result};
use twinshop_client::Client;

use super::{
    launch::{Build, Setup},
    math,
    plan::Plan,
    sched,
    tracemap::{self, LEVELS, LevelMap, TRACES_PER_S, TraceMap},
};
use crate::{
    engine::Model,
    mix::Mix,
    otlp::Receiver,
    shop::{ClientTrace, PLACE, TraceSampling},
    step::{StepResult, WindowEdge, run_step_observed},
};

/// The services' telemetry settings for a traced run: export to
/// `endpoint`, record exactly what a sampled caller asks for.
pub fn tracing_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec()
}

/// One placed order in how many, at `rate` requests/s of `mix`, for about
/// [`TRACES_PER_S`] traced orders a second.
pub fn sampling_every(rate: f64, mix: &Mix) -> u64 {
    ((rate * mix.place_share() / TRACES_PER_S).round() as u64).max(1)
}

/// What one traced step left for the map.
struct Traced {
    level: f64,
    rate: f64,
    every: u64,
    clients: Vec<ClientTrace>,
    step: StepResult,
    sched: BTreeMap<String, sched::PerRequest>,
}

/// Runs the traced steps of both builds and draws the map.
pub async fn run(setup: &Setup, plan: &Plan, peak: f64) -> Result<TraceMap> {
    let receiver = Receiver::start().await?;
    let env = tracing_env(&receiver.endpoint);
    let mut levels = Vec::new();
    for build in [Build::Monolith, Build::Microservices] {
        let label = format!("trace-{}", build.name());
        let running = setup.start_with(build, &label, &env).await?;
        eprintln!("trace    {} up, exporting spans to {}", build.name(), receiver.endpoint);
        let watch = super::watch_for(build, Some(&running), &running.base_url);
        let steps = traced_steps(plan, build, &running.base_url, &watch, peak).await;
        // Stopping drains each process, which flushes its spans last.
        running.stop().await;
        let spans = receiver.collected.take();
        eprintln!("trace    {}: {} spans received", build.name(), spans.len());
        for t in steps? {
            let (stages, traced, complete) = tracemap::stages(&t.clients, &spans);
            let place = t.step.summary.endpoints.iter().find(|e| e.name == PLACE);
            levels.push(LevelMap {
                build,
                level: t.level,
                rate: t.rate,
                every: t.every,
                traced,
                complete,
                place_p50_us: place.map_or(f64::NAN, |e| e.latency.p50_us as f64),
                place_p99_us: place.map_or(f64::NAN, |e| e.latency.p99_us as f64),
                stages,
                sched: t.sched,
            });
        }
    }
    receiver.stop().await;
    Ok(TraceMap { traces_per_s: TRACES_PER_S, levels })
}

async fn traced_steps(
    plan: &Plan,
    build: Build,
    base_url: &str,
    watch: &super::procs::Watch,
    peak: f64,
) -> Result<Vec<Traced>> {
    let target = Client::builder().timeout(std::time::Duration::from_secs(10)).build(base_url)?;
    let mix = Mix::default();
    let per_step = plan.warmup_s + plan.duration_s;
    let orders: f64 = LEVELS.iter().map(|l| peak * l * per_step * mix.place_share()).sum();
    let (pool, catalog) = super::setup_pool(&target, plan, orders).await.context("the traced run's pool")?;
    let mut out = Vec::new();
    for level in LEVELS {
        let rate = math::level_rate(peak, level);
        let every = sampling_every(rate, &mix);
        let sampling = Arc::new(TraceSampling::every(every));
        let label = format!("{} traced {:.0} % ({rate:.0} rps)", build.name(), level * 100.0);
        let mut config = super::step_config(plan, base_url, build, label, Model::Open { rate }, mix, plan.duration_s);
        config.check = false;
        config.traces = Some(sampling.clone());
        let (mut before, mut after) = (None, None);
        let step = run_step_observed(&target, pool.clone(), catalog.clone(), &config, |edge| match edge {
            WindowEdge::Start => before = Some(sched::sample(watch)),
            WindowEdge::End => after = Some(sched::sample(watch)),
        })
        .await?;
        let sched = match (before, after) {
            (Some(b), Some(a)) => sched::per_request(&b, &a, step.summary.overall.count),
            _ => BTreeMap::new(),
        };
        out.push(Traced { level, rate, every, clients: sampling.take(), step, sched });
    }
    Ok(out)
}
