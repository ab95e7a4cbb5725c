//! twinshop's platform: what every process shares, whatever its area.
//!
//! Why it exists: the three services, the monolith and the tests must
//! behave alike at the edges (config, logs, traces, health, errors, events),
//! so that behaviour is written once, here. It holds no business rule.
//!
//! # Layout
//! - [`config`]: typed env config, exit code 64, [`config::Secret`];
//! - [`telemetry`]: JSON logs with trace ids, OTLP export;
//! - [`propagation`]: W3C trace context over HTTP, gRPC and AMQP;
//! - [`shutdown`]: signal handling, tracked tasks, bounded drain;
//! - [`health`] and [`metrics`]: `/livez`, `/readyz`, `/metrics`;
//! - [`problem`]: the one table of error codes and `problem+json`;
//! - [`http`]: the middleware stack, JSON body reading, JWT auth, serving;
//! - [`validation`]: field-level errors for domain parsers;
//! - [`db`]: Postgres pools and migrations;
//! - [`outbox`], [`inbox`], [`amqp`]: the transactional outbox, its relay,
//!   the idempotent consumer and the RabbitMQ adapter they use;
//! - [`links`]: the internal contracts between areas over the network;
//! - [`discovery`]: finding a peer's replicas (one address, DNS, or the
//!   etcd registry) and balancing per call; registering in etcd;
//! - [`faults`]: fault flags for the labs (internal port, off by default);
//! - [`host`]: runs any set of areas in one process over a transport (what
//!   every binary's `main` calls);
//! - [`idempotency`]: `Idempotency-Key`s, stored with the typed outcome.
//!
//! May depend on web, SQL, cache and broker crates; the areas' domain code
//! depends on [`validation`] only.

pub mod amqp;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod db;
pub mod discovery;
pub mod faults;
pub mod health;
pub mod host;
pub mod http;
pub mod idempotency;
pub mod inbox;
pub mod links;
pub mod metrics;
pub mod outbox;
pub mod pagination;
pub mod problem;
pub mod propagation;
pub mod shutdown;
pub mod telemetry;
pub mod validation;
