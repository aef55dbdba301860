//! Test servers for this crate's tests, the conformance suite, the CLI's end-to-end tests
//! and the benchmark: moto's EC2 server on 127.0.0.1, and a proxy in front of it that
//! injects the faults moto lacks (throttling, capacity, 5xx, slow answers) and records
//! every request so tests can assert what was sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Http = HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn http() -> Http {
    HttpClient::builder(TokioExecutor::new()).build_http()
}

/// Where moto_server is: on PATH, or in the workspace's .venv (scripts/test.sh makes it).
pub fn moto_binary() -> Result<PathBuf, String> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    if venv.is_file() {
        return Ok(venv);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("moto_server");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(
        "moto_server not found on PATH or in .venv/bin: run scripts/test.sh, or \
         `python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-test.txt`"
            .into(),
    )
}

/// A moto server of its own, stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    addr: SocketAddr,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl Moto {
    /// Starts moto with instance-type and AMI validation on, and waits until it answers.
    pub async fn start() -> Result<Moto, String> {
        let bin = moto_binary()?;
        let mut last = String::new();
        // A port can be taken between probing and binding: a few tries, each bounded.
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
                .env("MOTO_ENABLE_AMI_VALIDATION", "true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
            let mut moto = Moto {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            match moto.wait_ready(Duration::from_secs(60)).await {
                Ok(()) => return Ok(moto),
                Err(e) => last = e,
            }
        }
        Err(format!("moto did not start: {last}"))
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("moto_server exited with {status}"));
            }
            if self.post("/moto-api/reset").await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("no answer on {} within {limit:?}", self.addr))
    }

    async fn post(&self, path: &str) -> Result<(), String> {
        let req = hyper::Request::post(format!("{}{path}", self.endpoint()))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let r = http().request(req).await.map_err(|e| e.to_string())?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", r.status()))
        }
    }

    /// Forgets every resource: a fresh account.
    pub async fn reset(&self) -> Result<(), String> {
        self.post("/moto-api/reset").await
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request the proxy saw: the EC2 action and its form parameters.
#[derive(Debug, Clone)]
pub struct Seen {
    pub action: String,
    pub params: HashMap<String, String>,
}

impl Seen {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
    /// Parameters whose name starts with `prefix`.
    pub fn with_prefix(&self, prefix: &str) -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = self
            .params
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        v.sort();
        v
    }
}

/// What the proxy does with a request.
#[derive(Debug, Clone)]
pub enum Fault {
    Pass,
    /// Answers with this EC2 error; the request never reaches moto.
    Fail {
        status: u16,
        code: String,
    },
    /// Lets moto act, then answers with this error instead of moto's answer (the
    /// effect happened, the caller cannot know).
    FailAfter {
        status: u16,
        code: String,
    },
    /// Holds the answer this long before passing it on (for client timeouts).
    Delay(Duration),
}

impl Fault {
    pub fn fail(status: u16, code: &str) -> Fault {
        Fault::Fail {
            status,
            code: code.into(),
        }
    }
    pub fn fail_after(status: u16, code: &str) -> Fault {
        Fault::FailAfter {
            status,
            code: code.into(),
        }
    }
}

/// Decides a request's fate from it and how many requests of its action came before.
pub type Rule = Arc<dyn Fn(&Seen, usize) -> Fault + Send + Sync>;

/// A fault-injecting proxy in front of an EC2 endpoint (moto), or a mock on its own
/// when the upstream is `None` (every passed request then answers 500).
pub struct FaultProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    upstream_time: Arc<Mutex<Vec<(String, Duration)>>>,
    rule: Arc<Mutex<Rule>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The form parameters of an EC2 query-protocol body.
pub fn parse_form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// EC2's error document.
pub fn error_body(code: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
         <Message>injected by herd's test proxy: {code}</Message></Error></Errors>\
         <RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
    )
}

fn reply(status: u16, body: String) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

impl FaultProxy {
    pub async fn start(upstream: Option<String>, rule: Rule) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let upstream_time: Arc<Mutex<Vec<(String, Duration)>>> = Arc::default();
        let rule = Arc::new(Mutex::new(rule));
        let (s2, r2, t2) = (seen.clone(), rule.clone(), upstream_time.clone());
        let client = http();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let (seen, rule, client, upstream, times) =
                    (s2.clone(), r2.clone(), client.clone(), upstream.clone(), t2.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (seen, rule, client, upstream, times) = (
                            seen.clone(),
                            rule.clone(),
                            client.clone(),
                            upstream.clone(),
                            times.clone(),
                        );
                        async move {
                            Ok::<_, std::convert::Infallible>(handle(req, seen, rule, client, upstream, times).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FaultProxy {
            addr,
            seen,
            upstream_time,
            rule,
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the rule (the proxy keeps its address and its record).
    pub fn set_rule(&self, rule: Rule) {
        *self.rule.lock().expect("rule") = rule;
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    /// Requests of one action so far.
    pub fn calls(&self, action: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.action == action).collect()
    }

    pub fn clear(&self) {
        self.seen.lock().expect("seen").clear();
        self.upstream_time.lock().expect("times").clear();
    }

    /// How long the upstream took to answer each forwarded request of `action`.
    pub fn upstream_time(&self, action: &str) -> Vec<Duration> {
        self.upstream_time
            .lock()
            .expect("times")
            .iter()
            .filter(|(a, _)| a == action)
            .map(|(_, d)| *d)
            .collect()
    }

    /// Upstream time of every action so far, summed per action.
    pub fn upstream_totals(&self) -> Vec<(String, Duration)> {
        let mut out: Vec<(String, Duration)> = Vec::new();
        for (a, d) in self.upstream_time.lock().expect("times").iter() {
            match out.iter_mut().find(|(x, _)| x == a) {
                Some((_, t)) => *t += *d,
                None => out.push((a.clone(), *d)),
            }
        }
        out
    }
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    rule: Arc<Mutex<Rule>>,
    client: Http,
    upstream: Option<String>,
    times: Arc<Mutex<Vec<(String, Duration)>>>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(400, format!("bad body: {e}")),
    };
    let params = parse_form(&String::from_utf8_lossy(&body));
    let s = Seen {
        action: params.get("Action").cloned().unwrap_or_default(),
        params,
    };
    let (fault, nth) = {
        let mut all = seen.lock().expect("seen");
        let nth = all.iter().filter(|x| x.action == s.action).count();
        all.push(s.clone());
        let rule = rule.lock().expect("rule").clone();
        (rule(&s, nth), nth)
    };
    let _ = nth;
    let forward = || async {
        let Some(up) = upstream.clone() else {
            return reply(500, error_body("InternalError"));
        };
        let uri = format!("{up}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
        let mut b = hyper::Request::builder().method(parts.method.clone()).uri(uri);
        for (k, v) in parts.headers.iter() {
            if k != hyper::header::HOST {
                b = b.header(k, v);
            }
        }
        let fwd = b.body(Full::new(body.clone())).expect("request");
        let start = Instant::now();
        match client.request(fwd).await {
            Ok(r) => {
                let (p, b) = r.into_parts();
                let bytes = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                times.lock().expect("times").push((s.action.clone(), start.elapsed()));
                hyper::Response::from_parts(p, Full::new(bytes))
            }
            Err(e) => reply(502, format!("upstream: {e}")),
        }
    };
    match fault {
        Fault::Pass => forward().await,
        Fault::Fail { status, code } => reply(status, error_body(&code)),
        Fault::FailAfter { status, code } => {
            let _ = forward().await;
            reply(status, error_body(&code))
        }
        Fault::Delay(d) => {
            let r = forward().await;
            tokio::time::sleep(d).await;
            r
        }
    }
}

/// One plain RunInstances of `count` x `instance_type` (MinCount = MaxCount = count)
/// straight from the SDK, as a baseline for the launch benchmark; the image is resolved
/// before, outside what the caller times. Returns the instance ids.
pub async fn raw_run_instances(
    endpoint: &str,
    region: &str,
    instance_type: &str,
    arch: herd_core::Arch,
    count: i32,
) -> Result<(Duration, Vec<String>), String> {
    let conf = aws_sdk_ec2::config::Builder::new()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .build();
    let client = aws_sdk_ec2::Client::from_conf(conf);
    let image = crate::images::ImageCache::default()
        .resolve(&client, region, arch, instance_type, None)
        .await
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let r = client
        .run_instances()
        .image_id(image.id)
        .instance_type(aws_sdk_ec2::types::InstanceType::from(instance_type))
        .min_count(count)
        .max_count(count)
        .send()
        .await
        .map_err(|e| format!("{:?}", e))?;
    let took = start.elapsed();
    Ok((
        took,
        r.instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect(),
    ))
}

/// A rule that lets everything through.
pub fn pass() -> Rule {
    Arc::new(|_, _| Fault::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let p = parse_form("Action=RunInstances&UserData=YQ%3D%3D&TagSpecification.1.Tag.1.Value=a+b");
        assert_eq!(p["Action"], "RunInstances");
        assert_eq!(p["UserData"], "YQ==");
        assert_eq!(p["TagSpecification.1.Tag.1.Value"], "a b");
    }
}
