//! The payment service: wallets, a double-entry-style ledger, and the
//! internal `Charge`/`Refund` API, idempotent by order id.
//!
//! # Layout
//! - [`domain`]: amounts and the charge/refund rules (pure);
//! - [`app`]: the use cases ([`app::PaymentService`]) and their port;
//! - [`store`]: Postgres (row locks, the outbox for `payment.refunded`);
//! - [`http`] (public), [`grpc`] (internal), [`events`] (`order.cancelled`);
//! - [`config`], [`startup`].

pub mod app;
pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod http;
pub mod startup;
pub mod store;

pub use startup::{App, migrate};
