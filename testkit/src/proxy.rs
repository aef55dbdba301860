//! The fault proxy, the same for every cloud: it listens on 127.0.0.1, reads each request
//! with a [`Protocol`], records it, asks a [`Rule`] what to do, and forwards to the
//! upstream (moto, a wiremock fake) or answers itself, in that cloud's error shape.
//!
//! Faults: throttling, errors before and after the effect, slow and hanging answers, and
//! the hostile ones: ignored filters (and id lists), cut bodies, repeated or endless page
//! tokens, rewritten and canned answers. [`Fault::Reject`] names a failure the same way for
//! every cloud ([`Failure`]), so a fault case written once runs against each.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::protocol::{Ec2Query, Effect, Failure, Incoming, Outgoing, Protocol, Reply, Seen};

type Http = HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub(crate) fn http() -> Http {
    HttpClient::builder(TokioExecutor::new()).build_http()
}

/// What the proxy does with a request.
#[derive(Debug, Clone)]
pub enum Fault {
    Pass,
    /// Answers with this error; the request never reaches the upstream.
    Fail {
        status: u16,
        code: String,
    },
    /// Lets the upstream act, then answers with this error instead of its answer (the
    /// effect happened, the caller cannot know).
    FailAfter {
        status: u16,
        code: String,
    },
    /// A failure named the same for every cloud, written as the protocol's cloud does;
    /// with `after`, once the upstream acted.
    Reject {
        failure: Failure,
        after: bool,
    },
    /// Holds the answer this long before passing it on (for client timeouts).
    Delay(Duration),
    /// Never answers (the connection stays open): a hanging endpoint.
    Hang,
    /// Forwards without the filters, and with `ids_too` without the id and name lists of
    /// reads too: the upstream then answers with whatever it holds, as a server that
    /// ignores them would.
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
    /// Forwards without the page token, then sets the answer's next-page token.
    Tokens(Tokens),
    /// Answers this without forwarding: the upstream never sees the request.
    Answer {
        status: u16,
        body: String,
    },
}

/// A rewrite of an answer's body (Debug shows only that there is one).
#[derive(Clone)]
pub struct Rewriter {
    pub f: Arc<dyn Fn(&str) -> String + Send + Sync>,
}

impl std::fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rewriter(..)")
    }
}

/// Next-page tokens a server that pages on its own terms sends.
#[derive(Debug, Clone)]
pub enum Tokens {
    /// The same token every time: a server that repeats itself.
    Same(String),
    /// A new token every time: pages that never end.
    Endless(Arc<AtomicU64>),
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
    /// `failure`, before the effect.
    pub fn reject(failure: Failure) -> Fault {
        Fault::Reject { failure, after: false }
    }
    /// `failure`, after the upstream acted.
    pub fn reject_after(failure: Failure) -> Fault {
        Fault::Reject { failure, after: true }
    }
    pub fn rewrite(f: impl Fn(&str) -> String + Send + Sync + 'static) -> Fault {
        Fault::Rewrite(Rewriter { f: Arc::new(f) })
    }
    /// Every answer carries the same next-page token.
    pub fn repeat_token() -> Fault {
        Fault::Tokens(Tokens::Same("herd-test-same-token".into()))
    }
    /// Every answer carries a new next-page token: pages that never end.
    pub fn endless_tokens() -> Fault {
        Fault::Tokens(Tokens::Endless(Arc::default()))
    }
}

/// Decides a request's fate from it and how many requests of its action came before.
pub type Rule = Arc<dyn Fn(&Seen, usize) -> Fault + Send + Sync>;

/// A rule that lets everything through.
pub fn pass() -> Rule {
    Arc::new(|_, _| Fault::Pass)
}

struct Shared {
    protocol: Arc<dyn Protocol>,
    upstream: Option<String>,
    seen: Mutex<Vec<Seen>>,
    upstream_time: Mutex<Vec<(String, Duration)>>,
    rule: Mutex<Rule>,
    client: Http,
    addr: SocketAddr,
}

/// A fault-injecting proxy in front of an upstream, or a mock on its own when the
/// upstream is `None` (every passed request then answers the protocol's 500).
pub struct FaultProxy {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.shared.addr)
            .field("protocol", &self.shared.protocol.name())
            .finish_non_exhaustive()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(r: Reply) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder().status(r.status);
    for (k, v) in &r.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Full::new(Bytes::from(r.body))).expect("a valid response")
}

impl FaultProxy {
    /// An EC2 proxy (query protocol), as every AWS test uses.
    pub async fn start(upstream: Option<String>, rule: Rule) -> FaultProxy {
        Self::start_with(Arc::new(Ec2Query), upstream, rule).await
    }

    /// A proxy for any cloud's protocol.
    pub async fn start_with(protocol: Arc<dyn Protocol>, upstream: Option<String>, rule: Rule) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            protocol,
            upstream: upstream.map(|u| u.trim_end_matches('/').to_string()),
            seen: Mutex::default(),
            upstream_time: Mutex::default(),
            rule: Mutex::new(rule),
            client: http(),
            addr,
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let s = s.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(req, &s).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FaultProxy { shared, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Replaces the rule (the proxy keeps its address and its record).
    pub fn set_rule(&self, rule: Rule) {
        *self.shared.rule.lock().expect("rule") = rule;
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("seen").clone()
    }

    /// Requests of one action so far.
    pub fn calls(&self, action: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.action == action).collect()
    }

    /// Requests with one effect so far (every launch call, whatever the cloud names it).
    pub fn calls_with(&self, effect: Effect) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.effect == effect).collect()
    }

    pub fn clear(&self) {
        self.shared.seen.lock().expect("seen").clear();
        self.shared.upstream_time.lock().expect("times").clear();
    }

    /// How long the upstream took to answer each forwarded request of `action`.
    pub fn upstream_time(&self, action: &str) -> Vec<Duration> {
        self.shared
            .upstream_time
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
        for (a, d) in self.shared.upstream_time.lock().expect("times").iter() {
            match out.iter_mut().find(|(x, _)| x == a) {
                Some((_, t)) => *t += *d,
                None => out.push((a.clone(), *d)),
            }
        }
        out
    }
}

async fn forward(
    s: &Shared,
    parts: &hyper::http::request::Parts,
    out: Outgoing,
    action: &str,
) -> hyper::Response<Full<Bytes>> {
    let Some(up) = &s.upstream else {
        let (status, code) = s.protocol.failure(Failure::Internal);
        return reply(s.protocol.error(status, code));
    };
    let mut b = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(format!("{up}{}", out.target));
    for (k, v) in parts.headers.iter() {
        // hyper sets the length of the body actually sent.
        if k != hyper::header::HOST && k != hyper::header::CONTENT_LENGTH {
            b = b.header(k, v);
        }
    }
    let fwd = b.body(Full::new(out.body)).expect("request");
    let start = Instant::now();
    match s.client.request(fwd).await {
        Ok(r) => {
            let (p, b) = r.into_parts();
            let bytes = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            s.upstream_time
                .lock()
                .expect("times")
                .push((action.to_string(), start.elapsed()));
            hyper::Response::from_parts(p, Full::new(bytes))
        }
        Err(e) => reply(Reply {
            status: 502,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: format!("upstream: {e}"),
        }),
    }
}

async fn handle(req: hyper::Request<hyper::body::Incoming>, s: &Shared) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return reply(Reply {
                status: 400,
                headers: Vec::new(),
                body: format!("bad body: {e}"),
            })
        }
    };
    let seen = s.protocol.classify(&Incoming {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        body: &body,
    });
    let fault = {
        let mut all = s.seen.lock().expect("seen");
        let nth = all.iter().filter(|x| x.action == seen.action).count();
        all.push(seen.clone());
        let rule = s.rule.lock().expect("rule").clone();
        rule(&seen, nth)
    };
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let asked = Outgoing {
        target: target.clone(),
        body: body.clone(),
    };
    let p = &s.protocol;
    let action = seen.action.as_str();
    match fault {
        Fault::Pass => forward(s, &parts, asked, action).await,
        Fault::Fail { status, code } => reply(p.error(status, &code)),
        Fault::FailAfter { status, code } => {
            let _ = forward(s, &parts, asked, action).await;
            reply(p.error(status, &code))
        }
        Fault::Reject { failure, after } => {
            if after {
                let _ = forward(s, &parts, asked, action).await;
            }
            let (status, code) = p.failure(failure);
            reply(p.error(status, code))
        }
        Fault::Delay(d) => {
            let r = forward(s, &parts, asked, action).await;
            tokio::time::sleep(d).await;
            r
        }
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
            let (status, code) = p.failure(Failure::Internal);
            reply(p.error(status, code))
        }
        Fault::Unfiltered { ids_too } => forward(s, &parts, p.unfiltered(&asked, &seen, ids_too), action).await,
        Fault::Truncate { percent } => {
            let r = forward(s, &parts, asked, action).await;
            rebody(r, |b: Bytes| {
                let keep = b.len() * usize::from(percent.min(99)) / 100;
                b.slice(..keep)
            })
            .await
        }
        Fault::Rewrite(Rewriter { f }) => {
            let r = forward(s, &parts, asked, action).await;
            rebody(r, |b: Bytes| Bytes::from(f(&String::from_utf8_lossy(&b)))).await
        }
        Fault::Tokens(t) => {
            let token = match t {
                Tokens::Same(t) => t,
                Tokens::Endless(n) => format!("herd-test-token-{}", n.fetch_add(1, Ordering::Relaxed)),
            };
            let here = format!("http://{}{target}", s.addr);
            let r = forward(s, &parts, p.without_page_token(&asked, &seen), action).await;
            rebody(r, |b: Bytes| {
                Bytes::from(p.with_page_token(&String::from_utf8_lossy(&b), &token, &here))
            })
            .await
        }
        Fault::Answer { status, body } => reply(Reply {
            status,
            headers: vec![("content-type".into(), p.content_type().into())],
            body,
        }),
    }
}

/// The answer with its body replaced by `f` of it (and its length recomputed).
async fn rebody(r: hyper::Response<Full<Bytes>>, f: impl FnOnce(Bytes) -> Bytes) -> hyper::Response<Full<Bytes>> {
    let (mut p, b) = r.into_parts();
    let bytes = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    p.headers.remove(hyper::header::CONTENT_LENGTH);
    hyper::Response::from_parts(p, Full::new(f(bytes)))
}
