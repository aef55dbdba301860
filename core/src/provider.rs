//! The one trait every backend implements. Keep it small: conveniences (waiting,
//! batching, retry, budgets) live in the [`Launcher`](crate::Launcher), once.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::Serialize;

use crate::capabilities::Capabilities;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::request::*;
use crate::types::{Cloud, Instance};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ProviderInfo {
    pub cloud: Cloud,
    /// AWS account, GCP project, Azure subscription, or the simulator's state dir.
    pub account: String,
    pub default_region: String,
}

impl ProviderInfo {
    pub fn new(cloud: Cloud, account: impl Into<String>, default_region: impl Into<String>) -> Self {
        ProviderInfo {
            cloud,
            account: account.into(),
            default_region: default_region.into(),
        }
    }
}

/// A cloud. Implementations map their own errors to [`crate::ErrorKind`]s and never
/// retry on their own (the Launcher's retry layer is the only one).
#[async_trait]
pub trait Provider: Send + Sync + Debug {
    fn info(&self) -> ProviderInfo;

    fn capabilities(&self) -> &Capabilities;

    /// The types, regions and prices this backend knows; quotes and validation use it.
    fn catalog(&self) -> &Catalog;

    /// Starts `req.count` instances. Same launch id and same fingerprint: return the
    /// instances of the first call, start none. Same id, other fingerprint: `Conflict`.
    async fn launch(&self, req: &LaunchRequest) -> Result<Vec<Instance>>;

    /// Idempotent: an unknown or terminated id is `AlreadyGone`, not an error.
    async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>>;

    async fn list(&self, req: &ListRequest) -> Result<Vec<Instance>>;

    /// A price from the catalog under this cloud's billing rule; no API call.
    async fn cost(&self, req: &QuoteRequest) -> Result<Quote> {
        let caps = self.capabilities();
        let info = self.info();
        self.catalog().quote(info.cloud, req, caps.billing)
    }

    /// Billable resources tagged by herd (for `owner`, or anyone's) that no live instance needs.
    async fn leftovers(&self, _owner: Option<&str>) -> Result<Vec<Leftover>> {
        Ok(Vec::new())
    }

    async fn reap(&self, _items: &[Leftover]) -> Result<Vec<ReapResult>> {
        Err(Error::unsupported("this backend cannot reap leftovers"))
    }

    /// Requests this backend has put on the wire so far, when it counts them: one herd
    /// operation can be many (regions, pages, lookups), and `--verbose` says so.
    fn wire_requests(&self) -> Option<u64> {
        None
    }

    /// Runs a command inside a running instance.
    async fn exec(&self, _id: &str, _req: &ExecRequest) -> Result<ExecOutput> {
        Err(Error::unsupported("this backend cannot run commands in instances"))
    }

    /// How to open an interactive shell on a running instance (`herd ssh`).
    async fn login(&self, _id: &str) -> Result<Login> {
        Err(Error::unsupported("this backend cannot open a shell on its instances"))
    }

    /// [`Provider::exec`] with its output handed to `sink` as it arrives (`herd exec`,
    /// `herd logs -f`). The default runs `exec` and hands over the whole output at the
    /// end, for backends whose channel returns it only then (the simulator's agent).
    async fn exec_streaming(&self, id: &str, req: &ExecRequest, sink: OutputSink<'_>) -> Result<ExecOutput> {
        let out = self.exec(id, req).await?;
        sink(OutputStream::Stdout, out.stdout.as_bytes());
        sink(OutputStream::Stderr, out.stderr.as_bytes());
        Ok(out)
    }
}
