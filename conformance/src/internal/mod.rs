//! The internal mode: one service's internal contract, checked alone.
//!
//! Why it exists: someone porting the user or the payment service to
//! another language needs to know that their port serves what the other
//! services call (docs/api.md, "Internal contracts"; docs/design.md §3)
//! before they put it behind the edge. This mode talks to the port's
//! internal port directly: the user lookup over HTTP, `Payments` over gRPC
//! with gRPC health and reflection. It still knows nothing of the
//! implementation.
//!
//! State comes through the public API, as any client would make it: users
//! are registered and logged in (`POST /v1/users`, `/v1/sessions`), wallets
//! topped up (`POST /v1/wallet/top-ups`), and the effects of Charge and
//! Refund read back from `GET /v1/wallet` and `/v1/payments`. A payment
//! port alone serves no `/v1/users`: give the suite the private key whose
//! public half the port trusts (`--signing-key`, the committed development
//! key in `dev/keys/`), and it signs its own tokens for fresh user ids
//! instead ([`token`]).
//!
//! # Layout
//!
//! - [`InternalTarget`] says what to check; [`run`] checks it.
//! - [`InternalCtx`] is what a case gets: a public-API [`Ctx`] for set-up,
//!   the lookup's client, the gRPC client, and [`InternalCtx::wallet`], a
//!   funded wallet made either way.
//! - `lookup`, `payments` and `grpc` hold the cases; [`cases`] lists them
//!   with the contract each needs.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use twinshop_client::{Client, ExchangeLog, Payments};
use uuid::Uuid;

use crate::{
    Report, Suite,
    cases::Case,
    ctx::{Answer, Ctx, User},
    run_cases,
};

mod grpc;
mod lookup;
mod payments;
pub mod token;

/// What to check: the contracts whose address is given, and where the
/// public API answers for the set-up.
#[derive(Debug, Clone, Default)]
pub struct InternalTarget {
    /// A label for the report, e.g. `payment port`.
    pub name: String,
    /// The public API used to set up state: the edge, or the ported
    /// service's own public port (then it must serve what the cases use:
    /// `/v1/users` and `/v1/sessions` for the lookup's cases; the wallet,
    /// top-ups and ledger for Payments', plus users and sessions unless
    /// `signing_key` is given).
    pub base_url: String,
    /// The user service's internal base URL (`GET /internal/v1/users/{id}`).
    pub user_internal: Option<String>,
    /// The payment service's gRPC URL (`http://host:port`, plain HTTP/2).
    pub payment_grpc: Option<String>,
    /// An Ed25519 private key (PKCS#8 PEM) the target trusts tokens of:
    /// with it the suite signs tokens for fresh user ids instead of
    /// registering users.
    pub signing_key: Option<String>,
}

/// Which internal contract a case checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// The user service's HTTP lookup.
    UserLookup,
    /// The payment service's gRPC API, health and reflection.
    Payments,
}

/// Every internal case, in the order of docs/api.md, with the contract it
/// checks.
pub fn cases() -> Vec<(Contract, Case<InternalCtx>)> {
    let lookup = crate::cases::cases![
        lookup::the_lookup_answers_a_registered_users_id_name_and_address,
        lookup::the_lookup_of_a_user_without_an_address_has_a_null_address,
        lookup::the_lookup_follows_a_profile_update_at_once,
        lookup::the_lookup_of_an_unknown_or_malformed_id_is_404_not_found,
    ];
    let payments = crate::cases::cases![
        payments::a_charge_takes_the_amount_once_and_a_replay_answers_the_first_outcome,
        payments::insufficient_funds_is_an_outcome_and_stays_final_after_a_top_up,
        payments::a_refund_gives_the_charge_back_once_and_a_replay_says_already_refunded,
        payments::a_refund_of_an_order_whose_charge_took_nothing_is_not_charged,
        payments::a_refund_before_any_charge_leaves_a_tombstone_and_a_late_charge_is_voided,
        payments::the_same_order_id_with_another_user_or_amount_is_failed_precondition,
        payments::malformed_ids_and_out_of_range_amounts_are_invalid_argument_and_take_nothing,
        payments::concurrent_charges_of_one_order_take_the_money_once,
        grpc::grpc_health_reports_the_server_and_payments_serving,
        grpc::reflection_lists_payments_and_health_and_describes_charge_and_refund,
    ];
    lookup
        .into_iter()
        .map(|c| (Contract::UserLookup, c))
        .chain(payments.into_iter().map(|c| (Contract::Payments, c)))
        .collect()
}

/// The names of the cases `target` selects (for `--list`).
pub fn names(target: &InternalTarget) -> Vec<&'static str> {
    cases().into_iter().filter(|(contract, _)| target.checks(*contract)).map(|(_, c)| c.name).collect()
}

impl InternalTarget {
    fn checks(&self, contract: Contract) -> bool {
        match contract {
            Contract::UserLookup => self.user_internal.is_some(),
            Contract::Payments => self.payment_grpc.is_some(),
        }
    }
}

/// Checks the contracts `target` names (only the cases whose name contains
/// `filter`, when given). Never panics and never hangs (see [`crate::run`]).
pub async fn run(target: &InternalTarget, filter: Option<&str>) -> Report {
    let mut report = Report { suite: Suite::Internal, build: target.name.clone(), ..Report::default() };
    if target.user_internal.is_none() && target.payment_grpc.is_none() {
        report
            .failed
            .push(("the suite starts".into(), "no internal contract to check: give a lookup or gRPC URL".into()));
        return report;
    }
    let ctx = match InternalCtx::new(target) {
        Ok(ctx) => Arc::new(ctx),
        Err(err) => {
            report.failed.push(("the suite starts".into(), format!("{err:#}")));
            return report;
        }
    };
    let selected = cases().into_iter().filter(|(contract, _)| target.checks(*contract)).map(|(_, c)| c).collect();
    run_cases(&mut report, ctx.clone(), selected, filter).await;
    report.exchanges = ctx.public.exchanges();
    report.internal_exchanges = ctx.internal_log.exchanges();
    report
}

/// What an internal case gets.
#[derive(Debug)]
pub struct InternalCtx {
    /// The public API, for set-up and for reading effects back.
    pub public: Ctx,
    lookup: Option<Client>,
    payments: Option<Payments>,
    signer: Option<token::Signer>,
    /// Every exchange with the internal HTTP port (held to
    /// `openapi/internal.yaml` by twinshop's own tests).
    internal_log: ExchangeLog,
}

impl InternalCtx {
    pub fn new(target: &InternalTarget) -> Result<Self> {
        let internal_log = ExchangeLog::new();
        let lookup = match &target.user_internal {
            Some(url) => Some(
                Client::builder()
                    .timeout(Duration::from_secs(30))
                    .recorder(internal_log.recorder())
                    .build(url)
                    .with_context(|| format!("the lookup's URL {url}"))?,
            ),
            None => None,
        };
        let payments = match &target.payment_grpc {
            Some(url) => Some(
                Payments::new(url)
                    .with_context(|| format!("the gRPC URL {url}"))?
                    .with_timeout(Duration::from_secs(10)),
            ),
            None => None,
        };
        let signer = target.signing_key.as_deref().map(token::Signer::from_pem).transpose()?;
        Ok(Self { public: Ctx::new(&target.base_url)?, lookup, payments, signer, internal_log })
    }

    /// The lookup's client (its cases run only when it is configured).
    pub fn lookup(&self) -> Result<&Client> {
        self.lookup.as_ref().context("no --user-internal URL")
    }

    /// `GET /internal/v1/users/{id}` on the lookup, read whole.
    pub async fn look_up(&self, id: &str) -> Result<Answer> {
        let path = format!("/internal/v1/users/{id}");
        let res = self.lookup()?.get(&path).send().await.with_context(|| format!("GET {path}"))?;
        Ok(Answer::read(format!("GET {path} (internal)"), &res))
    }

    /// The gRPC client (its cases run only when it is configured).
    pub fn payments(&self) -> Result<&Payments> {
        self.payments.as_ref().context("no --payment-grpc URL")
    }

    /// A fresh wallet holding `cents` (none when 0), and a token of its
    /// owner: a signed token for a new id when the suite has a key, else
    /// a user registered and logged in through the public API.
    pub async fn wallet(&self, cents: i64) -> Result<User> {
        let user = match &self.signer {
            Some(signer) => {
                let id = Uuid::now_v7();
                User {
                    id: id.to_string(),
                    email: String::new(),
                    name: String::new(),
                    address: Value::Null,
                    token: signer.token(id)?,
                }
            }
            None => self.public.user().await?,
        };
        if cents > 0 {
            self.public.top_up(&user, cents).await.context("funding the wallet through the public API")?;
        }
        Ok(user)
    }

    /// The user's balance, read through the public API.
    pub async fn balance(&self, user: &User) -> Result<i64> {
        self.public.balance(user).await
    }

    /// The balance must still be `expected`.
    pub async fn balance_is(&self, user: &User, expected: i64, after: &str) -> Result<()> {
        let balance = self.balance(user).await?;
        if balance != expected {
            bail!("after {after}: GET /v1/wallet says {balance} cents, expected {expected}");
        }
        Ok(())
    }
}
