//! The conformance suite and the shared fault cases against the Azure backend on the test
//! kit's stateful ARM (every PUT body held to Azure's own examples), with the ARM JSON
//! fault proxy in front for transient errors and the fault cases.
//!
//! Where the fake differs from Azure, the fixture says so: a VM whose watchdog deletes it
//! at its deadline is gone from every list (not shown as terminated), so the deadline is
//! checked on the boot script (herd-azure's tests), not by `deadline_honoured`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herd_azure::testing::{ArmJson, FakeArm, Fault, FaultProxy, Faults};
use herd_azure::{AzureConfig, AzureProvider};
use herd_conformance::{Fixture, Options};
use herd_core::{
    tags, Guardrails, Instance, LaunchSpec, Launcher, ListRequest, Provider, RetryPolicy, SeededRng, SharedClock,
    SystemClock,
};
use herd_testkit::cases::{self, FaultCase, Transport};
use herd_testkit::Effect;
use tokio::sync::OnceCell;

const REGION: &str = "eastus";
const SUB: &str = "00000000-0000-0000-0000-0000000c0f0e";
const ZONES: [&str; 3] = ["1", "2", "3"];

struct Servers {
    fake: FakeArm,
    proxy: FaultProxy,
}

async fn servers() -> Servers {
    let fake = FakeArm::start(Faults::default()).await;
    let proxy = FaultProxy::start_with(Arc::new(ArmJson::default()), Some(fake.uri()), herd_testkit::pass()).await;
    Servers { fake, proxy }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn provider(s: &Servers, owner: &str, keys: &std::path::Path, timeout: Duration) -> Arc<AzureProvider> {
    let mut cfg = AzureConfig::new(owner, keys)
        .subscription(SUB)
        .region(REGION)
        .api_base(s.proxy.endpoint())
        .zones(ZONES.iter().map(|z| z.to_string()).collect())
        .max_poll(Duration::from_millis(20))
        .ssh_user(herd_guest::ssh::testing::current_user().unwrap());
    cfg.attempt_timeout = timeout;
    Arc::new(AzureProvider::builder(cfg).token("test-token").env(no_env).build())
}

struct AzureFake {
    servers: OnceCell<Servers>,
    keys: tempfile::TempDir,
    sshd: OnceCell<()>,
}

impl AzureFake {
    fn new() -> Self {
        AzureFake {
            servers: OnceCell::new(),
            keys: tempfile::tempdir().expect("a temp dir"),
            sshd: OnceCell::new(),
        }
    }
}

#[async_trait]
impl Fixture for AzureFake {
    fn name(&self) -> String {
        "azure (fake ARM)".into()
    }

    async fn provider(&self, opts: &Options) -> anyhow::Result<Arc<dyn Provider>> {
        let s = self.servers.get_or_init(servers).await;
        s.fake.reset();
        let rate = opts.transient_error_rate;
        let rng = Mutex::new(SeededRng::new(12));
        s.proxy.set_rule(Arc::new(move |_, _| {
            let rng = rng.lock().expect("rng");
            if !rng.chance(rate) {
                Fault::Pass
            } else if rng.chance(0.5) {
                Fault::fail(503, "ServiceUnavailable")
            } else {
                Fault::fail_after(500, "InternalServerError")
            }
        }));
        // The exec cases reach a real sshd that takes on each launch's host key.
        let keys = self.keys.path().to_path_buf();
        self.sshd
            .get_or_try_init(|| async move {
                herd_conformance::sshd::follow_launches(keys, "conformance", herd_azure::TEST_ADDRESS_MAP_ENV)
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
        ("Standard_D2s_v3".into(), "Standard_D4s_v3".into())
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

herd_conformance::conformance!(AzureFake::new());

/// The shared fault cases, through the ARM JSON proxy in front of the fake.
struct ArmTransport {
    servers: Servers,
    keys: tempfile::TempDir,
    provider: Mutex<Option<Arc<AzureProvider>>>,
}

#[async_trait]
impl Transport for ArmTransport {
    fn name(&self) -> String {
        "azure (fake ARM behind the fault proxy)".into()
    }
    fn zones(&self) -> Vec<String> {
        ZONES.iter().map(|z| z.to_string()).collect()
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
        LaunchSpec::new("Standard_D2s_v3", count)
            .region(REGION)
            .deadline(Duration::from_secs(3600))
    }
    fn launch_calls(&self) -> usize {
        self.servers.proxy.calls_with(Effect::Launch).len()
    }
    async fn live(&self) -> Vec<Instance> {
        let p = self.provider.lock().unwrap().clone().expect("armed");
        self.servers.proxy.set_rule(herd_testkit::pass());
        p.list(&ListRequest::new().tag(tags::OWNER, "tester").live())
            .await
            .expect("list")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_case_ends_with_n_or_a_clear_error_and_nothing_running() {
    let t = ArmTransport {
        servers: servers().await,
        keys: tempfile::tempdir().unwrap(),
        provider: Mutex::new(None),
    };
    let mut failed = Vec::new();
    for mut case in cases::cases() {
        // The shared count of launch calls is one batch call per attempt; Azure makes one
        // PUT per VM, so it is checked here as Azure's: every VM PUT once, plus once more
        // per throttled PUT (none twice otherwise).
        let want = match case.name {
            "throttle_burst" => Some(case.count as usize + 3),
            "quota_exceeded" => Some(case.count as usize),
            _ => None,
        };
        case.launch_calls = None;
        if let Err(e) = cases::run(&case, &t).await {
            failed.push(e);
        }
        if let Some(w) = want {
            let puts = t.launch_calls();
            if puts != w {
                failed.push(format!("fault case `{}`: {puts} VM PUTs, expected {w}", case.name));
            }
        }
        // No VM, NIC, IP or disk of any case survives into the next.
        let f = &t.servers.fake;
        let left = (f.vms().len(), f.nics().len(), f.public_ips().len(), f.disks().len());
        if left != (0, 0, 0, 0) {
            failed.push(format!(
                "fault case `{}` left (VMs, NICs, IPs, disks) = {left:?}",
                case.name
            ));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
