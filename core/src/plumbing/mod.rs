//! The cloud-neutral half of a backend, written once: what every cloud's launch, list
//! and terminate must do around its own API calls, whatever the wire format. The AWS
//! backend and the simulator call these; GCE and Azure will too.
//!
//! - [`lookup`]: find a launch's instances by its request tag before sending it again
//!   (the idempotency lookup), including a launch found partly done;
//! - [`zones`]: zone fallback, in order, skipping zones with no capacity, misses recorded;
//! - [`fanout`]: one call per region, concurrently, results in the order asked;
//! - [`answers`]: terminate's "every id answered, in the order asked", id by id;
//! - [`ownership`]: the client-side owner checks, on list results and before terminate.

pub mod answers;
pub mod fanout;
pub mod lookup;
pub mod ownership;
pub mod zones;

pub use answers::{in_order, match_answer};
pub use fanout::fan_out;
pub use lookup::{Existing, PartialLaunches};
pub use ownership::{admits, check_owned, owner_of, Owner};
pub use zones::{try_zones, ZoneFallback};
