//! The one place requests leave herd for ARM. The SDK's clients (`azure_mgmt_compute`,
//! `_network`, `_resources`) build the requests; they are sent through [`Transport`],
//! herd's own `azure_core::HttpClient` over the workspace's reqwest (rustls), which
//! times each attempt out, counts what it sent, paces writes to ARM's documented bucket
//! and turns every non-2xx answer into an [`ArmFailure`] carrying the status, ARM's
//! error document and `Retry-After`. The SDK pipeline's retry policy is `RetryOptions::none()`:
//! herd's retry loop in the Launcher is the only one (docs/decisions/0010-azure-sdk.md).
//! Long-running operations are polled here ([`Arm::wait`]), through `Azure-AsyncOperation`
//! or `Location`, never by the SDK's own `IntoFuture` polling (which re-sends the PUT and
//! loses the failure's code).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::auth::TokenCredential;
use azure_core::headers::{HeaderName, HeaderValue, Headers};
use herd_core::{Error, ErrorKind, Result};
use serde_json::Value;

use crate::error;

/// ARM's write limit the pacer keeps to: a bucket of 200, refilled at 10 per second per
/// subscription and region of ARM (<https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/request-limits-and-throttling>).
pub const WRITE_BURST: f64 = 200.0;
pub const WRITE_RATE: f64 = 10.0;
/// And its read limit (250, then 25 per second): a launch of 1,000 polls its operations
/// faster than that, and unpaced polls only earn 429s (about 1,800 of them per 1,000 VMs).
pub const READ_BURST: f64 = 250.0;
pub const READ_RATE: f64 = 25.0;

/// A client-side token bucket for writes: herd spends ARM's bucket no faster than it
/// refills, so a large launch meets no 429 of its own making. Not a retry: nothing is
/// sent twice here.
#[derive(Debug)]
pub struct Pacer {
    burst: f64,
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Pacer {
    pub fn new(burst: f64, rate: f64) -> Self {
        Pacer {
            burst,
            rate,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes one token, waiting for it if the bucket is empty.
    pub async fn take(&self) {
        let wait = {
            let mut s = self.state.lock().expect("pacer");
            let now = Instant::now();
            let refilled = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.burst);
            s.1 = now;
            s.0 = refilled - 1.0;
            if s.0 >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-s.0 / self.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A non-2xx answer, as the transport saw it.
#[derive(Debug, Clone)]
pub struct ArmFailure {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for ArmFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)
    }
}

impl std::error::Error for ArmFailure {}

/// herd's HTTP layer under the SDK.
#[derive(Debug)]
pub struct Transport {
    http: reqwest::Client,
    sent: AtomicU64,
    writes: Pacer,
    reads: Pacer,
}

impl Transport {
    pub fn new(attempt_timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(attempt_timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(64)
            .build()
            .expect("a reqwest client");
        Transport {
            http,
            sent: AtomicU64::new(0),
            writes: Pacer::new(WRITE_BURST, WRITE_RATE),
            reads: Pacer::new(READ_BURST, READ_RATE),
        }
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get("retry-after")?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[async_trait]
impl azure_core::HttpClient for Transport {
    async fn execute_request(&self, request: &azure_core::Request) -> azure_core::Result<azure_core::Response> {
        use azure_core::error::ErrorKind as K;
        let method = *request.method();
        let m = reqwest::Method::from_bytes(method.as_ref().as_bytes())
            .map_err(|e| azure_core::Error::full(K::DataConversion, e, "an HTTP method"))?;
        let write = !matches!(method, azure_core::Method::Get | azure_core::Method::Head);
        if write {
            self.writes.take().await;
        } else {
            self.reads.take().await;
        }
        let mut req = self.http.request(m, request.url().clone());
        for (k, v) in request.headers().iter() {
            req = req.header(k.as_str(), v.as_str());
        }
        match request.body() {
            azure_core::Body::Bytes(b) => {
                if !b.is_empty() {
                    req = req.body(b.clone());
                }
            }
            azure_core::Body::SeekableStream(_) => {
                return Err(azure_core::Error::message(K::Other, "herd sends no streamed bodies"));
            }
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        let r = req.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else {
                "the connection failed"
            };
            azure_core::Error::full(K::Io, e, what)
        })?;
        let status = r.status().as_u16();
        let ra = retry_after(r.headers());
        let mut headers = Headers::new();
        for (k, v) in r.headers() {
            if let Ok(v) = v.to_str() {
                headers.insert(HeaderName::from(k.as_str().to_owned()), HeaderValue::from(v.to_owned()));
            }
        }
        let body = r
            .bytes()
            .await
            .map_err(|e| azure_core::Error::full(K::Io, e, "reading the answer"))?;
        if !(200..300).contains(&status) {
            let code = azure_core::StatusCode::try_from(status).unwrap_or(azure_core::StatusCode::InternalServerError);
            let failure = ArmFailure {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
                retry_after: ra,
            };
            return Err(azure_core::Error::full(
                K::http_response(code, None),
                failure,
                format!("ARM answered {status}"),
            ));
        }
        let code = azure_core::StatusCode::try_from(status)
            .map_err(|_| azure_core::Error::message(K::DataConversion, "a status code"))?;
        let stream: std::pin::Pin<Box<dyn futures::Stream<Item = azure_core::Result<bytes::Bytes>> + Send + Sync>> =
            Box::pin(futures::stream::once(async move { Ok(body) }));
        Ok(azure_core::Response::new(code, headers, stream))
    }
}

/// herd's error for an SDK error of call `what`.
pub fn herd_error(e: azure_core::Error, what: &str) -> Error {
    if let Some(f) = e.downcast_ref::<ArmFailure>() {
        return error::from_http(f.status, &f.body, f.retry_after).into_error(what);
    }
    match e.kind() {
        azure_core::error::ErrorKind::Credential => Error::new(
            ErrorKind::Unauthenticated,
            format!("{what}: no token from the Azure credential: {e}"),
        )
        .with_hint(crate::config::AzureSection::HOW_TO_CONFIGURE),
        azure_core::error::ErrorKind::Io => Error::new(ErrorKind::Unavailable, format!("{what}: {e}")).temporary(true),
        azure_core::error::ErrorKind::DataConversion => {
            Error::unexpected(format!("{what}: ARM's answer does not read as expected: {e}")).temporary(true)
        }
        _ => Error::unexpected(format!("{what}: {e}")),
    }
}

/// ARM for one subscription: the SDK's three clients on herd's transport.
#[derive(Clone)]
pub struct Arm {
    pub compute: azure_mgmt_compute::package_2024_07_01::Client,
    pub network: azure_mgmt_network::package_2024_03::Client,
    pub resources: azure_mgmt_resources::package_resources_2021_04::Client,
    pub subscription: String,
    pub base: String,
    credential: Arc<dyn TokenCredential>,
    scope: String,
    transport: Arc<Transport>,
    max_poll: Duration,
}

impl std::fmt::Debug for Arm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arm")
            .field("subscription", &self.subscription)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Arm {
    pub fn new(
        base: &str,
        subscription: &str,
        credential: Arc<dyn TokenCredential>,
        transport: Arc<Transport>,
        max_poll: Duration,
    ) -> Result<Self> {
        let url = azure_core::Url::parse(base)
            .map_err(|e| Error::config(format!("[azure] api_base `{base}` is not a URL: {e}")))?;
        // Tokens are for ARM itself, whatever the endpoint (a fake takes any).
        let scope = "https://management.azure.com/.default".to_string();
        let http: Arc<dyn azure_core::HttpClient> = transport.clone();
        let to = || azure_core::TransportOptions::new(http.clone());
        let compute = azure_mgmt_compute::package_2024_07_01::Client::builder(credential.clone())
            .endpoint(url.clone())
            .scopes(&[&scope])
            .retry(azure_core::RetryOptions::none())
            .transport(to())
            .build()
            .map_err(|e| herd_error(e, "the compute client"))?;
        let network = azure_mgmt_network::package_2024_03::Client::builder(credential.clone())
            .endpoint(url.clone())
            .scopes(&[&scope])
            .retry(azure_core::RetryOptions::none())
            .transport(to())
            .build()
            .map_err(|e| herd_error(e, "the network client"))?;
        let resources = azure_mgmt_resources::package_resources_2021_04::Client::builder(credential.clone())
            .endpoint(url)
            .scopes(&[&scope])
            .retry(azure_core::RetryOptions::none())
            .transport(to())
            .build()
            .map_err(|e| herd_error(e, "the resources client"))?;
        Ok(Arm {
            compute,
            network,
            resources,
            subscription: subscription.to_string(),
            base: base.trim_end_matches('/').to_string(),
            credential,
            scope,
            transport,
            max_poll,
        })
    }

    pub fn sent(&self) -> u64 {
        self.transport.sent()
    }

    /// A GET of a URL ARM handed out (an operation's status): status, headers and body.
    pub async fn get_url(&self, url: &str, what: &str) -> Result<(u16, Headers, Value)> {
        let u = azure_core::Url::parse(url)
            .map_err(|e| Error::unexpected(format!("{what}: ARM sent an operation URL that is not one: {e}")))?;
        self.send(u, azure_core::Method::Get, None, what).await
    }

    /// A POST of `body` to `path` (from `/subscriptions/...`) at `api_version`, for the
    /// APIs the 0.21 SDK does not cover (`Microsoft.ComputeSchedule`). The answer's body
    /// must be JSON: anything else is a malformed answer.
    pub async fn post(&self, path: &str, api_version: &str, body: &Value, what: &str) -> Result<Value> {
        let url = format!("{}{path}?api-version={api_version}", self.base);
        let u = azure_core::Url::parse(&url).map_err(|e| Error::unexpected(format!("{what}: `{url}`: {e}")))?;
        let (_, _, v) = self.send(u, azure_core::Method::Post, Some(body), what).await?;
        if v.is_null() {
            return Err(Error::unexpected(format!("{what}: ARM's answer has no JSON body")).temporary(true));
        }
        Ok(v)
    }

    async fn send(
        &self,
        u: azure_core::Url,
        method: azure_core::Method,
        body: Option<&Value>,
        what: &str,
    ) -> Result<(u16, Headers, Value)> {
        use azure_core::HttpClient;
        let token = self
            .credential
            .get_token(&[&self.scope])
            .await
            .map_err(|e| herd_error(e, what))?;
        let mut req = azure_core::Request::new(u, method);
        req.insert_header("authorization", format!("Bearer {}", token.token.secret()));
        req.insert_header("accept", "application/json");
        if let Some(b) = body {
            req.insert_header("content-type", "application/json");
            req.set_body(serde_json::to_vec(b).expect("JSON"));
        }
        let r = self
            .transport
            .execute_request(&req)
            .await
            .map_err(|e| herd_error(e, what))?;
        let status = u16::from(r.status());
        let (_, headers, body) = r.deconstruct();
        let bytes = body.collect().await.map_err(|e| herd_error(e, what))?;
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok((status, headers, v))
    }

    /// The pause between two polls when ARM names none.
    pub fn poll_pause(&self) -> Duration {
        Duration::from_secs(1).min(self.max_poll)
    }

    fn pause(&self, h: &Headers) -> Duration {
        let secs = h
            .get_optional_str(&HeaderName::from_static("retry-after"))
            .and_then(|v| v.trim().parse::<u64>().ok());
        secs.map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(1))
            .min(self.max_poll)
    }

    /// Waits for the long-running operation a write answered with: `Azure-AsyncOperation`
    /// (status document), else `Location` (202 until done), else it finished already.
    /// A failed operation is its error, through the same table as synchronous ones.
    pub async fn wait(&self, answer: &Headers, budget: Duration, what: &str) -> Result<()> {
        let started = Instant::now();
        let async_op = answer
            .get_optional_str(&HeaderName::from_static("azure-asyncoperation"))
            .map(str::to_string);
        let location = answer
            .get_optional_str(&HeaderName::from_static("location"))
            .map(str::to_string);
        let mut pause = self.poll_pause();
        loop {
            if started.elapsed() >= budget {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("{what}: not done after {}s", budget.as_secs()),
                )
                .with_hint("the operation goes on at Azure; `herd ls` shows what it started"));
            }
            if let Some(url) = &async_op {
                // A poll that fails for a while is no news of the operation, which goes on
                // at ARM: asked again after the pause (a read; the write is not re-sent).
                let (_, h, v) = match self.get_url(url, &format!("{what} (operation status)")).await {
                    Ok(x) => x,
                    Err(e) if e.is_temporary() => {
                        tokio::time::sleep(e.retry_after().unwrap_or(pause).min(self.max_poll)).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let status = v.get("status").and_then(Value::as_str).unwrap_or("InProgress");
                if status.eq_ignore_ascii_case("succeeded") {
                    return Ok(());
                }
                if let Some(e) = error::from_operation(&v) {
                    return Err(e.into_error(what));
                }
                pause = self.pause(&h);
            } else if let Some(url) = &location {
                let (status, h, _) = match self.get_url(url, &format!("{what} (operation result)")).await {
                    Ok(x) => x,
                    Err(e) if e.is_temporary() => {
                        tokio::time::sleep(e.retry_after().unwrap_or(pause).min(self.max_poll)).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if status != 202 {
                    return Ok(());
                }
                pause = self.pause(&h);
            } else {
                return Ok(());
            }
            tokio::time::sleep(pause).await;
        }
    }
}

/// An SDK model from the JSON ARM documents (the bodies herd sends are written as the
/// REST reference and Azure's examples show them, then typed by the SDK's models).
pub fn model<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T> {
    serde_json::from_value(v)
        .map_err(|e| Error::unexpected(format!("{what}: the body does not fit the SDK's model: {e}")))
}

/// A model as JSON, to read fields ARM returned.
pub fn json<T: serde::Serialize>(m: &T) -> Value {
    serde_json::to_value(m).unwrap_or(Value::Null)
}

/// Every item (`value`) of a paged ARM list, following `nextLink` (the SDK's pager); a
/// link seen twice is an error, never a loop.
pub async fn collect<T>(pages: azure_core::Pageable<T, azure_core::Error>, what: &str) -> Result<Vec<Value>>
where
    T: serde::Serialize + Send + 'static,
{
    use futures::StreamExt;
    let mut pages = pages;
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    while let Some(page) = pages.next().await {
        let page = json(&page.map_err(|e| herd_error(e, what))?);
        out.extend(page.get("value").and_then(Value::as_array).cloned().unwrap_or_default());
        if let Some(n) = page.get("nextLink").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            if seen.iter().any(|s| s == n) {
                return Err(Error::unexpected(format!(
                    "{what}: ARM sent the same nextLink twice; herd stopped rather than loop"
                ))
                .temporary(true));
            }
            seen.push(n.to_string());
        }
    }
    Ok(out)
}

/// The resource group of an ARM id (`/subscriptions/S/resourceGroups/G/...`).
pub fn resource_group_of(id: &str) -> Option<&str> {
    let mut it = id.split('/');
    while let Some(s) = it.next() {
        if s.eq_ignore_ascii_case("resourceGroups") {
            return it.next();
        }
    }
    None
}

/// The last segment of an ARM id.
pub fn name_of(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split() {
        let id = "/subscriptions/s/resourceGroups/herd-ann-c/providers/Microsoft.Compute/virtualMachines/v0";
        assert_eq!(resource_group_of(id), Some("herd-ann-c"));
        assert_eq!(name_of(id), "v0");
    }

    #[tokio::test]
    async fn the_pacer_lets_the_burst_through_then_waits_for_the_rate() {
        let p = Pacer::new(3.0, 100.0);
        let t = Instant::now();
        for _ in 0..3 {
            p.take().await;
        }
        assert!(t.elapsed() < Duration::from_millis(5));
        for _ in 0..5 {
            p.take().await;
        }
        // Five more at 100 per second: about 50 ms.
        assert!(t.elapsed() >= Duration::from_millis(40), "{:?}", t.elapsed());
    }
}
