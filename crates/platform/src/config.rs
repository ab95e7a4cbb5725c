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

/// One environment variable a process reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Variable {
    pub name: String,
    /// `false` when the variable has a default.
    pub required: bool,
}

/// The variables `T` reads under `prefix`, derived from `T` itself so the
/// list cannot drift from the code: deployment tests compare it with what
/// the compose file and the Kubernetes manifests set.
///
/// The names come from serde (the struct's field names, as envy maps them).
/// Which are required is found by deserializing from nothing and adding
/// each variable envy reports missing until it succeeds.
pub fn variables<T: DeserializeOwned>(prefix: &str) -> Result<Vec<Variable>, String> {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    if fields.is_empty() {
        return Err(format!("{prefix}*: not a struct with named fields"));
    }
    let mut given: Vec<(String, String)> = Vec::new();
    let mut required = Vec::new();
    for _ in 0..=fields.len() {
        match envy::prefixed(prefix).from_iter::<_, T>(given.clone()) {
            Ok(_) => {
                let mut vars: Vec<Variable> = fields
                    .iter()
                    .map(|f| Variable { name: format!("{prefix}{}", f.to_uppercase()), required: required.contains(f) })
                    .collect();
                vars.sort();
                return Ok(vars);
            }
            Err(envy::Error::MissingValue(field)) => {
                required.push(field);
                given.push((format!("{prefix}{}", field.to_uppercase()), String::new()));
                // A placeholder that parses for the field's type.
                let value = ["x", "1", "true"].into_iter().find(|v| {
                    let mut trial = given.clone();
                    if let Some(last) = trial.last_mut() {
                        last.1 = (*v).to_owned();
                    }
                    !matches!(envy::prefixed(prefix).from_iter::<_, T>(trial), Err(envy::Error::Custom(_)))
                });
                let value = value.ok_or_else(|| format!("{prefix}{}: no placeholder parses", field.to_uppercase()))?;
                if let Some(last) = given.last_mut() {
                    last.1 = value.to_owned();
                }
            }
            Err(envy::Error::Custom(message)) => return Err(format!("{prefix}*: {message}")),
        }
    }
    Err(format!("{prefix}*: required variables did not converge"))
}

/// The variables every twinshop process reads besides its own:
/// `SHUTDOWN_TIMEOUT`, `EVENTS_NAMESPACE`, `OTEL_*` and `RUST_LOG`.
pub fn shared_variables() -> Result<Vec<Variable>, String> {
    let mut vars = variables::<PlatformConfig>("")?;
    vars.extend(variables::<crate::telemetry::TelemetryConfig>("OTEL_")?);
    vars.push(Variable { name: "RUST_LOG".into(), required: false });
    Ok(vars)
}

/// Merges the variable lists of a process's config parts (`JWT_` may be
/// read by two of them): one entry per name, required if any part needs it.
pub fn merge_variables(parts: impl IntoIterator<Item = Vec<Variable>>) -> Vec<Variable> {
    let mut merged: std::collections::BTreeMap<String, bool> = std::collections::BTreeMap::new();
    for var in parts.into_iter().flatten() {
        *merged.entry(var.name).or_default() |= var.required;
    }
    merged.into_iter().map(|(name, required)| Variable { name, required }).collect()
}

/// A serde `Deserializer` that only records the field names of the struct
/// asked for, then stops.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("field names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
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
    fn variables_lists_every_field_and_which_have_no_default() {
        let vars = variables::<Example>("X_").expect("a flat struct");
        let expect = |name: &str, required| Variable { name: name.into(), required };
        assert_eq!(vars, vec![expect("X_DATABASE_URL", true), expect("X_MODE", false), expect("X_PORT", true)]);
        let platform = variables::<PlatformConfig>("").expect("platform");
        assert_eq!(platform, vec![expect("EVENTS_NAMESPACE", false), expect("SHUTDOWN_TIMEOUT", false)]);
        let merged = merge_variables([vec![expect("A", false), expect("B", true)], vec![expect("A", true)]]);
        assert_eq!(merged, vec![expect("A", true), expect("B", true)]);
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
