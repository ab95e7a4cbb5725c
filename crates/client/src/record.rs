//! A hook on every exchange: each request sent through a [`Client`] with a
//! recorder and the answer that came back, reduced to what a
//! machine-readable contract can check (method, path, status, media type,
//! JSON body).
//!
//! Why it exists: the conformance suite checks its cases' answers itself,
//! and afterwards twinshop's e2e tests hold *every* answer of the run to
//! `openapi/twinshop.yaml`. Recording in the client means no case has to
//! remember to do it. A client without a recorder pays nothing for it.
//!
//! [`Client`]: crate::Client

use std::sync::{Arc, Mutex, PoisonError};

use http::Method;
use serde_json::Value;

use crate::raw::Response;

/// One request and its answer, as the client saw them.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The URL path, percent-encoded as sent, without the query.
    pub path: String,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The response's media type, lowercase, without parameters.
    pub media_type: String,
    /// The response body, if it is JSON.
    pub body: Option<Value>,
}

impl Exchange {
    pub(crate) fn of(method: &Method, path: &str, response: &Response) -> Self {
        Self {
            method: method.as_str().to_owned(),
            path: path.to_owned(),
            status: response.status().as_u16(),
            media_type: response.media_type(),
            body: serde_json::from_slice(response.body()).ok(),
        }
    }
}

/// Called with every exchange of a client that has it (see
/// [`ClientBuilder::recorder`](crate::ClientBuilder::recorder)).
pub type Recorder = Arc<dyn Fn(Exchange) + Send + Sync>;

/// The simplest recorder: every exchange, in the order the answers arrived.
/// Cheap to clone (clones share the list).
#[derive(Debug, Clone, Default)]
pub struct ExchangeLog {
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl ExchangeLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A recorder that appends to this log.
    pub fn recorder(&self) -> Recorder {
        let log = self.exchanges.clone();
        Arc::new(move |exchange| log.lock().unwrap_or_else(PoisonError::into_inner).push(exchange))
    }

    /// Every exchange so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many exchanges so far.
    pub fn len(&self) -> usize {
        self.exchanges.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
