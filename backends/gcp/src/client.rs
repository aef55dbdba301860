//! Requests to Compute Engine v1 REST and the reading of their answers: one place that
//! builds URLs, adds the bearer token, times each attempt out, counts what it sent and
//! turns errors into herd's ([`crate::error`]). It never retries: herd's retry loop does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_core::{Error, ErrorKind, Result};
use serde_json::Value;

use crate::auth::TokenSource;
use crate::error;

/// Compute Engine for one project.
#[derive(Debug, Clone)]
pub struct Gce {
    http: reqwest::Client,
    base: String,
    pub project: String,
    tokens: Arc<dyn TokenSource>,
    sent: Arc<AtomicU64>,
}

/// `%XX` for a query value or path segment.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The last segment of a GCE resource URL (`.../zones/us-central1-a` -> `us-central1-a`).
pub fn last_segment(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// `us-central1-a` -> `us-central1`.
pub fn region_of_zone(zone: &str) -> &str {
    zone.rsplit_once('-').map(|(r, _)| r).unwrap_or(zone)
}

/// What `zoneOperations.wait` is told to wait at most per call: GCE caps it at two
/// minutes and may return sooner (the discovery document: "returns ... or 2 minutes").
pub const WAIT_STEP: Duration = Duration::from_secs(60);

impl Gce {
    pub fn new(base: &str, project: &str, tokens: Arc<dyn TokenSource>, attempt_timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(attempt_timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(64)
            .build()
            .expect("a reqwest client");
        Gce {
            http,
            base: base.trim_end_matches('/').to_string(),
            project: project.to_string(),
            tokens,
            sent: Arc::default(),
        }
    }

    /// Requests put on the wire so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> String {
        let mut u = format!("{}/compute/v1/projects/{}/{}", self.base, encode(&self.project), path);
        for (i, (k, v)) in query.iter().enumerate() {
            u.push(if i == 0 { '?' } else { '&' });
            u.push_str(k);
            u.push('=');
            u.push_str(&encode(v));
        }
        u
    }

    /// One call; `what` names it in errors. A 2xx answer must be a JSON object.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value> {
        let token = self.tokens.token().await?;
        let mut req = self
            .http
            .request(method, self.url(path, query))
            .bearer_auth(token.secret())
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        let r = req.send().await.map_err(|e| transport(e, what))?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| transport(e, what))?;
        if !(200..300).contains(&status) {
            return Err(error::from_http(status, &text).into_error(what));
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(Error::unexpected(format!(
                "{what}: Compute Engine's answer is not a JSON object ({} bytes)",
                text.len()
            ))
            .temporary(true)),
        }
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)], what: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, query, None, what).await
    }

    pub async fn post(&self, path: &str, query: &[(&str, String)], body: &Value, what: &str) -> Result<Value> {
        self.call(reqwest::Method::POST, path, query, Some(body), what).await
    }

    pub async fn delete(&self, path: &str, query: &[(&str, String)], what: &str) -> Result<Value> {
        self.call(reqwest::Method::DELETE, path, query, None, what).await
    }

    /// Waits for a zonal operation to be DONE, within `budget`: `zoneOperations.wait`
    /// may return before the operation is done, so it is asked again until it is.
    /// A finished operation with an error is that error.
    pub async fn wait_zone_op(&self, zone: &str, op: Value, budget: Duration, what: &str) -> Result<Value> {
        let started = Instant::now();
        let name = op
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::unexpected(format!("{what}: the operation has no name")).temporary(true))?
            .to_string();
        let mut op = op;
        loop {
            if op.get("status").and_then(Value::as_str) == Some("DONE") {
                if let Some(e) = error::from_operation(&op) {
                    return Err(e.into_error(what));
                }
                return Ok(op);
            }
            if started.elapsed() >= budget {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("{what}: operation {name} is not done after {}s", budget.as_secs()),
                )
                .with_hint("the operation goes on at Compute Engine; `herd ls` shows what it started"));
            }
            op = self
                .post(
                    &format!("zones/{zone}/operations/{}/wait", encode(&name)),
                    &[],
                    &Value::Null,
                    &format!("{what} (waiting)"),
                )
                .await?;
        }
    }

    /// Every item of a paged GCE list (`items`, or `items.{scope}.{key}` for aggregated
    /// lists), following `nextPageToken`; a token seen twice is an error, never a loop.
    pub async fn pages(&self, path: &str, query: &[(&str, String)], key: &str, what: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            if let Some(t) = &token {
                q.push(("pageToken", t.clone()));
            }
            let page = self.get(path, &q, what).await?;
            match page.get("items") {
                Some(Value::Array(items)) => out.extend(items.iter().cloned()),
                Some(Value::Object(scopes)) => {
                    for (scope, v) in scopes {
                        for mut i in v.get(key).and_then(Value::as_array).cloned().unwrap_or_default() {
                            if let Value::Object(m) = &mut i {
                                m.entry("zone").or_insert_with(|| Value::String(scope.clone()));
                            }
                            out.push(i);
                        }
                    }
                }
                _ => {}
            }
            match page.get("nextPageToken").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => {
                    if seen.iter().any(|s| s == t) {
                        return Err(Error::unexpected(format!(
                            "{what}: Compute Engine sent the same page token twice; herd stopped rather than loop"
                        ))
                        .temporary(true));
                    }
                    seen.push(t.to_string());
                    token = Some(t.to_string());
                }
                _ => return Ok(out),
            }
        }
    }
}

fn transport(e: reqwest::Error, what: &str) -> Error {
    let (kind, m) = if e.is_timeout() {
        (ErrorKind::Timeout, "timed out")
    } else if e.is_connect() {
        (ErrorKind::Unavailable, "cannot connect")
    } else {
        (ErrorKind::Unavailable, "the connection failed")
    };
    // reqwest's message holds the URL; herd's never hold a token, so it may be shown.
    Error::new(kind, format!("{what}: {m}")).temporary(true).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_encoding() {
        assert_eq!(encode("labels.herd-owner=ann"), "labels.herd-owner%3Dann");
        assert_eq!(last_segment("https://x/zones/us-central1-a"), "us-central1-a");
        assert_eq!(region_of_zone("us-central1-a"), "us-central1");
    }
}
