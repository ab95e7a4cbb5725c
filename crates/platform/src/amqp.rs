//! RabbitMQ: the connection, the topology, the outbox publisher and the
//! consumer loop.
//!
//! Why it is built this way:
//! - [`Amqp`] owns one connection and replaces it when it breaks; callers
//!   ask for a channel each time they need one, so a broker restart heals
//!   without a process restart.
//! - [`AmqpPublisher`] publishes persistent, `mandatory` messages on a
//!   confirm-mode channel and reports success only for messages the broker
//!   confirmed *and* routed; a returned (unroutable) message is a failure and
//!   stays in the outbox.
//! - [`consume`] applies deliveries through an [`EventHandler`] with bounded
//!   concurrency and acks only after the handler's transaction committed.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, anyhow};
use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, LongString, ShortString},
};
use tokio::sync::Mutex;
use twinshop_contracts::{events::Envelope, topology::Topology};

use crate::{
    config::Secret,
    health::Probe,
    inbox::{self, DeliveryPolicy, EventHandler, Verdict},
    outbox::{Delivery, OutboxMessage, Publisher},
    propagation,
    shutdown::Shutdown,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a batch's publisher confirms may take.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Amqp::close`] waits for the broker's close-ok.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One lazily (re)connected broker connection.
pub struct Amqp {
    url: Secret<String>,
    name: String,
    conn: Mutex<Option<Arc<Connection>>>,
}

impl std::fmt::Debug for Amqp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Amqp").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Amqp {
    /// `url` like `amqp://guest:guest@127.0.0.1:5672/%2f`; `name` shows in
    /// the management UI's connection list.
    pub fn new(url: Secret<String>, name: impl Into<String>) -> Arc<Self> {
        Arc::new(Self { url, name: name.into(), conn: Mutex::new(None) })
    }

    /// The live connection, connecting (again) if there is none.
    pub async fn connection(&self) -> anyhow::Result<Arc<Connection>> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref()
            && conn.status().connected()
        {
            return Ok(conn.clone());
        }
        let props = ConnectionProperties::default().with_connection_name(self.name.clone().into());
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(self.url.expose(), props))
            .await
            .map_err(|_| anyhow!("connecting to RabbitMQ timed out"))?
            .context("connecting to RabbitMQ")?;
        let conn = Arc::new(conn);
        *slot = Some(conn.clone());
        tracing::info!(connection = self.name, "connected to RabbitMQ");
        Ok(conn)
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let conn = self.connection().await?;
        conn.create_channel().await.context("opening a channel")
    }

    /// Closes the connection politely (at shutdown), waiting at most
    /// `CLOSE_TIMEOUT`: lapin's close can wait forever for a close-ok that
    /// a concurrent channel error swallowed (seen in the e2e tests: the
    /// socket was gone, the process never exited), and a stop must end.
    pub async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take()
            && conn.status().connected()
            && tokio::time::timeout(CLOSE_TIMEOUT, conn.close(200, "shutting down".into())).await.is_err()
        {
            tracing::warn!(connection = self.name, "closing the broker connection timed out");
        }
    }
}

/// Declares the exchange, every queue with its dead-letter queue, and the
/// bindings. Idempotent: the `migrate` step runs it, and so does each start.
pub async fn declare_topology(amqp: &Amqp, topology: &Topology) -> anyhow::Result<()> {
    let ch = amqp.channel().await?;
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    ch.exchange_declare(topology.exchange().into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .context("declaring the events exchange")?;
    ch.exchange_declare(topology.dead_letter_exchange().into(), ExchangeKind::Direct, durable, FieldTable::default())
        .await
        .context("declaring the dead-letter exchange")?;
    for queue in topology.queues() {
        let mut args = FieldTable::default();
        if let Some(max) = queue.max_length {
            args.insert("x-max-length".into(), AMQPValue::LongLongInt(i64::from(max)));
            args.insert("x-overflow".into(), AMQPValue::LongString("drop-head".into()));
        } else {
            let dlq = queue.dead_letter_queue();
            args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(topology.dead_letter_exchange().into()));
            args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(dlq.clone().into()));
            ch.queue_declare(dlq.clone().into(), QueueDeclareOptions::durable(), FieldTable::default())
                .await
                .with_context(|| format!("declaring {dlq}"))?;
            ch.queue_bind(
                dlq.clone().into(),
                topology.dead_letter_exchange().into(),
                dlq.clone().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("binding {dlq}"))?;
        }
        ch.queue_declare(queue.name.clone().into(), QueueDeclareOptions::durable(), args)
            .await
            .with_context(|| format!("declaring {}", queue.name))?;
        for key in &queue.bindings {
            ch.queue_bind(
                queue.name.clone().into(),
                topology.exchange().into(),
                (*key).into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("binding {} to {key}", queue.name))?;
        }
    }
    let _ = ch.close(200, "declared".into()).await;
    Ok(())
}

/// Re-declares the topology at start (idempotent), retrying while the
/// broker is away; the outbox holds events meanwhile.
pub async fn declare_until_done(amqp: Arc<Amqp>, topology: Topology, shutdown: Shutdown) {
    let mut wait = Duration::from_millis(200);
    loop {
        match declare_topology(&amqp, &topology).await {
            Ok(()) => return,
            Err(err) => tracing::warn!(error = format!("{err:#}"), "cannot declare the broker topology yet"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => wait = (wait * 2).min(Duration::from_secs(10)),
        }
    }
}

/// Publishes outbox messages to the events exchange with confirms.
pub struct AmqpPublisher {
    amqp: Arc<Amqp>,
    exchange: String,
    channel: Mutex<Option<Channel>>,
}

impl std::fmt::Debug for AmqpPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpPublisher").field("exchange", &self.exchange).finish_non_exhaustive()
    }
}

impl AmqpPublisher {
    pub fn new(amqp: Arc<Amqp>, topology: &Topology) -> Self {
        Self { amqp, exchange: topology.exchange(), channel: Mutex::new(None) }
    }

    async fn confirm_channel(&self) -> anyhow::Result<Channel> {
        let mut slot = self.channel.lock().await;
        if let Some(ch) = slot.as_ref()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        let ch = self.amqp.channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await.context("enabling publisher confirms")?;
        *slot = Some(ch.clone());
        Ok(ch)
    }

    async fn send(&self, ch: &Channel, msg: &OutboxMessage) -> anyhow::Result<lapin::PublisherConfirm> {
        // The publish span continues the trace of the request that wrote the
        // event; its context travels on in the message headers.
        let span = tracing::info_span!("amqp.publish", otel.name = format!("{} publish", msg.event_type),
            otel.kind = "producer", event_type = msg.event_type, event_id = %msg.event_id);
        propagation::set_parent(&span, propagation::extract_map(&msg.trace_context));
        // Entered only to read its context: a guard held across the await
        // below would corrupt the span stack of whichever thread resumes the
        // task (tracing panics on it under load). The await is instrumented.
        let mut context = span.in_scope(propagation::current_headers);
        if !context.contains_key("traceparent") {
            // The publish span is not recorded here (no OTel layer, or the
            // log level filters it out): pass the writer's context on as is
            // rather than cut the trace.
            context = msg.trace_context.clone();
        }
        let mut headers = FieldTable::default();
        for (k, v) in context {
            headers.insert(ShortString::from(k), AMQPValue::LongString(LongString::from(v)));
        }
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(msg.event_id.to_string().into())
            .with_type(msg.event_type.clone().into())
            .with_headers(headers);
        let options = BasicPublishOptions { mandatory: true, ..Default::default() };
        let publish =
            ch.basic_publish(self.exchange.clone().into(), msg.event_type.clone().into(), options, &msg.body, props);
        tracing::Instrument::instrument(publish, span).await.context("publishing")
    }
}

#[async_trait::async_trait]
impl Publisher for AmqpPublisher {
    async fn publish(&self, batch: &[OutboxMessage]) -> Vec<Delivery> {
        let ch = match self.confirm_channel().await {
            Ok(ch) => ch,
            Err(err) => return batch.iter().map(|_| Delivery::failed(anyhow!("{err:#}"))).collect(),
        };
        // Send the whole batch, then collect the confirms: one round trip
        // of latency per batch instead of per message.
        let mut pending = Vec::with_capacity(batch.len());
        for msg in batch {
            pending.push(self.send(&ch, msg).await);
        }
        // lapin hands each basic.return to whichever confirm completes next,
        // and completes the confirms of a multiple-ack in arbitrary order, so
        // a return may arrive on another message's confirm. Match returns to
        // messages by message id (= event id) instead.
        let mut confirms = Vec::with_capacity(batch.len());
        let mut returned = std::collections::HashMap::new();
        // A broker that stops answering must not stall the relay forever:
        // confirms not in by the deadline count as not published.
        let deadline = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
        for confirm in pending {
            let confirmation = match confirm {
                Err(err) => Err(err),
                Ok(confirm) => match tokio::time::timeout_at(deadline, confirm).await {
                    Ok(c) => c.map_err(|err| anyhow!(err).context("awaiting the confirm")),
                    Err(_) => Err(anyhow!("no publisher confirm within {CONFIRM_TIMEOUT:?}")),
                },
            };
            if let Ok(Confirmation::Ack(Some(r)) | Confirmation::Nack(Some(r))) = &confirmation
                && let Some(id) = r.delivery.properties.message_id()
            {
                returned.insert(id.to_string(), r.reply_text.to_string());
            }
            confirms.push(confirmation);
        }
        let results: Vec<Delivery> = batch
            .iter()
            .zip(confirms)
            .map(|(msg, confirmation)| match (returned.get(&msg.event_id.to_string()), confirmation) {
                (Some(reason), _) => Delivery::failed(anyhow!("unroutable: returned by the broker ({reason})")),
                (None, Ok(Confirmation::Ack(_))) => Delivery::Done,
                (None, Ok(Confirmation::Nack(_))) => Delivery::failed(anyhow!("nacked by the broker")),
                (None, Ok(Confirmation::NotRequested)) => Delivery::failed(anyhow!("channel is not in confirm mode")),
                (None, Err(err)) => Delivery::failed(err),
            })
            .collect();
        if results.iter().any(|d| !matches!(d, Delivery::Done)) {
            // Start the next batch on a fresh channel.
            *self.channel.lock().await = None;
        }
        results
    }
}

/// Consumer tuning.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Deliveries in flight at once (prefetch and handler concurrency).
    pub concurrency: u16,
    /// What happens after a failed attempt (shared with in-process delivery).
    pub policy: DeliveryPolicy,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self { concurrency: 16, policy: DeliveryPolicy::default() }
    }
}

/// Consumes `queue` until shutdown, reconnecting whenever the broker goes
/// away. Each delivery is acked after `handler` succeeded; a message that
/// cannot be decoded or fails permanently is dead-lettered; a transient
/// failure is retried with backoff for as long as it takes (the message
/// stays unacked, so if this process dies it is redelivered elsewhere).
pub async fn consume(
    amqp: Arc<Amqp>,
    queue: String,
    handler: Arc<dyn EventHandler>,
    settings: ConsumerSettings,
    shutdown: Shutdown,
) {
    let mut failures = 0u32;
    while !shutdown.is_shutting_down() {
        match consume_once(&amqp, &queue, &handler, &settings, &shutdown).await {
            Ok(()) => failures = 0,
            Err(err) => {
                failures += 1;
                tracing::warn!(queue, error = format!("{err:#}"), "consumer interrupted, reconnecting");
            }
        }
        let wait = Duration::from_millis(200 * u64::from(failures.min(25)));
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!(queue, "consumer stopped");
}

async fn consume_once(
    amqp: &Amqp,
    queue: &str,
    handler: &Arc<dyn EventHandler>,
    settings: &ConsumerSettings,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let ch = amqp.channel().await?;
    ch.basic_qos(settings.concurrency, BasicQosOptions::default()).await.context("setting prefetch")?;
    let consumer = ch
        .basic_consume(queue.into(), handler.consumer().into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .with_context(|| format!("consuming {queue}"))?;
    tracing::info!(queue, "consuming");
    // Stop taking deliveries at shutdown; those in flight finish first.
    let deliveries = consumer.take_until(shutdown.cancelled_owned());
    deliveries
        .for_each_concurrent(usize::from(settings.concurrency), |delivery| {
            let handler = handler.clone();
            async move {
                match delivery {
                    Ok(delivery) => handle_delivery(delivery, handler.as_ref(), &settings.policy, shutdown).await,
                    Err(err) => tracing::warn!(error = %err, "delivery error"),
                }
            }
        })
        .await;
    let _ = ch.close(200, "consumer done".into()).await;
    if shutdown.is_shutting_down() { Ok(()) } else { Err(anyhow!("the consumer stream ended")) }
}

async fn handle_delivery(
    delivery: lapin::message::Delivery,
    handler: &dyn EventHandler,
    policy: &DeliveryPolicy,
    shutdown: &Shutdown,
) {
    let mut trace = std::collections::HashMap::new();
    if let Some(headers) = delivery.properties.headers().as_ref() {
        for (k, v) in headers.inner() {
            if let Some(s) = v.as_long_string() {
                trace.insert(k.as_str().to_owned(), s.to_string());
            }
        }
    }
    let outcome = match serde_json::from_slice::<Envelope<serde_json::Value>>(&delivery.data) {
        Ok(envelope) => apply(envelope, &trace, handler, policy, shutdown).await,
        Err(err) => {
            metrics::counter!("consumer_dead_lettered_total", "consumer" => handler.consumer()).increment(1);
            tracing::error!(consumer = handler.consumer(), error = %err, "undecodable message, dead-lettering");
            Some(false)
        }
    };
    let acked = match outcome {
        Some(true) => delivery.ack(BasicAckOptions::default()).await,
        Some(false) => delivery.nack(BasicNackOptions { requeue: false, multiple: false }).await,
        // Shutting down mid-retry: hand the message back for another replica.
        None => delivery.nack(BasicNackOptions { requeue: true, multiple: false }).await,
    };
    if let Err(err) = acked {
        // The effect is committed (or not) already; a redelivery is harmless.
        tracing::warn!(error = %err, "ack failed; the message will be redelivered");
    }
}

/// Tries until the policy says done or dead: `Some(true)` ack, `Some(false)`
/// dead-letter, `None` shutdown came first (give it back).
async fn apply(
    envelope: Envelope<serde_json::Value>,
    trace: &std::collections::HashMap<String, String>,
    handler: &dyn EventHandler,
    policy: &DeliveryPolicy,
    shutdown: &Shutdown,
) -> Option<bool> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match inbox::process(handler, envelope.clone(), trace, attempt, policy).await {
            Verdict::Done => return Some(true),
            Verdict::DeadLetter(_) => return Some(false),
            Verdict::Retry(wait) => {
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// RabbitMQ for `/readyz`: degradable (events wait in the outbox).
#[derive(Debug, Clone)]
pub struct AmqpProbe(pub Arc<Amqp>);

#[async_trait::async_trait]
impl Probe for AmqpProbe {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }
    fn critical(&self) -> bool {
        false
    }
    async fn check(&self) -> anyhow::Result<()> {
        self.0.connection().await.map(|_| ())
    }
}
