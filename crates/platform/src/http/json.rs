//! Reading JSON request bodies the way docs/api.md promises.
//!
//! A body that is not JSON, or not a JSON object, is `malformed_json`; a body
//! without `Content-Type: application/json` is `unsupported_media_type`; a
//! body over the limit is `payload_too_large`. Then [`Fields`] reads each
//! field and records *every* problem (missing, wrong type, out of range) so
//! one `validation_failed` answer lists them all. Unknown fields are ignored.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{StatusCode, header},
};
use serde_json::{Map, Value};

use crate::{
    problem::{ErrorCode, Problem},
    validation::FieldErrors,
};

/// A request body that is a JSON object.
#[derive(Debug, Clone)]
pub struct JsonObject(pub Map<String, Value>);

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(Problem::new(ErrorCode::UnsupportedMediaType).with_detail("Send the body as application/json."));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(ErrorCode::PayloadTooLarge)
            } else {
                Problem::new(ErrorCode::MalformedJson).with_detail("The body could not be read.")
            }
        })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(Problem::new(ErrorCode::MalformedJson).with_detail("The body must be a JSON object.")),
            Err(_) => Err(Problem::new(ErrorCode::MalformedJson).with_detail("The body is not valid JSON.")),
        }
    }
}

/// A field that may be absent, explicitly `null`, or present (PATCH bodies).
#[derive(Debug, Clone, PartialEq)]
pub enum Presence<T> {
    Absent,
    Null,
    Present(T),
}

/// The integer a JSON number stands for, if it has no fractional part and
/// fits in an `i64`.
pub(crate) fn integral(n: &serde_json::Number) -> Option<i64> {
    if let Some(v) = n.as_i64() {
        return Some(v);
    }
    // Written with a fraction or an exponent, the number was parsed as an
    // f64: integral when its fraction is zero. `i64::MIN` is -2^63 exactly;
    // 2^63 is one past `i64::MAX`, so the cast below cannot saturate.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    let f = n.as_f64()?;
    (f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&f)).then_some(f as i64)
}

/// Reads typed fields out of a JSON object, collecting every problem.
#[derive(Debug)]
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: String,
    errors: FieldErrors,
}

impl<'a> Fields<'a> {
    pub fn new(obj: &'a Map<String, Value>) -> Self {
        Self { obj, prefix: String::new(), errors: FieldErrors::new() }
    }

    /// Reads a nested object's fields with paths like `address.city`.
    pub fn nested(&self, name: &str, obj: &'a Map<String, Value>) -> Fields<'a> {
        Fields { obj, prefix: format!("{}.", self.path(name)), errors: FieldErrors::new() }
    }

    /// The dotted path of `name` in the request.
    pub fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Records a problem for `name`.
    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        let path = self.path(name);
        self.errors.push(path, message);
    }

    /// Adds problems found elsewhere (e.g. by a nested reader or a parser
    /// that reports several fields).
    pub fn absorb(&mut self, other: FieldErrors) {
        for e in other.into_vec() {
            self.errors.push(e.field, e.message);
        }
    }

    fn presence(&self, name: &str) -> Presence<&'a Value> {
        match self.obj.get(name) {
            None => Presence::Absent,
            Some(Value::Null) => Presence::Null,
            Some(v) => Presence::Present(v),
        }
    }

    /// A required string.
    pub fn string(&mut self, name: &str) -> Option<&'a str> {
        match self.presence(name) {
            Presence::Present(Value::String(s)) => Some(s),
            Presence::Present(_) => {
                self.error(name, "must be a string");
                None
            }
            _ => {
                self.error(name, "is required");
                None
            }
        }
    }

    /// A string that may be absent or `null`.
    pub fn optional_string(&mut self, name: &str) -> Presence<&'a str> {
        match self.presence(name) {
            Presence::Present(Value::String(s)) => Presence::Present(s),
            Presence::Present(_) => {
                self.error(name, "must be a string");
                Presence::Absent
            }
            Presence::Absent => Presence::Absent,
            Presence::Null => Presence::Null,
        }
    }

    /// A required string, parsed; a parse error is recorded with its message.
    pub fn parsed<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let raw = self.string(name)?;
        match parse(raw) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(name, e.to_string());
                None
            }
        }
    }

    /// A required integer within `min..=max`. As in JSON Schema, a number
    /// with a zero fractional part is an integer: `190.0` and `1.9e2` are 190
    /// (a client or a JSON library may write any integer that way); `190.5`
    /// is not.
    pub fn integer(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        match self.presence(name) {
            Presence::Present(Value::Number(n)) => match integral(n) {
                Some(v) if (min..=max).contains(&v) => Some(v),
                _ if (min, max) == (i64::MIN, i64::MAX) => {
                    // The caller checks the range itself (a domain rule):
                    // only the type is this layer's to report.
                    self.error(name, "must be an integer");
                    None
                }
                _ => {
                    self.error(name, format!("must be an integer from {min} to {max}"));
                    None
                }
            },
            Presence::Present(_) => {
                self.error(name, "must be an integer");
                None
            }
            _ => {
                self.error(name, "is required");
                None
            }
        }
    }

    /// An object that may be absent or `null`.
    pub fn optional_object(&mut self, name: &str) -> Presence<&'a Map<String, Value>> {
        match self.presence(name) {
            Presence::Present(Value::Object(m)) => Presence::Present(m),
            Presence::Present(_) => {
                self.error(name, "must be an object");
                Presence::Absent
            }
            Presence::Absent => Presence::Absent,
            Presence::Null => Presence::Null,
        }
    }

    /// A required array.
    pub fn array(&mut self, name: &str) -> Option<&'a Vec<Value>> {
        match self.presence(name) {
            Presence::Present(Value::Array(a)) => Some(a),
            Presence::Present(_) => {
                self.error(name, "must be an array");
                None
            }
            _ => {
                self.error(name, "is required");
                None
            }
        }
    }

    /// Everything recorded so far: `Ok` if nothing was wrong.
    pub fn finish(self) -> Result<(), Problem> {
        self.errors.finish().map_err(Problem::validation)
    }

    /// The recorded problems, for merging into a parent reader.
    pub fn into_errors(self) -> FieldErrors {
        self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn every_bad_field_is_reported_once_with_its_path() {
        let body = obj(json!({"email": 5, "amount": 10_000_000, "address": {"city": 1}}));
        let mut f = Fields::new(&body);
        assert_eq!(f.string("email"), None);
        assert_eq!(f.string("password"), None);
        assert_eq!(f.integer("amount", 1, 1_000_000), None);
        if let Presence::Present(addr) = f.optional_object("address") {
            let mut nested = f.nested("address", addr);
            assert_eq!(nested.string("city"), None);
            let errs = nested.into_errors();
            f.absorb(errs);
        }
        let errors = f.into_errors();
        let fields: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
        assert_eq!(
            fields,
            [
                ("email", "must be a string"),
                ("password", "is required"),
                ("amount", "must be an integer from 1 to 1000000"),
                ("address.city", "must be a string")
            ]
        );
    }

    #[test]
    fn absent_null_and_present_are_told_apart() {
        let body = obj(json!({"a": null, "b": {}}));
        let mut f = Fields::new(&body);
        assert_eq!(f.optional_object("a"), Presence::Null);
        assert!(matches!(f.optional_object("b"), Presence::Present(_)));
        assert_eq!(f.optional_object("c"), Presence::Absent);
        assert!(f.finish().is_ok());
    }

    #[test]
    fn floats_and_out_of_range_numbers_are_not_integers() {
        let body = obj(json!({"x": 1.5, "y": 1e30, "z": 190.000_1, "w": -0.5}));
        let mut f = Fields::new(&body);
        assert_eq!(f.integer("x", 0, 10), None);
        assert_eq!(f.integer("y", 0, i64::MAX), None);
        assert_eq!(f.integer("z", 0, 1000), None);
        assert_eq!(f.integer("w", -10, 10), None);
        let messages: Vec<_> = f.into_errors().iter().map(|e| e.message.clone()).collect();
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0], "must be an integer from 0 to 10");
    }

    #[test]
    fn an_unbounded_integer_is_reported_as_an_integer_only() {
        // No range asked for (the caller's domain checks it): the type is
        // all there is to say.
        let body = obj(json!({"q": 1.5}));
        let mut f = Fields::new(&body);
        assert_eq!(f.integer("q", i64::MIN, i64::MAX), None);
        let messages: Vec<_> = f.into_errors().iter().map(|e| e.message.clone()).collect();
        assert_eq!(messages, ["must be an integer"]);
    }

    #[test]
    fn integral_numbers_are_integers_however_they_are_written() {
        // Parsed from text, as a request body is: `190.0` and `1.9e2` are
        // f64s to serde_json, and integers to JSON Schema.
        let body: Map<String, Value> =
            serde_json::from_str(r#"{"a": 190.0, "b": 1.9e2, "c": -3.0, "d": 0.0, "e": -0.0, "f": 1e6, "g": 190}"#)
                .expect("json");
        let mut f = Fields::new(&body);
        assert_eq!(f.integer("a", 1, 1_000_000), Some(190));
        assert_eq!(f.integer("b", 1, 1_000_000), Some(190));
        assert_eq!(f.integer("c", -10, 10), Some(-3));
        assert_eq!(f.integer("d", 0, 10), Some(0));
        assert_eq!(f.integer("e", 0, 10), Some(0));
        assert_eq!(f.integer("f", 1, 1_000_000), Some(1_000_000));
        assert_eq!(f.integer("g", 1, 1_000_000), Some(190));
        assert!(f.finish().is_ok());
    }

    #[test]
    fn an_integral_number_still_has_to_be_in_range() {
        let body: Map<String, Value> =
            serde_json::from_str(r#"{"a": 0.0, "b": 1000001.0, "c": 9.3e18, "d": -9.3e18, "e": 18446744073709551615}"#)
                .expect("json");
        let mut f = Fields::new(&body);
        assert_eq!(f.integer("a", 1, 1_000_000), None);
        assert_eq!(f.integer("b", 1, 1_000_000), None);
        assert_eq!(f.integer("c", i64::MIN, i64::MAX), None);
        assert_eq!(f.integer("d", i64::MIN, i64::MAX), None);
        assert_eq!(f.integer("e", i64::MIN, i64::MAX), None);
        let errors = f.into_errors();
        let fields: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
        assert_eq!(fields[0], ("a", "must be an integer from 1 to 1000000"));
        assert_eq!(fields.len(), 5);
    }
}
