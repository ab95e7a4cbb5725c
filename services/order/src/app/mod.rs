//! The order use cases and their ports. Both builds run this code: the
//! service plugs in an HTTP user directory and a gRPC payment gateway, the
//! monolith plugs in the other areas' application services.

mod ports;
mod use_cases;
pub mod views;

pub use ports::{
    CancelError, CreateError, DirectoryError, GatewayError, KeyRecord, OrderRepository, PaymentGateway, Recipient,
    UserDirectory,
};
pub use use_cases::{OrderService, PlaceError, Placed, PlacementSettings};
