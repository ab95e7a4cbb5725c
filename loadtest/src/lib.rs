//! twinshop-loadtest: a load generator for the twinshop public API that
//! knows nothing but a base URL, so it measures any build the same way.
//!
//! It offers load in the **open model** by default (a constant arrival
//! rate, each request timed from its intended send time, so coordinated
//! omission cannot hide a stall; the wrk2 approach) or the **closed model**
//! (N users in a loop, for finding the peak), sends a configurable mix of
//! realistic shop traffic as a pre-registered pool of users, records HDR
//! histograms per endpoint, checks afterwards through the API that no money
//! was lost, and writes JSON, Markdown and HTML reports.
//!
//! # Layout
//!
//! - [`engine`]: open and closed models over any [`engine::Operation`]: scheduling, backpressure, timing;
//! - [`stats`]: histograms, counters and the serializable summaries;
//! - [`mix`], [`shop`]: the scenario mix and the shop traffic it stands for;
//! - [`setup`]: the unmeasured user pool and catalog;
//! - [`check`]: the black-box correctness check after a run;
//! - [`step`]: one measured step (warm-up, window, check) → [`StepResult`];
//! - [`report`]: the one report pipeline (a document model rendered to Markdown and HTML with SVG charts,
//!   plus the JSON results), used by runs, `compare` and the labs;
//! - [`progress`]: the live progress line;
//! - [`compare`]: `loadtest compare`, both builds side by side (started by the launcher, CPU and
//!   memory per process from `/proc`, pgbench ceilings, hop probes, the comparison report);
//! - [`floor`]: the bare tonic and axum servers (`loadtest-floor`) the hop probes set our
//!   internal calls against;
//! - [`otlp`]: the OTLP/gRPC trace receiver the services export to during `compare`'s traced runs;
//! - [`cli`]: the `loadtest` command line and its runtime (`main.rs` is a shim over it).
//!
//! # Using it from another tool
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use std::{path::Path, sync::Arc};
//! use twinshop_loadtest::{Client, Model, StepConfig, UserPool, fetch_catalog, report, run_step_with};
//!
//! let mut config = StepConfig::new("http://127.0.0.1:8080", Model::Open { rate: 400.0 });
//! let target = Client::builder().timeout(config.request_timeout).build(&config.base_url)?;
//! let catalog = Arc::new(fetch_catalog(&target).await?);
//! let pool = Arc::new(UserPool::setup(&target, config.setup_for(&catalog, 100)).await?);
//! let mut steps = Vec::new();
//! for rate in [200.0, 400.0] {
//!     config.model = Model::Open { rate };
//!     config.label = format!("mono @ {rate}");
//!     steps.push(run_step_with(&target, pool.clone(), catalog.clone(), &config).await?);
//! }
//! report::write_reports(Path::new("out"), "mono", &steps)?;
//! # Ok(()) }
//! ```
//!
//! Every request goes through twinshop-client (its raw layer on the hot
//! path, its typed layer for setup and checks, its internal part for the
//! hop probes), so the generator is a pure client like the conformance
//! suite; it also depends on tokio, hdrhistogram and serde. `compare`
//! starts and stops the builds with twinshop-launcher (the one launcher,
//! which also gives a process's CPU time and peak memory, the generator's
//! own included), runs `cargo`, `psql` and `pgbench`, and reads `/proc`.

pub mod check;
pub mod cli;
pub mod compare;
pub mod engine;
pub mod floor;
pub mod mix;
pub mod otlp;
pub mod progress;
pub mod report;
pub mod setup;
pub mod shop;
pub mod stats;
pub mod step;

pub use check::{CheckReport, check_pool, check_pool_settled};
pub use engine::{Model, Operation, Phase};
pub use mix::Mix;
pub use setup::{SetupConfig, UserPool, fetch_catalog};
pub use stats::{EndpointStats, Outcome, Percentiles, Recorder, Summary};
pub use step::{StepConfig, StepResult, WindowEdge, run_step, run_step_observed, run_step_with};
pub use twinshop_client::{Client, TransportError};
