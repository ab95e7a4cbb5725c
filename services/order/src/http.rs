//! The order area's public HTTP adapter: the catalog and orders.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json, Router,
    extract::{FromRef, Path, Query, State, rejection::PathRejection},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use twinshop_platform::{
    http::{
        auth::{Authenticated, JwtVerifier},
        json::{Fields, JsonObject},
    },
    idempotency::{IdempotencyKey, REPLAYED_HEADER},
    pagination::PageRequest,
    problem::{self, ErrorCode, Problem},
    validation::FieldErrors,
};
use uuid::Uuid;

use crate::{
    app::{CancelError, OrderService, PlaceError, Placed, views},
    domain::OrderRequest,
};

#[derive(Debug, Clone)]
pub struct OrderState {
    pub orders: OrderService,
    pub verifier: Arc<JwtVerifier>,
}

impl FromRef<OrderState> for Arc<JwtVerifier> {
    fn from_ref(state: &OrderState) -> Self {
        state.verifier.clone()
    }
}

/// Public routes: `/v1/products`, `/v1/orders…`.
pub fn public_routes(state: OrderState) -> Router {
    Router::new()
        .route("/v1/products", get(products))
        .route("/v1/orders", post(place).get(list))
        .route("/v1/orders/{id}", get(get_one))
        .route("/v1/orders/{id}/cancel", post(cancel))
        .with_state(state)
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

async fn products(State(state): State<OrderState>) -> Result<Response, Problem> {
    let catalog = state.orders.catalog().await.map_err(|e| problem::internal(&e))?;
    Ok(Json(json!({ "items": catalog.iter().map(views::product_json).collect::<Vec<_>>() })).into_response())
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

fn created(order_json: Value, replayed: bool, status: StatusCode) -> Response {
    let mut res = (status, Json(order_json)).into_response();
    if replayed {
        res.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    res
}

async fn place(
    State(state): State<OrderState>,
    Authenticated(user): Authenticated,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, Problem> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let request = parse_request(&body)?;
    match state.orders.place(user, key, Value::Object(body), request).await? {
        Placed::Created(order) => Ok(created(views::order_json(&order), false, StatusCode::CREATED)),
        Placed::Replayed { status: 503, .. } => {
            let mut res = payment_unavailable().into_response();
            res.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            Ok(res)
        }
        Placed::Replayed { status, snapshot } => {
            Ok(created(snapshot, true, StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED)))
        }
    }
}

async fn get_one(
    State(state): State<OrderState>,
    Authenticated(user): Authenticated,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    let id = parse_id(path)?;
    let order = state.orders.get(user, id).await.map_err(|e| problem::internal(&e))?.ok_or_else(not_found)?;
    Ok(Json(views::order_json(&order)).into_response())
}

async fn list(
    State(state): State<OrderState>,
    Authenticated(user): Authenticated,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let page = PageRequest::from_query(&query)?;
    let page = state.orders.list(user, page).await.map_err(|e| problem::internal(&e))?;
    let items: Vec<Value> = page.items.iter().map(views::order_json).collect();
    Ok(Json(json!({ "items": items, "next_cursor": page.next.map(|p| p.encode()) })).into_response())
}

async fn cancel(
    State(state): State<OrderState>,
    Authenticated(user): Authenticated,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    let id = parse_id(path)?;
    let order = state.orders.cancel(user, id).await?;
    Ok(Json(views::order_json(&order)).into_response())
}
