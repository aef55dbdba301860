//! The conformance suite against the simulator in virtual mode: no processes, a virtual
//! clock, so deadlines and boot delays pass instantly.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herd_conformance::{Fixture, Options};
use herd_core::{Provider, SharedClock, VirtualClock};
use herd_local::Faults;

struct LocalVirtual {
    clock: VirtualClock,
}

impl LocalVirtual {
    fn new() -> Self {
        LocalVirtual {
            clock: VirtualClock::at_epoch(),
        }
    }
}

#[async_trait]
impl Fixture for LocalVirtual {
    fn name(&self) -> String {
        "local (virtual)".into()
    }
    async fn provider(&self, opts: &Options) -> anyhow::Result<Arc<dyn Provider>> {
        let faults = Faults {
            transient_error_rate: opts.transient_error_rate,
            ..Faults::default()
        };
        Ok(Arc::new(herd_local::virtual_provider(self.clock.clone(), 42, faults)))
    }
    fn clock(&self) -> SharedClock {
        Arc::new(self.clock.clone())
    }
    async fn pass(&self, d: Duration) {
        self.clock.advance(d);
    }
    fn types(&self) -> (String, String) {
        ("l1.small".into(), "l1.large".into())
    }
    fn region(&self) -> String {
        "local-east-1".into()
    }
    fn observable_deadline(&self) -> Option<Duration> {
        Some(Duration::from_secs(600))
    }
    fn supports_faults(&self) -> bool {
        true
    }
    fn boot_timeout(&self) -> Duration {
        Duration::from_secs(300)
    }
}

herd_conformance::conformance!(LocalVirtual::new());
