//! The test kit's ARM fake, for this crate's tests and everyone else's.
pub use herd_testkit::arm::*;
pub use herd_testkit::{pass, ArmJson, Fault, FaultProxy, Herd};
