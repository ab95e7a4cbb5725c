//! The labs, by name: what each shows and which section of the seed
//! (docs/concepts/README.md) it answers.

use anyhow::{Result, bail};

use crate::common::{LabArgs, LabOutcome};

/// One lab as `lab list` shows it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    /// The seed section(s) it shows, e.g. `6 (failure semantics)`.
    pub seed: &'static str,
    /// The claim, in one line.
    pub claim: &'static str,
}

/// Every lab.
pub const LABS: &[Entry] = &[
    Entry {
        name: "faults",
        seed: "design §6, failure semantics",
        claim: "whatever is killed, paused, cut off or slowed, nothing acknowledged is lost and no money is created or destroyed",
    },
    Entry {
        name: "rollout",
        seed: "3.1 and 2.1 (and 2.2, factor 9), cattle not pets",
        claim: "every process replaced by a new release one at a time and rolled back with 0 failed requests; a process changed by hand is found by the drift check and cleared by replacing it",
    },
    Entry {
        name: "twelve-factor",
        seed: "2.2, the twelve-factor app",
        claim: "each factor checked against a running build: one row per factor with what was checked, the evidence and pass or fail",
    },
    Entry {
        name: "isolation",
        seed: "1.1 and 1.2, monolith vs microservices",
        claim: "a leak or a CPU burn in one area takes the whole monolith down (or slows it), and only that service across processes",
    },
    Entry {
        name: "discovery",
        seed: "4.3, service discovery",
        claim: "behind an L4 balancer gRPC pins to one replica; per-request balancing (L7, or the client from DNS or etcd) spreads calls, and the client drops a dead replica and finds a new one in seconds",
    },
    Entry {
        name: "cap",
        seed: "4.1, the CAP theorem",
        claim: "cut apart, a replicated system refuses (strict mode, etcd's lone member) or answers stale (available mode, a Redis replica); it cannot do both",
    },
    Entry {
        name: "scaling",
        seed: "4.2 (and 2.2, factor 8), scaling up vs out",
        claim: "capped replicas of the stateless order service add throughput at the SLO; the monolith scales out only whole, paying more memory per unit of throughput",
    },
];

/// Runs lab `name`.
pub async fn run(name: &str, args: &LabArgs) -> Result<LabOutcome> {
    match name {
        "faults" => Box::pin(crate::faults::run(args)).await,
        "rollout" => Box::pin(crate::rollout::run(args)).await,
        "twelve-factor" => Box::pin(crate::twelve_factor::run(args)).await,
        "isolation" => crate::isolation::run(args).await,
        "discovery" => crate::discovery::run(args).await,
        "cap" => crate::cap::run(args).await,
        "scaling" => crate::scaling::run(args).await,
        other => bail!("no lab named {other:?}; `lab list` shows them"),
    }
}
