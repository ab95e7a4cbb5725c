//! The order service: the catalog, placing orders (user lookup over HTTP,
//! charge over gRPC), reading and cancelling them, and the sweeper that
//! leaves no order `pending` and no failed order charged.
//!
//! # Layout
//! - [`domain`]: products, lines, the order state machine (pure);
//! - [`app`]: the use cases ([`app::OrderService`]) and their ports;
//! - [`store`] (Postgres), [`clients`] (HTTP user directory, gRPC payment
//!   gateway), [`http`] (public API), [`events`] (`payment.refunded`);
//! - [`config`], [`startup`].

pub mod app;
pub mod clients;
pub mod config;
pub mod domain;
pub mod events;
pub mod http;
pub mod startup;
pub mod store;

pub use startup::{App, migrate};
