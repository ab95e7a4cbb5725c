//! The bodies of API.md as Rust types: what the typed calls send and what
//! they return.
//!
//! Why it exists: the contract is written down once here, on the client
//! side, from API.md alone (no server type is shared). Field names are
//! API.md's snake_case; times are RFC 3339; money is integer cents; ids are
//! UUIDs except product ids. A body missing a required field, or with a
//! value outside API.md's enumerations, is a
//! [`ContractError`](crate::ContractError); unknown extra fields are
//! ignored (a compatible addition), and a nullable field that is missing
//! reads as `null` (API.md says every field is always present: the
//! conformance suite checks that, a client need not).

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A shipping address. `country` is ISO 3166-1 alpha-2.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    /// Street and number.
    pub line1: String,
    /// The city.
    pub city: String,
    /// The postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: String,
}

/// `POST /v1/users`: a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewUser {
    /// Unique, case-insensitively.
    pub email: String,
    /// 10–128 characters.
    pub password: String,
    /// 1–100 characters.
    pub name: String,
    /// Optional at registration; orders need one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// A user as the API shows it (never the password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// A UUIDv7 the server chose.
    pub id: Uuid,
    /// Unique, case-insensitively.
    pub email: String,
    /// The name people see.
    pub name: String,
    /// Where orders ship; `None` until one is given.
    pub address: Option<Address>,
    /// When it was created (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The per-user read model, eventually consistent with the orders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Orders confirmed and not cancelled.
    pub orders_confirmed: i64,
    /// What those orders cost, in cents.
    pub total_spent_cents: i64,
}

/// `GET /v1/users/me`: the user and their stats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The user, as registration answered it.
    #[serde(flatten)]
    pub user: User,
    /// Eventually consistent with the orders (within about 5 s).
    pub stats: Stats,
}

/// `PATCH /v1/users/me`: what to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProfileUpdate {
    /// A new name (1–100 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `Some(None)` removes the address (sends `"address": null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Option<Address>>,
}

/// `POST /v1/sessions`: a bearer token and how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Seconds.
    pub expires_in: i64,
}

/// `GET /v1/wallet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    /// The wallet's balance, in cents.
    pub balance_cents: i64,
    /// Always `"EUR"`.
    pub currency: String,
}

/// `POST /v1/wallet/top-ups`: the top-up and the balance right after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopUp {
    /// A UUIDv7 the server chose.
    pub id: Uuid,
    /// In cents.
    pub amount_cents: i64,
    /// The wallet's balance, in cents.
    pub balance_cents: i64,
}

/// What a ledger entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Money in, by the user.
    TopUp,
    /// Money out, for an order.
    Charge,
    /// Money back, for a cancelled (or voided) order.
    Refund,
}

impl EntryKind {
    /// The API's spelling (`top_up`, `charge`, `refund`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TopUp => "top_up",
            Self::Charge => "charge",
            Self::Refund => "refund",
        }
    }
}

/// One entry of `GET /v1/payments`. API.md does not fix the sign of
/// `amount_cents`: read it as a magnitude.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// A UUIDv7 the server chose.
    pub id: Uuid,
    /// What the entry records.
    pub kind: EntryKind,
    /// In cents.
    pub amount_cents: i64,
    /// `None` for top-ups.
    pub order_id: Option<Uuid>,
    /// When it was created (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One page of a list, newest first; `next_cursor` is `None` on the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// At most `limit` items.
    pub items: Vec<T>,
    /// Opaque; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A product of the catalog (`GET /v1/products`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Product {
    /// A short string such as `"sku-coffee"`, not a UUID.
    pub id: String,
    /// The name people see.
    pub name: String,
    /// The price the order service charges, in cents.
    pub price_cents: i64,
}

/// One item of an order to place: a product at most once per order,
/// quantity 1–100, 1–50 items.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderItem {
    /// A catalog id such as `sku-tea`.
    pub product_id: String,
    /// 1–100.
    pub quantity: u32,
}

impl OrderItem {
    /// `quantity` of `product_id`.
    pub fn new(product_id: impl Into<String>, quantity: u32) -> Self {
        Self { product_id: product_id.into(), quantity }
    }
}

/// One line of a placed order, priced from the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// A catalog id such as `sku-tea`.
    pub product_id: String,
    /// The name people see.
    pub name: String,
    /// The catalog price when the order was placed.
    pub unit_price_cents: i64,
    /// 1–100.
    pub quantity: u32,
}

/// Where an order's state is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted while the payment service was unreachable (`available`
    /// mode); settled later.
    Pending,
    /// Paid.
    Confirmed,
    /// Not enough funds (`rejection_reason: insufficient_funds`).
    Rejected,
    /// The payment service could not be reached in `strict` mode.
    Failed,
    /// Cancelled after confirmation; refunded asynchronously.
    Cancelled,
}

impl OrderStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Where a cancelled order's refund is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Cancelled; the refund event is on its way.
    Pending,
    /// The money is back in the wallet.
    Refunded,
}

/// The name and address copied onto an order when it was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipTo {
    /// The name people see.
    pub name: String,
    /// The shipping address.
    pub address: Address,
}

/// An order (`POST /v1/orders`, `GET /v1/orders/{id}`, the list, cancel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// A UUIDv7 the server chose.
    pub id: Uuid,
    /// Where the order's state is.
    pub status: OrderStatus,
    /// What was ordered, priced from the catalog.
    pub items: Vec<OrderLine>,
    /// The sum of the lines, in cents.
    pub total_cents: i64,
    /// The name and address copied from the profile.
    pub ship_to: ShipTo,
    /// `insufficient_funds` or `payment_unavailable`; `None` otherwise.
    pub rejection_reason: Option<String>,
    /// `None` unless the order was cancelled.
    pub refund_status: Option<RefundStatus>,
    /// When it was created (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its status last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One field-level problem of a `validation_failed` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field's path, e.g. `address.country` or `items[0].quantity`
    /// (API.md does not fix the notation of nested paths).
    pub field: String,
    /// What is wrong with it, for people.
    pub message: String,
}

/// An error answer (`application/problem+json`, RFC 9457 with a `code`).
/// Read leniently: only `code` is required, so a refusal is understood
/// even from a server that gets the rest wrong (the conformance suite
/// checks the rest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `/problems/{code}`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A short summary for people.
    #[serde(default)]
    pub title: String,
    /// The HTTP status again.
    #[serde(default)]
    pub status: u16,
    /// Stable and machine-readable, e.g. `email_taken`.
    pub code: String,
    /// More about this occurrence, for people.
    #[serde(default)]
    pub detail: Option<String>,
    /// Only on `validation_failed`: one entry per bad field.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub errors: Vec<FieldError>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FieldError>, D::Error> {
    Ok(Option::<Vec<FieldError>>::deserialize(d)?.unwrap_or_default())
}

/// `GET /internal/v1/users/{id}` on the user service's internal port: what
/// the order service copies onto an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLookup {
    /// A UUIDv7 the server chose.
    pub id: Uuid,
    /// The name people see.
    pub name: String,
    /// Where orders ship; `None` until one is given.
    pub address: Option<Address>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_order_reads_from_the_api_md_shape() {
        let body = json!({
            "id": "0192e4a0-0000-7000-8000-000000000001",
            "status": "cancelled",
            "items": [{"product_id": "sku-tea", "name": "Tea", "unit_price_cents": 450, "quantity": 2}],
            "total_cents": 900,
            "ship_to": {"name": "Ada", "address": {"line1": "1 A", "city": "B", "postal_code": "1", "country": "DE"}},
            "rejection_reason": null,
            "refund_status": "pending",
            "created_at": "2026-11-20T10:00:00Z",
            "updated_at": "2026-11-20T10:00:01.5+00:00",
            "a_field_added_later": true
        });
        let order: Order = serde_json::from_value(body).expect("an order");
        assert_eq!(order.status, OrderStatus::Cancelled);
        assert_eq!(order.refund_status, Some(RefundStatus::Pending));
        assert_eq!(order.items[0].quantity, 2);
        assert_eq!((order.updated_at - order.created_at).whole_milliseconds(), 1500);
    }

    #[test]
    fn a_missing_field_or_an_unknown_status_is_refused() {
        let no_total = json!({"id": "0192e4a0-0000-7000-8000-000000000001", "status": "confirmed", "items": [],
            "ship_to": {"name": "A", "address": {"line1": "1", "city": "B", "postal_code": "1",
            "country": "DE"}}, "rejection_reason": null, "created_at": "2026-11-20T10:00:00Z",
            "updated_at": "2026-11-20T10:00:00Z"});
        assert!(serde_json::from_value::<Order>(no_total.clone()).is_err(), "total_cents is required");
        let mut weird = no_total;
        weird["total_cents"] = json!(0);
        assert!(serde_json::from_value::<Order>(weird.clone()).is_ok(), "a missing nullable field reads as null");
        weird["status"] = json!("shipped");
        assert!(serde_json::from_value::<Order>(weird).is_err());
    }

    #[test]
    fn a_profile_is_the_user_plus_stats() {
        let body = json!({"id": "0192e4a0-0000-7000-8000-000000000002", "email": "a@example.com", "name": "A",
            "address": null, "created_at": "2026-11-20T10:00:00Z",
            "stats": {"orders_confirmed": 2, "total_spent_cents": 1800}});
        let me: Profile = serde_json::from_value(body).expect("a profile");
        assert_eq!(me.user.address, None);
        assert_eq!(me.stats, Stats { orders_confirmed: 2, total_spent_cents: 1800 });
    }

    #[test]
    fn problems_read_leniently_with_null_or_missing_errors() {
        let p: Problem = serde_json::from_value(json!({"code": "not_found", "errors": null})).expect("lenient");
        assert!(p.errors.is_empty() && p.title.is_empty());
        let p: Problem = serde_json::from_value(json!({"type": "/problems/validation_failed", "title": "t",
            "status": 400, "code": "validation_failed", "errors": [{"field": "email", "message": "m"}]}))
        .expect("full");
        assert_eq!((p.kind.as_str(), p.errors[0].field.as_str()), ("/problems/validation_failed", "email"));
        assert!(serde_json::from_value::<Problem>(json!({"title": "no code"})).is_err());
    }

    #[test]
    fn a_profile_update_sends_only_what_changes_and_null_removes_the_address() {
        let rename = ProfileUpdate { name: Some("B".into()), address: None };
        assert_eq!(serde_json::to_value(&rename).expect("json"), json!({"name": "B"}));
        let remove = ProfileUpdate { name: None, address: Some(None) };
        assert_eq!(serde_json::to_value(&remove).expect("json"), json!({"address": null}));
        let new = NewUser { email: "e".into(), password: "p".into(), name: "n".into(), address: None };
        assert_eq!(serde_json::to_value(&new).expect("json"), json!({"email": "e", "password": "p", "name": "n"}));
    }
}
