//! herd's test kit, shared by every backend's tests, the conformance suite, the CLI's
//! test binaries and the benchmark, so none of them copies a server or a harness:
//!
//! - [`proxy`]: the fault proxy, protocol-neutral (listen, forward, record, apply a rule);
//! - [`protocol`]: what it knows of each cloud's wire protocol: EC2 query/XML, GCE and
//!   ARM JSON REST (the GCE and Azure fakes will sit behind it, on wiremock);
//! - [`moto`]: moto's EC2 server on 127.0.0.1 (a missing moto fails with the install command);
//! - [`cases`]: the fault cases as data, and the [`cases::Faulty`] provider wrapper that
//!   runs them against the simulator, which has no HTTP;
//! - [`cli`]: one harness for the CLI's test binaries (scrubbed env, scratch dirs, runner);
//! - `ec2` (feature `aws`): planting and checking resources straight in moto;
//! - `gce` (feature `gce`): a stateful Compute Engine on wiremock, held to the discovery document;
//! - `arm` (feature `arm`): a stateful Azure Resource Manager on wiremock, held to Azure's examples.
//!
//! Tests only: everything here listens on and talks to 127.0.0.1.

#[cfg(feature = "arm")]
pub mod arm;
pub mod cases;
pub mod cli;
#[cfg(feature = "aws")]
pub mod ec2;
#[cfg(feature = "gce")]
pub mod gce;
pub mod moto;
pub mod protocol;
pub mod proxy;

pub use cases::{FaultCase, Faulty, Inject, Outcome, Transport, Zones};
pub use cli::{printed_command, with_terminal, Herd, Run};
pub use moto::{moto_binary, Moto, MotoBehindProxy, MOTO_INSTALL};
pub use protocol::{ArmJson, Ec2Query, Effect, Failure, GceJson, Protocol, Seen};
pub use proxy::{pass, Fault, FaultProxy, Rule};
