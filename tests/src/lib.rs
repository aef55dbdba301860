//! The behaviour suite every herd backend must pass (after OpenDAL's behaviour tests).
//!
//! Cases are plain async functions over a [`Fixture`], grouped per operation in
//! [`cases`], each choosing itself by capability. A backend's test file names a fixture
//! and expands [`conformance!`], which turns every case into its own `#[tokio::test]`.
//! Wrappers in [`wrap`] count API calls and take capabilities away, so "refused before
//! any API call" is checked the same way for every backend.

pub mod cases;
pub mod fixture;
pub mod sshd;
pub mod wrap;

pub use fixture::{Fixture, Options, TestCloud};

/// Expands every conformance case into a test against `$fixture` (an expression that
/// builds a fresh `impl Fixture` for each test).
#[macro_export]
macro_rules! conformance {
    ($fixture:expr) => {
        $crate::conformance!(@cases $fixture;
            launch_then_list,
            launch_records_tags_price_and_deadline,
            idempotent_launch,
            idempotent_launch_conflict,
            terminate_is_idempotent,
            list_by_tag_paginated,
            states_never_go_backwards,
            unknown_type_suggests,
            unknown_region_suggests,
            missing_capability_is_unsupported_before_any_call,
            bad_input_is_refused_before_any_call,
            budget_refuses_per_launch,
            budget_refuses_per_day,
            deadline_honoured,
            quotes_match_catalog_and_billing,
            accrued_cost_follows_billing_rule,
            transient_errors_still_yield_exactly_n,
            large_launch_is_batched,
            exec_runs_in_instance,
        );
    };
    (@cases $fixture:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fixture;
                if let Err(e) = $crate::cases::$case(&fixture).await {
                    panic!("conformance case `{}` failed on {}: {e:#}", stringify!($case), $crate::Fixture::name(&fixture));
                }
            }
        )*
    };
}
