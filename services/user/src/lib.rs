//! The user area: accounts, credentials, sessions, the user lookup the
//! other areas use, and the per-user stats read model.
//!
//! # Layout
//! - [`domain`]: `Email`, `Password`, `UserName`, `Address`, `User`: valid by
//!   construction, no I/O;
//! - [`app`]: the use cases ([`app::UserService`]) and their ports;
//! - [`store`] (Postgres), [`cache`] (Redis): the ports' adapters;
//! - [`http`] (public), [`provider`] (the internal lookup, served over HTTP
//!   by the host or handed to the order area in-process), [`events`]
//!   (`order.confirmed`, `order.cancelled`);
//! - [`area`]: the assembly, [`AREA`]; [`SERVICE`]: the user service.
//!
//! `domain` and `app` import no web, SQL, cache or broker types: the
//! monolith runs them unchanged.

pub mod app;
pub mod area;
pub mod cache;
pub mod domain;
pub mod events;
pub mod http;
pub mod provider;
pub mod store;

pub use area::AREA;
use twinshop_platform::host::{Process, Transport};

/// `user-service`: the user area alone, over the network.
pub static SERVICE: Process = Process {
    binary: "user-service",
    service: "user",
    about: "twinshop user service",
    prefix: "USER_",
    http_port: 8081,
    internal_port: 9081,
    db_max_connections: 10,
    transport: Transport::Network,
    areas: &[&AREA],
};
