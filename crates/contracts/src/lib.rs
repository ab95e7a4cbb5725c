//! twinshop's language-neutral contracts, as Rust types.
//!
//! Why it exists: every build (the three services and the monolith) and every
//! test speaks the same wire formats, so they are defined once, here.
//!
//! # Layout
//! - [`payment`]: the gRPC API generated from `proto/twinshop/payment/v1`
//!   at build time (protox + tonic-prost-build, no `protoc` binary).
//! - [`events`]: the event envelope and payloads published through the
//!   outboxes (documented as JSON Schema in `proto/events/`).
//! - [`topology`]: the RabbitMQ exchange, queues and bindings that carry them.
//! - [`internal`]: the internal contracts (user lookup, Charge/Refund) as
//!   Rust traits, which both builds call across areas.
//!
//! Depends on tonic/prost only for the generated code; nothing else here
//! knows about transports.

pub mod events;
pub mod internal;
pub mod topology;

/// `twinshop.payment.v1`: Charge and Refund, idempotent by order id.
pub mod payment {
    pub mod v1 {
        #![allow(clippy::all, missing_debug_implementations, unused_qualifications)]
        tonic::include_proto!("twinshop.payment.v1");
    }
}

/// The encoded `FileDescriptorSet` of every proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
