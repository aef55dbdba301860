//! The catalogs the CLI knows without asking any cloud: the union of every backend's
//! bundled catalog. Today that is the simulator's; each cloud backend adds its bundled
//! price list to [`bundled`] when it lands. No ledger, no simulator, no network: `herd
//! catalog`, `herd plan` and `herd cost quote` only read these.

use std::sync::OnceLock;

use herd_core::{Catalog, Cloud};

/// Every bundled catalog, one per backend compiled in.
fn bundled() -> Vec<&'static Catalog> {
    vec![herd_local::local_catalog()]
}

/// The union of all bundled catalogs, built once on first use.
pub fn all() -> &'static Catalog {
    let parts = bundled();
    if let [only] = parts.as_slice() {
        return only;
    }
    static MERGED: OnceLock<Catalog> = OnceLock::new();
    MERGED.get_or_init(|| {
        let mut c = Catalog::default();
        for part in parts {
            c.merge(part.clone());
        }
        c
    })
}

/// The region a cloud's quotes default to: the first one its catalog lists.
pub fn default_region(cloud: Cloud) -> Option<String> {
    all().regions(cloud).next().map(|r| r.name.clone())
}
