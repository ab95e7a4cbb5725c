//! Adapter tests of the transactional outbox, its relay and the idempotent
//! consumer, against the machine's real Postgres and RabbitMQ.
//!
//! Each test gets its own database and its own broker namespace (exchange,
//! queues and dead-letter queues under a unique prefix), so the tests run in
//! parallel without seeing each other's rows or messages.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use lapin::{
    BasicProperties, ExchangeKind,
    options::{
        BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
    },
    types::FieldTable,
};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use serde_json::Value;
use sqlx::PgPool;
use tracing::{Instrument as _, instrument::WithSubscriber as _};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use twinshop_contracts::{
    events::{Envelope, Event, OrderConfirmed},
    topology::{Topology, USER_ORDER_EVENTS},
};
use twinshop_platform::{
    amqp::{self, Amqp, AmqpPublisher, ConsumerSettings},
    config::Secret,
    db::{self, DbTarget},
    host::inprocess::InProcessPublisher,
    inbox::{self, DeliveryPolicy, EventHandler, HandleError},
    outbox::{self, Delivery, OutboxMessage, Publisher, Relay, RelaySettings},
    shutdown::Shutdown,
};
use twinshop_testkit::{TestDb, amqp_url, dead_port, delete_namespace, eventually, holds_for, unique_name};
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_enqueued_in_a_committed_transaction_is_published_persistent_with_its_id_and_trace_context() {
    let env = Env::start().await;
    let _scoped = tracing::subscriber::set_default(tracing_with_otel());
    let request = tracing::info_span!("confirm_order");
    let trace_id = request.context().span().span_context().trace_id().to_string();

    let event = env.enqueue_order_confirmed().instrument(request).await;
    assert_eq!(env.relay().relay_once().await.expect("relay"), 1);

    let message = env.get(&env.user_queue()).await.expect("the event is in the user queue");
    let body: Value = serde_json::from_slice(&message.data).expect("the body is JSON");
    assert_eq!(body, event.to_json().expect("envelope JSON"));
    let props = &message.properties;
    assert_eq!(props.message_id().as_ref().map(|id| id.as_str().to_owned()), Some(event.event_id.to_string()));
    assert_eq!(*props.delivery_mode(), Some(2), "persistent");
    let traceparent = header(props, "traceparent").expect("a traceparent header");
    assert_eq!(traceparent.split('-').nth(1), Some(trace_id.as_str()), "{traceparent}");
    assert!(env.outbox_row(event.event_id).await.published);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_records_no_spans_still_forwards_the_trace_context_stored_with_the_event() {
    let env = Env::start().await;
    let (event, trace_id) = {
        let _scoped = tracing::subscriber::set_default(tracing_with_otel());
        let request = tracing::info_span!("confirm_order");
        let trace_id = request.context().span().span_context().trace_id().to_string();
        (env.enqueue_order_confirmed().instrument(request).await, trace_id)
    };

    let stored: Value = sqlx::query_scalar("SELECT trace_context FROM outbox WHERE event_id = $1")
        .bind(event.event_id)
        .fetch_one(&env.pool)
        .await
        .expect("the outbox row");
    assert!(stored["traceparent"].as_str().is_some_and(|tp| tp.contains(&trace_id)), "{stored}");

    // No subscriber here: like a relay whose log level filters its spans out.
    assert_eq!(env.relay().relay_once().await.expect("relay"), 1);

    let message = env.get(&env.user_queue()).await.expect("the event is in the user queue");
    let traceparent = header(&message.properties, "traceparent").expect("a traceparent header");
    assert_eq!(traceparent.split('-').nth(1), Some(trace_id.as_str()), "{traceparent}");
    assert_eq!(message.properties.message_id().as_ref().map(|id| id.to_string()), Some(event.event_id.to_string()));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_in_a_rolled_back_transaction_is_never_published() {
    let env = Env::start().await;
    let event = Envelope::new(order_confirmed());
    let mut tx = env.pool.begin().await.expect("begin");
    outbox::enqueue(&mut tx, &env.target, &event).await.expect("enqueue");
    tx.rollback().await.expect("rollback");

    assert_eq!(env.relay().relay_once().await.expect("relay"), 0);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&env.pool).await.expect("count");
    assert_eq!(rows, 0);
    assert_eq!(env.depth(&env.user_queue()).await, Some(0));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_event_stays_in_the_outbox_with_its_error_and_goes_out_once_its_queue_exists() {
    let env = Env::without_topology().await;
    let ch = env.amqp.channel().await.expect("channel");
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    ch.exchange_declare(env.topology.exchange().into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .expect("declare the exchange alone");
    let event = env.enqueue_order_confirmed().await;

    assert_eq!(env.relay().relay_once().await.expect("relay"), 0);
    let row = env.outbox_row(event.event_id).await;
    assert!(!row.published);
    assert_eq!(row.attempts, 1);
    assert!(row.last_error.as_deref().is_some_and(|e| e.contains("unroutable")), "{:?}", row.last_error);

    amqp::declare_topology(&env.amqp, &env.topology).await.expect("declare the topology");
    env.retry_now().await;
    assert_eq!(env.relay().relay_once().await.expect("relay"), 1);
    let row = env.outbox_row(event.event_id).await;
    assert!(row.published);
    assert_eq!(row.last_error, None);
    assert_eq!(env.depth(&env.user_queue()).await, Some(1));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_batch_mixing_routable_and_unroutable_events_only_the_unroutable_ones_stay_in_the_outbox() {
    let env = Env::start().await;
    // Big enough for every due row, including earlier rounds' unroutable ones.
    let relay = Relay::new(
        "test",
        env.pool.clone(),
        env.target.clone(),
        Arc::new(AmqpPublisher::new(env.amqp.clone(), &env.topology)),
        RelaySettings { batch_size: 1000, ..RelaySettings::default() },
    );
    // A few batches: which confirm a returned message rides on varies.
    for _ in 0..10 {
        let mut tx = env.pool.begin().await.expect("begin");
        for n in 0..50 {
            outbox::enqueue(&mut tx, &env.target, &Envelope::new(order_confirmed())).await.expect("enqueue");
            outbox::enqueue(&mut tx, &env.target, &Envelope::new(Unheard { n })).await.expect("enqueue");
        }
        tx.commit().await.expect("commit");
        assert_eq!(relay.relay_once().await.expect("relay"), 50);
    }

    let rows: Vec<(String, bool, Option<String>)> =
        sqlx::query_as("SELECT event_type, published_at IS NOT NULL, last_error FROM outbox")
            .fetch_all(&env.pool)
            .await
            .expect("outbox rows");
    for (event_type, published, last_error) in rows {
        if event_type == Unheard::TYPE {
            assert!(!published, "an unroutable event was marked published");
            assert!(last_error.is_some_and(|e| e.contains("unroutable")));
        } else {
            assert!(published, "a routed event was left for a second publish");
        }
    }
    assert_eq!(env.depth(&env.user_queue()).await, Some(500));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_unreachable_events_wait_and_are_published_once_it_is_back() {
    let env = Env::start().await;
    let event = env.enqueue_order_confirmed().await;
    let down = Amqp::new(Secret::new(format!("amqp://guest:guest@127.0.0.1:{}/%2f", dead_port())), "down");
    let relay = env.relay_through(Arc::new(AmqpPublisher::new(down, &env.topology)));

    assert_eq!(relay.relay_once().await.expect("a broker outage is not a relay error"), 0);
    let row = env.outbox_row(event.event_id).await;
    assert!(!row.published);
    assert_eq!(row.attempts, 1);
    assert!(row.last_error.is_some());

    env.retry_now().await;
    assert_eq!(env.relay().relay_once().await.expect("relay"), 1);
    assert!(env.outbox_row(event.event_id).await.published);
    assert_eq!(env.depth(&env.user_queue()).await, Some(1));
    env.stop().await;
}

/// Log lines written while `work` runs on this thread's subscriber.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn while_the_broker_is_away_the_relay_logs_the_state_change_once_not_a_line_per_event() {
    let env = Env::start().await;
    for _ in 0..20 {
        env.enqueue_order_confirmed().await;
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let down = Amqp::new(Secret::new(format!("amqp://guest:guest@127.0.0.1:{}/%2f", dead_port())), "down");
    let relay = env.relay_through(Arc::new(AmqpPublisher::new(down, &env.topology)));
    let shutdown = Shutdown::new();
    let running = tokio::spawn(relay.run(shutdown.clone()).with_current_subscriber());
    // Several passes: the first at once, then retries with backoff.
    eventually("the outbox rows to be tried three times", PATIENCE, || async {
        let tries: i64 =
            sqlx::query_scalar("SELECT min(attempts)::int8 FROM outbox").fetch_one(&env.pool).await.ok()?;
        (tries >= 3).then_some(())
    })
    .await;
    shutdown.trigger();
    running.await.expect("relay task");
    let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("\"level\":\"WARN\"")).collect();
    assert_eq!(warnings.len(), 1, "one WARN for the outage, not one per event and try: {warnings:#?}");
    assert!(warnings[0].contains("events cannot be published yet"), "{}", warnings[0]);
    assert!(!text.contains("publish failed, will retry"), "per-event failures stay at DEBUG");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_racing_on_one_outbox_publish_each_event_exactly_once() {
    let env = Env::start().await;
    let mut tx = env.pool.begin().await.expect("begin");
    for _ in 0..200 {
        outbox::enqueue(&mut tx, &env.target, &Envelope::new(order_confirmed())).await.expect("enqueue");
    }
    tx.commit().await.expect("commit");

    let racers: Vec<_> = (0..2)
        .map(|i| {
            let amqp = Amqp::new(Secret::new(amqp_url()), format!("racer-{i}"));
            let settings = RelaySettings { batch_size: 10, ..RelaySettings::default() };
            let relay = Relay::new(
                "test",
                env.pool.clone(),
                env.target.clone(),
                Arc::new(AmqpPublisher::new(amqp.clone(), &env.topology)),
                settings,
            );
            tokio::spawn(relay_until_empty(relay, env.pool.clone(), amqp))
        })
        .collect();
    let mut published = 0;
    for racer in racers {
        published += racer.await.expect("the relay task does not panic");
    }

    assert_eq!(published, 200, "each row is marked published by exactly one relay");
    let queue = env.user_queue();
    eventually("200 messages in the queue", PATIENCE, || async { env.depth(&queue).await.filter(|n| *n == 200) }).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_that_arrive_during_a_pass_are_answered_by_one_more_pass_not_one_each() {
    let env = Env::without_topology().await;
    let area = own_area("coalesce");
    let publisher = Arc::new(Gated::default());
    // No polling: every pass after the first is a notification's.
    let settings = RelaySettings { poll_interval: Duration::from_secs(600), ..RelaySettings::default() };
    let relay = Relay::new(area, env.pool.clone(), env.target.clone(), publisher.clone(), settings);
    env.enqueue_order_confirmed().await;
    let shutdown = Shutdown::new();
    let task = tokio::spawn(relay.run(shutdown.clone()));

    // The relay's first pass claims that event and is held in the publisher,
    // while 20 transactions commit, each notifying.
    publisher.entered.notified().await;
    for _ in 0..20 {
        env.enqueue_order_confirmed().await;
    }
    publisher.release.notify_one();
    eventually("21 events published", PATIENCE, || async { (publisher.published() == 21).then_some(()) }).await;
    // A last event, notified after the others: once it is published, every
    // pass the 20 notifications caused has run.
    env.enqueue_order_confirmed().await;
    eventually("22 events published", PATIENCE, || async { (publisher.published() == 22).then_some(()) }).await;
    let empty = relay_passes(area, "none");
    let working = relay_passes(area, "some");
    shutdown.trigger();
    task.await.expect("the relay task does not panic");

    assert_eq!(working, 3.0, "the held event, the 20 together, the last one");
    // One per notification would be 19 passes finding nothing; a
    // notification still on its way when the drain looked may cost one.
    assert!(empty <= 1.0, "{empty} passes found nothing");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_notified_within_the_least_gap_are_relayed_together_and_a_lone_one_at_once() {
    let env = Env::without_topology().await;
    let (area, publisher) = (own_area("gap"), Arc::new(Gated::open()));
    let min_gap = Duration::from_millis(400);
    // No polling: every pass after the first is a notification's.
    let settings = RelaySettings { poll_interval: Duration::from_secs(600), min_gap, ..RelaySettings::default() };
    let relay = Relay::new(area, env.pool.clone(), env.target.clone(), publisher.clone(), settings);
    let shutdown = Shutdown::new();
    let task = tokio::spawn(relay.run(shutdown.clone()));
    // The relay's first pass (finding nothing), then a quiet moment as long
    // as the gap: the situation under test, not a wait for another task.
    eventually("the relay's first pass", PATIENCE, || async { (relay_passes(area, "none") >= 1.0).then_some(()) })
        .await;
    tokio::time::sleep(min_gap).await;

    // A lone commit is relayed without waiting for the gap...
    env.enqueue_order_confirmed().await;
    let committed = std::time::Instant::now();
    eventually("the lone event published", PATIENCE, || async { (publisher.published() == 1).then_some(()) }).await;
    let lone_delay = publisher.last_call().expect("published") - committed;

    // ...and twenty commits, one every 20 ms, share a few passes (the
    // first of them may wait for the lone commit's gap: the bound holds).
    let burst = std::time::Instant::now();
    for _ in 0..20 {
        env.enqueue_order_confirmed().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let span = burst.elapsed();
    eventually("21 events published", PATIENCE, || async { (publisher.published() == 21).then_some(()) }).await;
    shutdown.trigger();
    task.await.expect("the relay task does not panic");

    assert!(lone_delay < min_gap, "a commit after a quiet moment waited {lone_delay:?}, the gap is {min_gap:?}");
    let calls = publisher.calls() - 1;
    // One pass as the burst began, then at most one per gap it lasted, and
    // one for the commits of its last gap. A pass per notification is 20.
    let bound = 2 + (span.as_millis() / min_gap.as_millis()) as usize;
    assert!(
        calls <= bound,
        "{calls} passes published the burst of {span:?}; at most {bound} with a gap of {min_gap:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_wakes_on_its_own_processs_commits_and_takes_another_replicas_rows_with_them() {
    let env = Env::without_topology().await;
    let (area, publisher) = (own_area("channel"), Arc::new(Gated::open()));
    // No polling: a pass after the first is a notification's.
    let settings = RelaySettings { poll_interval: Duration::from_secs(600), ..RelaySettings::default() };
    let relay = Relay::new(area, env.pool.clone(), env.target.clone(), publisher.clone(), settings);
    let shutdown = Shutdown::new();
    let task = tokio::spawn(relay.run(shutdown.clone()));
    // It listens before its first pass.
    eventually("the relay's first pass", PATIENCE, || async { (relay_passes(area, "none") >= 1.0).then_some(()) })
        .await;

    // Another replica of the service commits five events and notifies its
    // own relay on its own channel, as `enqueue` does there, and on the
    // schema's channel, where every relay heard every commit before.
    let elsewhere = format!("{}_elsewhere", env.target.notify_channel());
    assert_ne!(elsewhere, outbox::notify_channel(&env.target));
    for _ in 0..5 {
        let mut tx = env.pool.begin().await.expect("begin");
        sqlx::query("INSERT INTO outbox (event_id, event_type, body, trace_context) VALUES ($1, $2, $3, '{}')")
            .bind(Uuid::new_v4())
            .bind("order.confirmed")
            .bind(Envelope::new(order_confirmed()).to_json().expect("json"))
            .execute(&mut *tx)
            .await
            .expect("insert");
        for channel in [&elsewhere, &env.target.notify_channel()] {
            sqlx::query("SELECT pg_notify($1, '')").bind(channel).execute(&mut *tx).await.expect("notify");
        }
        tx.commit().await.expect("commit");
    }
    // Were it listening there, one of them would start a pass within the
    // gap (50 ms), and the pass would publish all five: watch for far longer.
    holds_for("another replica's notifications woke this relay", Duration::from_secs(1), || async {
        publisher.published() == 0
    })
    .await;

    // This process's own commit wakes it, and its pass claims all six.
    env.enqueue_order_confirmed().await;
    eventually("six events published", PATIENCE, || async { (publisher.published() == 6).then_some(()) }).await;
    shutdown.trigger();
    task.await.expect("the relay task does not panic");

    assert_eq!(publisher.calls(), 1, "one pass took the other replica's rows with its own");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_applies_each_event_once_even_when_it_is_delivered_twice() {
    let env = Env::start().await;
    env.create_effects_table().await;
    let event = env.enqueue_order_confirmed().await;
    assert_eq!(env.relay().relay_once().await.expect("relay"), 1);
    // The relay died after the confirm but before marking the row: it goes out again.
    let again = OutboxMessage {
        event_id: event.event_id,
        event_type: event.event_type.clone(),
        body: serde_json::to_vec(&event.to_json().expect("envelope JSON")).expect("bytes"),
        trace_context: HashMap::new(),
        attempts: 0,
    };
    let results = AmqpPublisher::new(env.amqp.clone(), &env.topology).publish(&[again]).await;
    assert!(results.iter().all(|d| matches!(d, Delivery::Done)), "{results:?}");

    let handler = Arc::new(Scripted::new(env.pool.clone()));
    let consumer = env.consume(handler.clone(), ConsumerSettings::default());
    let queue = env.user_queue();
    eventually("both deliveries handled and the queue empty", PATIENCE, || async {
        let handled = handler.completed.load(Ordering::SeqCst) == 2;
        (handled && env.depth(&queue).await == Some(0) && env.processed(event.event_id).await).then_some(())
    })
    .await;
    consumer.stop().await;

    assert_eq!(env.effects().await, vec![event.event_id]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_consumer_cannot_decode_is_dead_lettered() {
    let env = Env::start().await;
    let ch = env.amqp.channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default()).await.expect("confirm mode");
    let confirm = ch
        .basic_publish(
            env.topology.exchange().into(),
            "order.confirmed".into(),
            BasicPublishOptions { mandatory: true, ..Default::default() },
            b"not json",
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    assert!(confirm.await.expect("confirm").is_ack());

    let handler = Arc::new(Scripted::new(env.pool.clone()));
    let consumer = env.consume(handler.clone(), ConsumerSettings::default());
    let dlq = env.user_dead_letter_queue();
    eventually("the message in the dead-letter queue", PATIENCE, || async {
        env.depth(&dlq).await.filter(|n| *n == 1)
    })
    .await;
    consumer.stop().await;

    assert_eq!(handler.completed.load(Ordering::SeqCst) + handler.tries_total(), 0, "never reaches the handler");
    assert_eq!(env.depth(&env.user_queue()).await, Some(0));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanently_failing_event_is_dead_lettered_after_a_few_tries_and_a_transient_one_is_retried_until_it_succeeds()
 {
    let env = Env::start().await;
    env.create_effects_table().await;
    let doomed = env.enqueue_order_confirmed().await.event_id;
    let flaky = env.enqueue_order_confirmed().await.event_id;
    assert_eq!(env.relay().relay_once().await.expect("relay"), 2);

    let handler =
        Arc::new(Scripted { permanent: Some(doomed), transient: Some((flaky, 2)), ..Scripted::new(env.pool.clone()) });
    let settings = ConsumerSettings {
        concurrency: 4,
        policy: DeliveryPolicy { permanent_attempts: 3, max_backoff: Duration::from_millis(20) },
    };
    let consumer = env.consume(handler.clone(), settings.clone());
    let dlq = env.user_dead_letter_queue();
    eventually("the flaky event applied and the doomed one dead-lettered", PATIENCE, || async {
        let applied = env.effects().await == vec![flaky];
        (applied && env.depth(&dlq).await == Some(1)).then_some(())
    })
    .await;
    consumer.stop().await;

    assert_eq!(handler.tries(doomed), settings.policy.permanent_attempts);
    assert_eq!(handler.tries(flaky), 3, "two transient failures, then success");
    let parked = env.get(&dlq).await.expect("the dead letter");
    let parked: Value = serde_json::from_slice(&parked.data).expect("JSON");
    assert_eq!(parked["event_id"], doomed.to_string());
    assert_eq!(env.depth(&env.user_queue()).await, Some(0));
    env.stop().await;
}

#[tokio::test]
async fn delivered_in_process_an_event_follows_the_same_rules_with_the_outbox_as_its_retry_queue() {
    let env = Env::without_topology().await;
    env.create_effects_table().await;
    let doomed = env.enqueue_order_confirmed().await.event_id;
    let flaky = env.enqueue_order_confirmed().await.event_id;
    let handler =
        Arc::new(Scripted { permanent: Some(doomed), transient: Some((flaky, 2)), ..Scripted::new(env.pool.clone()) });
    let mut publisher = InProcessPublisher::default();
    publisher.subscribe(&USER_ORDER_EVENTS, handler.clone());
    let relay = env.relay_through(Arc::new(publisher));

    // Three passes (each due at once): two transient failures, then success;
    // the permanent failure is dead-lettered on its third try, not before.
    for pass in 1..=3 {
        relay.relay_once().await.expect("relay");
        let row = env.outbox_row(doomed).await;
        assert_eq!(row.published, pass == 3, "pass {pass}: {row:?}");
        env.retry_now().await;
    }
    assert_eq!(env.effects().await, vec![flaky], "applied once, after two transient failures");
    assert_eq!((handler.tries(doomed), handler.tries(flaky)), (3, 3));
    let dead = env.outbox_row(doomed).await;
    assert!(dead.last_error.as_deref().is_some_and(|e| e.starts_with(outbox::DEAD_LETTERED)), "{dead:?}");
    assert_eq!(dead.attempts, 2, "two retries were scheduled before it was given up");
    assert!(env.outbox_row(flaky).await.published);
    // Nothing is tried again: dead letters and applied events are done.
    relay.relay_once().await.expect("relay");
    assert_eq!(handler.tries_total(), 6);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_in_process_the_events_of_one_pass_are_applied_concurrently_each_result_on_its_own_row() {
    let env = Env::without_topology().await;
    const EVENTS: usize = 4;
    let mut events = Vec::new();
    for _ in 0..EVENTS {
        events.push(env.enqueue_order_confirmed().await.event_id);
    }
    // Each call waits until all four have started (applied one at a time,
    // the first would wait alone until its patience ran out); then the
    // first event fails, after the other three have succeeded: it finishes
    // last, and only its row may show it.
    let doomed = events[0];
    let handler = Arc::new(Gathering {
        barrier: tokio::sync::Barrier::new(EVENTS),
        timeouts: AtomicUsize::new(0),
        fails: doomed,
        succeeded: tokio::sync::watch::Sender::new(0),
        barrier_size: EVENTS,
    });
    let mut publisher = InProcessPublisher::default();
    publisher.subscribe(&USER_ORDER_EVENTS, handler.clone());

    let published = env.relay_through(Arc::new(publisher)).relay_once().await.expect("relay");
    assert_eq!(handler.timeouts.load(Ordering::SeqCst), 0, "every call met the other three");
    assert_eq!(published, EVENTS - 1, "one pass applied every event but the failing one");
    for id in &events {
        let row = env.outbox_row(*id).await;
        if *id == doomed {
            assert!(!row.published && row.attempts == 1 && row.last_error.is_some(), "{row:?}");
        } else {
            assert!(row.published && row.attempts == 0, "{row:?}");
        }
    }
    env.stop().await;
}

// ---------------------------------------------------------------------------
// Support
// ---------------------------------------------------------------------------

/// One test's database and broker namespace.
struct Env {
    db: TestDb,
    target: DbTarget,
    pool: PgPool,
    topology: Topology,
    /// The broker connection the test's relay, consumer and probes use.
    amqp: Arc<Amqp>,
}

impl Env {
    /// A migrated database and a namespace with the whole topology declared.
    async fn start() -> Self {
        let env = Self::without_topology().await;
        amqp::declare_topology(&env.amqp, &env.topology).await.expect("declare the topology");
        env
    }

    /// A migrated database and a namespace in which nothing is declared yet.
    async fn without_topology() -> Self {
        let db = TestDb::create("platform").await;
        let target = DbTarget::new(Secret::new(db.url.clone()), None);
        // The platform's own tables only: no area migrations.
        db::migrate(&target, &sqlx::migrate::Migrator::with_migrations(Vec::new())).await.expect("migrate");
        let pool = db::pool(&target, "outbox-test", 5).expect("pool");
        let topology = Topology::new(unique_name("t"));
        let amqp = Amqp::new(Secret::new(amqp_url()), "outbox-test");
        Self { db, target, pool, topology, amqp }
    }

    fn relay(&self) -> Relay {
        self.relay_through(Arc::new(AmqpPublisher::new(self.amqp.clone(), &self.topology)))
    }

    fn relay_through(&self, publisher: Arc<dyn Publisher>) -> Relay {
        Relay::new("test", self.pool.clone(), self.target.clone(), publisher, RelaySettings::default())
    }

    /// Commits one `order.confirmed` event to the outbox.
    async fn enqueue_order_confirmed(&self) -> Envelope<OrderConfirmed> {
        let event = Envelope::new(order_confirmed());
        let mut tx = self.pool.begin().await.expect("begin");
        outbox::enqueue(&mut tx, &self.target, &event).await.expect("enqueue");
        tx.commit().await.expect("commit");
        event
    }

    /// Makes every waiting outbox row due now instead of after its backoff.
    async fn retry_now(&self) {
        sqlx::query("UPDATE outbox SET next_attempt_at = now()").execute(&self.pool).await.expect("reschedule");
    }

    async fn outbox_row(&self, event_id: Uuid) -> OutboxRow {
        sqlx::query_as(
            "SELECT attempts, last_error, published_at IS NOT NULL AS published FROM outbox WHERE event_id = $1",
        )
        .bind(event_id)
        .fetch_one(&self.pool)
        .await
        .expect("the outbox row")
    }

    /// The consumer queue `order.confirmed` is routed to.
    fn user_queue(&self) -> String {
        self.topology.queue_of("user").expect("the user area consumes").name
    }

    fn user_dead_letter_queue(&self) -> String {
        self.topology.queue_of("user").expect("the user area consumes").dead_letter_queue()
    }

    /// Messages ready in `queue`; `None` if it cannot be read.
    async fn depth(&self, queue: &str) -> Option<u32> {
        // A passive declare of a missing queue closes the channel: use a throwaway one.
        let ch = self.amqp.channel().await.ok()?;
        let depth =
            ch.queue_declare(queue.into(), QueueDeclareOptions::default().passive(), FieldTable::default()).await;
        let _ = ch.close(200, "probed".into()).await;
        depth.ok().map(|q| q.message_count())
    }

    /// Takes one message off `queue`.
    async fn get(&self, queue: &str) -> Option<lapin::message::Delivery> {
        let ch = self.amqp.channel().await.expect("channel");
        let message = ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.expect("basic.get");
        let _ = ch.close(200, "got".into()).await;
        message.map(|m| m.delivery)
    }

    async fn create_effects_table(&self) {
        sqlx::query("CREATE TABLE effects (event_id uuid NOT NULL)").execute(&self.pool).await.expect("effects table");
    }

    async fn effects(&self) -> Vec<Uuid> {
        sqlx::query_scalar("SELECT event_id FROM effects ORDER BY event_id")
            .fetch_all(&self.pool)
            .await
            .expect("effects")
    }

    async fn processed(&self, event_id: Uuid) -> bool {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM processed_events WHERE event_id = $1)")
            .bind(event_id)
            .fetch_one(&self.pool)
            .await
            .expect("processed_events")
    }

    /// Runs [`amqp::consume`] on the user queue until [`Consumer::stop`].
    fn consume(&self, handler: Arc<dyn EventHandler>, settings: ConsumerSettings) -> Consumer {
        let shutdown = Shutdown::new();
        let task =
            shutdown.spawn(amqp::consume(self.amqp.clone(), self.user_queue(), handler, settings, shutdown.clone()));
        Consumer { shutdown, task }
    }

    /// Deletes the namespace and the database.
    async fn stop(self) {
        self.pool.close().await;
        self.amqp.close().await;
        let queues: Vec<String> =
            self.topology.queues().iter().flat_map(|q| [q.name.clone(), q.dead_letter_queue()]).collect();
        let exchanges = [self.topology.exchange(), self.topology.dead_letter_exchange()];
        delete_namespace(&self.topology.namespace, &queues, &exchanges).await;
        self.db.drop_database().await;
    }
}

#[derive(Debug, sqlx::FromRow)]
struct OutboxRow {
    attempts: i32,
    last_error: Option<String>,
    published: bool,
}

/// A running consumer task.
struct Consumer {
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Consumer {
    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("the consumer task does not panic");
    }
}

/// Holds the first batch until released (unless open); counts what it
/// publishes.
#[derive(Default)]
struct Gated {
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
    open: bool,
    calls: AtomicUsize,
    published: AtomicUsize,
    /// When the last batch was handed over.
    last_call: Mutex<Option<std::time::Instant>>,
}

impl Gated {
    /// Holds nothing.
    fn open() -> Self {
        Self { open: true, ..Self::default() }
    }

    fn published(&self) -> usize {
        self.published.load(Ordering::SeqCst)
    }

    fn last_call(&self) -> Option<std::time::Instant> {
        *self.last_call.lock().expect("lock")
    }

    /// Batches published (passes that claimed something).
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Publisher for Gated {
    async fn publish(&self, batch: &[OutboxMessage]) -> Vec<Delivery> {
        *self.last_call.lock().expect("lock") = Some(std::time::Instant::now());
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 && !self.open {
            self.entered.notify_one();
            self.release.notified().await;
        }
        self.published.fetch_add(batch.len(), Ordering::SeqCst);
        batch.iter().map(|_| Delivery::Done).collect()
    }
}

/// A relay's area label of its own, so that the recorder all the tests of
/// this binary share (`cargo test`) counts that relay's passes only.
fn own_area(prefix: &str) -> &'static str {
    twinshop_platform::metrics::init();
    Box::leak(unique_name(prefix).into_boxed_str())
}

/// `outbox_relay_passes_total{area, claimed}` from this process's recorder.
fn relay_passes(area: &str, claimed: &str) -> f64 {
    let series = format!("outbox_relay_passes_total{{area=\"{area}\",claimed=\"{claimed}\"}} ");
    twinshop_platform::metrics::render()
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0.0, |n| n.trim().parse().expect("a number"))
}

/// A handler whose calls each wait for all the others of a batch to start
/// (for at most [`PATIENCE`]; a call that waited in vain fails transiently);
/// then the call for `fails` waits for all the others to succeed and fails
/// permanently.
struct Gathering {
    barrier: tokio::sync::Barrier,
    timeouts: AtomicUsize,
    fails: Uuid,
    /// Calls that succeeded so far.
    succeeded: tokio::sync::watch::Sender<usize>,
    /// Calls in the batch.
    barrier_size: usize,
}

#[async_trait::async_trait]
impl EventHandler for Gathering {
    fn consumer(&self) -> &'static str {
        "gathering"
    }

    async fn handle(&self, event: Envelope<Value>) -> Result<(), HandleError> {
        if tokio::time::timeout(PATIENCE, self.barrier.wait()).await.is_err() {
            self.timeouts.fetch_add(1, Ordering::SeqCst);
            return Err(HandleError::Transient(anyhow::anyhow!("the other calls never came")));
        }
        if event.event_id != self.fails {
            self.succeeded.send_modify(|n| *n += 1);
            return Ok(());
        }
        let others = self.barrier_size - 1;
        let mut succeeded = self.succeeded.subscribe();
        if tokio::time::timeout(PATIENCE, succeeded.wait_for(|n| *n >= others)).await.is_err() {
            self.timeouts.fetch_add(1, Ordering::SeqCst);
        }
        Err(HandleError::Permanent(anyhow::anyhow!("this event can never be applied")))
    }
}

/// A handler that applies an effect once per event (through the inbox) and
/// can be told to fail for chosen events.
struct Scripted {
    pool: PgPool,
    /// Always fails permanently for this event.
    permanent: Option<Uuid>,
    /// Fails transiently this many times for this event, then succeeds.
    transient: Option<(Uuid, u32)>,
    /// Calls per event id.
    tries: Mutex<HashMap<Uuid, u32>>,
    /// Calls that returned `Ok` (their transaction committed).
    completed: AtomicUsize,
}

impl Scripted {
    fn new(pool: PgPool) -> Self {
        Self { pool, permanent: None, transient: None, tries: Mutex::default(), completed: AtomicUsize::new(0) }
    }

    fn tries(&self, event_id: Uuid) -> u32 {
        self.tries.lock().expect("lock").get(&event_id).copied().unwrap_or(0)
    }

    fn tries_total(&self) -> usize {
        self.tries.lock().expect("lock").values().map(|n| *n as usize).sum()
    }
}

#[async_trait::async_trait]
impl EventHandler for Scripted {
    fn consumer(&self) -> &'static str {
        "test"
    }

    async fn handle(&self, event: Envelope<Value>) -> Result<(), HandleError> {
        let attempt = {
            let mut tries = self.tries.lock().expect("lock");
            let n = tries.entry(event.event_id).or_default();
            *n += 1;
            *n
        };
        if self.permanent == Some(event.event_id) {
            return Err(HandleError::Permanent(anyhow::anyhow!("this event can never be applied")));
        }
        if let Some((id, failures)) = self.transient
            && id == event.event_id
            && attempt <= failures
        {
            return Err(HandleError::Transient(anyhow::anyhow!("the database blinked")));
        }
        let mut tx = self.pool.begin().await.map_err(HandleError::from_sqlx)?;
        if inbox::claim(&mut tx, self.consumer(), event.event_id).await.map_err(HandleError::from_sqlx)? {
            sqlx::query("INSERT INTO effects (event_id) VALUES ($1)")
                .bind(event.event_id)
                .execute(&mut *tx)
                .await
                .map_err(HandleError::from_sqlx)?;
        }
        tx.commit().await.map_err(HandleError::from_sqlx)?;
        self.completed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Relays until no unpublished row is left; returns how many this relay published.
async fn relay_until_empty(relay: Relay, pool: PgPool, amqp: Arc<Amqp>) -> usize {
    let mut published = 0;
    let drained = tokio::time::timeout(PATIENCE, async {
        loop {
            published += relay.relay_once().await.expect("relay");
            let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .expect("count pending");
            if pending == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    amqp.close().await;
    assert!(drained.is_ok(), "the outbox was not drained within {PATIENCE:?}");
    published
}

/// A subscriber whose spans are OpenTelemetry spans (so they have trace
/// ids), with the W3C propagator installed, as `Telemetry::init` sets up.
fn tracing_with_otel() -> impl tracing::Subscriber + Send + Sync {
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    let provider = twinshop_platform::telemetry::tracer_provider("test", None).expect("tracer provider");
    tracing_subscriber::registry().with(twinshop_platform::telemetry::otel_layer(provider.tracer("test")))
}

/// An event no queue is bound to: always returned as unroutable.
#[derive(serde::Serialize, serde::Deserialize)]
struct Unheard {
    n: u32,
}

impl Event for Unheard {
    const TYPE: &'static str = "test.unheard";
}

fn order_confirmed() -> OrderConfirmed {
    OrderConfirmed { order_id: Uuid::now_v7(), user_id: Uuid::now_v7(), total_cents: 450 }
}

fn header(props: &BasicProperties, name: &str) -> Option<String> {
    props.headers().as_ref()?.inner().get(name)?.as_long_string().map(ToString::to_string)
}
