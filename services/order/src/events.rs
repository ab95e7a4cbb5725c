//! The order area's event consumer: `payment.refunded` → the cancelled
//! order's refund status becomes `refunded`, once per event.

use serde_json::Value;
use twinshop_contracts::events::{Envelope, PaymentRefunded};
use twinshop_platform::inbox::{EventHandler, HandleError};

use crate::app::OrderService;

/// This consumer's name (recorded with each event it processed).
pub const CONSUMER: &str = twinshop_contracts::topology::ORDER_PAYMENT_REFUNDED.consumer;

#[derive(Debug, Clone)]
pub struct PaymentRefundedHandler {
    orders: OrderService,
}

impl PaymentRefundedHandler {
    pub fn new(orders: OrderService) -> Self {
        Self { orders }
    }
}

#[async_trait::async_trait]
impl EventHandler for PaymentRefundedHandler {
    fn consumer(&self) -> &'static str {
        CONSUMER
    }

    async fn handle(&self, event: Envelope<Value>) -> Result<(), HandleError> {
        let event = event.decode::<PaymentRefunded>().map_err(|e| HandleError::Permanent(e.into()))?;
        self.orders
            .refund_arrived(CONSUMER, event.event_id, event.payload.order_id)
            .await
            .map_err(HandleError::Transient)
    }
}
