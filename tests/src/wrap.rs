//! Provider wrappers the suite puts around any backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use herd_core::request::*;
use herd_core::{Capabilities, Catalog, Instance, Provider, ProviderInfo, Result};

/// Counts the calls that reach the backend's API (everything but catalog quotes).
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn Provider>,
    calls: AtomicU64,
    launches: AtomicU64,
}

impl Counting {
    pub fn new(inner: Arc<dyn Provider>) -> Self {
        Counting {
            inner,
            calls: AtomicU64::new(0),
            launches: AtomicU64::new(0),
        }
    }
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
    pub fn launch_calls(&self) -> u64 {
        self.launches.load(Ordering::SeqCst)
    }
    pub fn inner(&self) -> &Arc<dyn Provider> {
        &self.inner
    }
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Provider for Counting {
    fn info(&self) -> ProviderInfo {
        self.inner.info()
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn catalog(&self) -> &Catalog {
        self.inner.catalog()
    }
    async fn launch(&self, req: &LaunchRequest) -> Result<Vec<Instance>> {
        self.tick();
        self.launches.fetch_add(1, Ordering::SeqCst);
        self.inner.launch(req).await
    }
    async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
        self.tick();
        self.inner.terminate(ids).await
    }
    async fn list(&self, req: &ListRequest) -> Result<Vec<Instance>> {
        self.tick();
        self.inner.list(req).await
    }
    async fn cost(&self, req: &QuoteRequest) -> Result<Quote> {
        self.inner.cost(req).await
    }
    async fn leftovers(&self, owner: Option<&str>) -> Result<Vec<Leftover>> {
        self.tick();
        self.inner.leftovers(owner).await
    }
    async fn reap(&self, items: &[Leftover]) -> Result<Vec<ReapResult>> {
        self.tick();
        self.inner.reap(items).await
    }
    async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput> {
        self.tick();
        self.inner.exec(id, req).await
    }
}

/// The same backend with some capabilities taken away, to check that the Launcher
/// refuses what a backend cannot do before calling it.
pub struct Restricted {
    inner: Arc<dyn Provider>,
    caps: Capabilities,
}

impl std::fmt::Debug for Restricted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restricted").field("inner", &self.inner).finish()
    }
}

impl Restricted {
    pub fn new(inner: Arc<dyn Provider>, restrict: impl FnOnce(&mut Capabilities)) -> Self {
        let mut caps = inner.capabilities().clone();
        restrict(&mut caps);
        Restricted { inner, caps }
    }
}

#[async_trait]
impl Provider for Restricted {
    fn info(&self) -> ProviderInfo {
        self.inner.info()
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    fn catalog(&self) -> &Catalog {
        self.inner.catalog()
    }
    async fn launch(&self, req: &LaunchRequest) -> Result<Vec<Instance>> {
        self.inner.launch(req).await
    }
    async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
        self.inner.terminate(ids).await
    }
    async fn list(&self, req: &ListRequest) -> Result<Vec<Instance>> {
        self.inner.list(req).await
    }
    async fn cost(&self, req: &QuoteRequest) -> Result<Quote> {
        self.inner.cost(req).await
    }
    async fn leftovers(&self, owner: Option<&str>) -> Result<Vec<Leftover>> {
        self.inner.leftovers(owner).await
    }
    async fn reap(&self, items: &[Leftover]) -> Result<Vec<ReapResult>> {
        self.inner.reap(items).await
    }
    async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput> {
        self.inner.exec(id, req).await
    }
}
