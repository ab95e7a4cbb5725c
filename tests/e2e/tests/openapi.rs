//! The OpenAPI document's error table is the platform's error table: every
//! public code with the same status and title, and nothing else. (What the
//! running builds answer is checked against the document in
//! `tests/conformance.rs`.)

use std::collections::BTreeMap;

use twinshop_e2e::openapi::{Contract, document_path};
use twinshop_platform::problem::ErrorCode;

#[test]
fn the_documented_error_table_is_the_platforms() {
    let contract = Contract::load(&document_path()).expect("openapi/twinshop.yaml loads");
    let platform: BTreeMap<String, (u16, String)> = ErrorCode::ALL
        .iter()
        .filter(|code| **code != ErrorCode::Internal)
        .map(|code| (code.as_str().to_owned(), (code.status().as_u16(), code.title().to_owned())))
        .collect();
    assert_eq!(contract.error_table, platform);
}
