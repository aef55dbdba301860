//! herd-gcp: the [`herd_core::Provider`] for Compute Engine, over its v1 REST API with
//! reqwest (rustls; no generated SDK). Credentials are Application Default Credentials
//! ([`auth`]); the API base can point at a fake (`[gcp] api_base`). Nothing here
//! retries: herd's retry loop in the Launcher is the only one.

pub mod access;
pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod images;
pub mod launch;
pub mod list;
mod provider;
pub mod reap;
pub mod terminate;
#[cfg(feature = "test-support")]
pub mod testing;

pub use auth::{StaticToken, Token, TokenSource};
pub use config::{GcpConfig, GcpSection};
pub use provider::{
    capabilities, GcpProvider, GcpProviderBuilder, MAX_DEADLINE, TEST_ADDRESS_MAP_ENV, TEST_HOST_KEY_ENV,
};

use herd_core::{Catalog, Cloud};

/// The GCP catalog this build ships.
pub fn bundled_catalog() -> &'static Catalog {
    herd_catalog::bundled(Cloud::Gcp)
}
