//! herd-azure: the [`herd_core::Provider`] for Azure, on the Azure SDK's 0.21 line
//! (`azure_mgmt_compute`, `_network`, `_resources`, `azure_identity`) with herd's own
//! transport under it ([`client`]). One resource group per cluster; each VM made by one
//! PUT with its NIC and IP inline and `deleteOption: Delete` on disk, NIC and IP. The ARM
//! endpoint can point at a fake (`[azure] api_base`). Nothing here retries: herd's retry
//! loop in the Launcher is the only one (docs/decisions/0010-azure-sdk.md).

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
pub mod schedule;
pub mod skus;
pub mod terminate;
#[cfg(feature = "test-support")]
pub mod testing;

pub use auth::StaticToken;
pub use config::{AzureConfig, AzureSection};
pub use provider::{
    capabilities, AzureProvider, AzureProviderBuilder, COMPUTE_API_VERSION, TEST_ADDRESS_MAP_ENV, TEST_HOST_KEY_ENV,
};

use herd_core::{Catalog, Cloud};

/// The Azure catalog this build ships.
pub fn bundled_catalog() -> &'static Catalog {
    herd_catalog::bundled(Cloud::Azure)
}
