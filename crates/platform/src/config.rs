//! Typed configuration from environment variables, read once at start.
//!
//! Why it exists: the twelve-factor rule "config only from the environment",
//! made safe. Each concern is one flat struct read with an envy prefix
//! (`USER_`, `JWT_`, ...). A missing or malformed variable stops the process
//! with exit code 64 (`EX_USAGE`) and a message that names the variable but
//! never echoes its value. Secrets are wrapped in [`Secret`] so `Debug` and
//! logs never show them.

use std::{fmt, process};

use serde::{Deserialize, Deserializer, de::DeserializeOwned};

/// `EX_USAGE` from sysexits.h: the process was started wrongly.
pub const EXIT_CONFIG: i32 = 64;

/// A configuration problem, naming the variable (never its value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

/// Reads `T` from the variables that start with `prefix` (may be empty).
pub fn from_env<T: DeserializeOwned>(prefix: &str) -> Result<T, ConfigError> {
    from_vars(prefix, std::env::vars())
}

/// Like [`from_env`], from an explicit list: what tests use instead of
/// mutating the process environment.
pub fn from_vars<T: DeserializeOwned>(
    prefix: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let vars: Vec<(String, String)> = vars.into_iter().filter(|(k, _)| k.starts_with(prefix)).collect();
    let err = match envy::prefixed(prefix).from_iter::<_, T>(vars.clone()) {
        Ok(config) => return Ok(config),
        Err(err) => err,
    };
    Err(match err {
        envy::Error::MissingValue(field) => ConfigError {
            variable: format!("{prefix}{}", field.to_uppercase()),
            problem: "is required but not set".into(),
        },
        envy::Error::Custom(message) => describe_custom::<T>(prefix, &vars, &message),
    })
}

/// envy's parse errors name the variable but quote its value (which could
/// be a secret); serde's own errors (an unknown enum variant, say) name
/// neither. Find the culprit by leaving each variable out in turn: the one
/// whose absence makes this error go away is it. Runs only on the error path.
fn describe_custom<T: DeserializeOwned>(prefix: &str, vars: &[(String, String)], message: &str) -> ConfigError {
    let problem = message.split(" while parsing value").next().unwrap_or(message).to_owned();
    let culprit = vars.iter().map(|(k, _)| k).find(|key| {
        let without = vars.iter().filter(|(k, _)| k != *key).cloned();
        !matches!(envy::prefixed(prefix).from_iter::<_, T>(without), Err(envy::Error::Custom(ref m)) if m == message)
    });
    let variable = culprit.cloned().unwrap_or_else(|| format!("{prefix}*"));
    ConfigError { variable, problem: format!("is malformed ({problem})") }
}

/// Reads `T` or exits the process with code 64 and a message on stderr.
/// Call it before any port is bound or any log is written.
pub fn load_or_exit<T: DeserializeOwned>(prefix: &str) -> T {
    match from_env(prefix) {
        Ok(config) => config,
        Err(err) => exit_with(&err),
    }
}

/// Prints the configuration error and exits with [`EXIT_CONFIG`].
pub fn exit_with(err: &ConfigError) -> ! {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("configuration error: {err}");
    }
    process::exit(EXIT_CONFIG)
}

/// A value that must never be printed: `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    /// The one way to read the value; grep for it to audit secret use.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Example {
        database_url: Secret<String>,
        port: u16,
        #[serde(default)]
        mode: Mode,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Strict,
        Available,
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_missing_variable_is_named_with_its_prefix() {
        let err = from_vars::<Example>("X_", vars(&[("X_PORT", "80")])).expect_err("missing");
        assert_eq!(err.variable, "X_DATABASE_URL");
    }

    #[test]
    fn a_malformed_number_is_named_without_echoing_the_value() {
        let err =
            from_vars::<Example>("X_", vars(&[("X_DATABASE_URL", "postgres://u:hunter2@h/db"), ("X_PORT", "eighty")]))
                .expect_err("malformed");
        assert_eq!(err.variable, "X_PORT");
        assert!(!err.to_string().contains("eighty"), "{err}");
    }

    #[test]
    fn an_unknown_enum_value_is_traced_back_to_its_variable() {
        let err = from_vars::<Example>("X_", vars(&[("X_DATABASE_URL", "u"), ("X_PORT", "1"), ("X_MODE", "maybe")]))
            .expect_err("malformed");
        assert_eq!(err.variable, "X_MODE");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let cfg = from_vars::<Example>("X_", vars(&[("X_DATABASE_URL", "postgres://u:hunter2@h/db"), ("X_PORT", "1")]))
            .expect("valid");
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert_eq!(cfg.database_url.expose(), "postgres://u:hunter2@h/db");
    }
}

/// Settings every process shares, read without a prefix.
#[derive(Debug, Clone, Deserialize)]
pub struct PlatformConfig {
    /// `SHUTDOWN_TIMEOUT`: seconds to drain in-flight work after SIGTERM
    /// (default 20; keep it below the orchestrator's grace period).
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: u64,
    /// `EVENTS_NAMESPACE`: prefix of the exchange and queue names (default
    /// `twinshop`); every process of one deployment must agree.
    #[serde(default = "default_namespace")]
    pub events_namespace: String,
}

fn default_shutdown_timeout() -> u64 {
    20
}

fn default_namespace() -> String {
    "twinshop".to_owned()
}

impl Default for PlatformConfig {
    fn default() -> Self {
        Self { shutdown_timeout: default_shutdown_timeout(), events_namespace: default_namespace() }
    }
}

impl PlatformConfig {
    pub fn shutdown_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.shutdown_timeout)
    }
}
