//! The SDK clients, built once per region on first use (so `herd cost` and `herd plan`
//! never touch credentials). SDK retries are off: herd's retry loop is the only one
//! (docs/decisions/0006-aws-retries.md); each attempt is bounded by a connect and a
//! per-attempt timeout, which herd then treats as a temporary error.
//!
//! Every answer passes [`AnswerCheck`] before the SDK's output reaches herd: the SDK's
//! XML reader takes a body cut short (a dropped connection behind a proxy, a hostile
//! endpoint) as a shorter list, so "no instances" could be a lost answer. An answer whose
//! root element is not closed is an error instead, never an empty result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ec2::error::SdkError;
use aws_sdk_ec2::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use herd_core::Error;
use tokio::sync::OnceCell;

use crate::config::AwsConfig;
use crate::error::{from_sdk_at, HasStatus};

/// One region's EC2 client and the endpoint it talks to, so every error can name it.
#[derive(Debug, Clone)]
pub struct Ec2 {
    client: Client,
    endpoint: String,
    region: String,
}

impl std::ops::Deref for Ec2 {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Ec2 {
    /// A client built elsewhere (tests, the benchmark's baseline), with the endpoint it
    /// was pointed at (`None`: AWS's own for `region`). The answer check is added here.
    pub fn new(client: Client, endpoint: Option<&str>, region: &str) -> Self {
        let endpoint = endpoint_for(endpoint, region);
        let conf = client.config().to_builder().interceptor(AnswerCheck::default()).build();
        Ec2 {
            client: Client::from_conf(conf),
            endpoint,
            region: region.to_string(),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Maps an SDK failure to a herd error that names this endpoint (`endpoint` and
    /// `region` in its context), for `.map_err(ec2.err())`.
    pub fn err<E, R>(&self) -> impl Fn(SdkError<E, R>) -> Error + '_
    where
        E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static + HasStatus,
    {
        move |e| self.context(from_sdk_at(e, Some(&self.endpoint)))
    }

    /// Adds this endpoint and region to an error's context.
    pub fn context(&self, e: Error) -> Error {
        e.with_context("endpoint", self.endpoint.clone())
            .with_context("region", self.region.clone())
    }
}

/// The URL herd's calls go to: the configured endpoint, `AWS_ENDPOINT_URL`, or EC2's
/// regional endpoint (`ec2.<region>.amazonaws.com`, AWS General Reference).
pub fn endpoint_for(configured: Option<&str>, region: &str) -> String {
    configured
        .map(str::to_string)
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_EC2").ok().filter(|e| !e.is_empty()))
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| format!("https://ec2.{region}.amazonaws.com"))
}

#[derive(Debug)]
pub struct Clients {
    cfg: AwsConfig,
    /// Fixed credentials instead of the default chain (tests); Debug redacts the secret.
    credentials: Option<aws_sdk_ec2::config::Credentials>,
    sdk: OnceCell<SdkConfig>,
    by_region: Mutex<HashMap<String, Ec2>>,
    /// HTTP requests sent by every region's client (each attempt, pages included).
    sent: Arc<AtomicU64>,
}

impl Clients {
    pub fn new(cfg: AwsConfig, credentials: Option<aws_sdk_ec2::config::Credentials>) -> Self {
        Clients {
            cfg,
            credentials,
            sdk: OnceCell::new(),
            by_region: Mutex::new(HashMap::new()),
            sent: Arc::new(AtomicU64::new(0)),
        }
    }

    /// HTTP requests sent to EC2 so far by this provider (`--verbose` reports them: one
    /// herd operation may be many requests, across regions and pages).
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async {
                let timeouts = TimeoutConfig::builder()
                    .operation_attempt_timeout(self.cfg.attempt_timeout)
                    .connect_timeout(self.cfg.connect_timeout)
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
    pub async fn get(&self, region: &str) -> Ec2 {
        if let Some(c) = self.by_region.lock().expect("clients lock").get(region) {
            return c.clone();
        }
        let sdk = self.sdk().await;
        let conf = aws_sdk_ec2::config::Builder::from(sdk)
            .region(Region::new(region.to_string()))
            .interceptor(AnswerCheck {
                sent: self.sent.clone(),
            })
            .build();
        let endpoint = endpoint_for(self.cfg.endpoint.as_deref().or(sdk.endpoint_url()), region);
        let ec2 = Ec2 {
            client: Client::from_conf(conf),
            endpoint,
            region: region.to_string(),
        };
        self.by_region
            .lock()
            .expect("clients lock")
            .entry(region.to_string())
            .or_insert(ec2)
            .clone()
    }

    pub fn config(&self) -> &AwsConfig {
        &self.cfg
    }
}

/// Why an answer was refused before the SDK's output was used. Kept as the SDK error's
/// source so [`crate::error::from_sdk`] can say what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedAnswer {
    pub action: String,
    pub why: String,
}

impl std::fmt::Display for MalformedAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EC2's answer to {} was malformed: {}", self.action, self.why)
    }
}

impl std::error::Error for MalformedAnswer {}

/// Checks each successful answer's body is whole before it is used, and counts what
/// goes on the wire.
#[derive(Debug, Default)]
struct AnswerCheck {
    sent: Arc<AtomicU64>,
}

impl Intercept for AnswerCheck {
    fn name(&self) -> &'static str {
        "herd-answer-check"
    }

    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let resp = ctx.response();
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            // An error answer is read for its code; a broken one falls back on the status.
            return Ok(());
        }
        let action = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "a request".into());
        let declared = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        // Non-streaming answers are in memory by now; EC2 has no streaming ones.
        let Some(body) = resp.body().bytes() else {
            return Ok(());
        };
        check_answer(body, declared).map_err(|why| Box::new(MalformedAnswer { action, why }) as BoxError)
    }
}

/// Whether `body` is a whole EC2 XML answer: as long as declared, one root element that is
/// closed, and not a `<return>false</return>` (EC2's "not done" on output-less calls).
pub fn check_answer(body: &[u8], declared_len: Option<usize>) -> Result<(), String> {
    if let Some(n) = declared_len {
        if n != body.len() {
            return Err(format!("{} bytes of a declared {n}", body.len()));
        }
    }
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8".to_string())?;
    let root = root_element(text).ok_or_else(|| {
        if text.trim().is_empty() {
            "an empty body".to_string()
        } else {
            "no XML root element".to_string()
        }
    })?;
    let end = text.trim_end();
    let closed = end.ends_with(&format!("</{root}>")) || (end.ends_with("/>") && self_closing_root(text, root));
    if !closed {
        return Err(format!("the body ends before `</{root}>` (cut short)"));
    }
    if compact(text).contains("<return>false</return>") {
        return Err("EC2 answered `return=false`: the action was not done".into());
    }
    Ok(())
}

/// The name of the first element, after an XML declaration and comments.
fn root_element(text: &str) -> Option<&str> {
    let mut rest = text.trim_start_matches('\u{feff}').trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("<?") {
            rest = r.split_once("?>")?.1.trim_start();
        } else if let Some(r) = rest.strip_prefix("<!--") {
            rest = r.split_once("-->")?.1.trim_start();
        } else {
            break;
        }
    }
    let r = rest.strip_prefix('<')?;
    let end = r.find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
    let name = &r[..end];
    (!name.is_empty()).then_some(name)
}

/// `<Root .../>` and nothing after it.
fn self_closing_root(text: &str, root: &str) -> bool {
    let Some(start) = text.find(&format!("<{root}")) else {
        return false;
    };
    match text[start..].find('>') {
        Some(i) => text[start..start + i + 1].ends_with("/>") && text[start + i + 1..].trim().is_empty(),
        None => false,
    }
}

fn compact(text: &str) -> String {
    text.split_whitespace().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHOLE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse xmlns=\"x\">\
        <reservationSet><item/></reservationSet></DescribeInstancesResponse>\n";

    #[test]
    fn a_whole_answer_passes() {
        assert_eq!(check_answer(WHOLE.as_bytes(), Some(WHOLE.len())), Ok(()));
        assert_eq!(check_answer(b"<Ok/>", None), Ok(()));
        assert_eq!(
            check_answer(
                b"<DeleteKeyPairResponse><return>true</return></DeleteKeyPairResponse>",
                None
            ),
            Ok(())
        );
    }

    #[test]
    fn a_cut_answer_is_refused_wherever_it_is_cut() {
        for cut in [1, 10, 40, 60, WHOLE.len() - 30, WHOLE.len() - 3] {
            let e = check_answer(&WHOLE.as_bytes()[..cut], None).unwrap_err();
            assert!(!e.is_empty(), "{cut}");
        }
        assert!(check_answer(b"", None).unwrap_err().contains("empty"));
        assert!(check_answer(WHOLE.as_bytes(), Some(WHOLE.len() + 5))
            .unwrap_err()
            .contains("declared"));
    }

    #[test]
    fn return_false_is_not_done() {
        let e = check_answer(
            b"<DeleteVolumeResponse>\n<return>false</return>\n</DeleteVolumeResponse>",
            None,
        );
        assert!(e.unwrap_err().contains("return=false"));
    }

    #[test]
    fn endpoint_defaults_to_the_regional_one() {
        assert_eq!(
            endpoint_for(Some("http://127.0.0.1:1"), "eu-west-1"),
            "http://127.0.0.1:1"
        );
        if std::env::var_os("AWS_ENDPOINT_URL").is_none() && std::env::var_os("AWS_ENDPOINT_URL_EC2").is_none() {
            assert_eq!(endpoint_for(None, "eu-west-1"), "https://ec2.eu-west-1.amazonaws.com");
        }
    }
}
