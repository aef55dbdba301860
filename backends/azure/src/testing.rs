//! The stateful ARM fake, for tests of this crate and the crates above it.
pub use herd_testkit::arm::*;
