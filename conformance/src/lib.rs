//! The black-box conformance suite of twinshop's public API.
//!
//! Why it exists: docs/api.md is one contract served by two builds (the
//! microservices behind the edge, and the monolith), and could be served by
//! more (a service ported to another language behind the same edge). This
//! crate checks a running deployment against that contract from the
//! outside: it speaks HTTP to a base URL and knows nothing else. Of
//! twinshop's crates it depends only on the black-box client
//! (`twinshop-client`, written from the contract alone), and on no database
//! driver and no test kit, on purpose: whatever it needs to know, a client
//! could know too.
//!
//! # Layout
//!
//! - [`run`] runs every case (or those whose name contains a filter) a few
//!   at a time against a [`Target`] and returns a [`Report`].
//! - `cases` holds the cases, one module per area of docs/api.md, and the one
//!   list that names them. A case is a plain `async fn(&Ctx) ->
//!   anyhow::Result<()>` whose name is a sentence.
//! - [`ctx`] is what a case gets: the client (twinshop-client's raw layer,
//!   recording every exchange) and shared steps (a fresh user, a top-up, an
//!   order, a bounded poll for eventual consistency).
//! - [`schema`] checks each response schema of docs/api.md field by field.
//! - `token` reads and breaks JWTs, for the auth cases.
//!
//! - [`internal`] is the other mode: one service's *internal* contract
//!   checked alone (the user lookup over HTTP; `Payments` over gRPC with
//!   health and reflection), for a port of that service to another
//!   language. It sets up what it needs through the public API.
//!
//! Each case makes its own users (unique emails), so cases run side by side
//! and a deployment can be checked more than once; it needs only a fresh
//! enough deployment with the seeded catalog (see README.md).

use std::{fmt, sync::Arc, time::Duration};

use futures_util::{StreamExt as _, stream};

mod cases;
pub mod ctx;
pub mod internal;
pub mod schema;
mod token;

use cases::Case;
pub use cases::names;
pub use ctx::Ctx;

/// How many cases run at once: enough to overlap their waits, few enough
/// not to turn the suite into a load test.
const PARALLEL_CASES: usize = 4;

/// A case that has not finished by then has failed (a hung request, or a
/// poll whose own bound is shorter, never reaches it in a healthy run).
const CASE_LIMIT: Duration = Duration::from_secs(90);

/// The deployment under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// Which build this is, for the report, e.g. `microservices` or `monolith`.
    pub name: String,
    /// Where its public API answers, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Which suite ran: the public API's (`conformance`) or one service's
    /// internal contract (`conformance internal`).
    pub suite: Suite,
    /// The target's name.
    pub build: String,
    /// Cases that passed, in the suite's order.
    pub passed: Vec<String>,
    /// Cases that failed, in the suite's order, each with why.
    pub failed: Vec<(String, String)>,
    /// Every request the run sent and what came back, for checks against a
    /// machine-readable contract (twinshop's e2e tests check them against
    /// `openapi/twinshop.yaml`).
    pub exchanges: Vec<ctx::Exchange>,
    /// The internal mode's exchanges with an internal HTTP port (the user
    /// lookup), apart from the public ones: they answer to another
    /// document (`openapi/internal.yaml`). Empty for the public suite.
    pub internal_exchanges: Vec<ctx::Exchange>,
}

/// The public API's suite, or the internal contracts' ([`internal`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Suite {
    #[default]
    Public,
    Internal,
}

impl Report {
    /// Whether every case that ran passed.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, why) in &self.failed {
            writeln!(f, "FAILED {name}: {}", why.replace('\n', " | "))?;
        }
        let suite = match self.suite {
            Suite::Public => "conformance",
            Suite::Internal => "conformance internal",
        };
        write!(f, "{suite} ({}): {} passed, {} failed", self.build, self.passed.len(), self.failed.len())
    }
}

/// Runs every case whose name contains `filter` (all when `None`) against
/// `target`. Never panics and never hangs: a case that errors, panics or
/// overruns its time limit (90 s) is reported as failed.
pub async fn run(target: &Target, filter: Option<&str>) -> Report {
    let mut report = Report { build: target.name.clone(), ..Report::default() };
    let ctx = match Ctx::new(&target.base_url) {
        Ok(ctx) => Arc::new(ctx),
        Err(err) => {
            report.failed.push(("the suite starts".into(), format!("{err:#}")));
            return report;
        }
    };
    if let Err(err) = ctx.get("/v1/products").send().await {
        report.failed.push(("the target answers".into(), format!("{err:#} (is {} up?)", target.base_url)));
        return report;
    }
    run_cases(&mut report, ctx.clone(), cases::all(), filter).await;
    report.exchanges = ctx.exchanges();
    report
}

/// Runs the `cases` whose name contains `filter`, [`PARALLEL_CASES`] at a
/// time, and adds their outcomes to `report` in the cases' order.
async fn run_cases<C: Send + Sync + 'static>(
    report: &mut Report,
    ctx: Arc<C>,
    cases: Vec<Case<C>>,
    filter: Option<&str>,
) {
    let selected: Vec<(usize, Case<C>)> =
        cases.into_iter().filter(|c| filter.is_none_or(|f| c.name.contains(f))).enumerate().collect();
    let mut outcomes: Vec<(usize, &'static str, Result<(), String>)> = stream::iter(selected)
        .map(|(i, case)| {
            let ctx = ctx.clone();
            async move { (i, case.name, run_one(ctx, case).await) }
        })
        .buffer_unordered(PARALLEL_CASES)
        .collect()
        .await;
    outcomes.sort_by_key(|(i, _, _)| *i);
    for (_, name, outcome) in outcomes {
        match outcome {
            Ok(()) => report.passed.push(name.to_owned()),
            Err(why) => report.failed.push((name.to_owned(), why)),
        }
    }
}

async fn run_one<C: Send + Sync + 'static>(ctx: Arc<C>, case: Case<C>) -> Result<(), String> {
    // Its own task, so a panic in a case is a failure of that case only.
    let task = tokio::spawn(async move { tokio::time::timeout(CASE_LIMIT, (case.run)(&ctx)).await });
    match task.await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(err))) => Err(format!("{err:#}")),
        Ok(Err(_)) => Err(format!("did not finish within {} s", CASE_LIMIT.as_secs())),
        Err(err) => Err(format!("panicked: {err}")),
    }
}
