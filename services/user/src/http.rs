//! The user area's HTTP adapter: routes, request parsing, response shapes,
//! and the mapping of use-case errors to error codes (this area's part of
//! the one error table in `twinshop_platform::problem`).

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use serde::Serialize;
use serde_json::{Map, Value};
use twinshop_platform::{
    http::{
        auth::Authenticated,
        json::{Fields, JsonObject, Presence},
    },
    problem::{self, ErrorCode, Problem},
};
use uuid::Uuid;

use crate::{
    app::{LoginError, NewUser, ProfileChanges, ProfileError, RegisterError, UserService},
    domain::{Address, Email, Password, Stats, User, UserId, UserName},
};

/// Public routes: `/v1/users`, `/v1/sessions`.
pub fn public_routes(users: UserService) -> Router {
    Router::new()
        .route("/v1/users", post(register))
        .route("/v1/sessions", post(login))
        .route("/v1/users/me", get(me).patch(update_me))
        .with_state(users)
}

// ---- error table (this area's rows) ----

impl From<RegisterError> for Problem {
    fn from(err: RegisterError) -> Self {
        match err {
            RegisterError::EmailTaken => {
                Problem::new(ErrorCode::EmailTaken).with_detail("An account with this email already exists.")
            }
            RegisterError::Unexpected(e) => problem::internal(&e),
        }
    }
}

impl From<LoginError> for Problem {
    fn from(err: LoginError) -> Self {
        match err {
            LoginError::InvalidCredentials => Problem::new(ErrorCode::InvalidCredentials),
            LoginError::Throttled(retry_after) => Problem::new(ErrorCode::TooManyRequests)
                .with_detail("Too many failed login attempts for this account; try again later.")
                .with_retry_after(retry_after),
            LoginError::Unexpected(e) => problem::internal(&e),
        }
    }
}

impl From<ProfileError> for Problem {
    fn from(err: ProfileError) -> Self {
        match err {
            // A valid token for a user that no longer exists: the token is
            // no good any more.
            ProfileError::NotFound => Problem::new(ErrorCode::Unauthorized),
            ProfileError::Unexpected(e) => problem::internal(&e),
        }
    }
}

// ---- response shapes ----

#[derive(Serialize)]
struct AddressJson<'a> {
    line1: &'a str,
    city: &'a str,
    postal_code: &'a str,
    country: &'a str,
}

fn address_json(a: Option<&Address>) -> Option<AddressJson<'_>> {
    a.map(|a| AddressJson {
        line1: a.line1(),
        city: a.city(),
        postal_code: a.postal_code(),
        country: a.country().as_str(),
    })
}

#[derive(Serialize)]
struct UserJson<'a> {
    id: Uuid,
    email: &'a str,
    name: &'a str,
    address: Option<AddressJson<'a>>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<StatsJson>,
}

#[derive(Serialize)]
struct StatsJson {
    orders_confirmed: i64,
    total_spent_cents: i64,
}

fn user_json(user: &User, stats: Option<Stats>) -> UserJson<'_> {
    UserJson {
        id: user.id.as_uuid(),
        email: user.email.as_str(),
        name: user.name.as_str(),
        address: address_json(user.address.as_ref()),
        created_at: user.created_at,
        stats: stats
            .map(|s| StatsJson { orders_confirmed: s.orders_confirmed, total_spent_cents: s.total_spent_cents }),
    }
}

// ---- request parsing ----

fn parse_address(fields: &mut Fields<'_>, name: &str, obj: &Map<String, Value>) -> Option<Address> {
    let mut nested = fields.nested(name, obj);
    let line1 = nested.string("line1");
    let city = nested.string("city");
    let postal = nested.string("postal_code");
    let country = nested.string("country");
    let mut errors = nested.into_errors();
    let parsed = match Address::parse_parts(&fields.path(name), line1, city, postal, country) {
        Ok(a) => Some(a),
        Err(e) => {
            for fe in e.into_vec() {
                errors.push(fe.field, fe.message);
            }
            None
        }
    };
    fields.absorb(errors);
    parsed
}

fn parse_new_user(body: &Map<String, Value>) -> Result<NewUser, Problem> {
    let mut f = Fields::new(body);
    let email = f.parsed("email", Email::parse);
    let password = f.parsed("password", Password::parse);
    let name = f.parsed("name", UserName::parse);
    let address = match f.optional_object("address") {
        Presence::Present(obj) => parse_address(&mut f, "address", obj),
        _ => None,
    };
    f.finish()?;
    match (email, password, name) {
        (Some(email), Some(password), Some(name)) => Ok(NewUser { email, password, name, address }),
        _ => Err(Problem::new(ErrorCode::ValidationFailed)),
    }
}

fn parse_changes(body: &Map<String, Value>) -> Result<ProfileChanges, Problem> {
    let mut f = Fields::new(body);
    let name = match f.optional_string("name") {
        Presence::Present(raw) => match UserName::parse(raw) {
            Ok(name) => Some(name),
            Err(e) => {
                f.error("name", e.to_string());
                None
            }
        },
        Presence::Null => {
            f.error("name", "cannot be removed");
            None
        }
        Presence::Absent => None,
    };
    let address = match f.optional_object("address") {
        Presence::Present(obj) => parse_address(&mut f, "address", obj).map(Some),
        Presence::Null => Some(None),
        Presence::Absent => None,
    };
    f.finish()?;
    Ok(ProfileChanges { name, address })
}

// ---- handlers ----

async fn register(
    State(users): State<UserService>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, Problem> {
    let new = parse_new_user(&body)?;
    let user = users.register(new).await?;
    Ok((StatusCode::CREATED, Json(user_json(&user, None))).into_response())
}

#[derive(Serialize)]
struct SessionJson {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

async fn login(State(users): State<UserService>, JsonObject(body): JsonObject) -> Result<impl IntoResponse, Problem> {
    let mut f = Fields::new(&body);
    let email = f.string("email");
    let password = f.string("password");
    f.finish()?;
    // Shape errors are 400; a malformed email or a wrong-length password is
    // just a wrong credential (and still costs a hash).
    let email = email.and_then(|e| Email::parse(e).ok());
    let password = Password::for_login(password.unwrap_or_default());
    let session = users.login(email, password).await?;
    Ok(Json(SessionJson {
        access_token: session.access_token,
        token_type: "Bearer",
        expires_in: session.expires_in_secs,
    }))
}

async fn me(State(users): State<UserService>, Authenticated(id): Authenticated) -> Result<impl IntoResponse, Problem> {
    let (user, stats) = users.me(UserId::from_uuid(id)).await?;
    Ok(Json(user_json(&user, Some(stats))).into_response())
}

async fn update_me(
    State(users): State<UserService>,
    Authenticated(id): Authenticated,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, Problem> {
    let changes = parse_changes(&body)?;
    let user = users.update_profile(UserId::from_uuid(id), changes).await?;
    Ok(Json(user_json(&user, None)).into_response())
}
