//! One measured step: warm up, measure, check; the unit every report and
//! every comparison is built from.
//!
//! Why it exists: `loadtest run` is one step, and `loadtest compare` is
//! many steps (rates × builds × repeats). Both go through [`run_step`] /
//! [`run_step_with`] and get a [`StepResult`], a plain serializable record
//! of what was offered, what was measured, and whether the system stayed
//! correct; the reports are functions of a list of them.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use twinshop_client::Client;
use twinshop_launcher::processes::cpu_time;

use crate::{
    check::{CheckReport, check_pool},
    engine::{self, Model, Phase},
    mix::Mix,
    setup::{Product, SetupConfig, UserPool, fetch_catalog, wallet_budget},
    shop::{Shop, TraceSampling},
    stats::{Percentiles, Recorder, Summary},
};

/// Everything one step needs.
#[derive(Debug, Clone)]
pub struct StepConfig {
    /// A name for reports (e.g. `"monolith @ 400 rps #2"`).
    pub label: String,
    /// The curve this step belongs to in load charts (e.g. the build).
    pub group: String,
    pub base_url: String,
    pub model: Model,
    /// The measured window.
    pub duration: Duration,
    /// A bound on the measured requests, whatever the duration.
    pub max_requests: u64,
    /// Unmeasured load before the window, same model.
    pub warmup: Duration,
    pub mix: Mix,
    pub seed: u64,
    pub request_timeout: Duration,
    /// Open model: requests in flight before the ticker waits.
    pub max_in_flight: usize,
    /// Show the progress line on stderr.
    pub progress: bool,
    /// Run the correctness check after the window.
    pub check: bool,
    /// Trace some placed orders of the measured window (not the warm-up).
    pub traces: Option<Arc<TraceSampling>>,
}

impl StepConfig {
    /// The defaults of `loadtest run` against `base_url`.
    pub fn new(base_url: &str, model: Model) -> Self {
        Self {
            label: model.describe(),
            group: "run".to_owned(),
            base_url: base_url.to_owned(),
            model,
            duration: Duration::from_secs(30),
            max_requests: 1_000_000,
            warmup: Duration::from_secs(5),
            mix: Mix::default(),
            seed: 1,
            request_timeout: Duration::from_secs(10),
            max_in_flight: 2048,
            progress: true,
            check: true,
            traces: None,
        }
    }

    /// The requests this step can send at most (warm-up included): what
    /// wallets must be sized for.
    pub fn max_total_requests(&self) -> f64 {
        let warm = self.warmup.as_secs_f64() / self.duration.as_secs_f64().max(1e-3);
        let measured = match self.model {
            Model::Open { rate } => (rate * self.duration.as_secs_f64()).min(self.max_requests as f64),
            Model::Closed { .. } => self.max_requests as f64,
        };
        measured * (1.0 + warm)
    }

    /// A setup that funds each of `users` users for this step.
    pub fn setup_for(&self, catalog: &[Product], users: usize) -> SetupConfig {
        let orders_per_user = self.max_total_requests() * self.mix.place_share() / users.max(1) as f64;
        SetupConfig { users, wallet_cents: wallet_budget(catalog, orders_per_user), concurrency: 4 }
    }
}

/// How placed orders ended, as the generator saw the answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCounts {
    pub confirmed: u64,
    pub rejected: u64,
    pub pending: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl OrderCounts {
    fn from_tags(tags: &BTreeMap<String, u64>) -> Self {
        let n = |k: &str| tags.get(k).copied().unwrap_or(0);
        Self {
            confirmed: n("order.confirmed"),
            rejected: n("order.rejected"),
            pending: n("order.pending"),
            failed: n("order.failed"),
            cancelled: n("order.cancelled"),
        }
    }
}

/// The generator's own cost during the measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GeneratorCost {
    pub cpu_ms: f64,
    pub cpu_us_per_request: f64,
}

/// Everything one step offered and measured. Serializable; reports and
/// `compare` read nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub label: String,
    /// The curve this step belongs to in load charts (e.g. the build).
    pub group: String,
    pub base_url: String,
    pub model: Model,
    /// The open model's rate; `None` for the closed model.
    pub offered_rps: Option<f64>,
    pub mix: Mix,
    pub seed: u64,
    /// RFC 3339, when the measured window began.
    pub started_at: String,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub max_requests: u64,
    /// The measured window (start to last completion).
    pub window_s: f64,
    pub setup: SetupConfig,
    pub setup_s: f64,
    pub summary: Summary,
    pub orders: OrderCounts,
    pub generator: Option<GeneratorCost>,
    /// `None` when the check was not run.
    pub check: Option<CheckReport>,
    /// Free-form additions by other tools (e.g. `compare`'s CPU per process).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl StepResult {
    /// Achieved throughput: requests completed per second of the window.
    pub fn achieved_rps(&self) -> f64 {
        self.summary.overall.throughput_rps
    }

    /// The overall latency percentiles.
    pub fn latency(&self) -> &Percentiles {
        &self.summary.overall.latency
    }

    /// Whether the correctness check passed (a step not checked has not failed it).
    pub fn correct(&self) -> bool {
        self.check.as_ref().is_none_or(|c| c.passed)
    }

    /// Whether the step meets an SLO: p99 ≤ `p99_us`, no errors at all, correct.
    pub fn meets_slo(&self, p99_us: u64) -> bool {
        self.correct() && self.summary.overall.errors == 0 && self.latency().p99_us <= p99_us
    }
}

/// A whole step from nothing: catalog, a fresh pool of `setup_users`
/// users, then [`run_step_with`].
pub async fn run_step(config: &StepConfig, setup_users: usize) -> Result<StepResult> {
    let target = Client::builder().timeout(config.request_timeout).build(&config.base_url)?;
    let catalog = fetch_catalog(&target).await?;
    let setup = config.setup_for(&catalog, setup_users);
    if config.progress {
        eprintln!("setup    {} users, {} cents each, {} at a time", setup.users, setup.wallet_cents, setup.concurrency);
    }
    let pool = UserPool::setup(&target, setup).await?;
    if config.progress {
        eprintln!("setup    done in {:.1}s", pool.setup_time.as_secs_f64());
    }
    run_step_with(&target, Arc::new(pool), Arc::new(catalog), config).await
}

/// An edge of the measured window, for [`run_step_observed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowEdge {
    /// The warm-up is over; the measured window starts now.
    Start,
    /// The last measured request completed; the check has not started.
    End,
}

/// A step with a pool set up beforehand (so a series of steps can share
/// one): warm-up, the measured window, then (if configured) the check of
/// every pool user. The check covers everything the pool ever did.
pub async fn run_step_with(
    target: &Client,
    pool: Arc<UserPool>,
    catalog: Arc<Vec<Product>>,
    config: &StepConfig,
) -> Result<StepResult> {
    run_step_observed(target, pool, catalog, config, |_| {}).await
}

/// [`run_step_with`], calling `observe` right at the start and the end of
/// the measured window (warm-up and check excluded): `compare` samples the
/// CPU time of every process there, so the check's own traffic never lands
/// in the cost of the load.
pub async fn run_step_observed(
    target: &Client,
    pool: Arc<UserPool>,
    catalog: Arc<Vec<Product>>,
    config: &StepConfig,
    mut observe: impl FnMut(WindowEdge),
) -> Result<StepResult> {
    let shop = |traces| {
        Arc::new(Shop {
            target: target.clone(),
            pool: pool.clone(),
            catalog: catalog.clone(),
            mix: config.mix,
            seed: config.seed,
            traces,
        })
    };
    let phase = |duration, max_requests, label: &str| Phase {
        model: config.model,
        duration,
        max_requests,
        max_in_flight: config.max_in_flight,
        drain: config.request_timeout,
        progress: config.progress.then(|| label.to_owned()),
    };
    if !config.warmup.is_zero() {
        engine::run(&phase(config.warmup, u64::MAX, "warmup"), shop(None), Arc::new(Recorder::new())).await;
    }
    let recorder = Arc::new(Recorder::new());
    let started_at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    observe(WindowEdge::Start);
    let cpu_before = cpu_time(std::process::id());
    let measure = phase(config.duration, config.max_requests, "measure");
    let ran = engine::run(&measure, shop(config.traces.clone()), recorder.clone()).await;
    let cpu_after = cpu_time(std::process::id());
    observe(WindowEdge::End);
    let summary = recorder.summary(ran.window);
    let generator = cpu_before.zip(cpu_after).map(|(before, after)| {
        let cpu = after.saturating_sub(before);
        let per = if summary.overall.count == 0 { 0.0 } else { cpu.as_micros() as f64 / summary.overall.count as f64 };
        GeneratorCost { cpu_ms: cpu.as_secs_f64() * 1e3, cpu_us_per_request: per }
    });
    let check = if config.check {
        if config.progress {
            eprintln!("check    {} users (waiting up to 10 s for pending effects)", pool.users.len());
        }
        Some(check_pool(target, &pool).await)
    } else {
        None
    };
    Ok(StepResult {
        label: config.label.clone(),
        group: config.group.clone(),
        base_url: target.base_url().to_owned(),
        model: config.model,
        offered_rps: config.model.offered_rps(),
        mix: config.mix,
        seed: config.seed,
        started_at,
        duration_s: config.duration.as_secs_f64(),
        warmup_s: config.warmup.as_secs_f64(),
        max_requests: config.max_requests,
        window_s: ran.window.as_secs_f64(),
        setup: pool.config,
        setup_s: pool.setup_time.as_secs_f64(),
        orders: OrderCounts::from_tags(&summary.tags),
        summary,
        generator,
        check,
        extra: BTreeMap::new(),
    })
}
