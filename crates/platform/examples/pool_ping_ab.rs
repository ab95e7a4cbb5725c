//! A/B of the pool's ping before every acquire, on this machine, in one run.
//!
//! A: `db::pool_options` with sqlx's default put back (`test_before_acquire`:
//! a ping on every acquire, what the services did before); B:
//! `db::pool_options` as the services use it (a ping only after
//! `db::PING_IF_IDLE_FOR` idle). Both run the same unit of work, the shape
//! of a store's: take a connection, one statement, give it back. Rounds
//! alternate A and B so whatever else the machine does falls on both; each
//! reports wall time per unit of work, and CPU per unit of work of this
//! process and of the Postgres backend serving the pool's one connection
//! (`/proc/<pid>/task/*/schedstat`, ns; Linux, Postgres on this machine).
//!
//! ```sh
//! cargo run --release -p twinshop-platform --example pool_ping_ab -- [DATABASE_URL] [UNITS_PER_ROUND] [ROUNDS]
//! ```

use std::{
    str::FromStr as _,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use sqlx::{PgPool, postgres::PgConnectOptions};
use twinshop_platform::db;

/// CPU nanoseconds of every thread of `pid` so far.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Totals of one variant over its rounds.
#[derive(Default)]
struct Tally {
    units: u64,
    wall: Duration,
    own_cpu_ns: u64,
    backend_cpu_ns: u64,
}

impl Tally {
    fn per_unit_us(&self, ns: u64) -> f64 {
        ns as f64 / 1e3 / self.units.max(1) as f64
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name}: {} units, {:.1} µs wall, {:.1} µs CPU here, {:.1} µs CPU in the Postgres backend per unit",
            self.units,
            self.per_unit_us(self.wall.as_nanos() as u64),
            self.per_unit_us(self.own_cpu_ns),
            self.per_unit_us(self.backend_cpu_ns),
        )
    }
}

async fn round(pool: &PgPool, units: u64, tally: &mut Tally) -> Result<()> {
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(pool).await?;
    let backend = u32::try_from(backend).context("a backend pid")?;
    let (own0, backend0, started) = (cpu_ns(std::process::id()), cpu_ns(backend), Instant::now());
    for _ in 0..units {
        let mut conn = db::acquire(pool, "ab.unit").await?;
        let _: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *conn).await?;
    }
    tally.wall += started.elapsed();
    tally.own_cpu_ns += cpu_ns(std::process::id()).saturating_sub(own0);
    tally.backend_cpu_ns += cpu_ns(backend).saturating_sub(backend0);
    tally.units += units;
    Ok(())
}

#[allow(clippy::print_stdout)] // the A/B is its output
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into());
    let units: u64 = args.next().map_or(Ok(5_000), |a| a.parse()).context("UNITS_PER_ROUND")?;
    let rounds: u32 = args.next().map_or(Ok(6), |a| a.parse()).context("ROUNDS")?;
    let options = PgConnectOptions::from_str(&url).context("the database URL")?;
    // One connection each, so each variant's backend is one process.
    let a = db::pool_options(1).test_before_acquire(true).connect_with(options.clone()).await?;
    let b = db::pool_options(1).connect_with(options).await?;
    let (mut ta, mut tb) = (Tally::default(), Tally::default());
    // Warm-up: connections open, statements prepared.
    round(&a, 200, &mut Tally::default()).await?;
    round(&b, 200, &mut Tally::default()).await?;
    for _ in 0..rounds {
        round(&a, units, &mut ta).await?;
        round(&b, units, &mut tb).await?;
    }
    println!("{}", ta.line("A ping on every acquire"));
    println!("{}", tb.line("B ping after 1 s idle  "));
    println!(
        "B / A: wall {:.2}×, CPU here {:.2}×, CPU in Postgres {:.2}×",
        tb.wall.as_secs_f64() / ta.wall.as_secs_f64(),
        tb.own_cpu_ns as f64 / ta.own_cpu_ns.max(1) as f64,
        tb.backend_cpu_ns as f64 / ta.backend_cpu_ns.max(1) as f64,
    );
    Ok(())
}
