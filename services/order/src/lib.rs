//! The order area: the catalog, placing orders (asking the user area who
//! to ship to and the payment area to charge), reading and cancelling
//! them, and the sweeper that leaves no order `pending` and no failed order
//! charged.
//!
//! # Layout
//! - [`domain`]: products, lines, the order state machine (pure);
//! - [`app`]: the use cases ([`app::OrderService`]) and their ports;
//! - [`store`] (Postgres), [`peers`] (the user and payment areas behind the
//!   ports, with the retry and deadline rules), [`http`] (public API),
//!   [`events`] (`payment.refunded`);
//! - [`area`]: the assembly, [`AREA`]; [`SERVICE`]: the order service.
//!
//! `domain` and `app` import no web, SQL or broker types: the monolith runs
//! them unchanged.

pub mod app;
pub mod area;
pub mod domain;
pub mod events;
pub mod http;
pub mod peers;
pub mod store;

pub use area::AREA;
use twinshop_platform::host::{Process, Transport};

/// `order-service`: the order area alone, over the network.
pub static SERVICE: Process = Process {
    binary: "order-service",
    service: "order",
    about: "twinshop order service",
    prefix: "ORDER_",
    http_port: 8083,
    internal_port: 9083,
    db_max_connections: 10,
    transport: Transport::Network,
    areas: &[&AREA],
};
