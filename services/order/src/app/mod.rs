//! The order use cases and their ports. Both builds run this code: the
//! order service reaches the user and payment areas over the network, the
//! monolith in-process; either way through the same ports.

mod ports;
mod use_cases;

pub use ports::{
    CreateError, DirectoryError, GatewayError, OrderRepository, PaymentGateway, Recipient, Transition, UserDirectory,
    Written,
};
pub use use_cases::{CancelError, OrderService, PlaceError, Placed, Placement, PlacementSettings};
