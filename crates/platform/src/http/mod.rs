//! HTTP plumbing every twinshop router shares.
//!
//! # Layout
//! - [`stack`]: the middleware stack (request id, tracing with W3C parent
//!   extraction, timeout, body limit, compression, panic catching, metrics)
//!   and the guarantee that every error leaves as `problem+json`;
//! - [`json`]: the JSON body extractor and the field reader that turns a
//!   request body into per-field `validation_failed` entries;
//! - [`auth`]: EdDSA JWT verification and the `Authenticated` extractor;
//! - [`server`]: binding and serving with graceful shutdown;
//! - [`shed`]: the bound on requests in flight per port, and the fast
//!   `503 overloaded` beyond it.

pub mod auth;
pub mod json;
pub mod server;
pub mod shed;
pub mod stack;
