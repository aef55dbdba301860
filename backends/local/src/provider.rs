//! `LocalProvider`: the simulated control plane's API (the `Provider` impl).

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use herd_core::{
    BillingRule, Capabilities, Catalog, Cloud, DeadlineEnforcement, Error, Instance, LaunchRequest, ListRequest,
    Provider, ProviderInfo, Result, TerminateResult,
};

use crate::LocalBuilder;

/// The local simulator. Cheap to share behind an `Arc`; several providers on one state
/// dir (several shells) see the same instances.
#[derive(Debug)]
pub struct LocalProvider {
    caps: Capabilities,
    account: String,
    api_calls: AtomicU64,
}

impl LocalProvider {
    pub fn builder() -> LocalBuilder {
        LocalBuilder::default()
    }

    pub(crate) fn from_builder(b: LocalBuilder) -> Result<LocalProvider> {
        b.faults.validate()?;
        let mut caps = Capabilities::none(BillingRule::LOCAL);
        caps.spot = b.spot;
        caps.deadline = DeadlineEnforcement::Cloud;
        caps.max_launch_batch = b.max_launch_batch;
        Ok(LocalProvider {
            caps,
            account: b.owner_account.unwrap_or_else(|| "local".into()),
            api_calls: AtomicU64::new(0),
        })
    }

    /// Calls that reached the simulated API (after the Launcher's checks), failed ones included.
    pub fn api_calls(&self) -> u64 {
        self.api_calls.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo::new(Cloud::Local, self.account.clone(), "local-east-1")
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn catalog(&self) -> &Catalog {
        crate::local_catalog()
    }

    async fn launch(&self, _req: &LaunchRequest) -> Result<Vec<Instance>> {
        Err(Error::unsupported("the simulator is being built"))
    }

    async fn terminate(&self, _ids: &[String]) -> Result<Vec<TerminateResult>> {
        Err(Error::unsupported("the simulator is being built"))
    }

    async fn list(&self, _req: &ListRequest) -> Result<Vec<Instance>> {
        Ok(Vec::new())
    }
}
