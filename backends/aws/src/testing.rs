//! Test servers for this crate's tests, the conformance suite, the CLI's end-to-end tests
//! and the benchmark: moto's EC2 server on 127.0.0.1, and a proxy in front of it that
//! injects the faults moto lacks (throttling, capacity, 5xx, slow answers) and records
//! every request so tests can assert what was sent.
//!
//! The proxy is also a hostile EC2: it can ignore filters (and id lists) so moto answers
//! with every resource of the region, including foreign ones a test planted straight in
//! moto ([`plant`]), cut answers short, repeat or never end page tokens, rewrite answers,
//! throttle forever and hang. [`check_planted`] then reads moto directly to prove nothing
//! foreign was touched.

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
    /// Never answers (the connection stays open): a hanging endpoint.
    Hang,
    /// Forwards without the `Filter.*` parameters, and with `ids_too` without the id
    /// and name lists of `Describe*` calls too (`InstanceId.N`, `GroupName.N`, ...): moto
    /// then answers with whatever the region holds, as a server that ignores them would.
    Unfiltered {
        ids_too: bool,
    },
    /// Forwards, then passes on only the first `percent` of the answer's bytes (with a
    /// Content-Length that matches the cut body, as a proxy that lost the rest would).
    Truncate {
        percent: u8,
    },
    /// Forwards, then rewrites the answer's body.
    Rewrite(Rewriter),
    /// Answers this without forwarding: moto never sees the request.
    Answer {
        status: u16,
        body: String,
    },
}

/// A rewrite of an answer's body (Debug shows only that there is one). With
/// `drop_next_token`, the request goes to moto without its `NextToken` (moto knows only
/// its own tokens): a server that pages on its own terms.
#[derive(Clone)]
pub struct Rewriter {
    pub f: Arc<dyn Fn(&str) -> String + Send + Sync>,
    pub drop_next_token: bool,
}

impl std::fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rewriter(..)")
    }
}

/// Sets an answer's `nextToken` (replacing any): the same token every time means a
/// server that repeats itself.
pub fn with_next_token(body: &str, token: &str) -> String {
    let mut b = body.to_string();
    while let Some(start) = b.find("<nextToken>") {
        match b[start..].find("</nextToken>") {
            Some(end) => b.replace_range(start..start + end + "</nextToken>".len(), ""),
            None => break,
        }
    }
    match b.rfind("</") {
        Some(i) => {
            b.insert_str(i, &format!("<nextToken>{token}</nextToken>"));
            b
        }
        None => b,
    }
}

/// Removes every `<item>...</item>` (at any depth, innermost first) that mentions `needle`.
pub fn without_items_mentioning(body: &str, needle: &str) -> String {
    let mut b = body.to_string();
    let mut from = 0;
    while let Some(rel) = b[from..].find(needle) {
        let at = from + rel;
        let (Some(open), Some(close_rel)) = (b[..at].rfind("<item>"), b[at..].find("</item>")) else {
            break;
        };
        let close = at + close_rel + "</item>".len();
        b.replace_range(open..close, "");
        from = open;
    }
    b
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
    pub fn rewrite(f: impl Fn(&str) -> String + Send + Sync + 'static) -> Fault {
        Fault::Rewrite(Rewriter {
            f: Arc::new(f),
            drop_next_token: false,
        })
    }
    fn paging(f: impl Fn(&str) -> String + Send + Sync + 'static) -> Fault {
        Fault::Rewrite(Rewriter {
            f: Arc::new(f),
            drop_next_token: true,
        })
    }
    /// Every answer carries the same `nextToken`.
    pub fn repeat_token() -> Fault {
        Fault::paging(|b| with_next_token(b, "herd-test-same-token"))
    }
    /// Every answer carries a new `nextToken`: pages that never end.
    pub fn endless_tokens() -> Fault {
        let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
        Fault::paging(move |b| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            with_next_token(b, &format!("herd-test-token-{i}"))
        })
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

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The id and name lists a `Describe*` call narrows its answer with.
const SELECTORS: [&str; 10] = [
    "InstanceId.",
    "VolumeId.",
    "NetworkInterfaceId.",
    "AllocationId.",
    "PublicIp.",
    "GroupId.",
    "GroupName.",
    "KeyName.",
    "KeyPairId.",
    "ImageId.",
];

/// The request body without its filters (and, with `ids_too`, a Describe's selectors).
fn unfiltered_body(params: &HashMap<String, String>, ids_too: bool) -> String {
    let describe = params.get("Action").is_some_and(|a| a.starts_with("Describe"));
    body_without(params, |k| {
        k.starts_with("Filter.")
            || (ids_too && describe && (SELECTORS.iter().any(|p| k.starts_with(p)) || k.starts_with("Owner.")))
    })
}

/// The request body re-encoded without the parameters `drop` names.
fn body_without(params: &HashMap<String, String>, drop: impl Fn(&str) -> bool) -> String {
    let mut kept: Vec<(&String, &String)> = params.iter().filter(|(k, _)| !drop(k)).collect();
    kept.sort();
    kept.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
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
    let forward = |send: Bytes| {
        let (parts, client, upstream, times, action) = (
            parts.clone(),
            client.clone(),
            upstream.clone(),
            times.clone(),
            s.action.clone(),
        );
        async move {
            let Some(up) = upstream else {
                return reply(500, error_body("InternalError"));
            };
            let uri = format!("{up}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
            let mut b = hyper::Request::builder().method(parts.method.clone()).uri(uri);
            for (k, v) in parts.headers.iter() {
                // hyper sets the length of the body actually sent.
                if k != hyper::header::HOST && k != hyper::header::CONTENT_LENGTH {
                    b = b.header(k, v);
                }
            }
            let fwd = b.body(Full::new(send)).expect("request");
            let start = Instant::now();
            match client.request(fwd).await {
                Ok(r) => {
                    let (p, b) = r.into_parts();
                    let bytes = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                    times.lock().expect("times").push((action, start.elapsed()));
                    hyper::Response::from_parts(p, Full::new(bytes))
                }
                Err(e) => reply(502, format!("upstream: {e}")),
            }
        }
    };
    match fault {
        Fault::Pass => forward(body.clone()).await,
        Fault::Fail { status, code } => reply(status, error_body(&code)),
        Fault::FailAfter { status, code } => {
            let _ = forward(body.clone()).await;
            reply(status, error_body(&code))
        }
        Fault::Delay(d) => {
            let r = forward(body.clone()).await;
            tokio::time::sleep(d).await;
            r
        }
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
            reply(504, error_body("InternalError"))
        }
        Fault::Unfiltered { ids_too } => forward(Bytes::from(unfiltered_body(&s.params, ids_too))).await,
        Fault::Truncate { percent } => {
            let r = forward(body.clone()).await;
            rebody(r, |b: Bytes| {
                let keep = b.len() * usize::from(percent.min(99)) / 100;
                b.slice(..keep)
            })
            .await
        }
        Fault::Rewrite(Rewriter { f, drop_next_token }) => {
            let send = if drop_next_token {
                Bytes::from(body_without(&s.params, |k| k == "NextToken"))
            } else {
                body.clone()
            };
            let r = forward(send).await;
            rebody(r, |b: Bytes| Bytes::from(f(&String::from_utf8_lossy(&b)))).await
        }
        Fault::Answer { status, body } => reply(status, body),
    }
}

/// The answer with its body replaced by `f` of it (and its length recomputed).
async fn rebody(r: hyper::Response<Full<Bytes>>, f: impl FnOnce(Bytes) -> Bytes) -> hyper::Response<Full<Bytes>> {
    let (mut p, b) = r.into_parts();
    let bytes = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    p.headers.remove(hyper::header::CONTENT_LENGTH);
    hyper::Response::from_parts(p, Full::new(f(bytes)))
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
        .resolve(
            &crate::Ec2::new(client.clone(), Some(endpoint), region),
            arch,
            instance_type,
            None,
        )
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
        .map_err(|e| crate::error::from_sdk(e).to_string())?;
    let took = start.elapsed();
    Ok((
        took,
        r.instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect(),
    ))
}

/// An SDK client straight to moto (no proxy, no herd), for planting and checking.
pub fn direct_client(endpoint: &str, region: &str) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::config::Builder::new()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "planter",
        ))
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

/// Resources a test made straight in moto, behind herd's back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Planted {
    pub instances: Vec<String>,
    pub volumes: Vec<String>,
    pub interfaces: Vec<String>,
    /// Allocation ids.
    pub addresses: Vec<String>,
    pub groups: Vec<String>,
    pub keys: Vec<String>,
}

impl Planted {
    pub fn extend(&mut self, o: Planted) {
        self.instances.extend(o.instances);
        self.volumes.extend(o.volumes);
        self.interfaces.extend(o.interfaces);
        self.addresses.extend(o.addresses);
        self.groups.extend(o.groups);
        self.keys.extend(o.keys);
    }
}

fn spec_tags(kind: aws_sdk_ec2::types::ResourceType, t: &[(&str, &str)]) -> aws_sdk_ec2::types::TagSpecification {
    let mut b = aws_sdk_ec2::types::TagSpecification::builder().resource_type(kind);
    for (k, v) in t {
        b = b.tags(aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build());
    }
    b.build()
}

/// Plants one of each thing reap and down could touch, straight in moto, tagged with
/// `tags` (none: resources herd never made; `herd-owner=bob`: another owner's):
/// a running instance, a free volume, a free network interface, a free Elastic IP, a
/// security group and a key pair, named after `label`.
pub async fn plant(endpoint: &str, region: &str, label: &str, tags: &[(&str, &str)]) -> Result<Planted, String> {
    use aws_sdk_ec2::types::{DomainType, InstanceType, ResourceType};
    let c = direct_client(endpoint, region);
    let mut p = Planted::default();
    let tagged = |k: ResourceType| (!tags.is_empty()).then(|| vec![spec_tags(k, tags)]);

    let image = c
        .describe_images()
        .owners("amazon")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("architecture")
                .values("x86_64")
                .build(),
        )
        .send()
        .await
        .map_err(|e| format!("DescribeImages: {}", crate::error::from_sdk(e)))?;
    let image = image
        .images()
        .iter()
        .find_map(|i| i.image_id())
        .ok_or("moto has no x86_64 image")?
        .to_string();
    let group = c
        .create_security_group()
        .group_name(format!("{label}-group"))
        .description("planted by a herd test")
        .set_tag_specifications(tagged(ResourceType::SecurityGroup))
        .send()
        .await
        .map_err(|e| format!("CreateSecurityGroup: {}", crate::error::from_sdk(e)))?
        .group_id()
        .unwrap_or_default()
        .to_string();
    p.groups.push(group.clone());
    let key = format!("{label}-key");
    let public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETnenGbDQxFMBYXesrtkftI9b8WcHnzAZ8GAjfIUP7h planted";
    c.import_key_pair()
        .key_name(&key)
        .public_key_material(aws_smithy_types::Blob::new(public.as_bytes()))
        .set_tag_specifications(tagged(ResourceType::KeyPair))
        .send()
        .await
        .map_err(|e| format!("ImportKeyPair: {}", crate::error::from_sdk(e)))?;
    p.keys.push(key.clone());
    let mut run = c
        .run_instances()
        .image_id(&image)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .key_name(&key)
        .security_group_ids(&group)
        .placement(
            aws_sdk_ec2::types::Placement::builder()
                .availability_zone(format!("{region}a"))
                .build(),
        );
    if !tags.is_empty() {
        for k in [
            ResourceType::Instance,
            ResourceType::Volume,
            ResourceType::NetworkInterface,
        ] {
            run = run.tag_specifications(spec_tags(k, tags));
        }
    }
    let r = run
        .send()
        .await
        .map_err(|e| format!("RunInstances: {}", crate::error::from_sdk(e)))?;
    p.instances
        .extend(r.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)));
    let zone = format!("{region}a");
    let vol = c
        .create_volume()
        .availability_zone(&zone)
        .size(1)
        .set_tag_specifications(tagged(ResourceType::Volume))
        .send()
        .await
        .map_err(|e| format!("CreateVolume: {}", crate::error::from_sdk(e)))?;
    p.volumes.push(vol.volume_id().unwrap_or_default().to_string());
    let subnet = c
        .describe_subnets()
        .send()
        .await
        .map_err(|e| format!("DescribeSubnets: {}", crate::error::from_sdk(e)))?
        .subnets()
        .iter()
        .find(|s| s.availability_zone() == Some(zone.as_str()))
        .and_then(|s| s.subnet_id())
        .ok_or("moto has no default subnet")?
        .to_string();
    let eni = c
        .create_network_interface()
        .subnet_id(&subnet)
        .set_tag_specifications(tagged(ResourceType::NetworkInterface))
        .send()
        .await
        .map_err(|e| format!("CreateNetworkInterface: {}", crate::error::from_sdk(e)))?;
    p.interfaces.push(
        eni.network_interface()
            .and_then(|n| n.network_interface_id())
            .unwrap_or_default()
            .to_string(),
    );
    let eip = c
        .allocate_address()
        .domain(DomainType::Vpc)
        .set_tag_specifications(tagged(ResourceType::ElasticIp))
        .send()
        .await
        .map_err(|e| format!("AllocateAddress: {}", crate::error::from_sdk(e)))?;
    p.addresses.push(eip.allocation_id().unwrap_or_default().to_string());
    Ok(p)
}

/// Makes `planted`'s volume, interface and address busy: attached to (associated with)
/// its instance, so a reap that trusts tags and ignores state would delete them in use.
pub async fn make_busy(endpoint: &str, region: &str, planted: &Planted) -> Result<(), String> {
    let c = direct_client(endpoint, region);
    let instance = planted.instances.first().ok_or("nothing planted")?;
    if let Some(v) = planted.volumes.first() {
        c.attach_volume()
            .volume_id(v)
            .instance_id(instance)
            .device("/dev/sdf")
            .send()
            .await
            .map_err(|e| format!("AttachVolume: {}", crate::error::from_sdk(e)))?;
    }
    if let Some(n) = planted.interfaces.first() {
        c.attach_network_interface()
            .network_interface_id(n)
            .instance_id(instance)
            .device_index(1)
            .send()
            .await
            .map_err(|e| format!("AttachNetworkInterface: {}", crate::error::from_sdk(e)))?;
    }
    if let Some(a) = planted.addresses.first() {
        c.associate_address()
            .allocation_id(a)
            .instance_id(instance)
            .send()
            .await
            .map_err(|e| format!("AssociateAddress: {}", crate::error::from_sdk(e)))?;
    }
    Ok(())
}

/// What of `planted` moto no longer has as it was: an instance not running, anything
/// else gone. Empty when nothing was touched.
pub async fn check_planted(endpoint: &str, region: &str, planted: &Planted) -> Vec<String> {
    let c = direct_client(endpoint, region);
    let mut missing = Vec::new();
    for id in &planted.instances {
        let r = c.describe_instances().instance_ids(id).send().await;
        let state = r.ok().and_then(|r| {
            r.reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find(|i| i.instance_id() == Some(id.as_str()))
                .and_then(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()))
        });
        if state.as_deref() != Some("running") && state.as_deref() != Some("pending") {
            missing.push(format!("instance {id} is {state:?}"));
        }
    }
    for id in &planted.volumes {
        let ok = c.describe_volumes().volume_ids(id).send().await.is_ok_and(|r| {
            r.volumes()
                .iter()
                .any(|v| v.volume_id() == Some(id.as_str()) && v.state().is_some_and(|s| s.as_str() != "deleting"))
        });
        if !ok {
            missing.push(format!("volume {id}"));
        }
    }
    for id in &planted.interfaces {
        let ok = c
            .describe_network_interfaces()
            .network_interface_ids(id)
            .send()
            .await
            .is_ok_and(|r| {
                r.network_interfaces()
                    .iter()
                    .any(|n| n.network_interface_id() == Some(id.as_str()))
            });
        if !ok {
            missing.push(format!("network interface {id}"));
        }
    }
    for id in &planted.addresses {
        let ok = c
            .describe_addresses()
            .allocation_ids(id)
            .send()
            .await
            .is_ok_and(|r| r.addresses().iter().any(|a| a.allocation_id() == Some(id.as_str())));
        if !ok {
            missing.push(format!("address {id}"));
        }
    }
    for id in &planted.groups {
        let ok = c
            .describe_security_groups()
            .group_ids(id)
            .send()
            .await
            .is_ok_and(|r| r.security_groups().iter().any(|g| g.group_id() == Some(id.as_str())));
        if !ok {
            missing.push(format!("security group {id}"));
        }
    }
    for name in &planted.keys {
        let ok = c
            .describe_key_pairs()
            .key_names(name)
            .send()
            .await
            .is_ok_and(|r| r.key_pairs().iter().any(|k| k.key_name() == Some(name.as_str())));
        if !ok {
            missing.push(format!("key pair {name}"));
        }
    }
    missing
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
