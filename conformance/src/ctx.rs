//! What every case gets: the target's base URL, one client, and the steps
//! most cases share (a fresh user, a top-up, an order, a poll).
//!
//! Why it exists: cases should read like the contract ("a new user tops up
//! and orders a coffee"), not like HTTP plumbing. Every helper that expects
//! success checks the status *and* the schema of what it got, so a case
//! that only means to set something up still fails loudly, naming the
//! request, when the target answers otherwise.
//!
//! Requests go out through twinshop-client's raw layer (the suite sends
//! what no typed client would: broken bodies, forged tokens, odd header
//! bytes) with its exchange recorder on, so every answer of a run can be
//! held to the OpenAPI document afterwards ([`Exchange`]).

use std::{
    future::Future,
    ops::ControlFlow,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
pub use twinshop_client::Exchange;
use twinshop_client::{Client, ExchangeLog, HeaderMap, Method, RequestBuilder, Response};
use uuid::Uuid;

use crate::schema;

/// How long an eventually consistent effect may take (docs/api.md: 5 s under
/// normal operation; twice that before calling it a failure).
pub const EVENTUALLY: Duration = Duration::from_secs(10);

/// A password every fresh user gets (10–128 characters).
pub const PASSWORD: &str = "correct horse battery staple";

/// The shipping address fresh users get.
pub fn address() -> Value {
    json!({"line1": "1 Conformance Way", "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

/// A second, different address.
pub fn other_address() -> Value {
    json!({"line1": "7 Rue des Tests", "city": "Lyon", "postal_code": "69001", "country": "FR"})
}

/// One product of the catalog, as `GET /v1/products` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
}

/// A registered, logged-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    /// As registration answered it (`null` when registered without one).
    pub address: Value,
    pub token: String,
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// `METHOD /path`, for messages.
    pub request: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body, if it is JSON.
    pub json: Option<Value>,
}

fn snippet(text: &str) -> String {
    let mut s: String = text.chars().take(300).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type, lowercase, without parameters.
    pub fn media_type(&self) -> String {
        let ct = self.header("content-type").unwrap_or_default();
        ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
    }

    /// Whether the answer says `Idempotent-Replayed: true`.
    pub fn replayed(&self) -> bool {
        self.header("idempotent-replayed").is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// A success: exactly `status`, an `application/json` body.
    pub fn ok(&self, status: u16) -> Result<&Value> {
        ensure!(
            self.status == status,
            "{}: expected {status}, got {}: {}",
            self.request,
            self.status,
            snippet(&self.text)
        );
        ensure!(
            self.media_type() == "application/json",
            "{}: expected Content-Type application/json, got {:?}",
            self.request,
            self.header("content-type")
        );
        self.json.as_ref().with_context(|| format!("{}: the body is not JSON: {}", self.request, snippet(&self.text)))
    }

    /// An error: exactly `status` and `code`, as `application/problem+json`
    /// with `type`, `title`, `status` and `code`; `errors` only on
    /// `validation_failed`; nothing internal in it.
    pub fn problem(&self, status: u16, code: &str) -> Result<&Value> {
        let r = &self.request;
        ensure!(self.status == status, "{r}: expected {status} {code}, got {}: {}", self.status, snippet(&self.text));
        ensure!(
            self.media_type() == "application/problem+json",
            "{r}: a problem must be application/problem+json, got {:?}",
            self.header("content-type")
        );
        let body = self.json.as_ref().with_context(|| format!("{r}: the problem is not JSON: {}", self.text))?;
        let got = schema::string(body, "code", "problem")?;
        ensure!(got == code, "{r}: expected code {code:?}, got {got:?}: {body}");
        ensure!(
            schema::integer(body, "status", "problem")? == i64::from(status),
            "{r}: problem.status differs: {body}"
        );
        let kind = schema::string(body, "type", "problem")?;
        ensure!(kind == format!("/problems/{code}"), "{r}: problem.type must be /problems/{code}, got {kind:?}");
        schema::string(body, "title", "problem")?;
        if let Some(detail) = body.get("detail") {
            ensure!(detail.is_string() || detail.is_null(), "{r}: problem.detail must be a string: {body}");
        }
        let errors = body.get("errors").filter(|e| !e.is_null());
        if code == "validation_failed" {
            let errors = errors.and_then(Value::as_array).with_context(|| format!("{r}: no errors list: {body}"))?;
            ensure!(!errors.is_empty(), "{r}: validation_failed must list the bad fields: {body}");
            for e in errors {
                schema::string(e, "field", "problem.errors[]")?;
                schema::string(e, "message", "problem.errors[]")?;
            }
        } else {
            ensure!(errors.is_none(), "{r}: errors belongs only to validation_failed: {body}");
        }
        let lower = self.text.to_ascii_lowercase();
        for leak in ["sqlx", "sqlstate", "panicked", "stack backtrace", "postgres", "redis://", "amqp://", "src/"] {
            ensure!(!lower.contains(leak), "{r}: the problem shows something internal ({leak:?}): {}", self.text);
        }
        Ok(body)
    }

    /// A `validation_failed` answer that lists (at least) `fields`.
    pub fn invalid(&self, fields: &[&str]) -> Result<&Value> {
        let body = self.problem(400, "validation_failed")?;
        let listed = error_fields(body);
        for f in fields {
            ensure!(
                listed.contains(&normalize_field(f)),
                "{}: validation_failed should list {f:?}, lists {listed:?}",
                self.request
            );
        }
        Ok(body)
    }
}

/// A field path in one spelling: `items[0].quantity`, `items.0.quantity`
/// and `items/0/quantity` all become `items.0.quantity` (docs/api.md does not fix
/// the notation of nested paths).
pub fn normalize_field(field: &str) -> String {
    field.replace('[', ".").replace(']', "").replace('/', ".").trim_start_matches('.').to_owned()
}

/// The normalized `field` of every entry of a problem's `errors`.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).map(normalize_field).collect())
        .unwrap_or_default()
}

/// A request under construction (wraps the client's builder, keeping the
/// method and path for messages).
#[derive(Debug)]
pub struct Req<'a> {
    request: String,
    builder: RequestBuilder<'a>,
}

impl Req<'_> {
    /// `Authorization: Bearer <token>`.
    pub fn token(mut self, token: &str) -> Self {
        self.builder = self.builder.token(token);
        self
    }

    /// As `user` (their bearer token).
    pub fn user(self, user: &User) -> Self {
        self.token(&user.token)
    }

    /// `body` as `application/json`.
    pub fn json(mut self, body: &Value) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    /// A body sent as is, with this `Content-Type` (none if `None`).
    pub fn raw(mut self, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        self.builder = self.builder.body(content_type, body.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// A header value that need not be valid UTF-8 or visible ASCII.
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.builder = self.builder.header_bytes(name, value);
        self
    }

    /// `Idempotency-Key`, when there is one (any bytes go, even invalid ones).
    pub fn key(mut self, key: Option<&str>) -> Self {
        self.builder = self.builder.idempotency_key(key);
        self
    }

    /// Sends it and reads the whole answer (recorded as an [`Exchange`]).
    pub async fn send(self) -> Result<Answer> {
        let Self { request, builder } = self;
        let res = builder.send().await?;
        Ok(Answer::read(request, &res))
    }
}

impl Answer {
    pub(crate) fn read(request: String, res: &Response) -> Self {
        Self {
            request,
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            text: res.text().into_owned(),
            json: serde_json::from_slice(res.body()).ok(),
        }
    }
}

/// The suite's view of one target.
#[derive(Debug)]
pub struct Ctx {
    client: Client,
    catalog: OnceCell<Vec<Product>>,
    exchanges: ExchangeLog,
}

impl Ctx {
    pub fn new(base_url: &str) -> Result<Self> {
        let exchanges = ExchangeLog::new();
        let client =
            Client::builder().timeout(Duration::from_secs(30)).recorder(exchanges.recorder()).build(base_url)?;
        Ok(Self { client, catalog: OnceCell::new(), exchanges })
    }

    pub fn request(&self, method: Method, path: &str) -> Req<'_> {
        Req { request: format!("{method} {path}"), builder: self.client.request(method, path) }
    }

    /// Every exchange so far (see [`Exchange`]).
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.exchanges()
    }

    pub fn get(&self, path: &str) -> Req<'_> {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Req<'_> {
        self.request(Method::POST, path)
    }

    pub fn patch(&self, path: &str) -> Req<'_> {
        self.request(Method::PATCH, path)
    }

    /// An email no one has registered yet.
    pub fn unique_email(&self) -> String {
        format!("conformance.{}@example.com", Uuid::now_v7().simple())
    }

    /// The catalog, read once per run.
    pub async fn catalog(&self) -> Result<&[Product]> {
        let products = self
            .catalog
            .get_or_try_init(|| async {
                let res = self.get("/v1/products").send().await?;
                let items = schema::array(res.ok(200)?, "items", "products")?;
                items
                    .iter()
                    .map(|p| {
                        schema::product(p)?;
                        Ok(Product {
                            id: schema::string(p, "id", "product")?.to_owned(),
                            name: schema::string(p, "name", "product")?.to_owned(),
                            price_cents: schema::integer(p, "price_cents", "product")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        Ok(products)
    }

    /// A product of the seeded catalog, by id.
    pub async fn product(&self, id: &str) -> Result<Product> {
        let catalog = self.catalog().await?;
        catalog.iter().find(|p| p.id == id).cloned().with_context(|| format!("the catalog has no {id:?}"))
    }

    pub async fn price(&self, id: &str) -> Result<i64> {
        Ok(self.product(id).await?.price_cents)
    }

    /// Logs in; returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> Result<String> {
        let res = self.post("/v1/sessions").json(&json!({"email": email, "password": password})).send().await?;
        Ok(schema::string(res.ok(200)?, "access_token", "session")?.to_owned())
    }

    /// Registers a fresh user (with `address`, which may be `null`) and logs in.
    pub async fn user_with(&self, name: &str, address: Value) -> Result<User> {
        let email = self.unique_email();
        let mut body = json!({"email": email, "password": PASSWORD, "name": name});
        if !address.is_null() {
            body["address"] = address;
        }
        let res = self.post("/v1/users").json(&body).send().await?;
        let created = res.ok(201)?;
        schema::user(created)?;
        let token = self.login(&email, PASSWORD).await?;
        Ok(User {
            id: schema::string(created, "id", "user")?.to_owned(),
            email,
            name: name.to_owned(),
            address: created["address"].clone(),
            token,
        })
    }

    /// A fresh user with a shipping address, logged in.
    pub async fn user(&self) -> Result<User> {
        self.user_with("Conformance Buyer", address()).await
    }

    /// A fresh user without a shipping address, logged in.
    pub async fn user_without_address(&self) -> Result<User> {
        self.user_with("Conformance Addressless", Value::Null).await
    }

    /// Tops up `cents`; returns the top-up (checked: 201 and its schema).
    pub async fn top_up(&self, user: &User, cents: i64) -> Result<Value> {
        let res = self.post("/v1/wallet/top-ups").user(user).json(&json!({"amount_cents": cents})).send().await?;
        let body = res.ok(201)?;
        schema::top_up(body)?;
        Ok(body.clone())
    }

    pub async fn balance(&self, user: &User) -> Result<i64> {
        schema::wallet(self.get("/v1/wallet").user(user).send().await?.ok(200)?)
    }

    /// `GET /v1/users/me`, checked.
    pub async fn me(&self, user: &User) -> Result<Value> {
        let res = self.get("/v1/users/me").user(user).send().await?;
        let body = res.ok(200)?;
        schema::me(body)?;
        Ok(body.clone())
    }

    /// `POST /v1/orders` with `{"items": items}`, unchecked.
    pub async fn place(&self, user: &User, items: Value, key: Option<&str>) -> Result<Answer> {
        self.post("/v1/orders").user(user).key(key).json(&json!({ "items": items })).send().await
    }

    /// Places an order that must be created (201, any status); returns it.
    pub async fn place_ok(&self, user: &User, items: Value) -> Result<Value> {
        let res = self.place(user, items, None).await?;
        let order = res.ok(201)?;
        schema::order(order)?;
        Ok(order.clone())
    }

    /// `GET /v1/orders/{id}`, checked.
    pub async fn order(&self, user: &User, id: &str) -> Result<Value> {
        let res = self.get(&format!("/v1/orders/{id}")).user(user).send().await?;
        let order = res.ok(200)?;
        schema::order(order)?;
        Ok(order.clone())
    }

    /// Every item of a paginated list, following `next_cursor` (at most
    /// 50 pages), each item checked with `item`.
    pub async fn all_pages(&self, user: &User, path: &str, item: fn(&Value) -> Result<()>) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let url = match &cursor {
                Some(c) => format!("{path}?limit=100&cursor={c}"),
                None => format!("{path}?limit=100"),
            };
            let res = self.get(&url).user(user).send().await?;
            let (items, next) = schema::page(res.ok(200)?, item)?;
            all.extend(items.iter().cloned());
            match next {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(all),
            }
        }
        bail!("{path} did not end within 50 pages")
    }

    /// The user's whole ledger, newest first.
    pub async fn ledger(&self, user: &User) -> Result<Vec<Value>> {
        self.all_pages(user, "/v1/payments", schema::entry).await
    }

    /// All the user's orders, newest first.
    pub async fn orders(&self, user: &User) -> Result<Vec<Value>> {
        self.all_pages(user, "/v1/orders", schema::order).await
    }

    /// Polls `probe` until it breaks with a value, for at most
    /// [`EVENTUALLY`]; `Continue` carries what was seen, for the message.
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut probe: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<ControlFlow<T, String>>>,
    {
        let deadline = Instant::now() + EVENTUALLY;
        let mut pause = Duration::from_millis(50);
        loop {
            match probe().await? {
                ControlFlow::Break(value) => return Ok(value),
                ControlFlow::Continue(seen) if Instant::now() >= deadline => {
                    bail!("{what}: not within {} s; last seen: {seen}", EVENTUALLY.as_secs())
                }
                ControlFlow::Continue(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }
}

/// Sums a ledger by kind: `(top-ups, charges, refunds)`, as magnitudes
/// (docs/api.md does not fix the sign of `amount_cents`).
pub fn ledger_sums(entries: &[Value]) -> (i64, i64, i64) {
    entries.iter().fold((0, 0, 0), |(t, c, r), e| {
        let amount = e["amount_cents"].as_i64().unwrap_or(0).abs();
        match e["kind"].as_str() {
            Some("top_up") => (t + amount, c, r),
            Some("charge") => (t, c + amount, r),
            Some("refund") => (t, c, r + amount),
            _ => (t, c, r),
        }
    })
}

/// The ledger entries of one order.
pub fn entries_of<'a>(entries: &'a [Value], order_id: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["order_id"].as_str() == Some(order_id)).collect()
}

/// Checks that `actual` equals `expected`, naming `what`.
pub fn same(actual: &Value, expected: &Value, what: &str) -> Result<()> {
    ensure!(actual == expected, "{what}: expected {expected}, got {actual}");
    Ok(())
}

/// The id of an order (or anything with a string `id`).
pub fn id_of(v: &Value) -> Result<String> {
    Ok(schema::string(v, "id", "body")?.to_owned())
}
