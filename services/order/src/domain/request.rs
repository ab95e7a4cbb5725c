//! An order request: items and quantities, validated, then priced from the
//! catalog only (the client never sends a price).

use std::collections::HashSet;

use twinshop_platform::validation::FieldErrors;

use super::{OrderLine, Product};

pub const MAX_ITEMS: usize = 50;
pub const MAX_QUANTITY: i64 = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRequest {
    pub product_id: String,
    pub quantity: i64,
}

/// 1–50 items, each a product at most once, quantities 1–100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    items: Vec<ItemRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderRequestError {
    /// Some items name no product in the catalog (their ids).
    #[error("unknown products: {0:?}")]
    UnknownProducts(Vec<String>),
}

impl OrderRequest {
    /// Checks the shape rules; every problem is reported under its field
    /// (`items`, `items[3].quantity`, ...).
    pub fn parse(items: Vec<(Option<String>, Option<i64>)>, errors: &mut FieldErrors) -> Option<Self> {
        if items.is_empty() || items.len() > MAX_ITEMS {
            errors.push("items", format!("must hold 1 to {MAX_ITEMS} items"));
            return None;
        }
        let mut seen = HashSet::new();
        let mut parsed = Vec::with_capacity(items.len());
        let before = errors.iter().count();
        for (i, (product_id, quantity)) in items.into_iter().enumerate() {
            match product_id {
                Some(id) if (1..=64).contains(&id.chars().count()) => {
                    if !seen.insert(id.clone()) {
                        errors.push(format!("items[{i}].product_id"), "names a product already in the order");
                    }
                    if let Some(q) = quantity {
                        if (1..=MAX_QUANTITY).contains(&q) {
                            parsed.push(ItemRequest { product_id: id, quantity: q });
                        } else {
                            errors.push(
                                format!("items[{i}].quantity"),
                                format!("must be an integer from 1 to {MAX_QUANTITY}"),
                            );
                        }
                    }
                }
                Some(_) => errors.push(format!("items[{i}].product_id"), "must be 1 to 64 characters"),
                None => {}
            }
        }
        (errors.iter().count() == before).then_some(Self { items: parsed })
    }

    pub fn items(&self) -> &[ItemRequest] {
        &self.items
    }
}

/// Prices the request from the catalog; the total is the sum of the lines.
pub fn price(request: &OrderRequest, catalog: &[Product]) -> Result<(Vec<OrderLine>, i64), OrderRequestError> {
    let mut unknown = Vec::new();
    let mut lines = Vec::with_capacity(request.items.len());
    for item in &request.items {
        match catalog.iter().find(|p| p.id == item.product_id) {
            Some(p) => lines.push(OrderLine {
                product_id: p.id.clone(),
                name: p.name.clone(),
                unit_price_cents: p.price_cents,
                quantity: item.quantity,
            }),
            None => unknown.push(item.product_id.clone()),
        }
    }
    if !unknown.is_empty() {
        return Err(OrderRequestError::UnknownProducts(unknown));
    }
    let total = lines.iter().map(|l| l.unit_price_cents * l.quantity).sum();
    Ok((lines, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn catalog() -> Vec<Product> {
        vec![
            Product { id: "sku-coffee".into(), name: "Coffee".into(), price_cents: 450 },
            Product { id: "sku-tea".into(), name: "Tea".into(), price_cents: 300 },
        ]
    }

    fn req(items: &[(&str, i64)]) -> (Option<OrderRequest>, FieldErrors) {
        let mut errors = FieldErrors::new();
        let r =
            OrderRequest::parse(items.iter().map(|(p, q)| (Some((*p).to_owned()), Some(*q))).collect(), &mut errors);
        (r, errors)
    }

    #[test]
    fn prices_come_from_the_catalog_and_the_total_is_their_sum() {
        let (r, _) = req(&[("sku-coffee", 2), ("sku-tea", 1)]);
        let (lines, total) = price(&r.expect("valid"), &catalog()).expect("priced");
        assert_eq!(lines[0].unit_price_cents, 450);
        assert_eq!(total, 1200);
    }

    #[test]
    fn unknown_products_are_all_named() {
        let (r, _) = req(&[("sku-coffee", 1), ("sku-x", 1), ("sku-y", 1)]);
        assert_eq!(
            price(&r.expect("valid"), &catalog()),
            Err(OrderRequestError::UnknownProducts(vec!["sku-x".into(), "sku-y".into()]))
        );
    }

    #[test]
    fn shape_rules_report_each_bad_item() {
        let (r, e) = req(&[("sku-coffee", 0), ("sku-coffee", 1), ("sku-tea", 101)]);
        assert!(r.is_none());
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["items[0].quantity", "items[1].product_id", "items[2].quantity"]);
        assert!(req(&[]).0.is_none());
        let many: Vec<(String, i64)> = (0..51).map(|i| (format!("p{i}"), 1)).collect();
        let refs: Vec<(&str, i64)> = many.iter().map(|(p, q)| (p.as_str(), *q)).collect();
        assert!(req(&refs).0.is_none());
    }

    #[test]
    fn a_product_id_is_counted_in_characters_not_bytes() {
        let accented = "é".repeat(40); // 40 characters, 80 bytes
        assert!(req(&[(accented.as_str(), 1)]).0.is_some());
        let long = "é".repeat(65);
        let (r, e) = req(&[(long.as_str(), 1)]);
        assert!(r.is_none());
        assert_eq!(e.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["items[0].product_id"]);
        assert!(req(&[("", 1)]).0.is_none());
    }

    proptest! {
        #[test]
        fn any_quantity_outside_one_to_a_hundred_is_refused(q in any::<i64>()) {
            let (r, _) = req(&[("sku-tea", q)]);
            prop_assert_eq!(r.is_some(), (1..=100).contains(&q));
        }
    }
}
