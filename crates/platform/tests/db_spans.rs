//! `db::acquire` puts each unit of work in a `db.tx` span and the wait for
//! a pool connection in its `db.acquire` child, so the trace map can tell
//! queueing for a connection from using one. Against the real Postgres.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sqlx::{Connection as _, postgres::PgPoolOptions};
use tracing::{Subscriber, span};
use tracing_subscriber::{Layer, layer::Context, prelude::*, registry::LookupSpan};
use twinshop_platform::db;

/// `(name, parent's name, how long it was open)` of every closed span.
type Closed = Arc<Mutex<Vec<(String, Option<String>, Duration)>>>;

/// `db.acquire` spans opened so far, and a wake-up each time one opens.
#[derive(Default)]
struct Opened {
    count: std::sync::atomic::AtomicUsize,
    changed: tokio::sync::Notify,
}

struct Recorder(Closed, Arc<Opened>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, _attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if span.name() == "db.acquire" {
                self.1.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // A stored permit: a wake-up before the test waits is not lost.
                self.1.changed.notify_one();
            }
            span.extensions_mut().insert(Instant::now());
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let opened = span.extensions().get::<Instant>().copied();
        let parent = span.parent().map(|p| p.name().to_owned());
        if let (Some(opened), Ok(mut closed)) = (opened, self.0.lock()) {
            closed.push((span.name().to_owned(), parent, opened.elapsed()));
        }
    }
}

#[tokio::test]
async fn a_unit_of_work_shows_how_long_it_waited_for_a_connection() {
    twinshop_testkit::require_backing_services();
    let closed = Closed::default();
    let opened = Arc::new(Opened::default());
    let _guard = tracing_subscriber::registry().with(Recorder(closed.clone(), opened.clone())).set_default();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&twinshop_testkit::admin_database_url())
        .await
        .expect("a pool of one connection");

    let mut holder = db::acquire(&pool, "test.holder").await.expect("the only connection");
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move {
            let mut conn = db::acquire(&pool, "test.waiter").await.expect("the connection, once free");
            let mut tx = conn.begin().await.expect("a transaction on it");
            let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *tx).await.expect("a statement");
            tx.commit().await.expect("commit");
            one
        }
    });
    // The waiter is waiting once its db.acquire span is open (the holder's
    // is the first); then the holder keeps the connection 80 ms more.
    let asked = async {
        while opened.count.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            opened.changed.notified().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), asked).await.expect("the waiter asks for the connection");
    // The hold the waiter's span must show: what this test measures.
    tokio::time::sleep(Duration::from_millis(80)).await;
    let _: i32 = sqlx::query_scalar("SELECT 2").fetch_one(&mut *holder).await.expect("the holder works");
    drop(holder);
    assert_eq!(waiter.await.expect("the waiter"), 1);
    pool.close().await;

    let closed = closed.lock().expect("spans").clone();
    let acquires: Vec<&(String, Option<String>, Duration)> =
        closed.iter().filter(|(name, _, _)| name == "db.acquire").collect();
    assert_eq!(acquires.len(), 2, "{closed:?}");
    assert!(acquires.iter().all(|(_, parent, _)| parent.as_deref() == Some("db.tx")), "{closed:?}");
    let waited = acquires.iter().map(|(_, _, d)| *d).max().expect("two");
    assert!(waited >= Duration::from_millis(70), "the second waited for the first: {waited:?}");
    let units: Vec<Duration> = closed.iter().filter(|(name, _, _)| name == "db.tx").map(|(_, _, d)| *d).collect();
    assert_eq!(units.len(), 2);
    assert!(units.iter().all(|d| *d >= Duration::from_millis(70)), "each unit spans its wait or its use: {units:?}");
}
