//! The order area's public HTTP adapter: the catalog and orders.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::PathRejection},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Serialize;
use serde_json::{Value, json};
use twinshop_platform::{
    http::{
        auth::Authenticated,
        json::{Fields, JsonObject},
    },
    idempotency::{IdempotencyKey, REPLAYED_HEADER},
    pagination::PageRequest,
    problem::{self, ErrorCode, Problem},
    validation::FieldErrors,
};
use uuid::Uuid;

use crate::{
    app::{CancelError, OrderService, PlaceError, Placed, Placement},
    domain::{Order, OrderRequest, Product},
};

/// Public routes: `/v1/products`, `/v1/orders…`.
pub fn public_routes(orders: OrderService) -> Router {
    Router::new()
        .route("/v1/products", get(products))
        .route("/v1/orders", post(place).get(list))
        .route("/v1/orders/{id}", get(get_one))
        .route("/v1/orders/{id}/cancel", post(cancel))
        .with_state(orders)
}

fn payment_unavailable() -> Problem {
    Problem::new(ErrorCode::PaymentUnavailable)
        .with_detail("Payment could not be reached; the order was not placed and nothing was charged.")
}

impl From<PlaceError> for Problem {
    fn from(err: PlaceError) -> Self {
        match err {
            PlaceError::UnknownProducts(ids) => {
                Problem::new(ErrorCode::UnknownProduct).with_detail(format!("No such product: {}.", ids.join(", ")))
            }
            PlaceError::AddressRequired => {
                Problem::new(ErrorCode::AddressRequired).with_detail("Add a shipping address to your profile first.")
            }
            PlaceError::UnknownUser => Problem::new(ErrorCode::Unauthorized),
            PlaceError::DependencyUnavailable => Problem::new(ErrorCode::DependencyUnavailable)
                .with_detail("The user service is unavailable; nothing was recorded."),
            PlaceError::PaymentUnavailable(_) => payment_unavailable(),
            PlaceError::KeyReused => Problem::new(ErrorCode::IdempotencyKeyReused)
                .with_detail("This Idempotency-Key was used with a different request."),
            PlaceError::KeyInUse => Problem::new(ErrorCode::IdempotencyKeyInUse)
                .with_detail("A request with this Idempotency-Key is in progress."),
            PlaceError::Unexpected(e) => problem::internal(&e),
        }
    }
}

impl From<CancelError> for Problem {
    fn from(err: CancelError) -> Self {
        match err {
            CancelError::NotFound => not_found(),
            CancelError::NotCancellable(e) => Problem::new(ErrorCode::OrderNotCancellable).with_detail(format!("{e}.")),
            CancelError::Unexpected(e) => problem::internal(&e),
        }
    }
}

fn not_found() -> Problem {
    Problem::new(ErrorCode::NotFound).with_detail("No such order.")
}

/// A malformed id (even one that is not UTF-8) names no order: 404, like
/// another user's order.
fn parse_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, Problem> {
    path.ok().and_then(|Path(raw)| Uuid::parse_str(&raw).ok()).ok_or_else(not_found)
}

async fn products(State(orders): State<OrderService>) -> Result<Response, Problem> {
    let catalog = orders.catalog().await.map_err(|e| problem::internal(&e))?;
    Ok(Json(json!({ "items": catalog.iter().map(product_json).collect::<Vec<_>>() })).into_response())
}

fn parse_request(body: &serde_json::Map<String, Value>) -> Result<OrderRequest, Problem> {
    let mut f = Fields::new(body);
    let items = f.array("items").cloned();
    let mut errors = FieldErrors::new();
    let mut parsed = Vec::new();
    for (i, item) in items.iter().flatten().enumerate() {
        let Some(obj) = item.as_object() else {
            errors.push(format!("items[{i}]"), "must be an object");
            parsed.push((None, None));
            continue;
        };
        let mut item_fields = Fields::new(obj);
        let product_id = item_fields.string("product_id").map(str::to_owned);
        let quantity = item_fields.integer("quantity", i64::MIN, i64::MAX);
        for e in item_fields.into_errors().into_vec() {
            errors.push(format!("items[{i}].{}", e.field), e.message);
        }
        parsed.push((product_id, quantity));
    }
    let request = items.as_ref().and_then(|_| OrderRequest::parse(parsed, &mut errors));
    f.absorb(errors);
    f.finish()?;
    request.ok_or_else(|| Problem::new(ErrorCode::ValidationFailed))
}

fn replayed(mut res: Response) -> Response {
    res.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    res
}

async fn place(
    State(orders): State<OrderService>,
    Authenticated(user): Authenticated,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, Problem> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let request = parse_request(&body)?;
    Ok(match orders.place(user, key, Value::Object(body), request).await? {
        Placed::Created(order) => (StatusCode::CREATED, Json(order_json(&order))).into_response(),
        Placed::Replayed(Placement::Created { order }) => {
            replayed((StatusCode::CREATED, Json(order_json(&order))).into_response())
        }
        Placed::Replayed(Placement::PaymentUnavailable { .. }) => replayed(payment_unavailable().into_response()),
    })
}

async fn get_one(
    State(orders): State<OrderService>,
    Authenticated(user): Authenticated,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    let id = parse_id(path)?;
    let order = orders.get(user, id).await.map_err(|e| problem::internal(&e))?.ok_or_else(not_found)?;
    Ok(Json(order_json(&order)).into_response())
}

async fn list(
    State(orders): State<OrderService>,
    Authenticated(user): Authenticated,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let page = PageRequest::from_query(&query)?;
    let page = orders.list(user, page).await.map_err(|e| problem::internal(&e))?;
    let items: Vec<Value> = page.items.iter().map(order_json).collect();
    Ok(Json(json!({ "items": items, "next_cursor": page.next.map(|p| p.encode()) })).into_response())
}

async fn cancel(
    State(orders): State<OrderService>,
    Authenticated(user): Authenticated,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    let id = parse_id(path)?;
    let order = orders.cancel(user, id).await?;
    Ok(Json(order_json(&order)).into_response())
}

// ---- response shapes ----

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
