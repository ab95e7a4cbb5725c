//! The cases, one module per area of docs/api.md, and the one list of them.
//!
//! A case is a plain `async fn name(ctx: &Ctx) -> anyhow::Result<()>`; its
//! name is the sentence it proves and the name the report shows. To add
//! one, write the function in its area's module and add it to [`all`].

use std::{future::Future, pin::Pin};

use crate::Ctx;

mod cancel;
mod consistency;
mod idempotency;
mod ledger;
mod orders;
mod profile;
mod routing;
mod sessions;
mod users;
mod wallet;

pub(crate) type CaseFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// One registered case, run with a `C` (the public suite's [`Ctx`], or the
/// internal mode's context).
pub struct Case<C = Ctx> {
    pub name: &'static str,
    pub run: for<'a> fn(&'a C) -> CaseFuture<'a>,
}

impl<C> Clone for Case<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Case<C> {}

impl<C> std::fmt::Debug for Case<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish_non_exhaustive()
    }
}

/// `area::case_name, ...` as a list of [`Case`]s named after their functions.
macro_rules! cases {
    ($($area:ident :: $name:ident),* $(,)?) => {
        vec![$($crate::cases::Case { name: stringify!($name), run: |ctx| Box::pin($area::$name(ctx)) }),*]
    };
}
pub(crate) use cases;

/// Every case, in the order of docs/api.md.
pub fn all() -> Vec<Case> {
    cases![
        users::registering_answers_201_with_every_user_field_and_no_password,
        users::registering_without_an_address_gives_a_null_address,
        users::an_email_registered_in_another_letter_case_is_409_email_taken,
        users::registration_lists_every_missing_or_mistyped_field,
        users::registration_lists_every_out_of_range_field_including_the_address,
        users::the_password_and_name_length_bounds_are_inclusive,
        users::unknown_fields_are_ignored_and_a_charset_is_fine,
        users::bodies_that_are_not_json_objects_are_400_malformed_json,
        users::bodies_without_application_json_are_415_unsupported_media_type,
        users::bodies_over_64_kib_are_413_payload_too_large_and_just_under_is_fine,
        sessions::logging_in_answers_a_bearer_eddsa_jwt_for_the_user,
        sessions::a_wrong_password_and_an_unknown_email_get_the_same_invalid_credentials,
        sessions::logging_in_without_email_or_password_is_validation_failed,
        sessions::every_protected_endpoint_without_a_token_is_401_unauthorized,
        sessions::malformed_tampered_and_unsigned_tokens_are_401_unauthorized,
        profile::the_profile_is_the_registered_user_with_zero_stats,
        profile::patching_name_and_address_changes_only_those,
        profile::an_address_set_to_null_is_removed_and_orders_then_require_one,
        profile::bad_profile_changes_are_validation_failed_and_change_nothing,
        wallet::a_new_wallet_holds_zero_euros,
        wallet::top_ups_credit_the_wallet_and_answer_the_new_balance,
        wallet::top_up_amounts_run_from_1_to_1000000_cents,
        wallet::a_repeated_top_up_key_replays_the_first_answer_and_credits_once,
        wallet::a_top_up_key_reused_for_another_amount_is_422_idempotency_key_reused,
        ledger::the_ledger_lists_top_ups_and_charges_newest_first_with_every_field,
        ledger::the_ledger_pages_by_limit_and_cursor_until_a_null_cursor,
        ledger::the_ledger_limit_defaults_to_20,
        ledger::malformed_limits_and_cursors_are_validation_failed,
        orders::the_catalog_is_public_and_holds_the_seeded_products,
        orders::an_order_is_confirmed_priced_from_the_catalog_and_shipped_to_the_profile,
        orders::an_order_without_enough_funds_is_rejected_and_charges_nothing,
        orders::an_order_naming_an_unknown_product_is_422_and_records_nothing,
        orders::order_items_and_quantities_are_validated_field_by_field,
        orders::the_item_and_quantity_bounds_are_inclusive,
        orders::an_order_without_a_shipping_address_is_422_address_required,
        orders::another_users_unknown_and_malformed_order_ids_are_404_not_found,
        orders::orders_list_newest_first_across_pages,
        idempotency::a_repeated_order_key_replays_the_first_order_and_charges_once,
        idempotency::an_order_key_reused_for_another_body_is_422_idempotency_key_reused,
        idempotency::concurrent_requests_with_one_key_make_one_order_and_one_charge,
        idempotency::idempotency_keys_are_scoped_per_user_and_endpoint,
        idempotency::malformed_idempotency_keys_are_validation_failed,
        cancel::cancelling_a_confirmed_order_refunds_it_and_restores_the_balance,
        cancel::cancelling_a_cancelled_order_returns_it_unchanged_and_refunds_once,
        cancel::cancelling_a_rejected_order_is_409_order_not_cancellable,
        consistency::stats_count_confirmed_orders_and_stop_counting_cancelled_ones,
        consistency::twenty_concurrent_orders_on_a_wallet_funded_for_five_confirm_exactly_five,
        consistency::each_user_sees_only_their_own_wallet_ledger_and_orders,
        routing::unknown_routes_are_404_not_found_problems,
        routing::a_wrong_method_is_a_404_or_405_problem,
    ]
}

/// The name of every case, in order (for `--list`).
pub fn names() -> Vec<&'static str> {
    all().into_iter().map(|c| c.name).collect()
}
