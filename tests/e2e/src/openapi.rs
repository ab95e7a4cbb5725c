//! Checks what a running build answered against `openapi/twinshop.yaml`.
//!
//! Why it exists: the OpenAPI document is written by hand (see
//! `openapi/README.md`), so something must keep it true. The conformance
//! suite records every exchange of a run; [`Contract::check`] holds each one
//! to the document:
//!
//! - a path no route matches must be 404 `not_found`, and a method a
//!   documented path does not list must be 405 `method_not_allowed`;
//! - otherwise the status must be one the operation documents, with the
//!   documented media type, a body valid against the documented schema
//!   (JSON Schema 2020-12, the dialect of OpenAPI 3.1), and, for a problem,
//!   a `code` the response's `x-error-codes` lists.
//!
//! [`Coverage`] then says what the run did not reach, so a document with
//! an operation or error code the app never serves is caught too.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::Path,
};

use anyhow::{Context as _, Result, bail};
use jsonschema::Validator;
use serde_json::Value;
use twinshop_conformance::ctx::Exchange;

/// The document at `openapi/twinshop.yaml` in this repository.
pub fn document_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/twinshop.yaml")
}

/// `openapi/internal.yaml`: what every process serves on its internal port.
pub fn internal_document_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/internal.yaml")
}

/// One documented response: its error codes and a validator per media type.
#[derive(Debug)]
struct Response {
    codes: BTreeSet<String>,
    content: BTreeMap<String, Validator>,
}

#[derive(Debug)]
struct Operation {
    method: String,
    template: String,
    responses: BTreeMap<u16, Response>,
}

/// The document, ready to check exchanges against.
#[derive(Debug)]
pub struct Contract {
    operations: Vec<Operation>,
    not_found: Response,
    method_not_allowed: Response,
    /// The top-level `x-error-codes`: code -> (status, title).
    pub error_table: BTreeMap<String, (u16, String)>,
}

/// What a set of exchanges did not reach.
#[derive(Debug, Default)]
pub struct Coverage {
    /// `METHOD /template` of operations never answered with a 2xx.
    pub operations_without_success: Vec<String>,
    /// Codes of the error table that never came back.
    pub codes_never_seen: BTreeSet<String>,
    /// `METHOD /template STATUS code` documented but not seen, for the log.
    pub responses_never_seen: Vec<String>,
}

impl Contract {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let doc: Value = serde_norway::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Self::from_document(&doc)
    }

    pub fn from_document(doc: &Value) -> Result<Self> {
        let components = doc.get("components").cloned().unwrap_or(Value::Null);
        let resolve = |v: &Value| -> Result<Value> { resolve_ref(doc, v) };
        let mut operations = Vec::new();
        let paths = doc["paths"].as_object().context("the document has no paths")?;
        for (template, item) in paths {
            let item = item.as_object().with_context(|| format!("{template} is not an object"))?;
            for (method, op) in item {
                if !matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch" | "head" | "options") {
                    continue;
                }
                let mut responses = BTreeMap::new();
                for (status, response) in op["responses"].as_object().context("an operation has no responses")? {
                    let status: u16 =
                        status.parse().with_context(|| format!("{method} {template}: status {status}"))?;
                    let response = resolve(response)?;
                    let what = format!("{} {template} {status}", method.to_uppercase());
                    responses.insert(status, Response::compile(&response, &components, &what)?);
                }
                operations.push(Operation { method: method.to_uppercase(), template: template.clone(), responses });
            }
        }
        let component = |name: &str| -> Result<Response> {
            let response = doc["components"]["responses"]
                .get(name)
                .with_context(|| format!("the document has no components.responses.{name}"))?;
            Response::compile(response, &components, name)
        };
        let mut error_table = BTreeMap::new();
        for row in doc["x-error-codes"].as_array().context("the document has no top-level x-error-codes")? {
            let code = row["code"].as_str().context("an x-error-codes row without code")?;
            let status = row["status"].as_u64().and_then(|s| u16::try_from(s).ok()).context("a row without status")?;
            let title = row["title"].as_str().context("an x-error-codes row without title")?;
            error_table.insert(code.to_owned(), (status, title.to_owned()));
        }
        Ok(Self {
            operations,
            not_found: component("NotFound")?,
            method_not_allowed: component("MethodNotAllowed")?,
            error_table,
        })
    }

    /// Every way the exchanges disagree with the document, one line each
    /// (empty when they all agree).
    pub fn check(&self, exchanges: &[Exchange]) -> Vec<String> {
        let mut problems = Vec::new();
        for ex in exchanges {
            let at = format!("{} {} -> {}", ex.method, ex.path, ex.status);
            let on_path: Vec<&Operation> = self.operations_on(&ex.path);
            let (response, what) = if on_path.is_empty() {
                (Some(&self.not_found), "an unknown route".to_owned())
            } else if let Some(op) = on_path.iter().find(|op| op.method == ex.method) {
                (op.responses.get(&ex.status), format!("{} {}", op.method, op.template))
            } else {
                (Some(&self.method_not_allowed), "a method the path does not serve".to_owned())
            };
            let Some(response) = response else {
                problems.push(format!("{at}: {what} does not document status {}", ex.status));
                continue;
            };
            if let Err(why) = response.check(ex) {
                problems.push(format!("{at} ({what}): {why}"));
            }
        }
        problems
    }

    /// What `exchanges` did not reach of the document.
    pub fn coverage(&self, exchanges: &[Exchange]) -> Coverage {
        let mut coverage = Coverage::default();
        let seen_codes: BTreeSet<&str> = exchanges.iter().filter_map(problem_code).collect();
        coverage.codes_never_seen =
            self.error_table.keys().filter(|code| !seen_codes.contains(code.as_str())).cloned().collect();
        for op in &self.operations {
            let mine: Vec<&Exchange> = exchanges
                .iter()
                .filter(|ex| ex.method == op.method && matches_template(&op.template, &ex.path))
                .filter(|ex| self.best_template(&ex.path) == Some(op.template.as_str()))
                .collect();
            let name = format!("{} {}", op.method, op.template);
            if !mine.iter().any(|ex| (200..300).contains(&ex.status)) {
                coverage.operations_without_success.push(name.clone());
            }
            for (status, response) in &op.responses {
                if response.codes.is_empty() {
                    if !mine.iter().any(|ex| ex.status == *status) {
                        coverage.responses_never_seen.push(format!("{name} {status}"));
                    }
                    continue;
                }
                for code in &response.codes {
                    if !mine.iter().any(|ex| ex.status == *status && problem_code(ex) == Some(code.as_str())) {
                        coverage.responses_never_seen.push(format!("{name} {status} {code}"));
                    }
                }
            }
        }
        coverage
    }

    /// The operations on the one template that best matches `path`: a
    /// literal segment beats a parameter (`/v1/users/me` over `/v1/users/{id}`).
    fn operations_on(&self, path: &str) -> Vec<&Operation> {
        match self.best_template(path) {
            Some(template) => self.operations.iter().filter(|op| op.template == template).collect(),
            None => Vec::new(),
        }
    }

    fn best_template(&self, path: &str) -> Option<&str> {
        self.operations
            .iter()
            .filter(|op| matches_template(&op.template, path))
            .max_by_key(|op| op.template.split('/').filter(|s| !s.starts_with('{')).count())
            .map(|op| op.template.as_str())
    }
}

impl Response {
    fn compile(response: &Value, components: &Value, what: &str) -> Result<Self> {
        let codes = response
            .get("x-error-codes")
            .and_then(Value::as_array)
            .map(|codes| codes.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let mut content = BTreeMap::new();
        if let Some(media) = response.get("content").and_then(Value::as_object) {
            for (media_type, body) in media {
                let schema = body.get("schema").with_context(|| format!("{what}: {media_type} has no schema"))?;
                // The schema as the root of its own document, with the
                // document's components beside it so `#/components/...`
                // references resolve.
                let mut root = match schema {
                    Value::Object(o) => o.clone(),
                    other => bail!("{what}: {media_type} schema is not an object: {other}"),
                };
                root.insert("components".into(), components.clone());
                let validator = jsonschema::validator_for(&Value::Object(root))
                    .map_err(|err| anyhow::anyhow!("{what}: {media_type} schema does not compile: {err}"))?;
                content.insert(media_type.clone(), validator);
            }
        }
        Ok(Self { codes, content })
    }

    fn check(&self, ex: &Exchange) -> Result<(), String> {
        if self.content.is_empty() {
            return match &ex.body {
                None => Ok(()),
                Some(body) => Err(format!("documented without a body, got {body}")),
            };
        }
        let Some(validator) = self.content.get(&ex.media_type) else {
            let documented: Vec<&String> = self.content.keys().collect();
            return Err(format!("media type {:?}, documented {documented:?}", ex.media_type));
        };
        let json = ex.media_type == "application/json" || ex.media_type.ends_with("+json");
        let Some(body) = &ex.body else {
            // A documented text body (`/metrics`) has no JSON to validate.
            return if json { Err("the body is not JSON".into()) } else { Ok(()) };
        };
        let errors: Vec<String> =
            validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        if !errors.is_empty() {
            let mut why = String::from("the body does not match the documented schema:");
            for e in errors.iter().take(5) {
                let _ = write!(why, " [{e}]");
            }
            return Err(format!("{why} in {body}"));
        }
        if let Some(code) = problem_code(ex)
            && !self.codes.contains(code)
        {
            return Err(format!("code {code:?} is not in the response's x-error-codes {:?}", self.codes));
        }
        Ok(())
    }
}

/// The problem `code` of an error answer.
fn problem_code(ex: &Exchange) -> Option<&str> {
    if ex.media_type != "application/problem+json" {
        return None;
    }
    ex.body.as_ref()?.get("code")?.as_str()
}

/// Whether `path` fits `template`: same number of segments, literals equal,
/// a `{param}` matching any non-empty segment.
fn matches_template(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| if t.starts_with('{') && t.ends_with('}') { !p.is_empty() } else { t == p })
}

/// Follows a local `$ref` (`#/components/...`), if `v` is one.
fn resolve_ref(doc: &Value, v: &Value) -> Result<Value> {
    match v.get("$ref").and_then(Value::as_str) {
        Some(pointer) => {
            let pointer = pointer.strip_prefix('#').with_context(|| format!("only local references: {pointer}"))?;
            let target = doc.pointer(pointer).with_context(|| format!("dangling reference {pointer}"))?;
            resolve_ref(doc, target)
        }
        None => Ok(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn contract() -> Contract {
        Contract::load(&document_path()).expect("the document loads")
    }

    fn exchange(method: &str, path: &str, status: u16, media_type: &str, body: Value) -> Exchange {
        Exchange { method: method.into(), path: path.into(), status, media_type: media_type.into(), body: Some(body) }
    }

    fn problem(status: u16, code: &str) -> Value {
        json!({"type": format!("/problems/{code}"), "title": "t", "status": status, "code": code})
    }

    #[test]
    fn templates_match_by_segment_and_literals_win() {
        assert!(matches_template("/v1/orders/{id}", "/v1/orders/abc"));
        assert!(!matches_template("/v1/orders/{id}", "/v1/orders/"));
        assert!(!matches_template("/v1/orders/{id}", "/v1/orders/abc/cancel"));
        assert!(matches_template("/v1/orders/{id}/cancel", "/v1/orders/abc/cancel"));
        let c = contract();
        assert_eq!(c.best_template("/v1/users/me"), Some("/v1/users/me"));
        assert_eq!(c.best_template("/v1/nothing"), None);
    }

    #[test]
    fn a_documented_problem_passes_and_an_undocumented_code_or_status_fails() {
        let c = contract();
        let ok = exchange("POST", "/v1/users", 409, "application/problem+json", problem(409, "email_taken"));
        assert_eq!(c.check(&[ok]), Vec::<String>::new());
        let wrong_code =
            exchange("POST", "/v1/users", 409, "application/problem+json", problem(409, "idempotency_key_in_use"));
        assert_eq!(c.check(&[wrong_code]).len(), 1);
        let undocumented =
            exchange("POST", "/v1/users", 500, "application/problem+json", problem(500, "internal_error"));
        assert_eq!(c.check(&[undocumented]).len(), 1);
    }

    #[test]
    fn unknown_routes_must_be_404_and_unserved_methods_405() {
        let c = contract();
        let good = [
            exchange("GET", "/v2/nothing", 404, "application/problem+json", problem(404, "not_found")),
            exchange("DELETE", "/v1/wallet", 405, "application/problem+json", problem(405, "method_not_allowed")),
        ];
        assert_eq!(c.check(&good), Vec::<String>::new());
        let bad = [
            exchange("GET", "/v2/nothing", 200, "application/json", json!({})),
            exchange("DELETE", "/v1/wallet", 404, "application/problem+json", problem(404, "not_found")),
        ];
        assert_eq!(c.check(&bad).len(), 2);
    }

    #[test]
    fn a_body_that_breaks_the_schema_fails() {
        let c = contract();
        let wallet = exchange("GET", "/v1/wallet", 200, "application/json", json!({"balance_cents": "ten"}));
        let problems = c.check(&[wallet]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("schema"), "{problems:?}");
        let wrong_media = exchange("GET", "/v1/products", 200, "text/html", json!({}));
        assert_eq!(c.check(&[wrong_media]).len(), 1);
    }

    #[test]
    fn coverage_reports_what_was_not_reached() {
        let c = contract();
        let coverage = c.coverage(&[exchange("GET", "/v1/products", 200, "application/json", json!({"items": []}))]);
        assert!(!coverage.operations_without_success.contains(&"GET /v1/products".to_owned()));
        assert!(coverage.operations_without_success.contains(&"POST /v1/orders".to_owned()));
        assert!(coverage.codes_never_seen.contains("email_taken"));
    }
}
