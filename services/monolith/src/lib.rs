//! The monolith: the user, payment and order areas in one process.
//!
//! Why it exists: to compare architectures honestly, the monolith runs the
//! areas' domain and use-case code unchanged, with the same transaction
//! boundaries and asynchronous steps as the microservices. Only adapters
//! differ (docs/design.md §3):
//! - the order area's `UserDirectory` and `PaymentGateway` ports call the
//!   other areas' application services directly ([`adapters`]);
//! - events go from the same outboxes to the same consumers in-process,
//!   after commit, instead of through RabbitMQ ([`dispatch`]);
//! - one database, one schema per area, each with its own migration history.
//!
//! No business rule lives in this crate: it is wiring.
//!
//! # Layout
//! [`config`], [`adapters`], [`dispatch`], [`startup`].

pub mod adapters;
pub mod config;
pub mod dispatch;
pub mod startup;

pub use startup::{App, migrate};
