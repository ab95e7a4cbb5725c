//! The payment area's event consumer: `order.cancelled` → refund, and
//! `payment.refunded` through the outbox, in one transaction with the
//! processed-event record.

use serde_json::Value;
use twinshop_contracts::events::{Envelope, OrderCancelled};
use twinshop_platform::inbox::{EventHandler, HandleError};

use crate::app::PaymentService;

/// This consumer's name (recorded with each event it processed).
pub const CONSUMER: &str = twinshop_contracts::topology::PAYMENT_ORDER_CANCELLED.consumer;

#[derive(Debug, Clone)]
pub struct OrderCancelledHandler {
    payments: PaymentService,
}

impl OrderCancelledHandler {
    pub fn new(payments: PaymentService) -> Self {
        Self { payments }
    }
}

#[async_trait::async_trait]
impl EventHandler for OrderCancelledHandler {
    fn consumer(&self) -> &'static str {
        CONSUMER
    }

    async fn handle(&self, event: Envelope<Value>) -> Result<(), HandleError> {
        let event = event.decode::<OrderCancelled>().map_err(|e| HandleError::Permanent(e.into()))?;
        self.payments
            .refund_cancelled_order(CONSUMER, event.event_id, event.payload.order_id)
            .await
            .map_err(HandleError::Transient)
    }
}
