//! Events without a broker: each area's outbox relay hands its events to
//! this publisher, which calls the subscribed areas' consumers in-process.
//!
//! The transaction boundaries stay those of the microservices: the event
//! row commits with the change, the relay picks it up after commit, and each
//! consumer applies it in its own transaction with its processed-event
//! record. A consumer failure leaves the event in the outbox for a retry
//! (consumers are idempotent, so the ones that already succeeded skip it).

use std::{collections::HashMap, sync::Arc};

use anyhow::anyhow;
use serde_json::Value;
use twinshop_contracts::events::Envelope;
use twinshop_platform::{
    inbox::{EventHandler, HandleError},
    outbox::{OutboxMessage, Publisher},
    propagation,
};

/// Routing key → the consumers subscribed to it (the broker topology's
/// bindings, in-process).
#[derive(Clone, Default)]
pub struct InProcessPublisher {
    routes: HashMap<&'static str, Vec<Arc<dyn EventHandler>>>,
}

impl std::fmt::Debug for InProcessPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessPublisher").field("routes", &self.routes.keys().collect::<Vec<_>>()).finish()
    }
}

impl InProcessPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes `handler` to events of `event_type`.
    pub fn subscribe(mut self, event_type: &'static str, handler: Arc<dyn EventHandler>) -> Self {
        self.routes.entry(event_type).or_default().push(handler);
        self
    }

    async fn deliver(&self, msg: &OutboxMessage) -> anyhow::Result<()> {
        let Some(handlers) = self.routes.get(msg.event_type.as_str()) else {
            // No consumer (user.registered, order.rejected): nothing to do;
            // the microservices park these in a bounded tap queue.
            return Ok(());
        };
        let envelope: Envelope<Value> =
            serde_json::from_slice(&msg.body).map_err(|e| anyhow!("undecodable event: {e}"))?;
        let mut failed = None;
        for handler in handlers {
            let span = tracing::info_span!("event.process", otel.name = format!("{} process", msg.event_type),
                otel.kind = "consumer", consumer = handler.consumer(), event_type = msg.event_type, event_id = %msg.event_id);
            propagation::set_parent(&span, propagation::extract_map(&msg.trace_context));
            match tracing::Instrument::instrument(handler.handle(envelope.clone()), span).await {
                Ok(()) => metrics::counter!("consumer_processed_total", "consumer" => handler.consumer()).increment(1),
                Err(HandleError::Permanent(err)) => {
                    // The broker would dead-letter it; here it is logged and
                    // counted the same way, and not retried.
                    metrics::counter!("consumer_dead_lettered_total", "consumer" => handler.consumer()).increment(1);
                    tracing::error!(
                        consumer = handler.consumer(),
                        error = format!("{err:#}"),
                        "event failed permanently"
                    );
                }
                Err(HandleError::Transient(err)) => failed = Some(err),
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

#[async_trait::async_trait]
impl Publisher for InProcessPublisher {
    async fn publish(&self, batch: &[OutboxMessage]) -> Vec<anyhow::Result<()>> {
        let mut results = Vec::with_capacity(batch.len());
        for msg in batch {
            results.push(self.deliver(msg).await);
        }
        results
    }
}
