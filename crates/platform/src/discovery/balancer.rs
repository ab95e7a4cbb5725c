//! Per-call balancing over the endpoints discovery found, with passive
//! ejection and re-admission by health check.
//!
//! Every call picks an endpoint by the power of two choices: two healthy
//! endpoints at random, the one with fewer calls in flight (what Envoy's
//! and Linkerd's least-request balancers do). A call that ends
//! [`CallError::Unavailable`] (refused, reset, timed out, or failed on the
//! other side) ejects its endpoint at once: no further call goes there.
//! The caller's retry (the calling area's rule, `services/order/src/peers.rs`)
//! then lands elsewhere. An ejected endpoint comes back only when its
//! internal port's `/readyz` answers 200 again (probed every
//! [`PROBE_EVERY`]), or when discovery lists it anew after it had dropped
//! out. When every endpoint is ejected, calls go to all of them again
//! (Envoy's "panic mode"): better a try than a certain failure.
//!
//! Why our own pick rather than tonic's `balance_channel` (tower's p2c):
//! the same balancer serves the HTTP user lookup, which tonic cannot; tower
//! drops an endpoint only when its connection fails, not when a call does
//! (a replica whose database is down keeps its connection and fails every
//! call); and the lab needs what it did, per endpoint, on `/metrics`:
//! - `discovery_calls_total{link,endpoint,outcome}` (`ok`, `refused`, `unavailable`);
//! - `discovery_ejections_total{link,endpoint}`;
//! - `discovery_endpoints{link,state}` (`healthy`, `ejected`).

use std::{
    future::Future,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use twinshop_contracts::internal::CallError;

use crate::shutdown::Shutdown;

/// How often ejected endpoints are probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Builds a client of one endpoint (base URL), e.g. `GrpcPayments::new`.
pub type Connect<C> = fn(&str) -> anyhow::Result<Arc<C>>;

/// One endpoint and its client.
struct Endpoint<C: ?Sized> {
    url: String,
    client: Arc<C>,
    in_flight: AtomicUsize,
    ejected: AtomicBool,
}

struct Inner<C: ?Sized> {
    link: &'static str,
    connect: Connect<C>,
    endpoints: RwLock<Vec<Arc<Endpoint<C>>>>,
    probe: reqwest::Client,
}

/// The endpoints of one link and the per-call pick among them. Cheap to clone.
pub struct Balancer<C: ?Sized> {
    inner: Arc<Inner<C>>,
}

impl<C: ?Sized> Clone for Balancer<C> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<C: ?Sized + Send + Sync + 'static> std::fmt::Debug for Balancer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer").field("link", &self.inner.link).field("endpoints", &self.endpoints()).finish()
    }
}

/// Decrements an endpoint's in-flight count when the call ends, however.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<C: ?Sized + Send + Sync + 'static> Balancer<C> {
    /// An empty balancer for `link` (a service name, e.g. `payment`);
    /// `connect` makes the client of each endpoint discovery adds.
    pub fn new(link: &'static str, connect: Connect<C>) -> anyhow::Result<Self> {
        let probe = reqwest::Client::builder()
            .timeout(PROBE_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!(e).context("building the health probe's client"))?;
        Ok(Self { inner: Arc::new(Inner { link, connect, endpoints: RwLock::default(), probe }) })
    }

    /// Replaces the endpoint set with `urls` (what discovery sees now).
    /// Endpoints still listed keep their client and their ejection; new ones
    /// start healthy; the others are dropped (calls in flight finish).
    pub fn update(&self, urls: impl IntoIterator<Item = String>) {
        let mut urls: Vec<String> = urls.into_iter().collect();
        urls.sort();
        urls.dedup();
        let mut endpoints = self.inner.endpoints.write().unwrap_or_else(PoisonError::into_inner);
        let before: Vec<String> = endpoints.iter().map(|e| e.url.clone()).collect();
        let mut next = Vec::with_capacity(urls.len());
        for url in urls {
            if let Some(known) = endpoints.iter().find(|e| e.url == url) {
                next.push(known.clone());
                continue;
            }
            match (self.inner.connect)(&url) {
                Ok(client) => next.push(Arc::new(Endpoint {
                    url,
                    client,
                    in_flight: AtomicUsize::new(0),
                    ejected: AtomicBool::new(false),
                })),
                Err(err) => tracing::warn!(
                    link = self.inner.link,
                    endpoint = url,
                    error = format!("{err:#}"),
                    "discovered endpoint is unusable"
                ),
            }
        }
        let after: Vec<String> = next.iter().map(|e| e.url.clone()).collect();
        *endpoints = next;
        drop(endpoints);
        if before != after {
            tracing::info!(link = self.inner.link, endpoints = ?after, "endpoints changed");
        }
        self.gauges();
    }

    /// `(url, healthy)` of every endpoint, sorted by URL.
    pub fn endpoints(&self) -> Vec<(String, bool)> {
        let endpoints = self.inner.endpoints.read().unwrap_or_else(PoisonError::into_inner);
        endpoints.iter().map(|e| (e.url.clone(), !e.ejected.load(Ordering::Relaxed))).collect()
    }

    fn gauges(&self) {
        let endpoints = self.endpoints();
        let healthy = endpoints.iter().filter(|(_, h)| *h).count();
        let link = self.inner.link;
        metrics::gauge!("discovery_endpoints", "link" => link, "state" => "healthy").set(healthy as f64);
        metrics::gauge!("discovery_endpoints", "link" => link, "state" => "ejected")
            .set((endpoints.len() - healthy) as f64);
    }

    /// Two at random among the healthy ones (all, when none is), the less busy.
    fn pick(&self) -> Option<Arc<Endpoint<C>>> {
        let endpoints = self.inner.endpoints.read().unwrap_or_else(PoisonError::into_inner);
        let healthy: Vec<&Arc<Endpoint<C>>> = endpoints.iter().filter(|e| !e.ejected.load(Ordering::Relaxed)).collect();
        let pool: Vec<&Arc<Endpoint<C>>> = if healthy.is_empty() { endpoints.iter().collect() } else { healthy };
        match pool.len() {
            0 => None,
            1 => Some(pool[0].clone()),
            n => {
                let a = rand::random_range(0..n);
                let b = (a + rand::random_range(1..n)) % n;
                let load = |i: usize| pool[i].in_flight.load(Ordering::Relaxed);
                Some(pool[if load(b) < load(a) { b } else { a }].clone())
            }
        }
    }

    /// Runs `call` against the endpoint picked for it. An `Unavailable`
    /// answer ejects that endpoint before it is returned.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, CallError>
    where
        F: FnOnce(Arc<C>) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let Some(endpoint) = self.pick() else {
            return Err(CallError::Unavailable(anyhow::anyhow!("no {} endpoint is known yet", self.inner.link)));
        };
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        let result = {
            let _in_flight = InFlight(&endpoint.in_flight);
            call(endpoint.client.clone()).await
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(CallError::Unavailable(_)) => "unavailable",
            Err(_) => "refused",
        };
        let link = self.inner.link;
        metrics::counter!("discovery_calls_total", "link" => link, "endpoint" => endpoint.url.clone(),
            "outcome" => outcome)
        .increment(1);
        if let Err(CallError::Unavailable(err)) = &result
            && !endpoint.ejected.swap(true, Ordering::Relaxed)
        {
            metrics::counter!("discovery_ejections_total", "link" => link, "endpoint" => endpoint.url.clone())
                .increment(1);
            tracing::warn!(link, endpoint = endpoint.url, error = format!("{err:#}"), "endpoint ejected");
            self.gauges();
        }
        result
    }

    /// Probes every ejected endpoint once; those whose `/readyz` answers
    /// 200 are healthy again.
    pub async fn probe_ejected(&self) {
        let ejected: Vec<Arc<Endpoint<C>>> = {
            let endpoints = self.inner.endpoints.read().unwrap_or_else(PoisonError::into_inner);
            endpoints.iter().filter(|e| e.ejected.load(Ordering::Relaxed)).cloned().collect()
        };
        for endpoint in ejected {
            let ready = self
                .inner
                .probe
                .get(format!("{}/readyz", endpoint.url.trim_end_matches('/')))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready && endpoint.ejected.swap(false, Ordering::Relaxed) {
                tracing::info!(link = self.inner.link, endpoint = endpoint.url, "endpoint healthy again");
                self.gauges();
            }
        }
    }

    /// Probes ejected endpoints every [`PROBE_EVERY`] until shutdown.
    pub async fn probe_until(self, shutdown: Shutdown) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(PROBE_EVERY) => {}
            }
            self.probe_ejected().await;
        }
    }
}
