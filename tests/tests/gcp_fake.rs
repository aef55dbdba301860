//! The conformance suite and the shared fault cases against the GCP backend on the test
//! kit's fake Compute Engine (every request body held to the discovery document), with
//! the GCE JSON fault proxy in front for transient errors and the fault cases.
//!
//! Where the fake differs from GCE, the fixture says so: a VM GCE deletes at its
//! deadline is gone from every list (it is not shown as terminated), so the deadline is
//! checked on the request and by the fake's own deletion (herd-gcp's tests), not by
//! `deadline_honoured`'s "listed as terminated".

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herd_conformance::{Fixture, Options};
use herd_core::{
    tags, Guardrails, Instance, LaunchSpec, Launcher, ListRequest, Provider, RetryPolicy, SeededRng, SharedClock,
    SystemClock,
};
use herd_gcp::testing::{FakeGce, Fault, FaultProxy, Faults, GceJson};
use herd_gcp::{GcpConfig, GcpProvider, StaticToken, Token};
use herd_testkit::cases::{self, FaultCase, Transport};
use herd_testkit::Effect;
use tokio::sync::OnceCell;

const REGION: &str = "us-central1";

struct Servers {
    fake: FakeGce,
    proxy: FaultProxy,
}

async fn servers() -> Servers {
    let fake = FakeGce::start(Faults::default()).await;
    let proxy = FaultProxy::start_with(Arc::new(GceJson), Some(fake.uri()), herd_testkit::pass()).await;
    Servers { fake, proxy }
}

fn provider(s: &Servers, owner: &str, keys: &std::path::Path, timeout: Duration) -> Arc<GcpProvider> {
    let cfg = GcpConfig::new(owner, keys)
        .project("herd-conformance")
        .region(REGION)
        .api_base(s.proxy.endpoint())
        .attempt_timeout(timeout)
        .ssh_user(herd_guest::ssh::testing::current_user().unwrap());
    Arc::new(
        GcpProvider::builder(cfg)
            .tokens(Arc::new(StaticToken(Token::new("test-token"))))
            .build(),
    )
}

struct GcpFake {
    servers: OnceCell<Servers>,
    keys: tempfile::TempDir,
    sshd: OnceCell<()>,
}

impl GcpFake {
    fn new() -> Self {
        GcpFake {
            servers: OnceCell::new(),
            keys: tempfile::tempdir().expect("a temp dir"),
            sshd: OnceCell::new(),
        }
    }
}

#[async_trait]
impl Fixture for GcpFake {
    fn name(&self) -> String {
        "gcp (fake Compute Engine)".into()
    }

    async fn provider(&self, opts: &Options) -> anyhow::Result<Arc<dyn Provider>> {
        let s = self.servers.get_or_init(servers).await;
        s.fake.reset();
        let rate = opts.transient_error_rate;
        let rng = Mutex::new(SeededRng::new(11));
        s.proxy.set_rule(Arc::new(move |_, _| {
            let rng = rng.lock().expect("rng");
            if !rng.chance(rate) {
                Fault::Pass
            } else if rng.chance(0.5) {
                Fault::fail(503, "backendError")
            } else {
                Fault::fail_after(500, "internalError")
            }
        }));
        // The exec cases reach a real sshd that takes on each launch's host key.
        let keys = self.keys.path().to_path_buf();
        self.sshd
            .get_or_try_init(|| async move {
                herd_conformance::sshd::follow_launches(keys, "conformance", herd_gcp::TEST_ADDRESS_MAP_ENV)
                    .map_err(anyhow::Error::msg)
            })
            .await?;
        Ok(provider(s, "conformance", self.keys.path(), Duration::from_secs(30)))
    }

    fn clock(&self) -> SharedClock {
        Arc::new(SystemClock)
    }

    async fn pass(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn types(&self) -> (String, String) {
        ("e2-micro".into(), "e2-small".into())
    }

    fn region(&self) -> String {
        REGION.into()
    }

    fn observable_deadline(&self) -> Option<Duration> {
        None
    }

    fn supports_faults(&self) -> bool {
        true
    }

    fn boot_timeout(&self) -> Duration {
        Duration::from_secs(4)
    }
}

herd_conformance::conformance!(GcpFake::new());

/// The shared fault cases, through the GCE JSON proxy in front of the fake.
struct GceTransport {
    servers: Servers,
    keys: tempfile::TempDir,
    provider: Mutex<Option<Arc<GcpProvider>>>,
}

#[async_trait]
impl Transport for GceTransport {
    fn name(&self) -> String {
        "gcp (fake Compute Engine behind the fault proxy)".into()
    }
    fn zones(&self) -> Vec<String> {
        ["a", "b", "c", "f"].iter().map(|l| format!("{REGION}-{l}")).collect()
    }
    async fn arm(&self, case: &FaultCase) -> Launcher {
        self.servers.fake.reset();
        self.servers.proxy.clear();
        self.servers.proxy.set_rule(case.rule(&self.zones()));
        let timeout = case.attempt_timeout().unwrap_or(Duration::from_secs(30));
        let p = provider(&self.servers, "tester", self.keys.path(), timeout);
        *self.provider.lock().unwrap() = Some(p.clone());
        let retry = RetryPolicy {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
            rate_limit_patience: Duration::from_secs(5),
            patience: Duration::from_secs(30),
            ..RetryPolicy::default()
        };
        Launcher::builder(p)
            .guardrails(Guardrails {
                owner: "tester".into(),
                min_deadline: Duration::from_secs(1),
                ..Guardrails::default()
            })
            .retry(retry)
            .build()
    }
    fn spec(&self, count: u32) -> LaunchSpec {
        LaunchSpec::new("e2-micro", count)
            .region(REGION)
            .deadline(Duration::from_secs(3600))
    }
    fn launch_calls(&self) -> usize {
        self.servers.proxy.calls_with(Effect::Launch).len()
    }
    async fn live(&self) -> Vec<Instance> {
        let p = self.provider.lock().unwrap().clone().expect("armed");
        let rule = self.servers.proxy.seen().len();
        let _ = rule;
        self.servers.proxy.set_rule(herd_testkit::pass());
        p.list(&ListRequest::new().tag(tags::OWNER, "tester").live())
            .await
            .expect("list")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_case_ends_with_n_or_a_clear_error_and_nothing_running() {
    let t = GceTransport {
        servers: servers().await,
        keys: tempfile::tempdir().unwrap(),
        provider: Mutex::new(None),
    };
    let mut failed = Vec::new();
    for case in cases::cases() {
        if let Err(e) = cases::run(&case, &t).await {
            failed.push(e);
        }
        // No instance of any case survives into the next.
        assert!(
            t.servers.fake.instances().is_empty(),
            "case {} left instances",
            case.name
        );
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
