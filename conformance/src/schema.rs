//! The response schemas of docs/api.md, checked field by field.
//!
//! Why it exists: the contract promises that every documented field is
//! always present, with its JSON type, and `null` where it does not apply.
//! Each function here checks one schema and says exactly which field is
//! wrong; extra fields are allowed (a compatible addition), missing or
//! mistyped ones are not. Depends on nothing but `serde_json` and `uuid`.

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The JSON object `v`, or an error naming `what` it should have been.
pub fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>> {
    v.as_object().with_context(|| format!("{what} must be a JSON object, got {v}"))
}

/// Field `name` of `obj`, which must be present (it may be `null`).
pub fn field<'a>(obj: &'a Value, name: &str, what: &str) -> Result<&'a Value> {
    object(obj, what)?.get(name).with_context(|| format!("{what}.{name} is missing in {obj}"))
}

pub fn string<'a>(obj: &'a Value, name: &str, what: &str) -> Result<&'a str> {
    let v = field(obj, name, what)?;
    v.as_str().with_context(|| format!("{what}.{name} must be a string, got {v}"))
}

/// An integer (a JSON number without fraction or exponent).
pub fn integer(obj: &Value, name: &str, what: &str) -> Result<i64> {
    let v = field(obj, name, what)?;
    v.as_i64().with_context(|| format!("{what}.{name} must be an integer, got {v}"))
}

pub fn nullable_string<'a>(obj: &'a Value, name: &str, what: &str) -> Result<Option<&'a str>> {
    match field(obj, name, what)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => bail!("{what}.{name} must be a string or null, got {other}"),
    }
}

pub fn array<'a>(obj: &'a Value, name: &str, what: &str) -> Result<&'a Vec<Value>> {
    let v = field(obj, name, what)?;
    v.as_array().with_context(|| format!("{what}.{name} must be an array, got {v}"))
}

/// A UUIDv7 in its string form.
pub fn uuid_v7(raw: &str, what: &str) -> Result<Uuid> {
    let id = Uuid::parse_str(raw).with_context(|| format!("{what} must be a UUID, got {raw:?}"))?;
    ensure!(id.get_version_num() == 7, "{what} must be a UUIDv7, got version {} ({raw})", id.get_version_num());
    Ok(id)
}

/// Field `name` holding a UUIDv7.
pub fn id(obj: &Value, name: &str, what: &str) -> Result<Uuid> {
    uuid_v7(string(obj, name, what)?, &format!("{what}.{name}"))
}

/// An RFC 3339 time in UTC (`Z` or `+00:00`), as nanoseconds since the
/// epoch so times can be compared whatever their fraction digits.
pub fn timestamp(raw: &str, what: &str) -> Result<i128> {
    parse_rfc3339_utc(raw).with_context(|| format!("{what} must be an RFC 3339 UTC time, got {raw:?}"))
}

/// Field `name` holding an RFC 3339 UTC time.
pub fn time(obj: &Value, name: &str, what: &str) -> Result<i128> {
    timestamp(string(obj, name, what)?, &format!("{what}.{name}"))
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

fn parse_rfc3339_utc(raw: &str) -> Option<i128> {
    let (date, rest) = raw.split_at_checked(10)?;
    let (sep, rest) = rest.split_at_checked(1)?;
    if !sep.eq_ignore_ascii_case("t") {
        return None;
    }
    let clock = if let Some(c) = rest.strip_suffix(['Z', 'z']) { c } else { rest.strip_suffix("+00:00")? };
    let mut d = date.split('-');
    let (y, m, day) = (digits(d.next()?)?, digits(d.next()?)?, digits(d.next()?)?);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut t = hms.split(':');
    let (h, min, s) = (digits(t.next()?)?, digits(t.next()?)?, digits(t.next()?)?);
    if d.next().is_some() || t.next().is_some() || hms.len() != 8 || !(1..=12).contains(&m) || !(1..=31).contains(&day)
    {
        return None;
    }
    if h > 23 || min > 59 || s > 60 || (clock.contains('.') && digits(fraction).is_none()) || fraction.len() > 9 {
        return None;
    }
    let nanos = if fraction.is_empty() { 0 } else { digits(&format!("{fraction:0<9}"))? };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3_600 + min * 60 + s;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// `{line1, city, postal_code, country}`, country an ISO 3166-1 alpha-2 code.
pub fn address(v: &Value, what: &str) -> Result<()> {
    for name in ["line1", "city", "postal_code"] {
        string(v, name, what)?;
    }
    let country = string(v, "country", what)?;
    ensure!(
        country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()),
        "{what}.country must be an ISO 3166-1 alpha-2 code, got {country:?}"
    );
    Ok(())
}

/// `User` = `{id, email, name, address, created_at}`, never a password.
pub fn user(v: &Value) -> Result<()> {
    id(v, "id", "user")?;
    string(v, "email", "user")?;
    string(v, "name", "user")?;
    match field(v, "address", "user")? {
        Value::Null => {}
        a => address(a, "user.address")?,
    }
    time(v, "created_at", "user")?;
    if let Some(key) = object(v, "user")?.keys().find(|k| k.contains("password") || k.contains("hash")) {
        bail!("user must never show a password or hash, but has {key:?}");
    }
    Ok(())
}

/// `GET /v1/users/me`: a `User` plus `stats`.
pub fn me(v: &Value) -> Result<(i64, i64)> {
    user(v)?;
    let stats = field(v, "stats", "me")?;
    let confirmed = integer(stats, "orders_confirmed", "me.stats")?;
    let spent = integer(stats, "total_spent_cents", "me.stats")?;
    ensure!(confirmed >= 0 && spent >= 0, "me.stats must not be negative: {stats}");
    Ok((confirmed, spent))
}

/// `{balance_cents, currency: "EUR"}`.
pub fn wallet(v: &Value) -> Result<i64> {
    let balance = integer(v, "balance_cents", "wallet")?;
    ensure!(string(v, "currency", "wallet")? == "EUR", "wallet.currency must be \"EUR\": {v}");
    Ok(balance)
}

/// `{id, amount_cents, balance_cents}`.
pub fn top_up(v: &Value) -> Result<()> {
    id(v, "id", "top-up")?;
    integer(v, "amount_cents", "top-up")?;
    integer(v, "balance_cents", "top-up")?;
    Ok(())
}

/// `Entry` = `{id, kind, amount_cents, order_id, created_at}`; `order_id`
/// is null exactly for top-ups.
pub fn entry(v: &Value) -> Result<()> {
    id(v, "id", "entry")?;
    let kind = string(v, "kind", "entry")?;
    ensure!(["top_up", "charge", "refund"].contains(&kind), "entry.kind {kind:?} is not top_up, charge or refund");
    integer(v, "amount_cents", "entry")?;
    match (kind, nullable_string(v, "order_id", "entry")?) {
        ("top_up", None) => {}
        ("top_up", Some(o)) => bail!("a top-up's order_id must be null, got {o:?}"),
        (_, Some(o)) => {
            uuid_v7(o, "entry.order_id")?;
        }
        (k, None) => bail!("a {k} entry must name its order: {v}"),
    }
    time(v, "created_at", "entry")?;
    Ok(())
}

/// `{id, name, price_cents}`.
pub fn product(v: &Value) -> Result<()> {
    ensure!(!string(v, "id", "product")?.is_empty(), "product.id must not be empty: {v}");
    string(v, "name", "product")?;
    ensure!(integer(v, "price_cents", "product")? > 0, "product.price_cents must be positive: {v}");
    Ok(())
}

pub const ORDER_STATUSES: [&str; 5] = ["pending", "confirmed", "rejected", "failed", "cancelled"];

/// `Order`, with the rules that tie its fields together: the total is the
/// sum of the lines; a rejected or failed order says why; only a cancelled
/// order has a refund status.
pub fn order(v: &Value) -> Result<()> {
    id(v, "id", "order")?;
    let status = string(v, "status", "order")?;
    ensure!(ORDER_STATUSES.contains(&status), "order.status {status:?} is not one of {ORDER_STATUSES:?}");
    let items = array(v, "items", "order")?;
    ensure!(!items.is_empty(), "order.items must not be empty");
    let mut sum = 0;
    for (i, line) in items.iter().enumerate() {
        let what = format!("order.items[{i}]");
        string(line, "product_id", &what)?;
        string(line, "name", &what)?;
        let price = integer(line, "unit_price_cents", &what)?;
        let quantity = integer(line, "quantity", &what)?;
        ensure!(price > 0 && (1..=100).contains(&quantity), "{what} has an impossible price or quantity: {line}");
        sum += price * quantity;
    }
    let total = integer(v, "total_cents", "order")?;
    ensure!(total == sum, "order.total_cents {total} is not the sum of its lines ({sum})");
    let ship_to = field(v, "ship_to", "order")?;
    string(ship_to, "name", "order.ship_to")?;
    address(field(ship_to, "address", "order.ship_to")?, "order.ship_to.address")?;
    let reason = nullable_string(v, "rejection_reason", "order")?;
    let refund = nullable_string(v, "refund_status", "order")?;
    match status {
        "rejected" | "failed" => ensure!(reason.is_some(), "a {status} order must give a rejection_reason: {v}"),
        _ => ensure!(reason.is_none(), "a {status} order must have rejection_reason null: {v}"),
    }
    match (status, refund) {
        ("cancelled", Some("pending" | "refunded")) => {}
        ("cancelled", other) => bail!("a cancelled order's refund_status must be pending or refunded, got {other:?}"),
        (_, Some(other)) => bail!("a {status} order must have refund_status null, got {other:?}"),
        (_, None) => {}
    }
    let created = time(v, "created_at", "order")?;
    let updated = time(v, "updated_at", "order")?;
    ensure!(updated >= created, "order.updated_at is before created_at: {v}");
    Ok(())
}

/// `{items: [..], next_cursor}`: checks each item with `item` and returns
/// the items and the cursor.
pub fn page(v: &Value, item: fn(&Value) -> Result<()>) -> Result<(&Vec<Value>, Option<&str>)> {
    let items = array(v, "items", "page")?;
    for (i, it) in items.iter().enumerate() {
        item(it).with_context(|| format!("page item {i}"))?;
    }
    Ok((items, nullable_string(v, "next_cursor", "page")?))
}

/// Checks that `items` are newest first by `created_at`.
pub fn newest_first(items: &[Value], what: &str) -> Result<()> {
    let times = items.iter().map(|i| time(i, "created_at", what)).collect::<Result<Vec<_>>>()?;
    ensure!(times.windows(2).all(|w| w[0] >= w[1]), "{what} are not newest first");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_utc_times_parse_to_comparable_nanoseconds() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:01.5+00:00"), Some(1_500_000_000));
        assert_eq!(parse_rfc3339_utc("2000-03-01T00:00:00Z"), Some(951_868_800_000_000_000));
        let a = parse_rfc3339_utc("2026-01-02T03:04:05.1Z");
        let b = parse_rfc3339_utc("2026-01-02T03:04:05.099999Z");
        assert!(a > b);
        for bad in ["2026-01-02 03:04:05Z", "2026-01-02T03:04:05", "2026-01-02T03:04:05+01:00", "2026-13-01T00:00:00Z"]
        {
            assert_eq!(parse_rfc3339_utc(bad), None, "{bad}");
        }
    }
}
