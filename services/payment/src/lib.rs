//! The payment area: wallets, a double-entry-style ledger, and the
//! internal `Charge`/`Refund` contract, idempotent by order id.
//!
//! # Layout
//! - [`domain`]: amounts and the charge/refund rules (pure);
//! - [`app`]: the use cases ([`app::PaymentService`]) and their port;
//! - [`store`]: Postgres (row locks, the outbox for `payment.refunded`);
//! - [`http`] (public), [`provider`] (the internal contract, served over
//!   gRPC by the host or handed to the order area in-process), [`events`]
//!   (`order.cancelled`);
//! - [`area`]: the assembly, [`AREA`]; [`SERVICE`]: the payment service.

pub mod app;
pub mod area;
pub mod domain;
pub mod events;
pub mod http;
pub mod provider;
pub mod store;

pub use area::AREA;
use twinshop_platform::host::{Process, Transport};

/// `payment-service`: the payment area alone, over the network.
pub static SERVICE: Process = Process {
    binary: "payment-service",
    service: "payment",
    about: "twinshop payment service",
    prefix: "PAYMENT_",
    http_port: 8082,
    internal_port: 9082,
    db_max_connections: 10,
    transport: Transport::Network,
    areas: &[&AREA],
};
