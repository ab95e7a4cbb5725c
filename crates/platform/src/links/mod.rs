//! Links: how one area reaches another's internal contract
//! (`twinshop_contracts::internal`) over the network.
//!
//! Why it exists: an area asks the host for the contracts it needs and
//! hands it the ones it provides, without knowing the transport. With the
//! in-process transport the host passes the provider itself; with the
//! network transport it mounts the provider's server on the providing
//! process's internal port ([`Link::serve`]) and gives the calling process
//! a client ([`Link::connect`]) to the address in its configuration. One
//! module per contract: [`user_lookup`] (HTTP) and [`payments`] (gRPC).
//!
//! Where the provider is comes from configuration: one address, or every
//! replica found by DNS or in the etcd registry, balanced per call
//! (`crate::discovery`).
//!
//! Every client makes exactly one attempt within the time it is given and
//! reports [`CallError::Unavailable`](twinshop_contracts::internal::CallError)
//! for anything that might have taken effect; retries and deadlines are
//! the calling area's rules, the same in both builds.

pub mod payments;
pub mod user_lookup;

use std::sync::Arc;

use axum::Router;

use crate::discovery::Balancer;

/// A link as configuration knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSpec {
    /// For messages, e.g. `user lookup`.
    pub name: &'static str,
    /// The variable (after the process's prefix) holding the providing
    /// process's internal address in the network transport, e.g.
    /// `USER_SERVICE_URL` → `ORDER_USER_SERVICE_URL`.
    pub address_variable: &'static str,
    /// The providing service, e.g. `payment`: its registry key
    /// (`<prefix>payment/…`) and the caller's `{P}PAYMENT_DISCOVERY`
    /// (`crate::discovery`).
    pub service: &'static str,
}

/// An internal contract that can cross the network. Implemented for the
/// contract's trait object (`dyn UserLookup`, `dyn Payments`).
pub trait Link: Send + Sync + 'static {
    const SPEC: LinkSpec;

    /// A client of the provider at `address` (e.g. `http://payment:9082`);
    /// connects lazily, so a peer that is down does not stop the start.
    fn connect(address: &str) -> anyhow::Result<Arc<Self>>;

    /// A client that balances each call across the endpoints discovery
    /// keeps in `balancer` (client-side discovery, `crate::discovery`).
    fn balanced(balancer: Balancer<Self>) -> Arc<Self>;

    /// Mounts `provider` on the internal port being assembled.
    fn serve(provider: Arc<Self>, internal: &mut InternalServer);
}

/// A gRPC service waiting to be added to the internal port's routes.
pub(crate) type AddGrpc = Box<dyn FnOnce(tonic::service::Routes) -> tonic::service::Routes + Send>;

/// What a process serves on its internal port besides the operational
/// endpoints: HTTP routes and gRPC services of the links it provides.
#[derive(Default)]
pub struct InternalServer {
    http: Router,
    grpc: Vec<(&'static str, AddGrpc)>,
}

impl std::fmt::Debug for InternalServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalServer").field("grpc", &self.grpc_services()).finish_non_exhaustive()
    }
}

impl InternalServer {
    /// Adds HTTP routes.
    pub fn route(&mut self, routes: Router) {
        self.http = std::mem::take(&mut self.http).merge(routes);
    }

    /// Adds a gRPC service (its full name is reported by gRPC health).
    pub fn grpc<S>(&mut self, service: S)
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible>
            + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.grpc.push((S::NAME, Box::new(move |routes| routes.add_service(service))));
    }

    /// The full names of the gRPC services added so far.
    pub fn grpc_services(&self) -> Vec<&'static str> {
        self.grpc.iter().map(|(name, _)| *name).collect()
    }

    /// Everything added, as one router (the host adds health and
    /// reflection itself; what tests of the links serve).
    pub fn into_router(self) -> Router {
        let (http, grpc) = self.into_parts();
        if grpc.is_empty() {
            return http;
        }
        let mut routes = tonic::service::Routes::from(http);
        for (_, add) in grpc {
            routes = add(routes);
        }
        routes.into_axum_router()
    }

    /// The HTTP routes and the gRPC additions, for the host to assemble.
    pub(crate) fn into_parts(self) -> (Router, Vec<(&'static str, AddGrpc)>) {
        (self.http, self.grpc)
    }
}
