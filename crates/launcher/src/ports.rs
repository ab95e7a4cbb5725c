//! Free ports for every listener of a run.
//!
//! Ports come from [`RANGE`], below Linux's default ephemeral range
//! (32768–60999): a port from `bind(:0)` is ephemeral, and an outgoing
//! connection (to Postgres, say) can take it between the check and the
//! child's own bind (a CI run failed that way). Each candidate is checked
//! by binding it, and every port handed out is remembered for the life of
//! this process, so two systems started side by side (parallel tests) never
//! get the same one.

use std::{
    collections::HashSet,
    net::TcpListener,
    sync::{Mutex, OnceLock, PoisonError},
};

use anyhow::{Result, bail};
use rand::Rng as _;

/// Where free ports are drawn from.
pub const RANGE: std::ops::Range<u16> = 20_000..32_000;

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// `n` distinct free ports from [`RANGE`], none handed out before by this process.
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let mut rng = rand::rng();
    let mut taken = handed_out().lock().unwrap_or_else(PoisonError::into_inner);
    let mut held = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..20_000 {
        if ports.len() == n {
            break;
        }
        let port = rng.random_range(RANGE);
        if taken.contains(&port) || ports.contains(&port) {
            continue;
        }
        // Held until all are chosen, so the check of the next cannot reuse it.
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
            ports.push(port);
        }
    }
    if ports.len() < n {
        bail!("only {} of {n} free ports found in {RANGE:?}", ports.len());
    }
    taken.extend(&ports);
    Ok(ports)
}

/// One free port (see [`free_ports`]).
pub fn free_port() -> Result<u16> {
    Ok(free_ports(1)?[0])
}

/// Whether `port` can be bound on 127.0.0.1 right now.
pub fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let a = free_ports(20).expect("ports");
        let b = free_ports(20).expect("ports");
        let mut all: Vec<u16> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 40, "no port handed out twice");
        assert!(all.iter().all(|p| RANGE.contains(p) && is_free(*p)));
    }
}
