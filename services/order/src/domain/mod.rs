//! The order area's domain: the catalog, order lines, the order's states and
//! the rules that move it between them. Pure: no I/O, no web/SQL/broker types.

mod order;
mod request;

pub use order::{
    ChargeOutcome, ConsistencyMode, NotCancellable, NotPending, Order, OrderLine, OrderStatus, Product, RefundStatus,
    RejectionReason, ShipTo, ShippingAddress, VoidStatus,
};
pub use request::{ItemRequest, OrderRequest, OrderRequestError, price};
