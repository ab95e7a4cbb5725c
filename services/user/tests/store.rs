//! Adapter tests: the Postgres user repository against a real database.

use twinshop_contracts::events::{Envelope, UserRegistered};
use twinshop_platform::{
    config::Secret,
    db::{self, DbTarget},
};
use twinshop_testkit::TestDb;
use twinshop_user::{
    app::{
        ProfileChanges,
        ports::{InsertUserError, UserRepository},
    },
    domain::{Address, Email, User, UserId, UserName},
    store::{MIGRATOR, PgUserRepository},
};

async fn repo() -> (PgUserRepository, TestDb) {
    let test_db = TestDb::create("userstore").await;
    let target = DbTarget::new(Secret::new(test_db.url.clone()), None);
    db::migrate(&target, &MIGRATOR).await.expect("migrate");
    let pool = db::pool(&target, "test", 5).expect("pool");
    (PgUserRepository::new(pool, target), test_db)
}

fn user(email: &str) -> User {
    let now = time::OffsetDateTime::now_utc();
    User {
        id: UserId::new(),
        email: Email::parse(email).expect("email"),
        name: UserName::parse("Test User").expect("name"),
        address: Some(Address::parse("address", "1 Main St", "Berlin", "10115", "DE").expect("address")),
        created_at: now.replace_nanosecond(now.nanosecond() / 1000 * 1000).expect("micros"),
    }
}

fn event(u: &User) -> Envelope<UserRegistered> {
    Envelope::new(UserRegistered { user_id: u.id.as_uuid(), name: u.name.as_str().to_owned() })
}

#[tokio::test]
async fn a_stored_user_reads_back_equal_and_its_credentials_are_found_in_any_letter_case() {
    let (repo, db) = repo().await;
    let u = user("Round.Trip@Example.com");
    repo.insert(&u, "$argon2id$fake", &event(&u)).await.expect("insert");
    assert_eq!(repo.find(u.id).await.expect("find"), Some(u.clone()));
    let (id, hash) =
        repo.credentials(&Email::parse("round.trip@EXAMPLE.com").expect("email")).await.expect("query").expect("found");
    assert_eq!((id, hash.as_str()), (u.id, "$argon2id$fake"));
    assert_eq!(repo.find(UserId::new()).await.expect("find"), None);
    db.drop_database().await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_let_exactly_one_win() {
    let (repo, db) = repo().await;
    let attempts = (0..8).map(|i| {
        let repo = repo.clone();
        async move {
            let u = user(if i % 2 == 0 { "race@example.com" } else { "RACE@example.com" });
            repo.insert(&u, "h", &event(&u)).await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(InsertUserError::EmailTaken))));
    db.drop_database().await;
}

#[tokio::test]
async fn a_registration_whose_event_cannot_be_written_stores_no_user() {
    let (repo, db) = repo().await;
    let first = user("first@example.com");
    let ev = event(&first);
    repo.insert(&first, "h", &ev).await.expect("first insert");
    // Same event id again: the outbox insert fails after the user insert,
    // inside the same transaction.
    let second = user("second@example.com");
    let err = repo.insert(&second, "h", &ev).await.expect_err("duplicate event id");
    assert!(matches!(err, InsertUserError::Unexpected(_)));
    assert_eq!(repo.find(second.id).await.expect("find"), None, "the user insert was rolled back");
    db.drop_database().await;
}

#[tokio::test]
async fn profile_changes_apply_only_what_is_given() {
    let (repo, db) = repo().await;
    let u = user("patch@example.com");
    repo.insert(&u, "h", &event(&u)).await.expect("insert");
    let renamed = repo
        .update_profile(u.id, &ProfileChanges { name: Some(UserName::parse("New").expect("name")), address: None })
        .await
        .expect("update")
        .expect("exists");
    assert_eq!(renamed.name.as_str(), "New");
    assert_eq!(renamed.address, u.address);
    let cleared = repo
        .update_profile(u.id, &ProfileChanges { name: None, address: Some(None) })
        .await
        .expect("update")
        .expect("exists");
    assert_eq!(cleared.address, None);
    assert_eq!(cleared.name.as_str(), "New");
    assert!(repo.update_profile(UserId::new(), &ProfileChanges::default()).await.expect("update").is_none());
    db.drop_database().await;
}

#[tokio::test]
async fn stats_count_confirmed_orders_that_were_not_cancelled() {
    let (repo, db) = repo().await;
    let u = user("stats@example.com");
    repo.insert(&u, "h", &event(&u)).await.expect("insert");
    let mut conn = db.connect().await;
    for (total, confirmed, cancelled) in
        [(100i64, true, false), (250, true, false), (999, true, true), (40, false, true)]
    {
        sqlx::query("INSERT INTO user_order_facts (order_id, user_id, total_cents, confirmed, cancelled) VALUES ($1, $2, $3, $4, $5)")
            .bind(uuid::Uuid::now_v7())
            .bind(u.id.as_uuid())
            .bind(total)
            .bind(confirmed)
            .bind(cancelled)
            .execute(&mut conn)
            .await
            .expect("fact");
    }
    let stats = repo.stats(u.id).await.expect("stats");
    assert_eq!((stats.orders_confirmed, stats.total_spent_cents), (2, 350));
    drop(conn);
    db.drop_database().await;
}
