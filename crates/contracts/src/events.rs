//! Events: the envelope every message carries and each event's payload.
//!
//! On the wire an event is one JSON object, `{event_id, occurred_at, type,
//! payload}`, published to the topic exchange with routing key = `type`.
//! The W3C trace context travels in AMQP headers, not in the body. The JSON
//! Schemas in `proto/events/` describe the same shapes for other languages.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use time::OffsetDateTime;
use uuid::Uuid;

/// The wrapper around every payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<P> {
    /// Fixed when the outbox row is written; consumers deduplicate on it.
    pub event_id: Uuid,
    /// When the state change that caused the event committed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The routing key, e.g. `order.confirmed`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub payload: P,
}

/// A payload type and the `type` it is published under.
pub trait Event: Serialize + DeserializeOwned {
    const TYPE: &'static str;
}

impl<P: Event> Envelope<P> {
    /// A new event with a fresh UUIDv7 id, occurring now.
    pub fn new(payload: P) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            occurred_at: OffsetDateTime::now_utc(),
            event_type: P::TYPE.to_owned(),
            payload,
        }
    }
}

impl<P: Serialize> Envelope<P> {
    /// The envelope with its payload as plain JSON, as the outbox stores it.
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    /// The same envelope with its payload as JSON: one type for events of
    /// any type, e.g. the event a use case chose, handed to its store.
    pub fn erase(self) -> Result<Envelope<serde_json::Value>, serde_json::Error> {
        Ok(Envelope {
            event_id: self.event_id,
            occurred_at: self.occurred_at,
            event_type: self.event_type,
            payload: serde_json::to_value(self.payload)?,
        })
    }
}

impl Envelope<serde_json::Value> {
    /// Reads the payload as `P`, checking the `type` first.
    pub fn decode<P: Event>(self) -> Result<Envelope<P>, DecodeError> {
        if self.event_type != P::TYPE {
            return Err(DecodeError::WrongType { expected: P::TYPE, found: self.event_type });
        }
        let payload = serde_json::from_value(self.payload).map_err(DecodeError::Payload)?;
        Ok(Envelope { event_id: self.event_id, occurred_at: self.occurred_at, event_type: self.event_type, payload })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("expected event type {expected}, found {found}")]
    WrongType { expected: &'static str, found: String },
    #[error("malformed payload: {0}")]
    Payload(serde_json::Error),
}

/// `user.registered`: a new account exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user_id: Uuid,
    pub name: String,
}
impl Event for UserRegistered {
    const TYPE: &'static str = "user.registered";
}

/// `order.confirmed`: the order was paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub total_cents: i64,
}
impl Event for OrderConfirmed {
    const TYPE: &'static str = "order.confirmed";
}

/// `order.rejected`: the order could not be paid (`reason` as in the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRejected {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub total_cents: i64,
    pub reason: String,
}
impl Event for OrderRejected {
    const TYPE: &'static str = "order.rejected";
}

/// `order.cancelled`: a confirmed order was cancelled; its charge is owed back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub total_cents: i64,
}
impl Event for OrderCancelled {
    const TYPE: &'static str = "order.cancelled";
}

/// `payment.refunded`: the charge of an order was given back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub amount_cents: i64,
}
impl Event for PaymentRefunded {
    const TYPE: &'static str = "payment.refunded";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_serialises_to_the_documented_shape_and_decodes_back() {
        let e = Envelope::new(OrderConfirmed { order_id: Uuid::now_v7(), user_id: Uuid::now_v7(), total_cents: 450 });
        let json = e.to_json().expect("serialises");
        assert_eq!(json["type"], "order.confirmed");
        assert_eq!(json["payload"]["total_cents"], 450);
        assert!(json["occurred_at"].as_str().is_some_and(|s| s.ends_with('Z')));
        let raw: Envelope<serde_json::Value> = serde_json::from_value(json).expect("parses");
        assert_eq!(raw.decode::<OrderConfirmed>().expect("decodes"), e);
    }

    #[test]
    fn decoding_checks_the_type_before_the_payload() {
        let e = Envelope::new(UserRegistered { user_id: Uuid::now_v7(), name: "Ada".into() });
        let raw: Envelope<serde_json::Value> = serde_json::from_value(e.to_json().expect("json")).expect("parses");
        assert!(matches!(raw.decode::<OrderCancelled>(), Err(DecodeError::WrongType { .. })));
    }
}
