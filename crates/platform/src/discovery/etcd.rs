//! A service registry in etcd, in the Eureka style: each replica that
//! serves an internal contract registers itself, and callers watch.
//!
//! - **Registration** ([`register`]): the replica grants itself a lease of
//!   `REGISTRY_TTL_SECS`, puts `<prefix><service>/<lease id>` = its
//!   internal URL under that lease, and keeps the lease alive (a heartbeat
//!   every third of the TTL). On graceful shutdown it revokes the lease, so
//!   the key goes at once; if the replica crashes, etcd deletes the key
//!   when the lease runs out. If etcd forgets the lease (it was down longer
//!   than the TTL), the replica registers again.
//! - **Watching** ([`follow`]): the caller reads the prefix, then watches it
//!   from the next revision, so no change between the two is missed; a
//!   broken watch starts over with a fresh read.
//!
//! The client is generated from etcd's own protos (`proto/etcd/`, through
//! `twinshop_contracts::etcd`), with only the calls used here.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context as _, anyhow, bail};
use futures_util::{StreamExt as _, stream};
use tonic::transport::{Channel, Endpoint};
use twinshop_contracts::etcd::{
    etcdserverpb::{
        LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest, RangeRequest, WatchCreateRequest,
        WatchRequest, kv_client::KvClient, lease_client::LeaseClient, watch_client::WatchClient,
        watch_request::RequestUnion,
    },
    mvccpb::event::EventType,
};

use super::balancer::Balancer;
use crate::shutdown::Shutdown;

/// Wait before trying etcd again after a failure.
const RETRY: Duration = Duration::from_secs(1);
/// Bound of one unary etcd call.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// The etcd members at `endpoints` (`http://host:2379`, comma separated),
/// checked and configured; no connection is made (and no runtime needed).
pub fn endpoints(endpoints: &str) -> anyhow::Result<Vec<Endpoint>> {
    let list = endpoints
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            Ok(Endpoint::from_shared(e.to_owned())
                .with_context(|| format!("etcd endpoint {e:?} is malformed"))?
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if list.is_empty() {
        bail!("no etcd endpoint given");
    }
    Ok(list)
}

/// A lazily connected channel to the etcd members at `endpoints`, balanced
/// across them (its balancer runs on the current tokio runtime).
pub fn channel(endpoints: &str) -> anyhow::Result<Channel> {
    Ok(Channel::balance_list(self::endpoints(endpoints)?.into_iter()))
}

/// The end of the range of keys that start with `prefix` (etcd's
/// `range_end`: the prefix with its last byte incremented).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The key a replica registers under: `<prefix><service>/<lease id>`.
pub fn key(prefix: &str, service: &str, lease: i64) -> String {
    format!("{prefix}{service}/{lease:016x}")
}

/// The prefix the callers of `service` watch.
pub fn service_prefix(prefix: &str, service: &str) -> String {
    format!("{prefix}{service}/")
}

// ---- registration ----

/// What one replica registers.
#[derive(Debug, Clone)]
pub struct Registration {
    /// `(service, internal URL)` per contract it serves.
    pub entries: Vec<(&'static str, String)>,
    /// e.g. `/twinshop/services/`.
    pub prefix: String,
    pub ttl: Duration,
}

/// Registers `registration` and keeps it alive until shutdown, then
/// revokes it. Retries for as long as etcd is unreachable.
pub async fn register(channel: Channel, registration: Registration, shutdown: Shutdown) {
    let mut lease_client = LeaseClient::new(channel.clone());
    loop {
        let lease = tokio::select! {
            () = shutdown.cancelled() => return,
            lease = grant_and_put(channel.clone(), &registration) => lease,
        };
        let id = match lease {
            Ok(id) => id,
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), "registering in etcd failed; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RETRY) => continue,
                }
            }
        };
        let keys: Vec<String> = registration.entries.iter().map(|(s, _)| key(&registration.prefix, s, id)).collect();
        tracing::info!(keys = ?keys, ttl_s = registration.ttl.as_secs(), "registered in etcd");
        let ended = tokio::select! {
            () = shutdown.cancelled() => None,
            ended = keep_alive(&mut lease_client, id, registration.ttl) => Some(ended),
        };
        match ended {
            None => {
                let revoke = lease_client.lease_revoke(LeaseRevokeRequest { id });
                match tokio::time::timeout(Duration::from_secs(1), revoke).await {
                    Ok(Ok(_)) => tracing::info!(keys = ?keys, "registration revoked"),
                    Ok(Err(status)) => {
                        tracing::warn!(error = %status, "revoking the registration failed; it expires with its lease")
                    }
                    Err(_) => tracing::warn!("revoking the registration timed out; it expires with its lease"),
                }
                return;
            }
            Some(err) => {
                tracing::warn!(error = format!("{err:#}"), "the registration's lease ended; registering again");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}

async fn grant_and_put(channel: Channel, registration: &Registration) -> anyhow::Result<i64> {
    let ttl = i64::try_from(registration.ttl.as_secs()).unwrap_or(i64::MAX);
    let mut lease = LeaseClient::new(channel.clone());
    let mut kv = KvClient::new(channel);
    let granted = tokio::time::timeout(CALL_TIMEOUT, lease.lease_grant(LeaseGrantRequest { ttl, id: 0 }))
        .await
        .context("granting a lease timed out")?
        .context("granting a lease")?
        .into_inner();
    if !granted.error.is_empty() {
        bail!("granting a lease: {}", granted.error);
    }
    for (service, url) in &registration.entries {
        let put = PutRequest {
            key: key(&registration.prefix, service, granted.id).into_bytes(),
            value: url.clone().into_bytes(),
            lease: granted.id,
            ..PutRequest::default()
        };
        tokio::time::timeout(CALL_TIMEOUT, kv.put(put))
            .await
            .context("registering timed out")?
            .context("registering")?;
    }
    Ok(granted.id)
}

/// Sends a keep-alive every third of `ttl` until the lease is gone or the
/// stream breaks; returns why it stopped.
async fn keep_alive(client: &mut LeaseClient<Channel>, id: i64, ttl: Duration) -> anyhow::Error {
    let every = (ttl / 3).max(Duration::from_millis(200));
    let requests = stream::unfold(true, move |first| async move {
        if !first {
            tokio::time::sleep(every).await;
        }
        Some((LeaseKeepAliveRequest { id }, false))
    });
    let mut responses = match client.lease_keep_alive(requests).await {
        Ok(r) => r.into_inner(),
        Err(status) => return anyhow!("opening the keep-alive stream: {status}"),
    };
    loop {
        // A live stream answers every `every`; twice the TTL of silence is a dead one.
        match tokio::time::timeout(ttl * 2, responses.next()).await {
            Ok(Some(Ok(answer))) if answer.ttl <= 0 => return anyhow!("etcd says lease {id:x} has expired"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(status))) => return anyhow!("keep-alive: {status}"),
            Ok(None) => return anyhow!("etcd closed the keep-alive stream"),
            Err(_) => return anyhow!("keep-alive: no answer for {:?}", ttl * 2),
        }
    }
}

// ---- watching ----

/// Keeps `balancer` on the URLs registered under `<prefix><service>/`,
/// until shutdown.
pub async fn follow<C>(balancer: Balancer<C>, channel: Channel, prefix: String, shutdown: Shutdown)
where
    C: ?Sized + Send + Sync + 'static,
{
    let mut failing = false;
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = watch_once(&balancer, channel.clone(), &prefix, &mut failing) => result,
        };
        if let Err(err) = result
            && !std::mem::replace(&mut failing, true)
        {
            tracing::warn!(
                prefix,
                error = format!("{err:#}"),
                "watching the registry failed; keeping the last endpoints"
            );
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// One read and the watch that follows it, until the watch breaks.
async fn watch_once<C>(balancer: &Balancer<C>, channel: Channel, prefix: &str, failing: &mut bool) -> anyhow::Result<()>
where
    C: ?Sized + Send + Sync + 'static,
{
    let (key, range_end) = (prefix.as_bytes().to_vec(), prefix_end(prefix.as_bytes()));
    let mut kv = KvClient::new(channel.clone());
    let read = kv.range(RangeRequest { key: key.clone(), range_end: range_end.clone(), ..RangeRequest::default() });
    let read = tokio::time::timeout(CALL_TIMEOUT, read).await.context("reading the registry timed out")?;
    let read = read.context("reading the registry")?.into_inner();
    let revision = read.header.map(|h| h.revision).context("etcd answered without a revision")?;
    let mut registered: BTreeMap<Vec<u8>, String> =
        read.kvs.into_iter().map(|kv| (kv.key, String::from_utf8_lossy(&kv.value).into_owned())).collect();
    balancer.update(registered.values().cloned());
    if std::mem::replace(failing, false) {
        tracing::info!(prefix, "watching the registry again");
    }
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key,
            range_end,
            start_revision: revision + 1,
            ..WatchCreateRequest::default()
        })),
    };
    // The request stream stays open: closing it would end the watch.
    let requests = stream::iter([create]).chain(stream::pending());
    let mut events = WatchClient::new(channel).watch(requests).await.context("opening the watch")?.into_inner();
    while let Some(answer) = events.next().await {
        let answer = answer.context("watching")?;
        if answer.canceled {
            bail!("etcd cancelled the watch: {}", answer.cancel_reason);
        }
        if answer.events.is_empty() {
            continue;
        }
        for event in answer.events {
            let Some(kv) = event.kv else { continue };
            if event.r#type == EventType::Delete as i32 {
                registered.remove(&kv.key);
            } else {
                registered.insert(kv.key, String::from_utf8_lossy(&kv.value).into_owned());
            }
        }
        balancer.update(registered.values().cloned());
    }
    bail!("etcd closed the watch")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_after_its_last_byte() {
        assert_eq!(prefix_end(b"/twinshop/services/payment/"), b"/twinshop/services/payment0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn endpoints_are_checked_without_a_runtime() {
        // Configuration is checked before any runtime exists (`migrate`, the deployment tests).
        assert_eq!(endpoints("http://etcd-0:2379, http://etcd-1:2379").map(|e| e.len()).ok(), Some(2));
        assert!(endpoints(" , ").is_err());
        assert!(endpoints("http://bad host:2379").is_err());
    }

    #[test]
    fn a_replica_is_registered_under_its_service_and_lease() {
        assert_eq!(key("/twinshop/services/", "payment", 0x1f), "/twinshop/services/payment/000000000000001f");
        assert!(key("/p/", "payment", 7).starts_with(&service_prefix("/p/", "payment")));
    }
}
