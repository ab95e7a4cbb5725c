//! Events without a broker: the in-process transport's [`Publisher`].
//!
//! Each area's outbox relay hands its events here and they are applied by
//! the subscribed areas' handlers in the same process, through
//! [`inbox::process`], the function the RabbitMQ consumer calls too: the
//! same span, metrics, retry and dead-letter rules. What differs is where a
//! retry waits. The broker keeps an unacknowledged message; here the event
//! stays in the outbox, and the relay tries it again after the policy's
//! backoff (the row's `attempts` is the attempt number), so a crash between
//! tries loses nothing. An event dead-lettered by a handler is kept in the
//! outbox, marked (see `outbox::DEAD_LETTERED`).
//!
//! Transaction boundaries stay those of the microservices: the event row
//! commits with the change, the relay picks it up after commit, and each
//! handler applies it in its own transaction with its processed-event
//! record (handlers that succeeded skip a retried event).
//!
//! The events of one relay pass are applied concurrently, [`CONCURRENCY`]
//! at a time: handlers already take events in any order (a broker
//! redelivers, and the RabbitMQ consumer applies its prefetch at once).
//! One at a time, a pass took as long as its events' transactions
//! together, and near the monolith's peak its events waited seconds
//! (measured at 700 rps in runs that shed requests: the order area's relay
//! delay averaged 2.0 s one at a time, 79 and 69 ms four at a time;
//! `docs/loadtest/ab-2026-12-06/inprocess-delivery/relay-delay.md`).

use std::{collections::HashMap, sync::Arc};

use anyhow::anyhow;
use futures_util::{StreamExt as _, stream};
use serde_json::Value;
use twinshop_contracts::{events::Envelope, topology::Subscription};

use crate::{
    inbox::{self, DeliveryPolicy, EventHandler, Verdict},
    outbox::{Delivery, OutboxMessage, Publisher},
};

/// Events of one relay pass applied at once, at most: a fixed 4, half of
/// the monolith's default pool of 8 connections per area, so the requests
/// being served still find connections while a pass's handlers hold
/// theirs. (A smaller pool, `MONOLITH_DB_MAX_CONNECTIONS`, leaves them
/// fewer; nothing deadlocks: a relay's transaction is on its own area's
/// pool and its handlers' on the subscribing areas', each handler holds one
/// connection and waits for nothing else, and a pool acquire is bounded.)
pub const CONCURRENCY: usize = 4;

/// Event type → the handlers subscribed to it.
#[derive(Clone, Default)]
pub struct InProcessPublisher {
    routes: HashMap<&'static str, Vec<Arc<dyn EventHandler>>>,
    policy: DeliveryPolicy,
}

impl std::fmt::Debug for InProcessPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessPublisher").field("routes", &self.routes.keys().collect::<Vec<_>>()).finish()
    }
}

impl InProcessPublisher {
    /// Routes every event of `subscription` to `handler`.
    pub fn subscribe(&mut self, subscription: &Subscription, handler: Arc<dyn EventHandler>) {
        for event_type in subscription.events {
            self.routes.entry(event_type).or_default().push(handler.clone());
        }
    }

    async fn deliver(&self, msg: &OutboxMessage) -> Delivery {
        let Some(handlers) = self.routes.get(msg.event_type.as_str()) else {
            // Nobody consumes it (user.registered, order.rejected): the
            // microservices park these in a bounded tap queue.
            return Delivery::Done;
        };
        let envelope: Envelope<Value> = match serde_json::from_slice(&msg.body) {
            Ok(envelope) => envelope,
            Err(err) => return Delivery::DeadLettered { reason: format!("undecodable event: {err}") },
        };
        let attempt = u32::try_from(msg.attempts).unwrap_or(0) + 1;
        let mut retry = None;
        let mut dead = None;
        for handler in handlers {
            match inbox::process(handler.as_ref(), envelope.clone(), &msg.trace_context, attempt, &self.policy).await {
                Verdict::Done => {}
                Verdict::Retry(wait) => retry = Some(wait),
                Verdict::DeadLetter(reason) => dead = Some(format!("{}: {reason}", handler.consumer())),
            }
        }
        match (retry, dead) {
            // One handler still hopes: try the event again (the others skip
            // it then, or dead-letter it again).
            (Some(wait), _) => Delivery::Failed { error: anyhow!("a consumer failed"), retry_in: Some(wait) },
            (None, Some(reason)) => Delivery::DeadLettered { reason },
            (None, None) => Delivery::Done,
        }
    }
}

#[async_trait::async_trait]
impl Publisher for InProcessPublisher {
    async fn publish(&self, batch: &[OutboxMessage]) -> Vec<Delivery> {
        // Futures do nothing until polled: up to `CONCURRENCY` run at once,
        // a finished one making room for the next whatever its place (a
        // slow event holds up no other), and each result goes back to its
        // message's place in the batch.
        let deliveries: Vec<_> =
            batch.iter().enumerate().map(|(i, msg)| async move { (i, self.deliver(msg).await) }).collect();
        let mut done: Vec<(usize, Delivery)> = stream::iter(deliveries).buffer_unordered(CONCURRENCY).collect().await;
        done.sort_unstable_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, delivery)| delivery).collect()
    }
}
