//! twinshop-client: the one client of twinshop's API, written from the
//! contract alone (API.md, `openapi/twinshop.yaml`, `proto/`).
//!
//! Why it exists: the conformance suite, the end-to-end tests, the load
//! generator, the services' black-box tests and the labs all talk to the
//! shop from outside. One client means one place that knows the paths, the
//! bodies, the error format and the transport settings, and one set of
//! bugs. It depends on no crate of the implementation (no service, no
//! platform, no contracts): it sees only what any client could see, so it
//! can talk to either build, or to a port of the shop in another language.
//!
//! # Layout
//!
//! - [`raw`]: [`Client`] (a base URL and a keep-alive HTTP/1.1 pool on
//!   hyper-util), any request ([`RequestBuilder`]: method, path with query,
//!   headers including non-UTF-8 values, a [`Bearer`] token, an
//!   `Idempotency-Key`, a JSON or raw body with any or no content type) and
//!   the whole answer ([`Response`], in [`response`]). The load generator's
//!   hot path.
//! - [`resend`]: sending again, once and counted ([`Client::resends`]), a
//!   safe request a reused keep-alive connection lost before any answer
//!   (a server closing idle connections, as nginx does on a reload).
//! - [`record`]: a hook that sees every exchange ([`Exchange`],
//!   [`ExchangeLog`]), for checking answers against the OpenAPI document.
//! - [`api`]: the typed layer, one method per endpoint of API.md, on
//!   [`Client`] (public endpoints) and [`UserClient`] (🔒, with a token).
//! - [`types`]: the request and response bodies of API.md.
//! - [`error`]: [`TransportError`] (timeout vs I/O), [`SendError`] (no
//!   answer), [`ApiError`] (no answer, an error answer with its problem and
//!   raw body, or a body that breaks the contract).
//! - [`internal`]: the microservices' internal contracts: the user lookup
//!   ([`UserDirectory`]) and the payment service's gRPC API and health
//!   check ([`Payments`]), generated from `proto/` by `build.rs`.
//! - [`reflection`]: gRPC server reflection (v1 and v1alpha), as `grpcurl`
//!   uses it.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use twinshop_client::{Address, Client, NewUser, OrderItem, OrderStatus};
//!
//! let shop = Client::new("http://127.0.0.1:8080")?;
//! let address = Address {
//!     line1: "1 Main St".into(),
//!     city: "Berlin".into(),
//!     postal_code: "10115".into(),
//!     country: "DE".into(),
//! };
//! let new = NewUser {
//!     email: "ada@example.com".into(),
//!     password: "correct horse battery staple".into(),
//!     name: "Ada".into(),
//!     address: Some(address),
//! };
//! let (_user, ada) = shop.sign_up(&new).await?;
//! ada.top_up(5_000, None).await?;
//! let order = ada.place_order(&[OrderItem::new("sku-tea", 2)], Some("my-key")).await?;
//! assert_eq!(order.status, OrderStatus::Confirmed);
//! match ada.cancel(order.id).await {
//!     Ok(cancelled) => assert_eq!(cancelled.status, OrderStatus::Cancelled),
//!     Err(e) if e.is_code("order_not_cancellable") => {}
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok(()) }
//! ```

pub mod api;
pub mod error;
pub mod internal;
pub mod raw;
pub mod record;
pub mod reflection;
pub mod resend;
pub mod response;
pub mod types;

pub use api::{Idempotent, MAX_PAGE, UserClient};
pub use error::{ApiError, ContractError, HttpError, SendError, TransportError};
pub use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
pub use internal::{Charged, Payments, Refunded, RpcError, UserDirectory};
pub use raw::{BaseUrlError, Bearer, Client, ClientBuilder, RequestBuilder, Response, encode_query_value};
pub use record::{Exchange, ExchangeLog, Recorder};
pub use reflection::{ReflectedMethod, Reflection, ReflectionVersion};
pub use types::{
    Address, EntryKind, FieldError, LedgerEntry, NewUser, Order, OrderItem, OrderLine, OrderStatus, Page, Problem,
    Product, Profile, ProfileUpdate, RefundStatus, Session, ShipTo, Stats, TopUp, User, UserLookup, Wallet,
};
