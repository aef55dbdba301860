//! The conformance suite against the AWS backend on moto's EC2 server (started on
//! 127.0.0.1 by the test; `scripts/test.sh` installs it into .venv), with a
//! fault-injecting proxy in front for the transient-error case.
//!
//! Where moto differs from EC2, the fixture says so instead of the backend bending:
//! instances run at once and the guest never runs, so deadlines are not observable
//! (`observable_deadline: None`); spot prices are fake and never asserted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herd_aws::testing::{Fault, FaultProxy, Moto};
use herd_aws::{AwsConfig, AwsProvider};
use herd_conformance::{Fixture, Options};
use herd_core::{Provider, SeededRng, SharedClock, SystemClock};
use tokio::sync::OnceCell;

struct AwsMoto {
    servers: OnceCell<(Moto, FaultProxy)>,
    keys: tempfile::TempDir,
    sshd: OnceCell<()>,
}

impl AwsMoto {
    fn new() -> Self {
        AwsMoto {
            servers: OnceCell::new(),
            keys: tempfile::tempdir().expect("a temp dir"),
            sshd: OnceCell::new(),
        }
    }
}

#[async_trait]
impl Fixture for AwsMoto {
    fn name(&self) -> String {
        "aws (moto)".into()
    }

    async fn provider(&self, opts: &Options) -> anyhow::Result<Arc<dyn Provider>> {
        let (moto, proxy) = self
            .servers
            .get_or_try_init(|| async {
                // Missing moto is a failure with the fix in it, never a skip.
                let moto = Moto::start().await.map_err(anyhow::Error::msg)?;
                let proxy = FaultProxy::start(Some(moto.endpoint()), herd_aws::testing::pass()).await;
                anyhow::Ok((moto, proxy))
            })
            .await?;
        moto.reset().await.map_err(anyhow::Error::msg)?;
        let keys = self.keys.path().to_path_buf();
        self.sshd
            .get_or_try_init(|| async move {
                herd_conformance::sshd::follow_launches(keys, "conformance", herd_aws::exec::TEST_ADDRESS_MAP_ENV)
                    .map_err(anyhow::Error::msg)
            })
            .await?;
        // Transient faults, half before and half after moto acted, from a fixed seed.
        let rate = opts.transient_error_rate;
        let rng = Mutex::new(SeededRng::new(11));
        proxy.set_rule(Arc::new(move |_, _| {
            let rng = rng.lock().expect("rng");
            if !rng.chance(rate) {
                Fault::Pass
            } else if rng.chance(0.5) {
                Fault::fail(503, "Unavailable")
            } else {
                Fault::fail_after(500, "InternalError")
            }
        }));
        let cfg = AwsConfig::new("conformance", self.keys.path())
            .region("us-east-1")
            // The account searched is one region: the transient-error case's 30% failure
            // rate per call would otherwise compound over moto's 30-odd regions.
            .regions(["us-east-1"])
            .endpoint(proxy.endpoint())
            .attempt_timeout(Duration::from_secs(30))
            .ssh_user(herd_guest::ssh::testing::current_user().unwrap());
        Ok(Arc::new(
            AwsProvider::builder(cfg)
                .static_credentials("testing", "testing")
                .build(),
        ))
    }

    fn clock(&self) -> SharedClock {
        Arc::new(SystemClock)
    }

    async fn pass(&self, d: Duration) {
        // moto runs on wall time.
        tokio::time::sleep(d).await;
    }

    fn types(&self) -> (String, String) {
        ("t3.micro".into(), "t3.small".into())
    }

    fn region(&self) -> String {
        "us-east-1".into()
    }

    fn observable_deadline(&self) -> Option<Duration> {
        None
    }

    fn supports_faults(&self) -> bool {
        true
    }

    fn boot_timeout(&self) -> Duration {
        // moto's instances run at once; the state-order case steps by 1/40 of this.
        Duration::from_secs(4)
    }
}

herd_conformance::conformance!(AwsMoto::new());
