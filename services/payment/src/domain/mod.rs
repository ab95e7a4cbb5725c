//! The payment area's domain: amounts, ledger entries and the outcomes of
//! Charge and Refund, with the rules that decide them.
//!
//! Pure: no I/O, no web, SQL or broker types.

mod amount;
pub mod charge;

pub use amount::{Amount, AmountError, TOP_UP_MAX};
pub use charge::{ChargeDecision, ChargeOutcome, ChargeRecord, EntryKind, LedgerEntry, RefundOutcome, Wallet};
