//! The test kit's Compute Engine fake, for this crate's tests and everyone else's.
pub use herd_testkit::gce::{FakeGce, Faults};
pub use herd_testkit::{pass, Fault, FaultProxy, GceJson, Herd};
