//! A fingerprint of a process's effective configuration, exported as
//! `config_info{fingerprint} 1` on `/metrics` and logged once at start.
//!
//! Why it exists: a release is replaced, never patched (seed 2.1, 3.1), so
//! a process whose configuration was changed by hand is *drift*: it runs
//! the right binary (`build_info` says so) with a configuration nobody
//! declared. Every replica of a service started from the same desired
//! state has the same fingerprint; one that differs was changed by hand.
//! `lab run rollout` compares them.
//!
//! What goes in: every variable the binary reads ([`super::variables`], the
//! list derived from its config structs), with the value it was started
//! with, sorted by name; an unset variable is left out (its default is part
//! of the binary, which `build_info` identifies). What stays out, so the
//! fingerprint leaks no secret: the password of any URL (`postgres://u:…@h`
//! counts as `postgres://u:*@h`: the target is configuration, the password a
//! credential) and the value of any variable whose name says it holds a
//! credential (`…PRIVATE_KEY`, `…PASSWORD…`, `…SECRET…`, `…TOKEN…`), which
//! counts only as set. A rotated credential therefore does not change the
//! fingerprint: its version belongs to the secret store (a Kubernetes
//! Secret's `resourceVersion`), not to a hash anyone can brute-force.
//!
//! The hash is SHA-256 (stable across toolchains, unlike `std`'s hasher),
//! shortened to 16 hex digits: a label, not a security boundary.

use sha2::{Digest as _, Sha256};

use super::{Env, Process};

/// Names whose values are credentials: they count only as set.
const CREDENTIAL_MARKERS: &[&str] = &["PRIVATE_KEY", "PASSWORD", "SECRET", "TOKEN"];

/// The fingerprint of `process`'s configuration as read into `env`.
pub fn of(process: &Process, env: &Env) -> String {
    let names: Vec<String> = match super::variables(process) {
        Ok(vars) => vars.into_iter().map(|v| v.name).collect(),
        // The list is derived from structs that parsed already: this does
        // not happen, but a process must not fail for its fingerprint.
        Err(_) => env.vars().iter().map(|(k, _)| k.clone()).collect(),
    };
    fingerprint(&names, env.vars())
}

/// Sets `config_info{fingerprint} 1` and logs the fingerprint.
pub fn export(fingerprint: &str) {
    metrics::gauge!("config_info", "fingerprint" => fingerprint.to_owned()).set(1.0);
    tracing::info!(fingerprint, "configuration read");
}

/// The fingerprint of the variables `names` as set in `vars`.
pub fn fingerprint(names: &[String], vars: &[(String, String)]) -> String {
    let mut lines: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let value = vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)?;
            Some(format!("{name}={}\n", shown(name, value)))
        })
        .collect();
    lines.sort();
    lines.dedup();
    let digest = Sha256::digest(lines.concat().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What of `value` enters the fingerprint.
fn shown(name: &str, value: &str) -> String {
    if CREDENTIAL_MARKERS.iter().any(|m| name.contains(m)) && !name.contains("PUBLIC") {
        return "<set>".to_owned();
    }
    without_password(value)
}

/// `scheme://user:password@host/...` with the password replaced by `*`;
/// anything else unchanged.
fn without_password(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_owned();
    };
    let rest = &value[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return value.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return value.to_owned();
    };
    format!("{}{}:*{}", &value[..scheme_end + 3], &userinfo[..colon], &value[scheme_end + 3 + at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_same_configuration_in_any_order_has_the_same_fingerprint_and_another_value_another() {
        let read = names(&["X_PORT", "X_MODE", "RUST_LOG"]);
        let a = fingerprint(&read, &vars(&[("X_PORT", "80"), ("X_MODE", "strict"), ("HOME", "/root")]));
        let b = fingerprint(&read, &vars(&[("HOME", "/tmp"), ("X_MODE", "strict"), ("X_PORT", "80")]));
        assert_eq!(a, b, "order and variables the process does not read do not count");
        assert_eq!(a.len(), 16);
        let changed = fingerprint(&read, &vars(&[("X_PORT", "80"), ("X_MODE", "available")]));
        assert_ne!(a, changed);
        let added = fingerprint(&read, &vars(&[("X_PORT", "80"), ("X_MODE", "strict"), ("RUST_LOG", "debug")]));
        assert_ne!(a, added, "setting a variable that was left to its default is a change");
    }

    #[test]
    fn credentials_never_enter_the_fingerprint_but_where_they_point_does() {
        let read = names(&["X_DATABASE_URL", "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY"]);
        let with = |url: &str, key: &str| {
            fingerprint(&read, &vars(&[("X_DATABASE_URL", url), ("JWT_PRIVATE_KEY", key), ("JWT_PUBLIC_KEY", "pub")]))
        };
        let base = with("postgres://app:hunter2@db:5432/shop", "k1");
        assert_eq!(base, with("postgres://app:other@db:5432/shop", "k2"), "password and private key left out");
        assert_ne!(base, with("postgres://app:hunter2@db2:5432/shop", "k1"), "another host is another config");
        assert_ne!(base, with("postgres://other:hunter2@db:5432/shop", "k1"), "the user name is no secret");
    }

    #[test]
    fn only_a_urls_password_is_hidden() {
        assert_eq!(without_password("amqp://guest:guest@mq:5672/%2f"), "amqp://guest:*@mq:5672/%2f");
        assert_eq!(
            without_password("postgres://postgres@db/x?sslmode=disable"),
            "postgres://postgres@db/x?sslmode=disable"
        );
        assert_eq!(without_password("redis://:pw@cache:6379"), "redis://:*@cache:6379");
        assert_eq!(without_password("http://h:9082/p@th"), "http://h:9082/p@th");
        assert_eq!(without_password("plain"), "plain");
        assert_eq!(shown("JWT_PRIVATE_KEY", "-----BEGIN"), "<set>");
        assert_eq!(shown("JWT_PUBLIC_KEY", "-----BEGIN"), "-----BEGIN");
    }
}
