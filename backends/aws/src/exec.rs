//! `exec` on EC2: herd-guest's shared SSH exec ([`herd_guest::ssh::remote`]) to the
//! instance's public address. Tests send addresses elsewhere with
//! `HERD_AWS_TEST_ADDRESS_MAP` and give every launch one host key with
//! `HERD_AWS_TEST_HOST_KEY`, honoured only in `test-support` builds.

use herd_core::{Instance, Result};
pub use herd_guest::ssh::remote::{pinned_key, run, Sessions, WORK_DIR};
use herd_guest::ssh::HostKeyStore;

/// The environment variable tests map addresses with (`test-support` builds only).
pub const TEST_ADDRESS_MAP_ENV: &str = "HERD_AWS_TEST_ADDRESS_MAP";

/// The environment variable that gives every launch one host key (`test-support` builds).
pub const TEST_HOST_KEY_ENV: &str = "HERD_AWS_TEST_HOST_KEY";

/// Where to reach `inst` (its public address, port 22).
pub fn address(inst: &Instance) -> Result<std::net::SocketAddr> {
    herd_guest::ssh::remote::address(inst, TEST_ADDRESS_MAP_ENV)
}

/// The test seam's host key for this launch, in `test-support` builds.
pub fn test_host_key(store: &HostKeyStore, launch_id: &str) -> Result<()> {
    herd_guest::ssh::remote::test_host_key(store, launch_id, TEST_HOST_KEY_ENV)
}
