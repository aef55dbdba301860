//! The SDK clients, built once per region on first use (so `herd cost` and `herd plan`
//! never touch credentials). SDK retries are off: herd's retry loop is the only one
//! (docs/decisions/0006-aws-retries.md); each attempt is bounded by a timeout, which
//! herd then treats as a temporary error.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::Client;
use tokio::sync::OnceCell;

use crate::config::AwsConfig;

#[derive(Debug)]
pub struct Clients {
    cfg: AwsConfig,
    /// Fixed credentials instead of the default chain (tests); Debug redacts the secret.
    credentials: Option<aws_sdk_ec2::config::Credentials>,
    sdk: OnceCell<SdkConfig>,
    by_region: Mutex<HashMap<String, Client>>,
}

impl Clients {
    pub fn new(cfg: AwsConfig, credentials: Option<aws_sdk_ec2::config::Credentials>) -> Self {
        Clients {
            cfg,
            credentials,
            sdk: OnceCell::new(),
            by_region: Mutex::new(HashMap::new()),
        }
    }

    async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async {
                let timeouts = TimeoutConfig::builder()
                    .operation_attempt_timeout(self.cfg.attempt_timeout)
                    .connect_timeout(std::time::Duration::from_secs(10))
                    .build();
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(timeouts);
                if let Some(p) = &self.cfg.profile {
                    loader = loader.profile_name(p);
                }
                if let Some(r) = &self.cfg.region {
                    loader = loader.region(Region::new(r.clone()));
                }
                if let Some(c) = &self.credentials {
                    loader = loader.credentials_provider(c.clone());
                }
                if let Some(e) = &self.cfg.endpoint {
                    loader = loader.endpoint_url(e);
                }
                loader.load().await
            })
            .await
    }

    /// The client for `region`.
    pub async fn get(&self, region: &str) -> Client {
        if let Some(c) = self.by_region.lock().expect("clients lock").get(region) {
            return c.clone();
        }
        let conf = aws_sdk_ec2::config::Builder::from(self.sdk().await)
            .region(Region::new(region.to_string()))
            .build();
        let client = Client::from_conf(conf);
        self.by_region
            .lock()
            .expect("clients lock")
            .entry(region.to_string())
            .or_insert(client)
            .clone()
    }

    pub fn config(&self) -> &AwsConfig {
        &self.cfg
    }
}
