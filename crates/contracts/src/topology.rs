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

/// The whole topology under one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub namespace: String,
}

/// Consumers, by the area that runs them. `(area, queue suffix, bindings)`.
const CONSUMERS: &[(&str, &str, &[&str])] = &[
    ("user", "order-events", &[OrderConfirmed::TYPE, OrderCancelled::TYPE]),
    ("payment", "order-cancelled", &[OrderCancelled::TYPE]),
    ("order", "payment-refunded", &[PaymentRefunded::TYPE]),
];

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
        let mut queues: Vec<QueueSpec> = CONSUMERS
            .iter()
            .map(|(area, suffix, keys)| QueueSpec {
                name: format!("{}.{area}.{suffix}", self.namespace),
                bindings: keys.to_vec(),
                max_length: None,
            })
            .collect();
        queues.push(QueueSpec {
            name: format!("{}.tap", self.namespace),
            bindings: TAPPED.to_vec(),
            max_length: Some(TAP_MAX_LENGTH),
        });
        queues
    }

    /// The queue the given area consumes from, if it consumes at all.
    pub fn queue_of(&self, area: &str) -> Option<QueueSpec> {
        let prefix = format!("{}.{area}.", self.namespace);
        self.queues().into_iter().find(|q| q.name.starts_with(&prefix))
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
    fn queue_names_carry_the_namespace() {
        let t = Topology::new("t42");
        assert_eq!(t.exchange(), "t42.events");
        assert_eq!(t.queue_of("user").map(|q| q.name), Some("t42.user.order-events".to_owned()));
        assert!(t.queue_of("monolith").is_none());
    }
}
