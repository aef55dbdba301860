//! herd-aws: the [`herd_core::Provider`] for EC2 on aws-sdk-ec2.
//!
//! Credentials come from aws-config's default chain (environment, profiles, SSO,
//! instance roles); the endpoint can point at an emulator (`AwsConfig::endpoint` or
//! `AWS_ENDPOINT_URL`). The SDK's own retries are off: herd's retry loop in the
//! Launcher is the only one (docs/decisions/0006-aws-retries.md).

pub mod access;
pub mod client;
pub mod config;
pub mod error;
pub mod exec;
pub mod images;
pub mod instance;
pub mod launch;
pub mod list;
mod provider;
pub mod reap;
pub mod spot;
pub mod terminate;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod userdata;

pub use client::Ec2;
pub use config::AwsConfig;
pub use provider::{
    capabilities, AwsProvider, AwsProviderBuilder, JUST_LAUNCHED, NOT_FOUND_PATIENCE, PARTIAL_PATIENCE,
};
pub use spot::SpotPrice;

use herd_core::{Catalog, Cloud};

/// The AWS catalog this build ships (types, regions, prices): the one place to swap.
pub fn bundled_catalog() -> &'static Catalog {
    herd_catalog::bundled(Cloud::Aws)
}
