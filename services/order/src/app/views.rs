//! The order as the API shows it: one rendering, used for responses and
//! for the first answer stored with an idempotency key (so a replay is the
//! same body, byte for byte in meaning).

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{Order, Product};

#[derive(Serialize)]
struct Line<'a> {
    product_id: &'a str,
    name: &'a str,
    unit_price_cents: i64,
    quantity: i64,
}

#[derive(Serialize)]
struct Address<'a> {
    line1: &'a str,
    city: &'a str,
    postal_code: &'a str,
    country: &'a str,
}

#[derive(Serialize)]
struct ShipTo<'a> {
    name: &'a str,
    address: Address<'a>,
}

#[derive(Serialize)]
struct OrderJson<'a> {
    id: Uuid,
    status: &'static str,
    items: Vec<Line<'a>>,
    total_cents: i64,
    ship_to: ShipTo<'a>,
    rejection_reason: Option<&'static str>,
    refund_status: Option<&'static str>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: time::OffsetDateTime,
}

/// `Order` as docs/api.md defines it.
pub fn order_json(order: &Order) -> Value {
    let a = &order.ship_to.address;
    let json = OrderJson {
        id: order.id,
        status: order.status.as_str(),
        items: order
            .items
            .iter()
            .map(|l| Line {
                product_id: &l.product_id,
                name: &l.name,
                unit_price_cents: l.unit_price_cents,
                quantity: l.quantity,
            })
            .collect(),
        total_cents: order.total_cents,
        ship_to: ShipTo {
            name: &order.ship_to.name,
            address: Address { line1: &a.line1, city: &a.city, postal_code: &a.postal_code, country: &a.country },
        },
        rejection_reason: order.rejection_reason.map(|r| r.as_str()),
        refund_status: order.refund_status.map(|r| r.as_str()),
        created_at: order.created_at,
        updated_at: order.updated_at,
    };
    serde_json::to_value(json).unwrap_or(Value::Null)
}

pub fn product_json(p: &Product) -> Value {
    serde_json::json!({ "id": p.id, "name": p.name, "price_cents": p.price_cents })
}
