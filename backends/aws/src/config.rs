//! What the AWS backend is told by the user: profile, region, endpoint, SSH source,
//! image overrides and where keys live. Credentials are never here: they come from
//! aws-config's default chain (environment, profiles, SSO, instance roles).

use std::path::PathBuf;
use std::time::Duration;

/// Settings of the AWS backend (the CLI fills it from `[aws]`, `HERD_AWS_*` and flags).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AwsConfig {
    /// A named profile from ~/.aws/config; `None`: the default chain picks.
    pub profile: Option<String>,
    /// The default region; `None`: the profile's or `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Another EC2 endpoint (an emulator); `None`: AWS's, or `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Who may reach instances by SSH; `None`: this machine's public address (/32).
    pub ssh_cidr: Option<String>,
    /// AMI ids used instead of the resolved Amazon Linux image, per architecture.
    pub image_x86_64: Option<String>,
    pub image_arm64: Option<String>,
    /// Where the per-owner private keys are kept (0600).
    pub key_dir: PathBuf,
    /// The owner whose key pair and security group launches use.
    pub owner: String,
    /// Regions that listing, terminating and reaping search when none is named; empty:
    /// every region enabled on the account (DescribeRegions).
    pub regions: Vec<String>,
    /// Longest wait for one HTTP attempt (connect, send, whole answer) before it counts
    /// as a `Timeout` (temporary: herd's retry loop decides whether to try again).
    /// Default [`DEFAULT_ATTEMPT_TIMEOUT`].
    pub attempt_timeout: Duration,
    /// Longest wait for a TCP and TLS connection to the endpoint. Default
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
}

/// 30 s per attempt: EC2 answers its calls in well under a second and RunInstances of a
/// thousand in a few seconds; an attempt past 30 s is a hang, and herd's retry loop
/// (with its total patience) takes it from there.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// 5 s to connect: a TCP and TLS handshake to a regional endpoint takes tens of
/// milliseconds; five seconds covers a slow network without hiding a dead one.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl AwsConfig {
    pub fn new(owner: impl Into<String>, key_dir: impl Into<PathBuf>) -> Self {
        AwsConfig {
            profile: None,
            region: None,
            endpoint: None,
            ssh_cidr: None,
            image_x86_64: None,
            image_arm64: None,
            key_dir: key_dir.into(),
            owner: owner.into(),
            regions: Vec::new(),
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
    pub fn profile(mut self, p: impl Into<String>) -> Self {
        self.profile = Some(p.into());
        self
    }
    pub fn region(mut self, r: impl Into<String>) -> Self {
        self.region = Some(r.into());
        self
    }
    pub fn endpoint(mut self, e: impl Into<String>) -> Self {
        self.endpoint = Some(e.into());
        self
    }
    pub fn ssh_cidr(mut self, c: impl Into<String>) -> Self {
        self.ssh_cidr = Some(c.into());
        self
    }
    pub fn regions(mut self, r: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.regions = r.into_iter().map(Into::into).collect();
        self
    }
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
}

/// The region used when neither herd's settings nor the AWS profile name one.
pub const FALLBACK_REGION: &str = "us-east-1";
