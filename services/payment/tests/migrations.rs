//! The move of top-up keys to the platform's idempotency table: keys
//! stored before it stay valid.

use serde_json::json;
use sqlx::migrate::Migrator;
use twinshop_payment::{
    app::{PaymentRepository, TopUp, TopUpRequest, TopUpWrite},
    domain::Amount,
    store::{MIGRATOR, PgPaymentRepository},
};
use twinshop_platform::{
    config::Secret,
    db::{self, DbTarget},
    idempotency::{IdempotencyKey, Repeat},
};
use twinshop_testkit::TestDb;
use uuid::Uuid;

#[tokio::test]
async fn a_top_up_key_stored_before_the_move_replays_its_answer_and_refuses_another_body() {
    let db = TestDb::create("paymigrate").await;
    let target = DbTarget::new(Secret::new(db.url.clone()), None);
    let before = Migrator::with_migrations(MIGRATOR.iter().filter(|m| m.version < 3).cloned().collect());
    db::migrate(&target, &before).await.expect("the old migrations");
    let pool = db::pool(&target, "test", 2).expect("pool");
    let (user, id) = (Uuid::now_v7(), Uuid::now_v7());
    sqlx::query(
        "INSERT INTO top_ups (id, user_id, idempotency_key, request, amount_cents, balance_after) \
         VALUES ($1, $2, 'old-key', '{\"amount_cents\":500}', 500, 1500)",
    )
    .bind(id)
    .bind(user)
    .execute(&pool)
    .await
    .expect("an old top-up with its key");
    db::migrate(&target, &MIGRATOR).await.expect("the new migrations");

    let repo = PgPaymentRepository::new(pool, target);
    let request = |body| TopUpRequest {
        user_id: user,
        amount: Amount::top_up(500).expect("amount"),
        key: Some(IdempotencyKey::parse("old-key").expect("key")),
        fingerprint: body,
    };
    let replay = repo.top_up(&request(json!({"amount_cents": 500}))).await.expect("top-up");
    let expected = TopUp { id, amount_cents: 500, balance_cents: 1500 };
    assert_eq!(replay, TopUpWrite::Repeated(Repeat::Replay(expected)));
    let reused = repo.top_up(&request(json!({"amount_cents": 700}))).await.expect("top-up");
    assert_eq!(reused, TopUpWrite::Repeated(Repeat::Reused));
    db.drop_database().await;
}
