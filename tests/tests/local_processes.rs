//! The conformance suite against the simulator with real processes and real time: each
//! instance is an agent process tree in a temporary state dir (agents exit when it is
//! deleted, so a failed test leaks nothing).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herd_conformance::{Fixture, Options};
use herd_core::{Provider, SharedClock, SystemClock};
use herd_local::{AgentCommand, Faults, LocalProvider};

struct LocalProcesses {
    dir: tempfile::TempDir,
}

impl LocalProcesses {
    fn new() -> Self {
        LocalProcesses {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
}

#[async_trait]
impl Fixture for LocalProcesses {
    fn name(&self) -> String {
        "local (processes)".into()
    }
    async fn provider(&self, opts: &Options) -> anyhow::Result<Arc<dyn Provider>> {
        let faults = Faults {
            transient_error_rate: opts.transient_error_rate,
            boot_delay: Some((Duration::from_millis(100), Duration::from_millis(300))),
            ..Faults::default()
        };
        // Each call is a fresh account: its own state dir.
        let state = tempfile::Builder::new()
            .prefix("acct")
            .tempdir_in(self.dir.path())?
            .keep();
        let p = LocalProvider::builder()
            .state_dir(state)
            .seed(42)
            .faults(faults)
            .agent(AgentCommand::new(env!("CARGO_BIN_EXE_conformance-agent")))
            .build()?;
        Ok(Arc::new(p))
    }
    fn clock(&self) -> SharedClock {
        Arc::new(SystemClock)
    }
    async fn pass(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
    fn types(&self) -> (String, String) {
        ("l1.small".into(), "l1.large".into())
    }
    fn region(&self) -> String {
        "local-east-1".into()
    }
    fn observable_deadline(&self) -> Option<Duration> {
        Some(Duration::from_secs(3))
    }
    fn supports_faults(&self) -> bool {
        true
    }
    fn boot_timeout(&self) -> Duration {
        Duration::from_secs(10)
    }
}

herd_conformance::conformance!(LocalProcesses::new());
