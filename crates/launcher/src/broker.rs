//! Removing what a run declared on RabbitMQ.
//!
//! Every fresh run publishes under its own events namespace, so no run sees
//! another's messages. The services declare that namespace's exchanges and
//! durable queues, which would outlive the run (the tap queue alone keeps up
//! to 10,000 persistent messages), so they are deleted at the end by their
//! names in the shared topology (`twinshop_contracts::topology`), as
//! `loadtest compare` does.

use std::time::Duration;

use anyhow::{Context as _, Result};
use lapin::{
    Channel, Connection, ConnectionProperties,
    options::{ExchangeDeleteOptions, QueueDeleteOptions},
};
use twinshop_contracts::topology::Topology;

/// What [`delete_namespace`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Queues deleted (dead-letter queues included).
    pub queues: usize,
    /// Messages they still held.
    pub messages: u32,
    /// Exchanges deleted.
    pub exchanges: usize,
}

/// Deletes every queue (with its dead-letter queue) and both exchanges of
/// `namespace`. Names that do not exist are fine.
pub async fn delete_namespace(url: &str, namespace: &str) -> Result<Deleted> {
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(url, ConnectionProperties::default().with_connection_name("launcher-cleanup".into())),
    )
    .await
    .context("connecting to RabbitMQ timed out")?
    .context("connecting to RabbitMQ")?;
    let result = delete_all(&conn, &Topology::new(namespace)).await;
    // lapin can wait forever for a close-ok it lost; cleanup must not hang.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "done".into())).await;
    result
}

async fn delete_all(conn: &Connection, topology: &Topology) -> Result<Deleted> {
    let mut deleted = Deleted::default();
    let mut ch = conn.create_channel().await.context("opening a channel")?;
    let mut queues = Vec::new();
    for q in topology.queues() {
        if q.max_length.is_none() {
            queues.push(q.dead_letter_queue());
        }
        queues.push(q.name);
    }
    for name in queues {
        match ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await {
            Ok(messages) => {
                deleted.queues += 1;
                deleted.messages += messages;
            }
            // A refused delete closes the channel: carry on with a new one.
            Err(_) => ch = reopen(conn).await?,
        }
    }
    for name in [topology.exchange(), topology.dead_letter_exchange()] {
        match ch.exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default()).await {
            Ok(()) => deleted.exchanges += 1,
            Err(_) => ch = reopen(conn).await?,
        }
    }
    Ok(deleted)
}

async fn reopen(conn: &Connection) -> Result<Channel> {
    conn.create_channel().await.context("opening a channel")
}
