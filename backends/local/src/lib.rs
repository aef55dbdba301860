//! herd-local: the simulator, herd's embedded default cloud. It behaves like a cloud, not
//! like a stub: instances are real process trees with real CPU limits, the control plane
//! keeps its state in SQLite so it outlives the CLI, and it misbehaves on purpose
//! (boot delay, capacity, throttling, spot interruptions, transient faults), seeded.

pub mod agent;
mod buckets;
mod config;
mod error;
mod exec;
mod host;
mod lifecycle;
mod pricing;
mod provider;
mod reconcile;
mod store;
mod vm;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;

use herd_core::{SharedClock, SystemClock, VirtualClock};

pub use config::{AgentCommand, Faults, SimulatorSection};
pub use pricing::{local_catalog, resources, Resources};
pub use provider::{LocalProvider, DEFAULT_REGION};

/// `$HERD_SIM_DIR`, else `<data dir>/herd/sim` (`$XDG_DATA_HOME` or `$HOME/.local/share`).
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HERD_SIM_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    data.join("herd").join("sim")
}

/// Settings of a [`LocalProvider`]; everything is optional.
#[derive(Debug)]
pub struct LocalBuilder {
    pub(crate) state_dir: Option<PathBuf>,
    pub(crate) in_memory: bool,
    pub(crate) processes: bool,
    pub(crate) clock: SharedClock,
    pub(crate) seed: u64,
    pub(crate) faults: Faults,
    pub(crate) spot: bool,
    pub(crate) max_launch_batch: u32,
    pub(crate) agent: Option<AgentCommand>,
    pub(crate) owner_account: Option<String>,
    pub(crate) owner: Option<String>,
    pub(crate) virtual_exec: bool,
}

impl Default for LocalBuilder {
    fn default() -> Self {
        LocalBuilder {
            state_dir: None,
            in_memory: false,
            processes: true,
            clock: Arc::new(SystemClock),
            seed: 0x5eed_10ca1,
            faults: Faults::default(),
            spot: true,
            max_launch_batch: 1000,
            agent: None,
            owner_account: None,
            owner: None,
            virtual_exec: false,
        }
    }
}

impl LocalBuilder {
    pub fn state_dir(mut self, p: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(p.into());
        self
    }
    /// No state dir at all (virtual-mode scale tests); implies no processes.
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }
    /// `true` (default): instances are real process trees; `false`: virtual instances.
    pub fn processes(mut self, yes: bool) -> Self {
        self.processes = yes;
        self
    }
    pub fn clock(mut self, c: SharedClock) -> Self {
        self.clock = c;
        self
    }
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = s;
        self
    }
    pub fn faults(mut self, f: Faults) -> Self {
        self.faults = f;
        self
    }
    /// Capability switch: tests turn spot off to check `Unsupported`.
    pub fn spot(mut self, enabled: bool) -> Self {
        self.spot = enabled;
        self
    }
    pub fn max_launch_batch(mut self, n: u32) -> Self {
        self.max_launch_batch = n;
        self
    }
    /// How to start the per-VM supervisor process (default: [`AgentCommand::discover`]).
    pub fn agent(mut self, a: AgentCommand) -> Self {
        self.agent = Some(a);
        self
    }
    /// Shown as `ProviderInfo::account` (default: the state dir path).
    pub fn owner_account(mut self, s: impl Into<String>) -> Self {
        self.owner_account = Some(s.into());
        self
    }
    /// The herd owner this provider acts for (the `herd-owner` tag the Launcher writes,
    /// sanitized the same way): `terminate` then refuses, with `PermissionDenied` naming
    /// the owner, any instance whose own tag names someone else or no one. Unset, the
    /// simulator terminates whatever it is asked (tests, tools).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }
    /// Virtual mode only: `exec` follows the declared work model (see `exec::virtual_run`)
    /// instead of refusing, so sweeps can be scale-tested without processes.
    pub fn virtual_exec(mut self, yes: bool) -> Self {
        self.virtual_exec = yes;
        self
    }
    pub fn build(self) -> herd_core::Result<LocalProvider> {
        LocalProvider::from_builder(self)
    }
}

/// An in-memory simulator on a virtual clock with no processes: for scale tests.
pub fn virtual_provider(clock: VirtualClock, seed: u64, faults: Faults) -> LocalProvider {
    LocalBuilder::default()
        .in_memory()
        .processes(false)
        .clock(Arc::new(clock))
        .seed(seed)
        .faults(faults)
        .build()
        .expect("an in-memory simulator always builds")
}
