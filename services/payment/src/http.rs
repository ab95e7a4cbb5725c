//! The payment area's public HTTP adapter: wallet, top-ups, ledger.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Serialize;
use twinshop_platform::{
    http::{
        auth::Authenticated,
        json::{Fields, JsonObject},
    },
    idempotency::{IdempotencyKey, REPLAYED_HEADER},
    pagination::PageRequest,
    problem::{self, ErrorCode, Problem},
};
use uuid::Uuid;

use crate::{
    app::{PaymentService, TopUpError, TopUpRequest},
    domain::{Amount, TOP_UP_MAX},
};

/// Public routes: `/v1/wallet`, `/v1/wallet/top-ups`, `/v1/payments`.
pub fn public_routes(payments: PaymentService) -> Router {
    Router::new()
        .route("/v1/wallet", get(wallet))
        .route("/v1/wallet/top-ups", post(top_up))
        .route("/v1/payments", get(ledger))
        .with_state(payments)
}

impl From<TopUpError> for Problem {
    fn from(err: TopUpError) -> Self {
        match err {
            TopUpError::KeyReused => Problem::new(ErrorCode::IdempotencyKeyReused)
                .with_detail("This Idempotency-Key was used with a different request."),
            TopUpError::KeyInUse => Problem::new(ErrorCode::IdempotencyKeyInUse)
                .with_detail("A request with this Idempotency-Key is in progress."),
            TopUpError::Unexpected(e) => problem::internal(&e),
        }
    }
}

#[derive(Serialize)]
struct WalletJson {
    balance_cents: i64,
    currency: &'static str,
}

async fn wallet(
    State(payments): State<PaymentService>,
    Authenticated(user): Authenticated,
) -> Result<Response, Problem> {
    let wallet = payments.wallet(user).await.map_err(|e| problem::internal(&e))?;
    Ok(Json(WalletJson { balance_cents: wallet.balance_cents, currency: "EUR" }).into_response())
}

#[derive(Serialize)]
struct TopUpJson {
    id: Uuid,
    amount_cents: i64,
    balance_cents: i64,
}

async fn top_up(
    State(payments): State<PaymentService>,
    Authenticated(user): Authenticated,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, Problem> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let mut f = Fields::new(&body);
    let amount = f.integer("amount_cents", 1, TOP_UP_MAX).and_then(|c| Amount::top_up(c).ok());
    f.finish()?;
    let amount = amount.ok_or_else(|| Problem::new(ErrorCode::ValidationFailed))?;
    let request = TopUpRequest { user_id: user, amount, key, fingerprint: serde_json::Value::Object(body) };
    let (top_up, replayed) = payments.top_up(request).await?;
    let mut res = (
        StatusCode::CREATED,
        Json(TopUpJson { id: top_up.id, amount_cents: top_up.amount_cents, balance_cents: top_up.balance_cents }),
    )
        .into_response();
    if replayed {
        res.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(res)
}

#[derive(Serialize)]
struct EntryJson {
    id: Uuid,
    kind: &'static str,
    amount_cents: i64,
    order_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
}

#[derive(Serialize)]
struct LedgerJson {
    items: Vec<EntryJson>,
    next_cursor: Option<String>,
}

async fn ledger(
    State(payments): State<PaymentService>,
    Authenticated(user): Authenticated,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let page = PageRequest::from_query(&query)?;
    let page = payments.ledger(user, page).await.map_err(|e| problem::internal(&e))?;
    let items = page
        .items
        .into_iter()
        .map(|e| EntryJson {
            id: e.id,
            kind: e.kind.as_str(),
            amount_cents: e.amount_cents,
            order_id: e.order_id,
            created_at: e.created_at,
        })
        .collect();
    Ok(Json(LedgerJson { items, next_cursor: page.next.map(|p| p.encode()) }).into_response())
}
