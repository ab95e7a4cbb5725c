//! The user lookup over HTTP: `GET /internal/v1/users/{id}` on the user
//! service's internal port (docs/api.md, "Internal contracts").
//!
//! The server answers `{id, name, address}` or 404 (also for a malformed
//! id); the client sends the current trace context and one request bounded
//! by the time it is given.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, anyhow};
use axum::{
    Json, Router,
    extract::{Path, State, rejection::PathRejection},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use twinshop_contracts::internal::{CallError, PostalAddress, UserCard, UserLookup};
use uuid::Uuid;

use super::{InternalServer, Link, LinkSpec};
use crate::{
    discovery::Balancer,
    problem::{self, ErrorCode, Problem},
    propagation,
};

/// The route, relative to the internal base URL.
pub const ROUTE: &str = "/internal/v1/users/{id}";

impl Link for dyn UserLookup {
    const SPEC: LinkSpec = LinkSpec { name: "user lookup", address_variable: "USER_SERVICE_URL", service: "user" };

    fn connect(address: &str) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(HttpUserLookup::new(address)?))
    }

    fn balanced(balancer: Balancer<Self>) -> Arc<Self> {
        Arc::new(BalancedUserLookup(balancer))
    }

    fn serve(provider: Arc<Self>, internal: &mut InternalServer) {
        internal.route(Router::new().route(ROUTE, get(serve_lookup)).with_state(provider));
    }
}

#[derive(Serialize, Deserialize)]
struct AddressJson {
    line1: String,
    city: String,
    postal_code: String,
    country: String,
}

#[derive(Serialize, Deserialize)]
struct UserJson {
    id: Uuid,
    name: String,
    address: Option<AddressJson>,
}

fn not_found() -> Problem {
    Problem::new(ErrorCode::NotFound).with_detail("No such user.")
}

async fn serve_lookup(
    State(provider): State<Arc<dyn UserLookup>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    // A malformed id (even one that is not UTF-8) names no user: 404.
    let id = path.ok().and_then(|Path(raw)| Uuid::parse_str(&raw).ok()).ok_or_else(not_found)?;
    // The request timeout of the internal port bounds the whole request.
    match provider.lookup(id, Duration::MAX).await {
        Ok(Some(card)) => Ok(Json(UserJson {
            id: card.id,
            name: card.name,
            address: card.address.map(|a| AddressJson {
                line1: a.line1,
                city: a.city,
                postal_code: a.postal_code,
                country: a.country,
            }),
        })
        .into_response()),
        Ok(None) => Err(not_found()),
        Err(CallError::Unavailable(err)) => Err(problem::internal(&err)),
        Err(err) => Err(problem::internal(&anyhow!(err))),
    }
}

/// The client: one keep-alive connection pool to the user service.
#[derive(Debug, Clone)]
pub struct HttpUserLookup {
    client: reqwest::Client,
    base: String,
}

impl HttpUserLookup {
    /// `base` like `http://user:9081` (the internal port).
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { client, base: base.trim_end_matches('/').to_owned() })
    }
}

#[async_trait::async_trait]
impl UserLookup for HttpUserLookup {
    async fn lookup(&self, user_id: Uuid, timeout: Duration) -> Result<Option<UserCard>, CallError> {
        let span = tracing::info_span!("user.lookup", otel.name = "GET /internal/v1/users/{id}", otel.kind = "client",
            user_id = %user_id);
        let mut headers = http::HeaderMap::new();
        span.in_scope(|| propagation::inject_http(&mut headers));
        let url = format!("{}/internal/v1/users/{user_id}", self.base);
        let call = async {
            let res = self.client.get(&url).headers(headers).timeout(timeout).send().await?;
            if res.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let res = res.error_for_status()?;
            res.json::<UserJson>().await.map(Some)
        };
        let user = tracing::Instrument::instrument(call, span)
            .await
            .map_err(|e| CallError::Unavailable(anyhow!(e).context("calling the user service")))?;
        Ok(user.map(|u| UserCard {
            id: u.id,
            name: u.name,
            address: u.address.map(|a| PostalAddress {
                line1: a.line1,
                city: a.city,
                postal_code: a.postal_code,
                country: a.country,
            }),
        }))
    }
}

/// [`UserLookup`] over every endpoint discovery found, one picked per call.
#[derive(Debug)]
pub struct BalancedUserLookup(pub Balancer<dyn UserLookup>);

#[async_trait::async_trait]
impl UserLookup for BalancedUserLookup {
    async fn lookup(&self, user_id: Uuid, timeout: Duration) -> Result<Option<UserCard>, CallError> {
        self.0.call(|lookup| async move { lookup.lookup(user_id, timeout).await }).await
    }
}
