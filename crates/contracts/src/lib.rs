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
//! - [`etcd`]: clients of etcd's v3 API (vendored in `proto/etcd/`), for
//!   the service registry.
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

/// etcd's v3 API (`proto/etcd/`, etcd 3.4): the generated clients of the
/// calls the service registry makes (KV Range and Put, Watch, Lease grant,
/// keep-alive and revoke), nothing else.
pub mod etcd {
    #![allow(clippy::all, missing_debug_implementations, unused_qualifications, rustdoc::all)]
    pub mod mvccpb {
        #![allow(clippy::all, missing_debug_implementations, unused_qualifications)]
        tonic::include_proto!("mvccpb");
    }
    pub mod authpb {
        #![allow(clippy::all, missing_debug_implementations, unused_qualifications)]
        tonic::include_proto!("authpb");
    }
    pub mod etcdserverpb {
        #![allow(clippy::all, missing_debug_implementations, unused_qualifications)]
        tonic::include_proto!("etcdserverpb");
    }
}

/// The encoded `FileDescriptorSet` of every proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
