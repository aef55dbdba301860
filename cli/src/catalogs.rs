//! The catalogs the CLI knows without asking any cloud: the bundled AWS, GCP and Azure
//! catalogs (`herd-catalog`), the user's refreshed price overlay on top, and the
//! simulator's price list, as one [`Catalog`]. No ledger, no simulator, no network:
//! `herd catalog`, `herd plan` and `herd cost quote` only read these.

use std::path::PathBuf;
use std::sync::OnceLock;

use herd_catalog::{Catalogs, CLOUDS};
use herd_core::{Catalog, Cloud, Result};

static OVERLAY_DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
static LOADED: OnceLock<std::result::Result<Catalogs, herd_core::Error>> = OnceLock::new();

/// Where refreshed prices live: set once from the settings (`[catalog] overlay_dir`)
/// before the first load; without it, the environment's default (see
/// [`herd_catalog::overlay::default_dir`]).
pub fn set_overlay_dir(dir: Option<PathBuf>) {
    let _ = OVERLAY_DIR.set(dir);
}

pub fn overlay_dir() -> Option<PathBuf> {
    OVERLAY_DIR
        .get_or_init(|| herd_catalog::overlay::default_dir(|k| std::env::var_os(k)))
        .clone()
}

/// Bundled data, overlay and simulator, loaded once; an unreadable overlay is an error
/// here (the commands that show prices report it), never silently ignored.
pub fn loaded() -> Result<&'static Catalogs> {
    LOADED
        .get_or_init(|| {
            Catalogs::load_with(
                overlay_dir().as_deref(),
                &CLOUDS,
                vec![herd_local::local_catalog().clone()],
            )
        })
        .as_ref()
        .map_err(|e| {
            let mut out = herd_core::Error::new(e.kind(), e.message());
            if let Some(h) = e.hint() {
                out = out.with_hint(h.to_string());
            }
            out
        })
}

/// The union of all catalogs. If the overlay cannot be read, the bundled data alone
/// (commands that print prices call [`loaded`] first and report the error).
pub fn all() -> &'static Catalog {
    static BUNDLED_ONLY: OnceLock<Catalogs> = OnceLock::new();
    match loaded() {
        Ok(c) => &c.catalog,
        Err(_) => {
            &BUNDLED_ONLY
                .get_or_init(|| {
                    Catalogs::load_with(None, &CLOUDS, vec![herd_local::local_catalog().clone()])
                        .unwrap_or_else(|e| panic!("{e}"))
                })
                .catalog
        }
    }
}

/// The region a cloud's quotes default to: the cloud's best-known region (the one its
/// own consoles and docs default to) if the catalog has it, else the first it lists.
pub fn default_region(cloud: Cloud) -> Option<String> {
    let preferred = match cloud {
        Cloud::Aws => Some("us-east-1"),
        Cloud::Gcp => Some("us-central1"),
        Cloud::Azure => Some("eastus"),
        Cloud::Local => None,
    };
    let mut regions = all().regions(cloud);
    match preferred.and_then(|p| all().regions(cloud).find(|r| r.name == p)) {
        Some(r) => Some(r.name.clone()),
        None => regions.next().map(|r| r.name.clone()),
    }
}
