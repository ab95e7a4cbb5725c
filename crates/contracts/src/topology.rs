//! The broker topology: one durable topic exchange, one durable queue per
//! consumer, each with a dead-letter queue, plus a bounded tap for events no
//! service consumes yet.
//!
//! Why it is one shared definition: every service's `migrate` step declares
//! *all* of it, so whichever service migrates first, no event can be published
//! before the queue that must receive it exists (publishes are `mandatory`;
//! an unroutable event is returned and stays in the outbox).
//!
//! Names are prefixed with a namespace (`twinshop` by default) so tests can
//! run side by side on one broker.

use crate::events::{Event, OrderCancelled, OrderConfirmed, OrderRejected, PaymentRefunded, UserRegistered};

/// One consumer queue and the routing keys bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Full queue name, e.g. `twinshop.user.order-events`.
    pub name: String,
    /// Routing keys (event types) bound to it.
    pub bindings: Vec<&'static str>,
    /// `Some(n)`: keep at most `n` messages, dropping the oldest (the tap).
    /// `None`: unbounded, with a dead-letter queue.
    pub max_length: Option<u32>,
}

impl QueueSpec {
    /// Where messages this queue's consumer gives up on are parked.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.name)
    }
}

/// A consumer's queue, named without its namespace: the area that owns it
/// and the events bound to it. An area's assembly names the one it
/// consumes; the broker (or the monolith's in-process delivery) routes the
/// bound events to that area's handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// The area that consumes, e.g. `user`.
    pub area: &'static str,
    /// The queue's own name, e.g. `order-events`.
    pub suffix: &'static str,
    /// The event types (routing keys) bound to the queue.
    pub events: &'static [&'static str],
    /// The consumer's stable name, `{area}.{suffix}`, recorded with each
    /// event it processed (in `processed_events`) and used as its consumer
    /// tag and metrics label.
    pub consumer: &'static str,
}

/// The user area's stats read model follows orders.
pub const USER_ORDER_EVENTS: Subscription = Subscription {
    area: "user",
    suffix: "order-events",
    events: &[OrderConfirmed::TYPE, OrderCancelled::TYPE],
    consumer: "user.order-events",
};
/// The payment area refunds cancelled orders.
pub const PAYMENT_ORDER_CANCELLED: Subscription = Subscription {
    area: "payment",
    suffix: "order-cancelled",
    events: &[OrderCancelled::TYPE],
    consumer: "payment.order-cancelled",
};
/// The order area marks refunds done.
pub const ORDER_PAYMENT_REFUNDED: Subscription = Subscription {
    area: "order",
    suffix: "payment-refunded",
    events: &[PaymentRefunded::TYPE],
    consumer: "order.payment-refunded",
};

/// Every consumer queue.
pub const SUBSCRIPTIONS: [Subscription; 3] = [USER_ORDER_EVENTS, PAYMENT_ORDER_CANCELLED, ORDER_PAYMENT_REFUNDED];

/// The whole topology under one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub namespace: String,
}

/// Events nobody consumes yet still need a queue, or `mandatory` publishes
/// of them would be returned forever. The tap holds the newest few for
/// people looking at the RabbitMQ UI.
const TAPPED: &[&str] = &[UserRegistered::TYPE, OrderRejected::TYPE];
const TAP_MAX_LENGTH: u32 = 10_000;

impl Topology {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self { namespace: namespace.into() }
    }

    /// The topic exchange every event is published to.
    pub fn exchange(&self) -> String {
        format!("{}.events", self.namespace)
    }

    /// The direct exchange dead letters go through (routing key = queue name).
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.namespace)
    }

    /// Every queue, consumers' first, then the tap.
    pub fn queues(&self) -> Vec<QueueSpec> {
        let mut queues: Vec<QueueSpec> = SUBSCRIPTIONS.iter().map(|s| self.queue(s)).collect();
        queues.push(QueueSpec {
            name: format!("{}.tap", self.namespace),
            bindings: TAPPED.to_vec(),
            max_length: Some(TAP_MAX_LENGTH),
        });
        queues
    }

    /// The queue of one subscription, under this namespace.
    pub fn queue(&self, subscription: &Subscription) -> QueueSpec {
        QueueSpec {
            name: format!("{}.{}.{}", self.namespace, subscription.area, subscription.suffix),
            bindings: subscription.events.to_vec(),
            max_length: None,
        }
    }

    /// The queue the given area consumes from, if it consumes at all.
    pub fn queue_of(&self, area: &str) -> Option<QueueSpec> {
        SUBSCRIPTIONS.iter().find(|s| s.area == area).map(|s| self.queue(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_is_bound_to_at_least_one_queue() {
        let t = Topology::new("twinshop");
        let bound: Vec<&str> = t.queues().iter().flat_map(|q| q.bindings.clone()).collect();
        for ty in [
            UserRegistered::TYPE,
            OrderConfirmed::TYPE,
            OrderRejected::TYPE,
            OrderCancelled::TYPE,
            PaymentRefunded::TYPE,
        ] {
            assert!(bound.contains(&ty), "{ty} would be unroutable");
        }
    }

    #[test]
    fn consumer_names_match_the_queues() {
        for s in SUBSCRIPTIONS {
            assert_eq!(s.consumer, format!("{}.{}", s.area, s.suffix));
        }
    }

    #[test]
    fn queue_names_carry_the_namespace() {
        let t = Topology::new("t42");
        assert_eq!(t.exchange(), "t42.events");
        assert_eq!(t.queue_of("user").map(|q| q.name), Some("t42.user.order-events".to_owned()));
        assert!(t.queue_of("monolith").is_none());
    }
}
