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
        let mut unreachable: Vec<String> = Vec::new();
        loop {
            let mut q = query.to_vec();
            if let Some(t) = &token {
                q.push(("pageToken", t.clone()));
            }
            let page = self.get(path, &q, what).await?;
            read_page(&page, key, what, &mut out, &mut unreachable)?;
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
                _ if unreachable.is_empty() => return Ok(out),
                _ => return Err(partial(what, &unreachable)),
            }
        }
    }
}

/// Adds one page's items to `out` and the scopes it could not read to `unreachable`.
/// A list page's `items` is an array; an aggregated page's is a map of scopes, each
/// holding `key` or a `warning` (`NO_RESULTS_ON_PAGE` for an empty zone). Anything
/// else is a malformed answer, never an empty one.
fn read_page(page: &Value, key: &str, what: &str, out: &mut Vec<Value>, unreachable: &mut Vec<String>) -> Result<()> {
    let malformed = |m: String| Error::unexpected(format!("{what}: Compute Engine sent a malformed page ({m})"));
    if warning_code(page) == Some("UNREACHABLE") {
        unreachable.push("(the whole list)".to_string());
    }
    match page.get("unreachables") {
        None | Some(Value::Null) => {}
        Some(Value::Array(u)) => unreachable.extend(u.iter().map(|s| s.as_str().unwrap_or("?").to_string())),
        Some(_) => return Err(malformed("`unreachables` is not a list".into())),
    }
    match page.get("items") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => out.extend(items.iter().cloned()),
        Some(Value::Object(scopes)) => {
            for (scope, v) in scopes {
                if warning_code(v) == Some("UNREACHABLE") {
                    unreachable.push(scope.clone());
                }
                match v.get(key) {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(items)) => {
                        for i in items {
                            let mut i = i.clone();
                            if let Value::Object(m) = &mut i {
                                m.entry("zone").or_insert_with(|| Value::String(scope.clone()));
                            }
                            out.push(i);
                        }
                    }
                    Some(_) => return Err(malformed(format!("`{scope}.{key}` is not a list"))),
                }
            }
        }
        Some(_) => return Err(malformed("`items` is neither a list nor a map of scopes".into())),
    }
    Ok(())
}

fn warning_code(v: &Value) -> Option<&str> {
    v.pointer("/warning/code").and_then(Value::as_str)
}

/// A list missing some zones is not the list: `herd down --all` or `reap` acting on
/// it would leave the unreachable zones' VMs running unseen, so it is an error that
/// names them (temporary: a zone is usually back within minutes).
fn partial(what: &str, scopes: &[String]) -> Error {
    let mut s = scopes.to_vec();
    s.sort();
    s.dedup();
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "{what}: Compute Engine could not reach {}; herd will not act on a list missing them",
            s.join(", ")
        ),
    )
    .temporary(true)
    .with_hint("try again in a few minutes; https://status.cloud.google.com shows zone outages")
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

    fn read(page: Value) -> Result<(Vec<Value>, Vec<String>)> {
        let (mut out, mut gone) = (Vec::new(), Vec::new());
        read_page(&page, "instances", "instances.aggregatedList", &mut out, &mut gone)?;
        Ok((out, gone))
    }

    #[test]
    fn pages_name_what_they_could_not_reach_and_refuse_malformed_items() {
        let (out, gone) = read(serde_json::json!({"items": {
            "zones/a": {"instances": [{"name": "x"}]},
            "zones/b": {"warning": {"code": "NO_RESULTS_ON_PAGE"}},
            "zones/c": {"warning": {"code": "UNREACHABLE"}},
        }}))
        .unwrap();
        assert_eq!((out.len(), out[0]["zone"].as_str()), (1, Some("zones/a")));
        assert_eq!(gone, ["zones/c"]);
        let (_, gone) = read(serde_json::json!({"unreachables": ["zones/d"]})).unwrap();
        assert_eq!(gone, ["zones/d"]);
        assert!(read(serde_json::json!({"items": "nope"})).is_err());
        assert!(read(serde_json::json!({"items": {"zones/a": {"instances": {}}}})).is_err());
        assert!(read(serde_json::json!({})).unwrap().0.is_empty());
        let e = partial("instances.aggregatedList", &["zones/c".into(), "zones/c".into()]);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains("could not reach zones/c;"), "{e}");
    }
}
