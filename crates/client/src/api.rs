//! The typed layer: one method per endpoint of API.md, on a [`Client`]
//! for the public endpoints and on a [`UserClient`] (a client plus a
//! bearer token) for the 🔒 ones.
//!
//! Why it exists: labs, load generators and tests should read like the
//! shop ("Ada tops up 50 € and orders two teas"), not like HTTP. Each call
//! checks the status API.md promises and decodes the body into
//! [`crate::types`]; anything else is an [`ApiError`] that keeps the
//! status, the parsed problem, the raw body and whether it was a replay.
//! Everything goes through the raw layer, so a recorder sees typed calls
//! too.

use std::{collections::HashSet, ops::Deref};

use http::{Method, StatusCode};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{
    error::{ApiError, ContractError, HttpError},
    raw::{Bearer, Client, RequestBuilder, encode_query_value},
    types::{
        LedgerEntry, NewUser, Order, OrderItem, Page, Product, Profile, ProfileUpdate, Session, TopUp, User, Wallet,
    },
};

/// The largest page API.md allows.
pub const MAX_PAGE: u32 = 100;

/// A value from a keyed request, and whether it was a replay of an
/// earlier answer (`Idempotent-Replayed: true`). Derefs to the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotent<T> {
    /// What the call returns.
    pub value: T,
    /// Whether the answer was a replay (`Idempotent-Replayed: true`).
    pub replayed: bool,
}

impl<T> Idempotent<T> {
    /// The value, without the replay flag.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for Idempotent<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// Sends `request` and decodes the answer when its status is `expected`.
async fn call<T: DeserializeOwned>(
    request: RequestBuilder<'_>,
    expected: StatusCode,
) -> Result<Idempotent<T>, ApiError> {
    let what = request.describe();
    let response = request.send().await?;
    let replayed = response.replayed();
    if response.status() != expected {
        let problem = response.problem();
        let status = response.status();
        let headers = response.headers().clone();
        return Err(ApiError::Http(Box::new(HttpError {
            request: what,
            expected,
            status,
            headers,
            body: response.into_body(),
            problem,
            replayed,
        })));
    }
    match response.json() {
        Ok(value) => Ok(Idempotent { value, replayed }),
        Err(e) => Err(ApiError::Contract(Box::new(ContractError {
            request: what,
            status: response.status(),
            body: response.into_body(),
            reason: format!("not the body API.md describes ({e})"),
        }))),
    }
}

/// `path?limit=..&cursor=..` with what is given.
fn page_path(path: &str, limit: Option<u32>, cursor: Option<&str>) -> String {
    let mut query = Vec::new();
    if let Some(limit) = limit {
        query.push(format!("limit={limit}"));
    }
    if let Some(cursor) = cursor {
        query.push(format!("cursor={}", encode_query_value(cursor)));
    }
    if query.is_empty() { path.to_owned() } else { format!("{path}?{}", query.join("&")) }
}

/// Every item of a list, following `next_cursor` with the largest page.
async fn all_pages<T: DeserializeOwned>(user: &UserClient, path: &str) -> Result<Vec<T>, ApiError> {
    let mut all = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let request = user.get(page_path(path, Some(MAX_PAGE), cursor.as_deref()));
        let page: Page<T> = call(request, StatusCode::OK).await?.value;
        all.extend(page.items);
        match page.next_cursor {
            Some(next) if !seen.insert(next.clone()) => {
                return Err(ApiError::Contract(Box::new(ContractError {
                    request: format!("GET {path}"),
                    status: StatusCode::OK,
                    body: Default::default(),
                    reason: format!("the cursor {next:?} came back twice: the pages loop"),
                })));
            }
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}

/// The public endpoints (no token needed).
impl Client {
    /// `POST /v1/users` → 201.
    pub async fn register(&self, user: &NewUser) -> Result<User, ApiError> {
        Ok(call(self.post("/v1/users").json(user), StatusCode::CREATED).await?.value)
    }

    /// `POST /v1/sessions` → 200: a token for `email`.
    pub async fn login(&self, email: &str, password: &str) -> Result<Session, ApiError> {
        #[derive(Serialize)]
        struct Credentials<'a> {
            email: &'a str,
            password: &'a str,
        }
        let request = self.post("/v1/sessions").json(&Credentials { email, password });
        Ok(call(request, StatusCode::OK).await?.value)
    }

    /// Logs in and returns a client acting as that user.
    pub async fn authenticate(&self, email: &str, password: &str) -> Result<UserClient, ApiError> {
        let session = self.login(email, password).await?;
        Ok(self.as_user(session.access_token))
    }

    /// Registers `user` and logs in: the new user and a client acting as them.
    pub async fn sign_up(&self, user: &NewUser) -> Result<(User, UserClient), ApiError> {
        let created = self.register(user).await?;
        let client = self.authenticate(&user.email, &user.password).await?;
        Ok((created, client))
    }

    /// `GET /v1/products` → 200: the catalog.
    pub async fn products(&self) -> Result<Vec<Product>, ApiError> {
        #[derive(serde::Deserialize)]
        struct Products {
            items: Vec<Product>,
        }
        Ok(call::<Products>(self.get("/v1/products"), StatusCode::OK).await?.value.items)
    }

    /// A client acting as the user `token` belongs to (a token, a
    /// [`Bearer`], or anything that converts).
    pub fn as_user(&self, token: impl Into<Bearer>) -> UserClient {
        UserClient { client: self.clone(), bearer: token.into() }
    }
}

/// A [`Client`] acting as one user: every request carries their token.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct UserClient {
    client: Client,
    bearer: Bearer,
}

impl UserClient {
    /// The client underneath (for public endpoints, or requests without the token).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The token, as a ready header value.
    pub fn bearer(&self) -> &Bearer {
        &self.bearer
    }

    /// A raw request carrying the user's token.
    pub fn request(&self, method: Method, path: impl Into<String>) -> RequestBuilder<'_> {
        self.client.request(method, path).bearer(&self.bearer)
    }

    /// A raw `GET` carrying the user's token.
    pub fn get(&self, path: impl Into<String>) -> RequestBuilder<'_> {
        self.request(Method::GET, path)
    }

    /// A raw `POST` carrying the user's token.
    pub fn post(&self, path: impl Into<String>) -> RequestBuilder<'_> {
        self.request(Method::POST, path)
    }

    /// 🔒 `GET /v1/users/me` → 200: the user and their (eventually consistent) stats.
    pub async fn me(&self) -> Result<Profile, ApiError> {
        Ok(call(self.get("/v1/users/me"), StatusCode::OK).await?.value)
    }

    /// 🔒 `PATCH /v1/users/me` → 200.
    pub async fn update_me(&self, update: &ProfileUpdate) -> Result<User, ApiError> {
        Ok(call(self.request(Method::PATCH, "/v1/users/me").json(update), StatusCode::OK).await?.value)
    }

    /// 🔒 `GET /v1/wallet` → 200.
    pub async fn wallet(&self) -> Result<Wallet, ApiError> {
        Ok(call(self.get("/v1/wallet"), StatusCode::OK).await?.value)
    }

    /// 🔒 `POST /v1/wallet/top-ups` → 201, with an optional `Idempotency-Key`.
    pub async fn top_up(&self, amount_cents: i64, key: Option<&str>) -> Result<Idempotent<TopUp>, ApiError> {
        #[derive(Serialize)]
        struct Body {
            amount_cents: i64,
        }
        let request = self.post("/v1/wallet/top-ups").idempotency_key(key).json(&Body { amount_cents });
        call(request, StatusCode::CREATED).await
    }

    /// 🔒 `GET /v1/payments?limit=&cursor=` → 200: one page of the ledger, newest first.
    pub async fn payments(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<Page<LedgerEntry>, ApiError> {
        Ok(call(self.get(page_path("/v1/payments", limit, cursor)), StatusCode::OK).await?.value)
    }

    /// 🔒 The whole ledger, newest first (every page).
    pub async fn all_payments(&self) -> Result<Vec<LedgerEntry>, ApiError> {
        all_pages(self, "/v1/payments").await
    }

    /// 🔒 `POST /v1/orders` → 201, with an optional `Idempotency-Key`. Not
    /// enough funds is not an error: the order is `rejected`.
    pub async fn place_order(&self, items: &[OrderItem], key: Option<&str>) -> Result<Idempotent<Order>, ApiError> {
        #[derive(Serialize)]
        struct Body<'a> {
            items: &'a [OrderItem],
        }
        call(self.post("/v1/orders").idempotency_key(key).json(&Body { items }), StatusCode::CREATED).await
    }

    /// 🔒 `GET /v1/orders/{id}` → 200 (404 `not_found` for another user's order).
    pub async fn order(&self, id: Uuid) -> Result<Order, ApiError> {
        Ok(call(self.get(format!("/v1/orders/{id}")), StatusCode::OK).await?.value)
    }

    /// 🔒 `GET /v1/orders?limit=&cursor=` → 200: one page, newest first.
    pub async fn orders(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<Page<Order>, ApiError> {
        Ok(call(self.get(page_path("/v1/orders", limit, cursor)), StatusCode::OK).await?.value)
    }

    /// 🔒 Every order of the user, newest first (every page).
    pub async fn all_orders(&self) -> Result<Vec<Order>, ApiError> {
        all_pages(self, "/v1/orders").await
    }

    /// 🔒 `POST /v1/orders/{id}/cancel` → 200: the order, `cancelled` with
    /// `refund_status: pending` (then `refunded`).
    pub async fn cancel(&self, id: Uuid) -> Result<Order, ApiError> {
        Ok(call(self.post(format!("/v1/orders/{id}/cancel")), StatusCode::OK).await?.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_paths_carry_what_is_given_with_the_cursor_encoded() {
        assert_eq!(page_path("/v1/orders", None, None), "/v1/orders");
        assert_eq!(page_path("/v1/orders", Some(20), None), "/v1/orders?limit=20");
        assert_eq!(page_path("/v1/payments", Some(2), Some("a+b=")), "/v1/payments?limit=2&cursor=a%2Bb%3D");
        assert_eq!(page_path("/v1/payments", None, Some("c")), "/v1/payments?cursor=c");
    }

    #[test]
    fn an_idempotent_value_reads_as_the_value() {
        let keyed = Idempotent { value: 5_i64, replayed: true };
        assert_eq!(*keyed + 1, 6);
        assert!(keyed.replayed);
        assert_eq!(keyed.into_inner(), 5);
    }
}
