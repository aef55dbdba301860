//! What a command runs with: settings, the printer, and -- built lazily, only when a
//! command asks -- the ledger and one [`Launcher`] per cloud. `herd --version`, `catalog`,
//! `plan` and `completions` never open the ledger or the simulator; a cloud that is not
//! configured never gets a launcher (so no SDK is built for it). Which clouds exist and
//! count as configured comes from [`registry::BACKENDS`], not from code per cloud here.

use std::cell::{Cell, OnceCell};
use std::sync::Arc;

use herd_core::{Cloud, Error, Journal, Launcher, NoJournal, Result};
use herd_ledger::{InstanceFilter, Ledger};

use crate::printer::Printer;
use crate::registry;
use crate::reporter::WaitReporter;
use crate::settings::Settings;

#[derive(Debug)]
pub struct Context {
    pub settings: Settings,
    pub printer: Printer,
    pub verbose: bool,
    ledger: OnceCell<Arc<Ledger>>,
    /// One slot per [`Cloud::ALL`]; every launcher the command built, for `-v`.
    launchers: [OnceCell<Launcher>; Cloud::ALL.len()],
    /// Set when the ledger could not be opened and the command goes on without it
    /// (`down --all`): launchers then journal nowhere.
    no_journal: Cell<bool>,
}

impl Context {
    pub fn new(settings: Settings, printer: Printer, verbose: bool) -> Self {
        Context {
            settings,
            printer,
            verbose,
            ledger: OnceCell::new(),
            launchers: Default::default(),
            no_journal: Cell::new(false),
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

    /// The ledger if it opens; otherwise a loud warning (naming the file and what to do)
    /// and `None`, and every launcher built from now on journals nowhere. For the kill
    /// switch, which must work from the clouds' own tags whatever the bookkeeping.
    pub fn ledger_or_warn(&self) -> Option<&Arc<Ledger>> {
        if self.no_journal.get() {
            return None;
        }
        match self.ledger() {
            Ok(l) => Some(l),
            Err(e) => {
                let path = self.settings.ledger.display();
                self.printer.warn(format!(
                    "the ledger {path} cannot be used ({e}); going on from the clouds' own tags, \
                     recording nothing"
                ));
                self.printer.warn(format!(
                    "what this command terminates is not recorded: move {path} aside (herd starts a new \
                     one) or restore it from a backup, then run `herd ls` to record what still runs"
                ));
                self.no_journal.set(true);
                None
            }
        }
    }

    /// The ledger when it is already open or the command runs without one; the error
    /// only when opening it fails and the command has not said it can do without.
    fn journal(&self) -> Result<Arc<dyn Journal>> {
        if self.no_journal.get() {
            return Ok(Arc::new(NoJournal));
        }
        Ok(self.ledger()?.clone())
    }

    /// The launcher for the configured (default) cloud, journaling into the ledger.
    pub fn launcher(&self) -> Result<&Launcher> {
        self.launcher_for(self.settings.cloud)
    }

    /// The launcher for `cloud`, built once per command with the same guardrails, ledger
    /// and wait reporter: `ls` may cover several clouds, a sweep's matrix several more.
    pub fn launcher_for(&self, cloud: Cloud) -> Result<&Launcher> {
        let slot = &self.launchers[slot(cloud)];
        if let Some(l) = slot.get() {
            return Ok(l);
        }
        let l = self.build_launcher(cloud)?;
        Ok(slot.get_or_init(|| l))
    }

    fn build_launcher(&self, cloud: Cloud) -> Result<Launcher> {
        let provider = registry::provider(cloud, &self.settings)?;
        let journal = self.journal()?;
        let (service, endpoint) = registry::service(cloud, &self.settings);
        let observer: Arc<dyn herd_core::RetryObserver> =
            Arc::new(WaitReporter::new(self.printer.clone(), service, endpoint));
        Ok(Launcher::builder(provider)
            .guardrails(self.settings.guardrails())
            .retry(self.settings.retry_policy())
            .journal(journal)
            .observer(observer)
            .seed(entropy())
            .build())
    }

    /// Every launcher this command built, in [`Cloud::ALL`] order (for `--verbose`).
    pub fn built_launchers(&self) -> Vec<&Launcher> {
        self.launchers.iter().filter_map(OnceCell::get).collect()
    }

    /// The clouds `ls`, `down`, `cost` and `reap` cover: the ones named by `--cloud`
    /// (each must be configured), else every configured one -- the simulator always,
    /// another backend when [`Context::configured`] says so -- in registry order.
    pub fn clouds(&self, named: &[String]) -> Result<Vec<Cloud>> {
        if named.is_empty() {
            return Ok(registry::BACKENDS
                .iter()
                .map(|b| b.cloud)
                .filter(|c| self.configured(*c).is_some())
                .collect());
        }
        let mut out = Vec::new();
        for n in named {
            let cloud: Cloud = n.parse().map_err(|e: Error| {
                Error::invalid_spec(format!("--cloud: {}", e.message())).with_suggestions(e.suggestions().to_vec())
            })?;
            let b =
                registry::backend(cloud).ok_or_else(|| registry::not_built(cloud, &format!("--cloud {cloud}: ")))?;
            if self.configured(cloud).is_none() {
                let mut e = Error::config(format!("--cloud {cloud}: {} is not configured for herd", b.label));
                if let Some(h) = b.how_to_configure {
                    e = e.with_hint(h);
                }
                return Err(e);
            }
            if !out.contains(&cloud) {
                out.push(cloud);
            }
        }
        Ok(out)
    }

    /// Why `cloud` counts as configured: the settings say so (see
    /// `registry::configured_by`), or the ledger records live instances of yours there (so
    /// they are never out of sight).
    pub fn configured(&self, cloud: Cloud) -> Option<String> {
        if let Some(why) = self.settings.configured_by(cloud) {
            return Some(why.to_string());
        }
        let b = registry::backend(cloud)?;
        let ledger = if self.no_journal.get() {
            return None;
        } else {
            self.ledger().ok()?
        };
        let live = ledger
            .instances(&InstanceFilter {
                cloud: Some(cloud),
                owner: Some(self.owner().to_string()),
                live_only: true,
                limit: Some(1),
                ..InstanceFilter::default()
            })
            .ok()?;
        (!live.is_empty()).then(|| format!("the ledger records live {} instances of yours", b.label))
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

fn slot(cloud: Cloud) -> usize {
    Cloud::ALL.iter().position(|c| *c == cloud).unwrap_or(0)
}

/// Launch ids are `time + random word`; two shells launching in the same millisecond
/// must not share the word, so the launcher's seed mixes the clock and the process id.
fn entropy() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15
}
