//! The monolith: the user, payment and order areas in one process.
//!
//! Why it exists: to compare architectures honestly, the monolith runs the
//! areas exactly as the services do (the same assembly, the same domain and
//! use-case code, the same transaction boundaries and asynchronous steps)
//! and changes only the transport between them (docs/design.md §3):
//! contracts are called in-process instead of over HTTP and gRPC, and events
//! go from the same outboxes to the same handlers in-process instead of
//! through RabbitMQ. One database, one schema per area.
//!
//! This crate is only that choice.

use twinshop_platform::host::{Process, Transport};

/// `monolith`: all three areas, in-process.
pub static MONOLITH: Process = Process {
    binary: "monolith",
    service: "monolith",
    about: "twinshop as one process",
    prefix: "MONOLITH_",
    http_port: 8090,
    internal_port: 9090,
    db_max_connections: 8,
    transport: Transport::InProcess,
    areas: &[&twinshop_user::AREA, &twinshop_payment::AREA, &twinshop_order::AREA],
};
