//! A session that PostgreSQL ends under a request is a dependency being
//! unavailable (503, retry later), not a bug (500). Against the real
//! Postgres: a statement is running when another session terminates its
//! backend, as a crash or a shutdown of the server does.

use std::time::Duration;

use sqlx::Connection as _;
use twinshop_platform::problem::is_unavailable;

#[tokio::test]
async fn a_statement_whose_session_the_server_ends_is_a_dependency_unavailable() {
    twinshop_testkit::require_backing_services();
    let url = twinshop_testkit::admin_database_url();
    let mut victim = sqlx::PgConnection::connect(&url).await.expect("a session");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut victim).await.expect("its backend");
    let running = tokio::spawn(async move { sqlx::query("SELECT pg_sleep(10)").execute(&mut victim).await });

    let mut admin = sqlx::PgConnection::connect(&url).await.expect("a second session");
    // The sleep must have begun before its backend is terminated.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let sleeping: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND query LIKE '%pg_sleep%')",
        )
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .expect("pg_stat_activity");
        if sleeping {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the statement never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ended: bool =
        sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(pid).fetch_one(&mut admin).await.expect("terminate");
    assert!(ended);

    let err = running.await.expect("the task").expect_err("the statement cannot finish");
    // The server said why (SQLSTATE 57P01), rather than only closing the socket.
    let code = match &err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        other => panic!("expected the server's error, got {other:?}"),
    };
    assert_eq!(code.as_deref(), Some("57P01"));
    let err = anyhow::Error::new(err).context("committing the placement");
    assert!(is_unavailable(&err), "{err:#}");

    // A bad query stays a bug.
    let bad = sqlx::query("SELECT no_such_column FROM pg_class").execute(&mut admin).await.expect_err("a bad query");
    assert!(!is_unavailable(&anyhow::Error::new(bad)));
}
