//! The user area's event consumer: `order.confirmed` and `order.cancelled`
//! feed the per-user stats read model, once per event, in any order.

use serde_json::Value;
use twinshop_contracts::events::{Envelope, Event, OrderCancelled, OrderConfirmed};
use twinshop_platform::inbox::{EventHandler, HandleError};

use crate::{
    app::{
        UserService,
        ports::{OrderFact, OrderFactKind},
    },
    domain::UserId,
};

/// This consumer's name (recorded with each event it processed).
pub const CONSUMER: &str = twinshop_contracts::topology::USER_ORDER_EVENTS.consumer;

#[derive(Debug, Clone)]
pub struct OrderEventsHandler {
    users: UserService,
}

impl OrderEventsHandler {
    pub fn new(users: UserService) -> Self {
        Self { users }
    }
}

#[async_trait::async_trait]
impl EventHandler for OrderEventsHandler {
    fn consumer(&self) -> &'static str {
        CONSUMER
    }

    async fn handle(&self, event: Envelope<Value>) -> Result<(), HandleError> {
        let permanent = |e: twinshop_contracts::events::DecodeError| HandleError::Permanent(e.into());
        let (event_id, fact) = match event.event_type.as_str() {
            OrderConfirmed::TYPE => {
                let e = event.decode::<OrderConfirmed>().map_err(permanent)?;
                let p = e.payload;
                (
                    e.event_id,
                    OrderFact {
                        order_id: p.order_id,
                        user_id: UserId::from_uuid(p.user_id),
                        total_cents: p.total_cents,
                        kind: OrderFactKind::Confirmed,
                    },
                )
            }
            OrderCancelled::TYPE => {
                let e = event.decode::<OrderCancelled>().map_err(permanent)?;
                let p = e.payload;
                (
                    e.event_id,
                    OrderFact {
                        order_id: p.order_id,
                        user_id: UserId::from_uuid(p.user_id),
                        total_cents: p.total_cents,
                        kind: OrderFactKind::Cancelled,
                    },
                )
            }
            other => return Err(HandleError::Permanent(anyhow::anyhow!("unexpected event type {other}"))),
        };
        self.users.record_order_fact(CONSUMER, event_id, fact).await.map_err(HandleError::Transient)
    }
}
