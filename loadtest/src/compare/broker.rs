//! Removing what a comparison declared on RabbitMQ.
//!
//! Every build a comparison starts publishes under the comparison's own
//! events namespace (`loadtest<tag>`), so no run ever sees another
//! comparison's messages, or those of a twinshop running beside it. The
//! services declare that namespace's exchanges and durable queues, which
//! would outlive the comparison: the tap queue alone keeps up to 10,000
//! persistent messages. They are deleted at the end, by their names in
//! the shared topology (`twinshop_contracts::topology`).

use anyhow::{Context as _, Result};
use lapin::{
    Channel, Connection, ConnectionProperties,
    options::{ExchangeDeleteOptions, QueueDeleteOptions},
};
use twinshop_contracts::topology::Topology;

/// The broker run-local uses unless `AMQP_URL` says otherwise.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// What [`delete_namespace`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub queues: usize,
    pub messages: u32,
    pub exchanges: usize,
}

/// Deletes every queue (with its dead-letter queue) and both exchanges of
/// `namespace`. Names that do not exist are fine (a comparison may have
/// stopped before a build declared them).
pub async fn delete_namespace(url: &str, namespace: &str) -> Result<Deleted> {
    let conn =
        Connection::connect(url, ConnectionProperties::default().with_connection_name("loadtest-cleanup".into()))
            .await
            .context("connecting to RabbitMQ")?;
    let result = delete_all(&conn, &Topology::new(namespace)).await;
    let _ = conn.close(200, "done".into()).await;
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

#[cfg(test)]
mod tests {
    use lapin::{
        BasicProperties, ExchangeKind,
        options::{
            BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
        },
        types::FieldTable,
    };

    use super::*;

    /// Against the machine's real RabbitMQ: a namespace with a queue holding
    /// a message and its exchange is gone afterwards.
    #[tokio::test]
    async fn a_namespace_is_deleted_with_its_messages() {
        twinshop_testkit::require_backing_services();
        let url = twinshop_testkit::amqp_url();
        let namespace = twinshop_testkit::unique_name("ltclean");
        let topology = Topology::new(&namespace);
        let conn = Connection::connect(&url, ConnectionProperties::default()).await.expect("connect");
        let ch = conn.create_channel().await.expect("channel");
        // Confirms: the message is in the queue before the delete runs.
        ch.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        ch.exchange_declare(topology.exchange().into(), ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .expect("exchange");
        let queue = topology.queues().remove(0).name;
        let durable_q = QueueDeclareOptions { durable: true, ..Default::default() };
        ch.queue_declare(queue.as_str().into(), durable_q, FieldTable::default()).await.expect("queue");
        ch.queue_bind(
            queue.as_str().into(),
            topology.exchange().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
        ch.basic_publish(
            topology.exchange().into(),
            "k".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("published");

        let deleted = delete_namespace(&url, &namespace).await.expect("delete");
        assert_eq!(deleted.messages, 1, "{deleted:?}");
        assert!(deleted.queues >= 1 && deleted.exchanges == 2, "{deleted:?}");

        // Passive declares of what was deleted now fail.
        let ch = conn.create_channel().await.expect("channel");
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        assert!(ch.queue_declare(queue.as_str().into(), passive, FieldTable::default()).await.is_err());
        let ch = conn.create_channel().await.expect("channel");
        let passive = ExchangeDeclareOptions { passive: true, ..Default::default() };
        assert!(
            ch.exchange_declare(topology.exchange().into(), ExchangeKind::Topic, passive, FieldTable::default())
                .await
                .is_err()
        );
        let _ = conn.close(200, "done".into()).await;
    }
}
