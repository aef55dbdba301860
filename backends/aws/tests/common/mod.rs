//! Shared by the backend tests: moto behind the fault proxy, and a provider on it with
//! fake credentials (no profile, SSO or instance metadata is consulted).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use herd_aws::testing::{pass, FaultProxy, Moto, Rule};
use herd_aws::{AwsConfig, AwsProvider};
use herd_core::{Guardrails, Launcher, RetryPolicy};

pub const REGION: &str = "us-east-1";
pub const TYPE: &str = "t3.micro";

pub struct Env {
    pub moto: Moto,
    pub proxy: FaultProxy,
    pub keys: tempfile::TempDir,
}

impl Env {
    pub async fn start(rule: Rule) -> Env {
        let moto = Moto::start().await.unwrap_or_else(|e| panic!("{e}"));
        let proxy = FaultProxy::start(Some(moto.endpoint()), rule).await;
        Env {
            moto,
            proxy,
            keys: tempfile::tempdir().unwrap(),
        }
    }

    pub async fn plain() -> Env {
        Self::start(pass()).await
    }

    pub fn config(&self) -> AwsConfig {
        AwsConfig::new("tester", self.keys.path())
            .region(REGION)
            .endpoint(self.proxy.endpoint())
            .attempt_timeout(Duration::from_secs(30))
    }

    pub fn provider_with(&self, cfg: AwsConfig) -> Arc<AwsProvider> {
        Arc::new(
            AwsProvider::builder(cfg)
                .static_credentials("testing", "testing")
                .build(),
        )
    }

    pub fn provider(&self) -> Arc<AwsProvider> {
        self.provider_with(self.config())
    }

    /// A provider whose catalog also offers [`TYPE`] spot (the bundled one has no spot
    /// prices until `herd catalog refresh` adds live ones).
    pub fn provider_with_spot(&self) -> Arc<AwsProvider> {
        let mut c = herd_aws::bundled_catalog().clone();
        c.merge(spot_offer());
        Arc::new(
            AwsProvider::builder(self.config())
                .static_credentials("testing", "testing")
                .catalog(c)
                .build(),
        )
    }

    pub fn launcher(&self, p: Arc<AwsProvider>, retry: RetryPolicy) -> Launcher {
        let guard = Guardrails {
            owner: "tester".into(),
            min_deadline: Duration::from_secs(1),
            ..Guardrails::default()
        };
        Launcher::builder(p).guardrails(guard).retry(retry).seed(3).build()
    }
}

/// Retries quick enough for tests; the policy's shape is herd's own.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
        rate_limit_patience: Duration::from_secs(20),
        patience: Duration::from_secs(20),
    }
}

/// A test-only spot offer for [`TYPE`] in [`REGION`] (not a real price).
pub fn spot_offer() -> herd_core::Catalog {
    use herd_core::{Cloud, Money, Offer, PriceSource, PurchaseOption};
    let src = PriceSource {
        name: "test".into(),
        as_of: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        licence: "test".into(),
    };
    let offer = Offer::new(
        Cloud::Aws,
        TYPE,
        REGION,
        PurchaseOption::Spot,
        Some(Money::parse_usd("0.004").unwrap()),
        0,
    );
    herd_core::Catalog::new(Vec::new(), vec![offer], vec![src], Vec::new())
}
