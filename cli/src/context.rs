//! What a command runs with: settings, the printer, and -- built lazily, only when a
//! command asks -- the ledger and the [`Launcher`]. `herd --version`, `catalog`, `plan`
//! and `completions` never open the ledger or the simulator.

use std::cell::OnceCell;
use std::sync::Arc;

use herd_core::{Error, Launcher, Result};
use herd_ledger::Ledger;

use crate::printer::Printer;
use crate::registry;
use crate::settings::Settings;

#[derive(Debug)]
pub struct Context {
    pub settings: Settings,
    pub printer: Printer,
    pub verbose: bool,
    ledger: OnceCell<Arc<Ledger>>,
    launcher: OnceCell<Launcher>,
}

impl Context {
    pub fn new(settings: Settings, printer: Printer, verbose: bool) -> Self {
        Context {
            settings,
            printer,
            verbose,
            ledger: OnceCell::new(),
            launcher: OnceCell::new(),
        }
    }

    pub fn owner(&self) -> &str {
        &self.settings.owner
    }

    pub fn ledger(&self) -> Result<&Arc<Ledger>> {
        if let Some(l) = self.ledger.get() {
            return Ok(l);
        }
        let l = Arc::new(Ledger::open(&self.settings.ledger)?);
        Ok(self.ledger.get_or_init(|| l))
    }

    /// The launcher for the configured cloud, journaling into the ledger.
    pub fn launcher(&self) -> Result<&Launcher> {
        if let Some(l) = self.launcher.get() {
            return Ok(l);
        }
        let l = self.build_launcher(self.settings.cloud)?;
        Ok(self.launcher.get_or_init(|| l))
    }

    /// A launcher for any cloud, with the same guardrails and ledger: a sweep's matrix
    /// may name several clouds. The configured cloud's is the shared one.
    pub fn launcher_for(&self, cloud: herd_core::Cloud) -> Result<Launcher> {
        if cloud == self.settings.cloud {
            return self.launcher().cloned();
        }
        self.build_launcher(cloud)
    }

    fn build_launcher(&self, cloud: herd_core::Cloud) -> Result<Launcher> {
        let provider = registry::provider(cloud, &self.settings)?;
        let journal: Arc<dyn herd_core::Journal> = self.ledger()?.clone();
        Ok(Launcher::builder(provider)
            .guardrails(self.settings.guardrails())
            .journal(journal)
            .seed(entropy())
            .build())
    }

    /// The launcher, if this command built one (for `--verbose` call statistics).
    pub fn launcher_if_built(&self) -> Option<&Launcher> {
        self.launcher.get()
    }

    /// Runs a future on a current-thread runtime, built only for commands that need one.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> Result<F::Output> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::unexpected("cannot start the async runtime").with_source(e))?;
        Ok(rt.block_on(f))
    }
}

/// Launch ids are `time + random word`; two shells launching in the same millisecond
/// must not share the word, so the launcher's seed mixes the clock and the process id.
fn entropy() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15
}
