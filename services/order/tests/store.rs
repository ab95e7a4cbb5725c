//! Adapter tests: the Postgres order store against a real database. Every
//! statement of the store runs here, and the races the conditional writes
//! exist for: two settlements of one order, the sweeper against a request,
//! two sweeper replicas, and two retries taking over one abandoned key.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};
use sqlx::{PgPool, migrate::Migrator};
use time::OffsetDateTime;
use twinshop_contracts::events::{Envelope, OrderConfirmed};
use twinshop_order::{
    app::{CreateError, OrderRepository, Placement, Transition, Written},
    domain::{ChargeOutcome, Order, OrderLine, OrderStatus, ShipTo, ShippingAddress, VoidStatus},
    store::{MIGRATOR, PgOrderRepository},
};
use twinshop_platform::{
    config::Secret,
    db::{self, DbTarget},
    idempotency::{Held, IdempotencyKey, Repeat},
    pagination::PageRequest,
};
use twinshop_testkit::TestDb;
use uuid::Uuid;

struct Store {
    repo: PgOrderRepository,
    pool: PgPool,
    db: TestDb,
}

async fn store() -> Store {
    let db = TestDb::create("orderstore").await;
    let target = DbTarget::new(Secret::new(db.url.clone()), None);
    db::migrate(&target, &MIGRATOR).await.expect("migrate");
    let pool = db::pool(&target, "test", 8).expect("pool");
    Store { repo: PgOrderRepository::new(pool.clone(), target), pool, db }
}

/// Now, to the microsecond, moved by `offset` seconds.
fn at(offset: i64) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc() + time::Duration::seconds(offset);
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000).expect("micros")
}

fn pending(user_id: Uuid, age_secs: i64) -> Order {
    Order {
        id: Uuid::now_v7(),
        user_id,
        status: OrderStatus::Pending,
        items: vec![OrderLine {
            product_id: "sku-tea".into(),
            name: "Green tea, 100 g".into(),
            unit_price_cents: 650,
            quantity: 2,
        }],
        total_cents: 1300,
        ship_to: ShipTo {
            name: "Ada".into(),
            address: ShippingAddress {
                line1: "1 Main St".into(),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            },
        },
        rejection_reason: None,
        refund_status: None,
        void_status: None,
        created_at: at(-age_secs),
        updated_at: at(-age_secs),
    }
}

fn key(raw: &str) -> IdempotencyKey {
    IdempotencyKey::parse(raw).expect("key")
}

fn confirmed_event(order: &Order) -> Envelope<Value> {
    Envelope::new(OrderConfirmed { order_id: order.id, user_id: order.user_id, total_cents: order.total_cents })
        .erase()
        .expect("json")
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

#[tokio::test]
async fn an_order_reads_back_equal_only_for_its_user_and_lists_newest_first_in_pages() {
    let s = store().await;
    let user = Uuid::now_v7();
    let mut placed = Vec::new();
    for age in [30, 20, 10] {
        let order = pending(user, age);
        s.repo.create(&order, None, Duration::from_secs(10)).await.expect("create");
        placed.push(order);
    }
    s.repo.create(&pending(Uuid::now_v7(), 5), None, Duration::from_secs(10)).await.expect("another user's");
    assert_eq!(s.repo.find(user, placed[0].id).await.expect("find"), Some(placed[0].clone()));
    assert_eq!(s.repo.find(Uuid::now_v7(), placed[0].id).await.expect("find"), None, "another user's order");

    let first = s.repo.list(user, PageRequest { limit: 2, after: None }).await.expect("list");
    assert_eq!(first.items.iter().map(|o| o.id).collect::<Vec<_>>(), vec![placed[2].id, placed[1].id]);
    let rest = s.repo.list(user, PageRequest { limit: 2, after: first.next }).await.expect("list");
    assert_eq!(rest.items.iter().map(|o| o.id).collect::<Vec<_>>(), vec![placed[0].id]);
    assert!(rest.next.is_none());
    assert_eq!(s.repo.catalog().await.expect("catalog").len(), 8, "the seeded catalog");
    s.db.drop_database().await;
}

#[tokio::test]
async fn a_transition_writes_the_state_its_event_and_its_answer_in_one_go() {
    let s = store().await;
    let order = pending(Uuid::now_v7(), 0);
    let k = key("place-1");
    let body = json!({"items": [{"product_id": "sku-tea", "quantity": 2}]});
    s.repo.create(&order, Some((&k, &body)), Duration::from_secs(10)).await.expect("create");
    let next = order.settle(ChargeOutcome::Charged, at(0)).expect("pending");
    let answer = Placement::of(&next);
    let held = Held { key: k.clone(), generation: 1 };
    let t = Transition {
        from: OrderStatus::Pending,
        next: &next,
        event: Some(confirmed_event(&next)),
        answer: Some((&held, &answer)),
    };
    assert_eq!(s.repo.transition(t).await.expect("transition"), Written::Applied);

    assert_eq!(s.repo.find(order.user_id, order.id).await.expect("find"), Some(next.clone()));
    assert_eq!(count(&s.pool, "SELECT count(*) FROM outbox WHERE event_type = 'order.confirmed'").await, 1);
    let found = s.repo.find_key(order.user_id, &k).await.expect("find key").expect("the key");
    assert_eq!(found.resource_id, Some(order.id));
    assert_eq!(found.repeat(&body), Repeat::Replay(Placement::Created { order: next }));
    s.db.drop_database().await;
}

#[tokio::test]
async fn of_two_settlements_of_one_order_exactly_one_is_written_and_the_other_reads_it() {
    let s = store().await;
    let order = pending(Uuid::now_v7(), 0);
    s.repo.create(&order, None, Duration::from_secs(10)).await.expect("create");
    let confirmed = order.settle(ChargeOutcome::Charged, at(0)).expect("pending");
    let failed = order.fail(at(0)).expect("pending");
    let results = join_all((0..8).map(|i| {
        let (repo, next) = (s.repo.clone(), if i % 2 == 0 { confirmed.clone() } else { failed.clone() });
        async move {
            let event = (next.status == OrderStatus::Confirmed).then(|| confirmed_event(&next));
            repo.transition(Transition { from: OrderStatus::Pending, next: &next, event, answer: None }).await
        }
    }))
    .await;
    let results: Vec<Written> = results.into_iter().map(|r| r.expect("transition")).collect();
    assert_eq!(results.iter().filter(|r| **r == Written::Applied).count(), 1, "exactly one settlement is written");
    let stored = s.repo.find(order.user_id, order.id).await.expect("find").expect("order");
    assert!(stored == confirmed || stored == failed);
    for written in results {
        if let Written::Lost(current) = written {
            assert_eq!(*current, stored, "every loser reads the winner's order");
        }
    }
    let events = count(&s.pool, "SELECT count(*) FROM outbox").await;
    assert_eq!(events, i64::from(stored.status == OrderStatus::Confirmed), "an event only for the written one");
    s.db.drop_database().await;
}

#[tokio::test]
async fn the_sweeper_claims_a_stale_pending_order_once_and_a_request_settling_it_first_wins() {
    let s = store().await;
    let stale = pending(Uuid::now_v7(), 60);
    let fresh = pending(Uuid::now_v7(), 0);
    for o in [&stale, &fresh] {
        s.repo.create(o, None, Duration::from_secs(10)).await.expect("create");
    }
    // Two sweeper replicas at once: the stale order goes to one of them.
    let (a, b) = tokio::join!(
        s.repo.claim_stale_pending(Duration::from_secs(5), 20),
        s.repo.claim_stale_pending(Duration::from_secs(5), 20)
    );
    let claimed: Vec<Uuid> = a.expect("claim").into_iter().chain(b.expect("claim")).map(|o| o.id).collect();
    assert_eq!(claimed, vec![stale.id], "claimed once, and never the fresh one");
    assert!(
        s.repo.claim_stale_pending(Duration::from_secs(5), 20).await.expect("claim").is_empty(),
        "its clock was reset"
    );

    // The request that placed it settles first; the sweeper's settlement loses.
    let by_request = stale.settle(ChargeOutcome::Charged, at(0)).expect("pending");
    let t = Transition { from: OrderStatus::Pending, next: &by_request, event: None, answer: None };
    assert_eq!(s.repo.transition(t).await.expect("request"), Written::Applied);
    let by_sweeper = stale.settle(ChargeOutcome::InsufficientFunds, at(0)).expect("pending");
    let t = Transition { from: OrderStatus::Pending, next: &by_sweeper, event: None, answer: None };
    assert_eq!(s.repo.transition(t).await.expect("sweeper"), Written::Lost(Box::new(by_request)));
    s.db.drop_database().await;
}

#[tokio::test]
async fn an_owed_void_is_claimed_until_it_is_done() {
    let s = store().await;
    let order = pending(Uuid::now_v7(), 0);
    s.repo.create(&order, None, Duration::from_secs(10)).await.expect("create");
    let failed = order.fail(at(-30)).expect("pending");
    let t = Transition { from: OrderStatus::Pending, next: &failed, event: None, answer: None };
    s.repo.transition(t).await.expect("fail");
    assert_eq!(failed.void_status, Some(VoidStatus::Owed));
    assert_eq!(s.repo.claim_owed_voids(Duration::from_secs(1), 20).await.expect("claim"), vec![order.id]);
    assert!(s.repo.claim_owed_voids(Duration::from_secs(1), 20).await.expect("claim").is_empty(), "claimed");
    sqlx::query("UPDATE orders SET updated_at = now() - interval '1 minute'").execute(&s.pool).await.expect("age");
    assert_eq!(s.repo.claim_owed_voids(Duration::from_secs(1), 20).await.expect("claim"), vec![order.id], "again");
    s.repo.void_done(order.id).await.expect("done");
    sqlx::query("UPDATE orders SET updated_at = now() - interval '1 minute'").execute(&s.pool).await.expect("age");
    assert!(s.repo.claim_owed_voids(Duration::from_secs(1), 20).await.expect("claim").is_empty(), "done is done");
    let stored = s.repo.find(order.user_id, order.id).await.expect("find").expect("order");
    assert_eq!(stored.void_status, Some(VoidStatus::Done));
    s.db.drop_database().await;
}

#[tokio::test]
async fn a_refund_event_marks_a_cancelled_order_once_and_nothing_else() {
    let s = store().await;
    let order = pending(Uuid::now_v7(), 0);
    s.repo.create(&order, None, Duration::from_secs(10)).await.expect("create");
    let confirmed = order.settle(ChargeOutcome::Charged, at(0)).expect("pending");
    s.repo
        .transition(Transition { from: OrderStatus::Pending, next: &confirmed, event: None, answer: None })
        .await
        .expect("confirm");
    let event = Uuid::now_v7();
    // Before the cancellation is written, the event changes nothing.
    s.repo.mark_refunded("order.payment-refunded", Uuid::now_v7(), order.id).await.expect("early");
    assert_eq!(s.repo.find(order.user_id, order.id).await.expect("find"), Some(confirmed.clone()));

    let cancelled = confirmed.cancel(at(0)).expect("cancellable").expect("now");
    s.repo
        .transition(Transition { from: OrderStatus::Confirmed, next: &cancelled, event: None, answer: None })
        .await
        .expect("cancel");
    for _ in 0..2 {
        s.repo.mark_refunded("order.payment-refunded", event, order.id).await.expect("refunded");
    }
    let stored = s.repo.find(order.user_id, order.id).await.expect("find").expect("order");
    assert_eq!(stored.refund_status, Some(twinshop_order::domain::RefundStatus::Refunded));
    assert_eq!(count(&s.pool, "SELECT count(*) FROM processed_events").await, 2, "each event recorded once");
    s.db.drop_database().await;
}

#[tokio::test]
async fn a_key_taken_by_a_concurrent_request_is_refused_and_an_abandoned_one_is_taken_over_by_exactly_one_retry() {
    let s = store().await;
    let user = Uuid::now_v7();
    let k = key("abandoned");
    let body = json!({"items": []});
    let first = pending(user, 0);
    s.repo.create(&first, Some((&k, &body)), Duration::ZERO).await.expect("create");
    let second = pending(user, 0);
    assert!(matches!(s.repo.create(&second, Some((&k, &body)), Duration::ZERO).await, Err(CreateError::KeyTaken)));
    assert_eq!(s.repo.find(user, second.id).await.expect("find"), None, "the refused order was not written");

    // Its lease ran out at once: abandoned; two retries race to take it over.
    let found = s.repo.find_key(user, &k).await.expect("find key").expect("key");
    assert_eq!(found.repeat(&body), Repeat::Abandoned { resource_id: Some(first.id) });
    let (a, b) = tokio::join!(
        s.repo.take_over_key(user, &k, Duration::from_secs(10)),
        s.repo.take_over_key(user, &k, Duration::from_secs(10))
    );
    let (a, b) = (a.expect("take over"), b.expect("take over"));
    assert_eq!(u8::from(a.is_some()) + u8::from(b.is_some()), 1, "exactly one takes over");
    let taker = a.or(b).expect("the taker");
    assert_eq!(taker.generation, 2);
    let found = s.repo.find_key(user, &k).await.expect("find key").expect("key");
    assert_eq!((found.generation, found.lease_expired), (2, false));
    assert!(s.repo.take_over_key(user, &k, Duration::from_secs(10)).await.expect("take over").is_none(), "leased now");

    // The first holder lost its hold: it can neither renew nor answer.
    let first_holder = Held { key: k.clone(), generation: 1 };
    assert!(!s.repo.renew_key(user, &first_holder, Duration::from_secs(10)).await.expect("renew"));
    let stale = Placement::of(&first.fail(at(0)).expect("pending"));
    assert!(!s.repo.answer_key(user, &first_holder, &stale).await.expect("fenced"));
    assert!(s.repo.renew_key(user, &taker, Duration::from_secs(10)).await.expect("renew"), "the taker holds it");

    // The first answer is final.
    let answer = Placement::of(&first);
    assert!(s.repo.answer_key(user, &taker, &answer).await.expect("answer"));
    let failed = Placement::of(&first.fail(at(0)).expect("pending"));
    s.repo.answer_key(user, &taker, &failed).await.expect("a second answer");
    let found = s.repo.find_key(user, &k).await.expect("find key").expect("key");
    assert_eq!(found.repeat(&body), Repeat::Replay(answer));
    s.db.drop_database().await;
}

#[tokio::test]
async fn a_paused_holder_whose_key_was_taken_over_writes_nothing_when_it_resumes() {
    let s = store().await;
    let user = Uuid::now_v7();
    let k = key("paused");
    let body = json!({"items": []});
    let order = pending(user, 0);
    s.repo.create(&order, Some((&k, &body)), Duration::ZERO).await.expect("create");
    let paused = Held { key: k.clone(), generation: 1 };
    // While it is paused, a retry takes the key over (generation 2).
    let taker = s.repo.take_over_key(user, &k, Duration::from_secs(10)).await.expect("take over").expect("taken");
    // The paused request resumes and tries to settle with its own outcome:
    // fenced, nothing written, no event.
    let late = order.settle(ChargeOutcome::InsufficientFunds, at(0)).expect("pending");
    let answer = Placement::of(&late);
    let t = Transition {
        from: OrderStatus::Pending,
        next: &late,
        event: Some(confirmed_event(&late)),
        answer: Some((&paused, &answer)),
    };
    assert_eq!(s.repo.transition(t).await.expect("transition"), Written::Fenced);
    assert_eq!(s.repo.find(user, order.id).await.expect("find").map(|o| o.status), Some(OrderStatus::Pending));
    assert_eq!(count(&s.pool, "SELECT count(*) FROM outbox").await, 0);
    // The taker's settlement goes through.
    let next = order.settle(ChargeOutcome::Charged, at(0)).expect("pending");
    let answer = Placement::of(&next);
    let t = Transition {
        from: OrderStatus::Pending,
        next: &next,
        event: Some(confirmed_event(&next)),
        answer: Some((&taker, &answer)),
    };
    assert_eq!(s.repo.transition(t).await.expect("transition"), Written::Applied);
    let found = s.repo.find_key(user, &k).await.expect("find").expect("key");
    assert_eq!(found.repeat(&body), Repeat::Replay(Placement::Created { order: next }));
    s.db.drop_database().await;
}

#[tokio::test]
async fn keys_stored_before_the_platform_idempotency_table_stay_valid_after_the_migration() {
    let db = TestDb::create("ordermigrate").await;
    let target = DbTarget::new(Secret::new(db.url.clone()), None);
    let before: Migrator = Migrator::with_migrations(MIGRATOR.iter().filter(|m| m.version < 3).cloned().collect());
    db::migrate(&target, &before).await.expect("the old migrations");
    let pool = db::pool(&target, "test", 2).expect("pool");
    let (user, order_id) = (Uuid::now_v7(), Uuid::now_v7());
    let snapshot = json!({
        "id": order_id, "status": "confirmed",
        "items": [{"product_id": "sku-tea", "name": "Green tea, 100 g", "unit_price_cents": 650, "quantity": 2}],
        "total_cents": 1300,
        "ship_to": {"name": "Ada", "address": {"line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}},
        "rejection_reason": null, "refund_status": null,
        "created_at": "2026-11-30T10:00:00.123456Z", "updated_at": "2026-11-30T10:00:01Z"
    });
    let request = r#"{"items":[{"product_id":"sku-tea","quantity":2}]}"#;
    for (k, status, body) in [
        ("answered", Some(201), Some(snapshot.clone())),
        ("unavailable", Some(503), Some(snapshot.clone())),
        ("open", None, None),
    ] {
        sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, request, order_id, response_status, response_body, lease_until) \
             VALUES ($1, $2, $3, $4, $5, $6, now() + interval '1 minute')",
        )
        .bind(user)
        .bind(k)
        .bind(request)
        .bind(order_id)
        .bind(status)
        .bind(body)
        .execute(&pool)
        .await
        .expect("an old key");
    }
    db::migrate(&target, &MIGRATOR).await.expect("the new migrations");
    let repo = PgOrderRepository::new(pool, target);
    let fingerprint: Value = serde_json::from_str(request).expect("json");

    let answered = repo.find_key(user, &key("answered")).await.expect("find").expect("kept");
    let Repeat::Replay(Placement::Created { order }) = answered.repeat(&fingerprint) else {
        panic!("a replay of a 201")
    };
    assert_eq!(
        (order.id, order.user_id, order.status, order.total_cents),
        (order_id, user, OrderStatus::Confirmed, 1300)
    );
    assert_eq!(order.created_at.nanosecond(), 123_456_000, "times keep their microseconds");
    let unavailable = repo.find_key(user, &key("unavailable")).await.expect("find").expect("kept");
    assert!(matches!(unavailable.repeat(&fingerprint), Repeat::Replay(Placement::PaymentUnavailable { .. })));
    let open = repo.find_key(user, &key("open")).await.expect("find").expect("kept");
    assert_eq!(open.resource_id, Some(order_id));
    assert_eq!(open.repeat(&fingerprint), Repeat::InUse, "still leased to its request");
    db.drop_database().await;
}
