//! The user service: accounts, credentials, sessions and the per-user stats
//! read model.
//!
//! # Layout
//! - [`domain`]: `Email`, `Password`, `UserName`, `Address`, `User`: valid by
//!   construction, no I/O;
//! - [`app`]: the use cases ([`app::UserService`]) and their ports;
//! - [`store`] (Postgres), [`cache`] (Redis): the ports' adapters;
//! - [`http`]: public and internal routes;
//! - [`config`], [`startup`]: reading the environment and wiring it all.
//!
//! `domain` and `app` import no web, SQL, cache or broker types: the
//! monolith runs them unchanged with other adapters.

pub mod app;
pub mod cache;
pub mod config;
pub mod domain;
pub mod events;
pub mod http;
pub mod startup;
pub mod store;

pub use startup::{App, migrate};
