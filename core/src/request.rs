//! Requests and outputs of the [`Provider`](crate::Provider) operations. All are
//! `#[non_exhaustive]` with constructors and setters, so a new option is a new field,
//! never a breaking change.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::billing::BillingRule;
use crate::money::Money;
use crate::types::{InstanceState, LaunchId, Market, PurchaseOption, Tags};

/// What a user asks to launch. The [`Launcher`](crate::Launcher) turns it into a
/// [`LaunchRequest`] after validation, pricing and the budget check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LaunchSpec {
    pub instance_type: String,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub count: u32,
    pub market: Market,
    /// How long the instances may live; the cloud ends them then. `None`: the default.
    pub deadline: Option<Duration>,
    /// Idle timeout; `None`: the default. `Some(ZERO)` disables it.
    pub keepalive: Option<Duration>,
    pub cluster: Option<String>,
    /// The user's tags: no `herd-*` key ([`crate::tags::validate_user_tag`]).
    pub tags: Tags,
    /// Tags herd's own components set ([`crate::tags::COMPONENT_KEYS`], e.g. the sweep).
    #[serde(default)]
    pub herd_tags: Tags,
    /// Run once when the instance is up (user data).
    pub setup: Option<String>,
    /// Run after setup; the instance stays up after it ends, until terminated, idle or
    /// past its deadline.
    pub command: Option<String>,
    pub image: Option<String>,
    /// The idempotency key; generated when absent.
    pub launch_id: Option<LaunchId>,
}

impl LaunchSpec {
    pub fn new(instance_type: impl Into<String>, count: u32) -> Self {
        LaunchSpec {
            instance_type: instance_type.into(),
            region: None,
            zone: None,
            count,
            market: Market::OnDemand,
            deadline: None,
            keepalive: None,
            cluster: None,
            tags: Tags::new(),
            herd_tags: Tags::new(),
            setup: None,
            command: None,
            image: None,
            launch_id: None,
        }
    }
    pub fn region(mut self, r: impl Into<String>) -> Self {
        self.region = Some(r.into());
        self
    }
    pub fn zone(mut self, z: impl Into<String>) -> Self {
        self.zone = Some(z.into());
        self
    }
    pub fn market(mut self, m: Market) -> Self {
        self.market = m;
        self
    }
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }
    pub fn keepalive(mut self, d: Duration) -> Self {
        self.keepalive = Some(d);
        self
    }
    pub fn cluster(mut self, c: impl Into<String>) -> Self {
        self.cluster = Some(c.into());
        self
    }
    pub fn tag(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.tags.insert(k.into(), v.into());
        self
    }
    /// A tag of herd's own components (the sweep runner's `herd-sweep`); user tags may
    /// not use `herd-*` keys, so components say which they set.
    pub fn herd_tag(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.herd_tags.insert(k.into(), v.into());
        self
    }
    pub fn setup(mut self, s: impl Into<String>) -> Self {
        self.setup = Some(s.into());
        self
    }
    pub fn command(mut self, s: impl Into<String>) -> Self {
        self.command = Some(s.into());
        self
    }
    pub fn image(mut self, s: impl Into<String>) -> Self {
        self.image = Some(s.into());
        self
    }
    pub fn launch_id(mut self, id: LaunchId) -> Self {
        self.launch_id = Some(id);
        self
    }
}

/// A fully resolved launch, as a provider receives it: region chosen, deadline absolute,
/// herd's tags attached, price frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LaunchRequest {
    pub launch_id: LaunchId,
    pub instance_type: String,
    pub region: String,
    pub zone: Option<String>,
    pub count: u32,
    pub market: Market,
    pub deadline: DateTime<Utc>,
    pub keepalive: Option<Duration>,
    /// Every tag to put on every resource of the launch, herd's included.
    pub tags: Tags,
    pub setup: Option<String>,
    pub command: Option<String>,
    pub image: Option<String>,
    /// The on-demand hourly price quoted before launch.
    pub on_demand_price: Money,
    /// The spot hourly price quoted before launch, when spot was asked for.
    pub spot_price: Option<Money>,
}

impl LaunchRequest {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        launch_id: LaunchId,
        instance_type: impl Into<String>,
        region: impl Into<String>,
        count: u32,
        deadline: DateTime<Utc>,
        on_demand_price: Money,
    ) -> Self {
        LaunchRequest {
            launch_id,
            instance_type: instance_type.into(),
            region: region.into(),
            zone: None,
            count,
            market: Market::OnDemand,
            deadline,
            keepalive: None,
            tags: Tags::new(),
            setup: None,
            command: None,
            image: None,
            on_demand_price,
            spot_price: None,
        }
    }

    /// What makes two launches "the same spec" for idempotency: everything the user
    /// chose, not the instant it was asked (deadline, prices, herd's bookkeeping tags).
    pub fn fingerprint(&self) -> String {
        let mut h = Fnv::default();
        self.instance_type.hash(&mut h);
        self.region.hash(&mut h);
        self.zone.hash(&mut h);
        self.count.hash(&mut h);
        self.market.hash(&mut h);
        self.setup.hash(&mut h);
        self.command.hash(&mut h);
        self.image.hash(&mut h);
        for (k, v) in &self.tags {
            if !matches!(
                k.as_str(),
                crate::tags::DEADLINE | crate::tags::PRICE | crate::tags::LAUNCH
            ) {
                (k, v).hash(&mut h);
            }
        }
        format!("{:016x}", h.0)
    }
}

/// FNV-1a: a stable hash (std's `DefaultHasher` may change between releases, and
/// fingerprints are stored).
struct Fnv(u64);
impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}
impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TerminateOutcome {
    Terminated,
    /// Unknown id or already terminated: success, so cleanup and retries stay simple.
    AlreadyGone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TerminateResult {
    pub id: String,
    pub outcome: TerminateOutcome,
}

impl TerminateResult {
    pub fn new(id: impl Into<String>, outcome: TerminateOutcome) -> Self {
        TerminateResult { id: id.into(), outcome }
    }
}

/// Which instances to list. Empty filters match everything; pagination stays inside the
/// backend (`page_size` only tunes it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ListRequest {
    pub regions: Vec<String>,
    /// Every pair must match.
    pub tags: Tags,
    pub states: Vec<InstanceState>,
    pub ids: Vec<String>,
    pub page_size: Option<u32>,
}

impl ListRequest {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn region(mut self, r: impl Into<String>) -> Self {
        self.regions.push(r.into());
        self
    }
    pub fn tag(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.tags.insert(k.into(), v.into());
        self
    }
    pub fn state(mut self, s: InstanceState) -> Self {
        self.states.push(s);
        self
    }
    pub fn ids(mut self, ids: impl IntoIterator<Item = String>) -> Self {
        self.ids.extend(ids);
        self
    }
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n);
        self
    }
    /// Live states only (not terminated).
    pub fn live(self) -> Self {
        self.state(InstanceState::Pending)
            .state(InstanceState::Running)
            .state(InstanceState::ShuttingDown)
    }

    /// Whether an instance passes the filters (for backends that filter client-side).
    pub fn matches(&self, i: &crate::types::Instance) -> bool {
        (self.regions.is_empty() || self.regions.iter().any(|r| r == &i.region))
            && (self.states.is_empty() || self.states.contains(&i.state))
            && (self.ids.is_empty() || self.ids.iter().any(|id| id == &i.id))
            && self.tags.iter().all(|(k, v)| i.tags.get(k) == Some(v))
    }
}

/// A price question: what does this type cost here, bought this way?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QuoteRequest {
    pub instance_type: String,
    pub region: String,
    pub purchase: PurchaseOption,
}

impl QuoteRequest {
    pub fn new(instance_type: impl Into<String>, region: impl Into<String>, purchase: PurchaseOption) -> Self {
        QuoteRequest {
            instance_type: instance_type.into(),
            region: region.into(),
            purchase,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Quote {
    pub instance_type: String,
    pub region: String,
    pub purchase: PurchaseOption,
    pub hourly: Money,
    pub billing: BillingRule,
    /// Where the price comes from and how old it is.
    pub source: String,
    pub as_of: NaiveDate,
}

impl Quote {
    pub fn new(
        req: &QuoteRequest,
        hourly: Money,
        billing: BillingRule,
        source: impl Into<String>,
        as_of: NaiveDate,
    ) -> Self {
        Quote {
            instance_type: req.instance_type.clone(),
            region: req.region.clone(),
            purchase: req.purchase,
            hourly,
            billing,
            source: source.into(),
            as_of,
        }
    }

    /// The bill for running `count` instances for `d`.
    pub fn for_duration(&self, count: u32, d: Duration) -> Money {
        self.billing.charge(self.hourly, d).times(count.into())
    }
}

/// A billable resource carrying herd's tags that no live instance needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Leftover {
    /// `volume`, `address`, `network-interface`, `security-group`, `key-pair`, ...
    pub kind: String,
    pub id: String,
    pub region: String,
    pub cost_per_day: Money,
    pub tags: Tags,
    /// Why it is considered left over.
    pub reason: String,
}

impl Leftover {
    pub fn new(kind: impl Into<String>, id: impl Into<String>, region: impl Into<String>, cost_per_day: Money) -> Self {
        Leftover {
            kind: kind.into(),
            id: id.into(),
            region: region.into(),
            cost_per_day,
            tags: Tags::new(),
            reason: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReapResult {
    pub kind: String,
    pub id: String,
    pub outcome: TerminateOutcome,
    /// Set when this item could not be deleted (it is still there, still billing);
    /// `outcome` is then meaningless. Reap goes on past a failed item and reports each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReapResult {
    pub fn new(kind: impl Into<String>, id: impl Into<String>, outcome: TerminateOutcome) -> Self {
        ReapResult {
            kind: kind.into(),
            id: id.into(),
            outcome,
            error: None,
        }
    }

    /// An item reap tried and failed to delete, with why.
    pub fn failed(kind: impl Into<String>, id: impl Into<String>, error: impl Into<String>) -> Self {
        ReapResult {
            kind: kind.into(),
            id: id.into(),
            outcome: TerminateOutcome::Terminated,
            error: Some(error.into()),
        }
    }

    pub fn is_failed(&self) -> bool {
        self.error.is_some()
    }
}

/// Which output stream of a command bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Where a streaming exec hands output as it arrives.
pub type OutputSink<'a> = &'a mut (dyn FnMut(OutputStream, &[u8]) + Send);

/// A command to run inside an instance (like one SSH session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecRequest {
    pub command: String,
    pub timeout: Option<Duration>,
    pub env: Vec<(String, String)>,
}

impl ExecRequest {
    pub fn new(command: impl Into<String>) -> Self {
        ExecRequest {
            command: command.into(),
            timeout: None,
            env: Vec::new(),
        }
    }
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
}

/// How a person gets a shell on an instance (`herd ssh`): the backend says where and with
/// which credentials; the CLI runs the shell, so the terminal is the user's own.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Login {
    /// An SSH server, reached with the system `ssh` and the host key pinned.
    Ssh(SshLogin),
    /// A process on this machine (the simulator): a shell in the instance's volume.
    Local {
        dir: std::path::PathBuf,
        env: Vec<(String, String)>,
    },
}

/// Everything `ssh` needs to log in to an instance without trusting on first use.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SshLogin {
    pub addr: std::net::SocketAddr,
    pub user: String,
    /// The owner's private key file (the secret stays on disk; only its path travels).
    pub identity: std::path::PathBuf,
    /// The instance's host key, one OpenSSH public-key line (`ssh-ed25519 AAAA...`).
    pub host_key: String,
    /// Where herd's commands run, relative to the login's home, if the backend has one.
    pub work_dir: Option<String>,
}

impl SshLogin {
    pub fn new(
        addr: std::net::SocketAddr,
        user: impl Into<String>,
        identity: impl Into<std::path::PathBuf>,
        host_key: impl Into<String>,
    ) -> Self {
        SshLogin {
            addr,
            user: user.into(),
            identity: identity.into(),
            host_key: host_key.into(),
            work_dir: None,
        }
    }

    pub fn work_dir(mut self, dir: impl Into<String>) -> Self {
        self.work_dir = Some(dir.into());
        self
    }
}

/// The last `cap` bytes of a stream and how many went by in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputTail {
    buf: VecDeque<u8>,
    cap: usize,
    total: u64,
}

impl OutputTail {
    pub fn new(cap: usize) -> Self {
        OutputTail {
            buf: VecDeque::new(),
            cap,
            total: 0,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let data = &data[data.len().saturating_sub(self.cap)..];
        let over = (self.buf.len() + data.len()).saturating_sub(self.cap);
        self.buf.drain(..over.min(self.buf.len()));
        self.buf.extend(data);
    }

    /// The kept bytes, oldest first.
    pub fn bytes(&self) -> Vec<u8> {
        self.buf.iter().copied().collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Bytes kept now (never more than the cap).
    pub fn retained(&self) -> usize {
        self.buf.len()
    }

    /// Bytes the stream carried in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether older bytes were dropped.
    pub fn truncated(&self) -> bool {
        self.total > self.buf.len() as u64
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecOutput {
    /// `None` when killed by a signal or the timeout.
    pub exit_code: Option<i32>,
    /// The end of stdout: a backend may keep only its last bytes (64 KiB over SSH), so
    /// a command's 100 MB cost the tail; the whole went by the streaming sink.
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    pub timed_out: bool,
    /// Bytes the command wrote to both streams in all (what the chatty-log warning
    /// measures): at least the kept text's length.
    #[serde(default)]
    pub output_bytes: u64,
}

impl ExecOutput {
    pub fn new(exit_code: Option<i32>, stdout: String, stderr: String, wall: Duration, timed_out: bool) -> Self {
        let output_bytes = (stdout.len() + stderr.len()) as u64;
        ExecOutput {
            exit_code,
            stdout,
            stderr,
            wall,
            timed_out,
            output_bytes,
        }
    }

    /// The streams' full size when more went by than the kept text.
    pub fn with_output_bytes(mut self, bytes: u64) -> Self {
        self.output_bytes = self.output_bytes.max(bytes);
        self
    }
}
