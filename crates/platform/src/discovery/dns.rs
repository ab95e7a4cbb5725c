//! Discovery from DNS: every A (or AAAA) record of the peer's host name is
//! an endpoint on the peer's port, as a Kubernetes headless Service (or a
//! compose service with several replicas) answers.
//!
//! The name is resolved again when its answer expires: its TTL, bounded to
//! [`MIN_REFRESH`]–[`MAX_REFRESH`] (a TTL of 0 must not become a busy
//! loop, nor a day-long TTL a stale set). A failed resolution keeps the
//! last set: a DNS outage must not empty a pool of working endpoints (they
//! are still ejected one by one if they fail).

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use anyhow::{Context as _, anyhow};
use hickory_resolver::{
    TokioResolver,
    config::{NameServerConfig, ResolverConfig},
    net::runtime::TokioRuntimeProvider,
};

use super::balancer::Balancer;
use crate::shutdown::Shutdown;

/// The shortest time between two resolutions.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);
/// The longest time an answer is used.
pub const MAX_REFRESH: Duration = Duration::from_secs(30);

/// A peer's URL split for resolution: `http://payment:9082` →
/// (`http`, `payment`, 9082).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Target {
    /// Parses `scheme://host:port[/]` (the port is required: the records
    /// give addresses only).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url.split_once("://").ok_or("must look like http://name:port")?;
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err("must have no path".into());
        }
        let (host, port) = authority.rsplit_once(':').ok_or("must name a port")?;
        let port = port.parse::<u16>().map_err(|_| "has a malformed port".to_owned())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("must name a host".into());
        }
        Ok(Self { scheme: scheme.to_owned(), host: host.to_owned(), port })
    }

    /// The URL of one resolved address.
    pub fn url(&self, ip: IpAddr) -> String {
        format!("{}://{}", self.scheme, SocketAddr::new(ip, self.port))
    }
}

/// Parses `ip` or `ip:port` (default port 53).
pub fn parse_server(raw: &str) -> Result<SocketAddr, String> {
    raw.parse::<SocketAddr>()
        .or_else(|_| raw.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| "must be an IP address, optionally with :port".to_owned())
}

/// A resolver asking `server`, or the system's (`/etc/resolv.conf`).
pub fn resolver(server: Option<SocketAddr>) -> anyhow::Result<TokioResolver> {
    let mut builder = match server {
        Some(server) => {
            let mut ns = NameServerConfig::udp_and_tcp(server.ip());
            for connection in &mut ns.connections {
                connection.port = server.port();
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().context("reading the system's DNS configuration")?,
    };
    let options = builder.options_mut();
    // Our own schedule decides when to ask again; the cache must not answer
    // for longer than that.
    options.positive_max_ttl = Some(MAX_REFRESH);
    options.negative_max_ttl = Some(MIN_REFRESH);
    options.timeout = Duration::from_secs(2);
    options.attempts = 1;
    builder.build().context("building the DNS resolver")
}

/// Resolves `target` once: its endpoint URLs and how long they are valid.
pub async fn resolve(resolver: &TokioResolver, target: &Target) -> anyhow::Result<(Vec<String>, Duration)> {
    let lookup =
        resolver.lookup_ip(target.host.as_str()).await.map_err(|e| anyhow!("resolving {}: {e}", target.host))?;
    let ttl = lookup.valid_until().saturating_duration_since(std::time::Instant::now());
    Ok((lookup.iter().map(|ip| target.url(ip)).collect(), ttl))
}

/// Keeps `balancer` on what `target` resolves to, until shutdown.
pub async fn follow<C>(balancer: Balancer<C>, target: Target, resolver: TokioResolver, shutdown: Shutdown)
where
    C: ?Sized + Send + Sync + 'static,
{
    let mut failing = false;
    loop {
        let wait = match resolve(&resolver, &target).await {
            Ok((urls, ttl)) => {
                if failing {
                    tracing::info!(name = target.host, "DNS answers again");
                    failing = false;
                }
                balancer.update(urls);
                ttl.clamp(MIN_REFRESH, MAX_REFRESH)
            }
            Err(err) => {
                if !failing {
                    tracing::warn!(
                        name = target.host,
                        error = format!("{err:#}"),
                        "DNS resolution failed; keeping the last endpoints"
                    );
                    failing = true;
                }
                MIN_REFRESH
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_url_names_the_host_to_resolve_and_the_port_to_call() {
        let t = Target::parse("http://payment-headless.shop.svc:9082/").expect("valid");
        assert_eq!((t.scheme.as_str(), t.host.as_str(), t.port), ("http", "payment-headless.shop.svc", 9082));
        assert_eq!(t.url("10.1.2.3".parse().expect("ip")), "http://10.1.2.3:9082");
        assert_eq!(t.url("fd00::7".parse().expect("ip")), "http://[fd00::7]:9082");
        for bad in ["payment:9082", "http://payment", "http://payment:x", "http://:80", "http://p:80/v1"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_dns_server_is_an_ip_with_an_optional_port() {
        assert_eq!(parse_server("10.0.0.10"), Ok("10.0.0.10:53".parse().expect("addr")));
        assert_eq!(parse_server("127.0.0.1:5353"), Ok("127.0.0.1:5353".parse().expect("addr")));
        assert!(parse_server("dns.example").is_err());
    }
}
