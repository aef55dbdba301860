//! [`AwsProvider`]: the [`Provider`] trait on EC2. Each operation is a small module;
//! this file holds the state they share (clients, caches) and the capability sheet.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use async_trait::async_trait;
use herd_core::plumbing::lookup::{launch_once, Start};
use herd_core::plumbing::{check_owned, fan_out, in_order, PartialLaunches};
use herd_core::{
    tags, Arch, BillingRule, Capabilities, Catalog, Cloud, DeadlineEnforcement, Error, ErrorKind, ExecOutput,
    ExecRequest, Instance, LaunchRequest, Leftover, ListRequest, Login, OutputSink, Provider, ProviderInfo, ReapResult,
    Result, SharedClock, SshLogin, SystemClock, TagLimits, Tags, TerminateOutcome, TerminateResult,
};

use crate::access::{caller_cidr, AccessCache};
use crate::client::Clients;
use crate::config::{AwsConfig, FALLBACK_REGION};
use crate::images::ImageCache;
use crate::launch::{run_with_zone_fallback, Prepared};
use crate::spot::SpotPrice;
use crate::{launch, list, reap, spot, terminate, userdata};
use herd_guest::ssh::ClientKey;

/// EC2 behind herd's contract.
#[derive(Debug)]
pub struct AwsProvider {
    clients: Clients,
    caps: Capabilities,
    catalog: Catalog,
    clock: SharedClock,
    default_region: String,
    images: ImageCache,
    access: AccessCache,
    /// Where each instance this process has seen lives, so terminate goes to its region.
    regions_of: Mutex<HashMap<String, String>>,
    /// The account's enabled regions, once asked.
    enabled: tokio::sync::OnceCell<Vec<String>>,
    /// Zones that had no capacity during the last launch (oldest first).
    capacity_misses: Mutex<Vec<String>>,
    /// Instances this process launched: when, and how often EC2 has since said it does
    /// not know them (it may not, for a while: eventual consistency).
    launched: Mutex<HashMap<String, (DateTime<Utc>, u32)>>,
    /// Launch ids whose earlier call is only partly visible, and how often seen so.
    partial: PartialLaunches,
    /// SSH sessions to instances, one per instance, for `exec`.
    sessions: crate::exec::Sessions,
}

/// How long after its launch an instance EC2 says it does not know is taken for not yet
/// visible rather than gone. EC2 documents eventual consistency without a bound
/// ("Eventual consistency in the Amazon EC2 API"); its lags are seconds, so minutes.
pub const JUST_LAUNCHED: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// How many "not found" answers for a just-launched instance are retried (as temporary
/// errors, by herd's retry loop) before it counts as gone.
pub const NOT_FOUND_PATIENCE: u32 = 3;
/// How many times a launch found partly done is handed back to the retry loop (EC2 may
/// not show all of a call's instances yet) before the rest is launched.
pub const PARTIAL_PATIENCE: u32 = 2;

/// What the AWS backend declares it can do.
pub fn capabilities() -> Capabilities {
    let mut c = Capabilities::none(BillingRule::AWS);
    c.spot = true;
    // spot-or-on-demand: the Launcher asks again on-demand after a capacity error.
    c.spot_fallback = false;
    c.gpu = true;
    c.tags = true;
    // One RunInstances call for up to 1,000; EC2 refuses more than the account's quota
    // with InstanceLimitExceeded / VcpuLimitExceeded, whatever the batch.
    c.max_launch_batch = 1000;
    c.max_terminate_batch = terminate::MAX_BATCH as u32;
    c.idempotent_launch = true;
    c.deadline = DeadlineEnforcement::Guest;
    c.keepalive = true;
    // Over SSH (herd-guest's transport), host keys pinned per launch: see exec.rs.
    c.exec = true;
    c.leftovers = true;
    c.spot_notice = Duration::from_secs(120);
    // EC2's tag rules; the request id and spec fingerprint are added to every resource.
    c.tag_limits = TagLimits::EC2.with_backend_tags(&[tags::REQUEST, tags::SPEC]);
    c
}

#[derive(Debug)]
pub struct AwsProviderBuilder {
    cfg: AwsConfig,
    catalog: Option<Catalog>,
    clock: SharedClock,
    credentials: Option<aws_sdk_ec2::config::Credentials>,
}

impl AwsProviderBuilder {
    /// Another catalog than the bundled one (tests, a refreshed overlay).
    pub fn catalog(mut self, c: Catalog) -> Self {
        self.catalog = Some(c);
        self
    }
    pub fn clock(mut self, c: SharedClock) -> Self {
        self.clock = c;
        self
    }
    /// Fixed credentials instead of aws-config's chain: for emulators in tests, so no
    /// profile, SSO or instance-metadata lookup happens.
    pub fn static_credentials(mut self, access_key: &str, secret_key: &str) -> Self {
        self.credentials = Some(aws_sdk_ec2::config::Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "herd-static",
        ));
        self
    }
    pub fn build(self) -> AwsProvider {
        let default_region = self
            .cfg
            .region
            .clone()
            .or_else(|| region_from_env(self.cfg.profile.as_deref()))
            .unwrap_or_else(|| FALLBACK_REGION.to_string());
        let mut cfg = self.cfg;
        cfg.region = Some(default_region.clone());
        AwsProvider {
            clients: Clients::new(cfg, self.credentials),
            caps: capabilities(),
            catalog: self.catalog.unwrap_or_else(|| crate::bundled_catalog().clone()),
            clock: self.clock,
            default_region,
            images: ImageCache::default(),
            access: AccessCache::default(),
            regions_of: Mutex::new(HashMap::new()),
            enabled: tokio::sync::OnceCell::new(),
            capacity_misses: Mutex::new(Vec::new()),
            launched: Mutex::new(HashMap::new()),
            partial: PartialLaunches::new(PARTIAL_PATIENCE),
            sessions: crate::exec::Sessions::default(),
        }
    }
}

/// The region the environment or the profile names: AWS_REGION, AWS_DEFAULT_REGION,
/// then `region` in the profile's section of ~/.aws/config (or AWS_CONFIG_FILE).
fn region_from_env(profile: Option<&str>) -> Option<String> {
    for v in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(r) = std::env::var(v).ok().filter(|r| !r.is_empty()) {
            return Some(r);
        }
    }
    let path = std::env::var_os("AWS_CONFIG_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".aws/config")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let profile = profile
        .map(str::to_string)
        .or_else(|| std::env::var("AWS_PROFILE").ok())
        .unwrap_or_else(|| "default".into());
    region_in_config(&text, &profile)
}

fn region_in_config(text: &str, profile: &str) -> Option<String> {
    let want = [format!("[profile {profile}]"), format!("[{profile}]")];
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = want.iter().any(|w| w == line);
        } else if inside {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == "region" {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

impl AwsProvider {
    pub fn builder(cfg: AwsConfig) -> AwsProviderBuilder {
        AwsProviderBuilder {
            cfg,
            catalog: None,
            clock: Arc::new(SystemClock),
            credentials: None,
        }
    }

    pub fn config(&self) -> &AwsConfig {
        self.clients.config()
    }

    /// Zones that reported no capacity during the last launch, before it landed.
    pub fn capacity_misses(&self) -> Vec<String> {
        self.capacity_misses.lock().expect("misses").clone()
    }

    /// The live spot prices of `types` in `region` (all zones), for `herd cost` and
    /// `herd catalog refresh --cloud aws`.
    pub async fn spot_prices(&self, region: &str, types: &[String]) -> Result<Vec<SpotPrice>> {
        let client = self.clients.get(region).await;
        spot::current(&client, region, types, self.clock.now())
            .await
            .map_err(|e| client.context(e))
    }

    /// Where an instance herd has not seen in this process may be: ids are per region.
    fn remember(&self, instances: &[Instance]) {
        let mut m = self.regions_of.lock().expect("regions");
        for i in instances {
            m.insert(i.id.clone(), i.region.clone());
        }
    }

    /// Instances this process started, so a "not found" moments later is taken for EC2
    /// catching up, not for gone.
    fn note_launched(&self, instances: &[Instance]) {
        self.remember(instances);
        let now = self.clock.now();
        let mut m = self.launched.lock().expect("launched");
        for i in instances {
            m.insert(i.id.clone(), (now, 0));
        }
    }

    /// The instances among `ids` that EC2 knows, each read by id where it was last seen
    /// (else the default region), then in every other searched region at once.
    async fn describe_anywhere(&self, ids: &[String]) -> Result<Vec<(String, aws_sdk_ec2::types::Instance)>> {
        let mut asked: HashMap<String, String> = HashMap::new();
        {
            let known = self.regions_of.lock().expect("regions");
            for id in ids {
                let r = known.get(id).cloned().unwrap_or_else(|| self.default_region.clone());
                asked.insert(id.clone(), r);
            }
        }
        let mut by_region: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in ids {
            by_region.entry(asked[id].clone()).or_default().push(id.clone());
        }
        let describe = |region: String, ids: Vec<String>| async move {
            let ec2 = self.clients.get(&region).await;
            terminate::describe_ids(&ec2, &ids).await
        };
        let first = fan_out(by_region.keys().cloned().collect::<Vec<_>>(), |r| {
            let ids = by_region[&r].clone();
            describe(r, ids)
        })
        .await?;
        let mut found: Vec<(String, aws_sdk_ec2::types::Instance)> = first
            .into_iter()
            .flat_map(|(r, v)| v.into_iter().map(move |i| (r.clone(), i)))
            .collect();
        let mut seen: HashSet<String> = found
            .iter()
            .filter_map(|(_, i)| i.instance_id().map(str::to_string))
            .collect();
        let rest: Vec<String> = ids.iter().filter(|id| !seen.contains(*id)).cloned().collect();
        if rest.is_empty() {
            return Ok(found);
        }
        let here = |region: &str| -> Vec<String> { rest.iter().filter(|id| asked[*id] != region).cloned().collect() };
        let others: Vec<String> = self
            .enabled_regions()
            .await?
            .into_iter()
            .filter(|r| !here(r).is_empty())
            .collect();
        for (region, v) in fan_out(others, |r| {
            let ids = here(&r);
            describe(r, ids)
        })
        .await?
        {
            for i in v {
                // One instance, one region: a second answer for it is ignored.
                if i.instance_id().is_some_and(|id| seen.insert(id.to_string())) {
                    found.push((region.clone(), i));
                }
            }
        }
        Ok(found)
    }

    /// For an id no region knows: `true` while it was launched by this process moments ago
    /// and EC2 has not said so too often (then it is not visible yet, not gone).
    fn maybe_not_visible_yet(&self, id: &str) -> bool {
        let now = self.clock.now();
        let mut m = self.launched.lock().expect("launched");
        match m.get_mut(id) {
            Some((at, strikes)) if now - *at < JUST_LAUNCHED && *strikes < NOT_FOUND_PATIENCE => {
                *strikes += 1;
                true
            }
            _ => false,
        }
    }

    /// The regions to search, default first: the configured ones, else the account's
    /// enabled regions (asked once per process).
    async fn enabled_regions(&self) -> Result<Vec<String>> {
        let configured = self.config().regions.clone();
        let home = self.clients.get(&self.default_region).await;
        let all = self
            .enabled
            .get_or_try_init(|| async {
                if configured.is_empty() {
                    reap::enabled_regions(&home).await
                } else {
                    Ok(configured)
                }
            })
            .await?;
        let mut v = vec![self.default_region.clone()];
        v.extend(all.iter().filter(|r| **r != self.default_region).cloned());
        Ok(v)
    }

    async fn ssh_cidr(&self) -> Result<String> {
        let cfg = self.config();
        if let Some(c) = &cfg.ssh_cidr {
            return Ok(c.clone());
        }
        // An emulator stands in for EC2: nothing to reach from outside.
        if cfg.endpoint.is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some() {
            return Ok("127.0.0.1/32".into());
        }
        caller_cidr().await
    }

    /// Each launch's SSH host key, beside the owner's key.
    pub fn host_keys(&self) -> herd_guest::ssh::HostKeyStore {
        herd_guest::ssh::HostKeyStore::under(&self.config().key_dir)
    }

    /// The instance `id` as EC2 describes it now, if it is this owner's.
    async fn instance(&self, id: &str) -> Result<Instance> {
        let found = self.describe_anywhere(&[id.to_string()]).await?;
        let now = self.clock.now();
        let inst = found
            .iter()
            .find(|(_, i)| i.instance_id() == Some(id))
            .map(|(r, i)| crate::instance::convert(i, r, None, now))
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, format!("no instance {id} in the searched regions"))
                    .with_hint("check the id with `herd ls`")
            })?;
        // Core's owner check, on the tags this answer carries.
        check_owned("instance", &self.config().owner, [(id, &inst.tags)])?;
        Ok(inst)
    }

    fn arch_of(&self, instance_type: &str) -> Result<Arch> {
        Ok(self.catalog.find_type(Cloud::Aws, instance_type)?.arch)
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn info(&self) -> ProviderInfo {
        let account = self.config().profile.clone().unwrap_or_else(|| "default".into());
        ProviderInfo::new(Cloud::Aws, account, &self.default_region)
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn wire_requests(&self) -> Option<u64> {
        Some(self.clients.requests_sent())
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<Vec<Instance>> {
        let arch = self.arch_of(&req.instance_type)?;
        let cfg = self.config();
        let explicit = req.image.as_deref().or(match arch {
            Arch::X86_64 => cfg.image_x86_64.as_deref(),
            Arch::Arm64 => cfg.image_arm64.as_deref(),
        });
        // The launch's host key (the same on a retry under this id, so EC2 sees the
        // same user data) and the owner's key for herd's login.
        crate::exec::test_host_key(&self.host_keys(), req.launch_id.as_str())?;
        let host_key = self.host_keys().for_launch(req.launch_id.as_str())?;
        let owner_key = crate::access::local_key(&cfg.key_dir, &cfg.owner)?;
        let user_data = userdata::encoded(&userdata::script(
            req.deadline,
            req.keepalive,
            req.setup.as_deref(),
            req.command.as_deref(),
            Some(&host_key),
            Some(herd_guest::boot::Login {
                user: &cfg.ssh_user,
                public_key: &owner_key,
            }),
        ))?;
        let client = self.clients.get(&req.region).await;
        let ec2 = &client;
        let now = self.clock.now();
        // Core's idempotency lookup: what this request id already started, read from the
        // answer; a partial launch is completed under its own token, or ended.
        let lookup = || async move {
            let found = launch::lookup(ec2, &req.region, req, now).await?;
            // So that ending a partial launch asks the right region first.
            self.remember(&found);
            Ok(found)
        };
        let start = move |s: Start| async move {
            let image = self.images.resolve(ec2, arch, &req.instance_type, explicit).await?;
            let cidr = self.ssh_cidr().await?;
            let access = self.access.ensure(ec2, &cfg.owner, &cfg.key_dir, &cidr).await?;
            let p = Prepared {
                req,
                image,
                access,
                user_data,
                count: s.count,
                token: s.token,
            };
            let (got, misses) = run_with_zone_fallback(ec2, &p, &req.region, now).await?;
            *self.capacity_misses.lock().expect("misses") = misses;
            self.note_launched(&got);
            Ok(got)
        };
        let all = launch_once(self, &cfg.owner, req, &self.partial, lookup, start)
            .await
            .map_err(|e| client.context(e))?;
        self.remember(&all);
        Ok(all)
    }

    /// Only instances an answer shows are this owner's are terminated: each id is
    /// described first, and one foreign id refuses the whole call (nothing terminated).
    async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
        let owner = self.config().owner.clone();
        let mut outcome: HashMap<String, TerminateOutcome> = HashMap::new();
        let mut wanted: Vec<String> = Vec::new();
        for id in ids {
            if !terminate::is_instance_id(id) {
                // No EC2 instance can have this id.
                outcome.insert(id.clone(), TerminateOutcome::AlreadyGone);
            } else if !wanted.contains(id) {
                wanted.push(id.clone());
            }
        }
        let found = self.describe_anywhere(&wanted).await?;
        // Core's owner check, on the tags each answer carries: one foreign id refuses all.
        let tagged: Vec<(&str, Tags)> = found
            .iter()
            .map(|(_, i)| (i.instance_id().unwrap_or_default(), terminate::tags_of(i)))
            .collect();
        check_owned("instance", &owner, tagged.iter().map(|(id, t)| (*id, t))).map_err(|e| {
            e.with_hint(
                "leave it alone, or end it with the AWS console or `aws ec2 terminate-instances` if it is really yours",
            )
        })?;
        let mut to_end: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (region, i) in &found {
            let id = i.instance_id().unwrap_or_default();
            if terminate::has_ended(i) {
                outcome.insert(id.to_string(), TerminateOutcome::AlreadyGone);
            } else {
                to_end.entry(region.clone()).or_default().push(id.to_string());
            }
        }
        for id in &wanted {
            let known = found.iter().any(|(_, i)| i.instance_id() == Some(id.as_str()));
            if known {
                continue;
            }
            if self.maybe_not_visible_yet(id) {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("EC2 does not show instance {id} yet, which herd launched moments ago"),
                )
                .with_hint("EC2 is eventually consistent: herd asks again before calling it gone")
                .with_context("instance", id.clone()));
            }
            outcome.insert(id.clone(), TerminateOutcome::AlreadyGone);
        }
        let regions: Vec<String> = to_end.keys().cloned().collect();
        let ended = fan_out(regions, |region| {
            let ids = to_end[&region].clone();
            async move {
                let ec2 = self.clients.get(&region).await;
                terminate::terminate_checked(&ec2, &ids).await
            }
        })
        .await?;
        for t in ended.into_iter().flat_map(|(_, v)| v) {
            outcome.insert(t.id.clone(), t.outcome);
        }
        // Every id asked about gets an answer, in the order asked.
        in_order(ids, &outcome)
    }

    /// No regions asked: every enabled region (an instance launched elsewhere must still
    /// show up in `herd ls`, `herd cost` and `herd reap`), all at once.
    async fn list(&self, req: &ListRequest) -> Result<Vec<Instance>> {
        let regions = if req.regions.is_empty() {
            self.enabled_regions().await?
        } else {
            req.regions.clone()
        };
        let now = self.clock.now();
        // Core's fan-out: regions at once, answers in the order asked.
        let parts = fan_out(regions, |region| async move {
            let client = self.clients.get(&region).await;
            list::list_region(&client, &region, req, now).await
        })
        .await?;
        let out: Vec<Instance> = parts.into_iter().flat_map(|(_, l)| l.instances).collect();
        self.remember(&out);
        Ok(out)
    }

    async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput> {
        self.exec_streaming(id, req, &mut |_, _| {}).await
    }

    async fn exec_streaming(&self, id: &str, req: &ExecRequest, sink: OutputSink<'_>) -> Result<ExecOutput> {
        let inst = self.instance(id).await?;
        if inst.state != herd_core::InstanceState::Running {
            // An open session from before must not outlive the instance's end.
            self.sessions.drop_session(id).await;
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("instance {id} is {}, not running", inst.state),
            )
            .with_hint("wait for it (`herd ls`) or launch another"));
        }
        let cfg = self.config();
        let key = ClientKey::load(&crate::access::private_key_path(&cfg.key_dir, &cfg.owner))?;
        let addr = crate::exec::address(&inst)?;
        let session = self
            .sessions
            .get(&inst, addr, &cfg.ssh_user, &key, &self.host_keys())
            .await?;
        let r = crate::exec::run(&session, req, sink).await;
        if r.is_err() {
            self.sessions.drop_session(id).await;
        }
        r
    }

    /// The system `ssh` to the instance's address as the configured login, with the owner's
    /// key and the launch's pinned host key: the same target `exec` connects to.
    async fn login(&self, id: &str) -> Result<Login> {
        let inst = self.instance(id).await?;
        let cfg = self.config();
        let pinned = crate::exec::pinned_key(&inst, &self.host_keys())?;
        let addr = crate::exec::address(&inst)?;
        let identity = crate::access::private_key_path(&cfg.key_dir, &cfg.owner);
        Ok(Login::Ssh(
            SshLogin::new(addr, &cfg.ssh_user, identity, pinned.to_openssh()).work_dir(crate::exec::WORK_DIR),
        ))
    }

    async fn leftovers(&self, owner: Option<&str>) -> Result<Vec<Leftover>> {
        let regions = self.enabled_regions().await?;
        // Regions are independent: ask them all at once (tens of regions, six calls each).
        let found = fan_out(regions, |region| async move {
            let client = self.clients.get(&region).await;
            reap::leftovers_in(&client, &region, owner).await
        })
        .await?;
        let mut out: Vec<Leftover> = found.into_iter().flat_map(|(_, v)| v).collect();
        out.sort_by(|a, b| (&a.region, &a.kind, &a.id).cmp(&(&b.region, &b.kind, &b.id)));
        Ok(out)
    }

    /// Each item is checked again on the resource itself just before it is deleted;
    /// a failed item is reported and the rest still go.
    async fn reap(&self, items: &[Leftover]) -> Result<Vec<ReapResult>> {
        // Volumes, interfaces and addresses first: a group or key still referenced by them
        // would refuse to go.
        let order = |k: &str| match k {
            reap::SECURITY_GROUP | reap::KEY_PAIR => 1,
            _ => 0,
        };
        let mut sorted: Vec<&Leftover> = items.iter().collect();
        sorted.sort_by_key(|l| order(&l.kind));
        let owner = self.config().owner.clone();
        let mut out = Vec::with_capacity(items.len());
        for l in sorted {
            let ec2 = self.clients.get(&l.region).await;
            out.push(reap::reap_one(&ec2, l, &owner).await);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_region_is_read_from_its_section() {
        let text = "[default]\nregion = us-west-2\n[profile ml]\noutput=json\nregion=eu-west-1\n";
        assert_eq!(region_in_config(text, "ml").as_deref(), Some("eu-west-1"));
        assert_eq!(region_in_config(text, "default").as_deref(), Some("us-west-2"));
        assert_eq!(region_in_config(text, "nope"), None);
    }

    #[test]
    fn declares_guest_deadlines_and_big_batches() {
        let c = capabilities();
        assert_eq!(c.deadline, DeadlineEnforcement::Guest);
        assert_eq!((c.max_launch_batch, c.max_terminate_batch), (1000, 1000));
        assert_eq!(c.billing, BillingRule::AWS);
    }
}
