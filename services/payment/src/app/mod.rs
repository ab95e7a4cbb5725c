//! The payment use cases and their port. Both builds run this code: the
//! service behind HTTP and gRPC, the monolith behind in-process calls.

mod ports;
mod use_cases;

pub use ports::{ChargeResult, PaymentRepository, TopUp, TopUpError, TopUpRequest, TopUpWrite};
pub use use_cases::{ChargeError, PaymentService, RefundError};
