//! The host: runs any set of areas in one process, over a transport.
//!
//! Why it exists: twinshop's claim is *the same business code, two
//! architectures*. An area crate says how the area is put together (its
//! [`AreaSpec`]); a binary says only which areas it hosts and how they talk
//! ([`Process`]); this module does everything else, once: configuration,
//! telemetry, the listeners and their middleware, database pools and
//! migrations, the outbox relays, the event consumers, the contracts
//! between areas, health, metrics and the drain on SIGTERM.
//!
//! Two transports:
//! - [`Transport::Network`]: each contract an area provides is served on
//!   the internal port (HTTP lookup, gRPC `Payments`), each one it needs is
//!   a client of a configured address; events go through RabbitMQ.
//! - [`Transport::InProcess`]: contracts are handed from area to area
//!   directly and events are delivered by [`inprocess`], no broker.
//!
//! A process with one area uses its database's default schema; with
//! several, each area gets its own schema (its own migration history), so
//! the monolith keeps the areas' data apart in one database.
//!
//! # Layout
//! [`config`] (what every process reads), [`fingerprint`] (of what it
//! read, for drift checks), [`area`] (an area as a value),
//! [`inprocess`] (events without a broker), [`server`] (building and
//! running the process), [`cli`] (`main`, the subcommands).

pub mod area;
pub mod cli;
pub mod config;
pub mod fingerprint;
pub mod inprocess;
pub mod server;

pub use area::{Area, AreaContext, AreaSpec, HostedArea, Task};
pub use cli::main;
pub use config::{Env, variables};
pub use server::{Host, check, migrate};

/// How the areas of a process reach each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP and gRPC between areas, RabbitMQ for events.
    Network,
    /// Direct calls and in-process event delivery.
    InProcess,
}

/// A binary: its name, its prefix and default ports, its areas and the
/// transport between them. This is all a `main.rs` says.
#[derive(Debug)]
pub struct Process {
    /// The binary's name, e.g. `order-service`.
    pub binary: &'static str,
    /// The name in logs, traces and broker connections, e.g. `order`.
    pub service: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// The prefix of its variables, e.g. `ORDER_`.
    pub prefix: &'static str,
    /// Default public port.
    pub http_port: u16,
    /// Default internal port.
    pub internal_port: u16,
    /// Default pool size of each area.
    pub db_max_connections: u32,
    pub transport: Transport,
    /// The areas it hosts, in any order (the host assembles providers first).
    pub areas: &'static [&'static dyn HostedArea],
}
