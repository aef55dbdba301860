//! [`AwsProvider`]: the [`Provider`] trait on EC2. Each operation is a small module;
//! this file holds the state they share (clients, caches) and the capability sheet.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use async_trait::async_trait;
use herd_core::{
    tags, Arch, BillingRule, Capabilities, Catalog, Cloud, DeadlineEnforcement, Error, ErrorKind, Instance,
    LaunchRequest, Leftover, ListRequest, Provider, ProviderInfo, ReapResult, Result, SharedClock, SystemClock,
    TerminateOutcome, TerminateResult,
};

use crate::access::{caller_cidr, AccessCache};
use crate::client::Clients;
use crate::config::{AwsConfig, FALLBACK_REGION};
use crate::images::ImageCache;
use crate::launch::{run_with_zone_fallback, Existing, Prepared};
use crate::spot::SpotPrice;
use crate::{launch, list, reap, spot, terminate, userdata};

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
    partial_seen: Mutex<HashMap<String, u32>>,
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
    c.exec = false;
    c.leftovers = true;
    c.spot_notice = Duration::from_secs(120);
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
            partial_seen: Mutex::new(HashMap::new()),
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

    /// A partial launch that could not be completed is ended: its instances are
    /// terminated, and the error says so (permanent: a retry would find it half-done).
    async fn end_partial(&self, req: &LaunchRequest, found: &[Instance], e: Error) -> Error {
        let ids: Vec<String> = found.iter().map(|i| i.id.clone()).collect();
        let what = format!(
            "launch {} had {} of {} instances and starting the other {} failed ({})",
            req.launch_id,
            found.len(),
            req.count,
            req.count as usize - found.len(),
            e.message()
        );
        let ended = Provider::terminate(self, &ids).await;
        let out = match ended {
            Ok(_) => Error::new(e.kind(), format!("{what}; the {} found were terminated", ids.len()))
                .with_hint("nothing of this launch is left running; launch again with a new id"),
            Err(t) => Error::new(
                e.kind(),
                format!(
                    "{what}; terminating the {} found failed too ({})",
                    ids.len(),
                    t.message()
                ),
            )
            .with_hint(format!(
                "`herd down --launch {}` ends them; `herd ls` shows them",
                req.launch_id
            )),
        };
        let mut out = out
            .temporary(false)
            .with_context("launch_id", req.launch_id.to_string());
        for (k, v) in e.context() {
            out = out.with_context(k, v.clone());
        }
        out.with_source(e)
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
        let mut by_region: HashMap<String, Vec<String>> = HashMap::new();
        for id in ids {
            by_region.entry(asked[id].clone()).or_default().push(id.clone());
        }
        let mut found = Vec::new();
        for (region, ids) in by_region {
            let ec2 = self.clients.get(&region).await;
            for i in terminate::describe_ids(&ec2, &ids).await? {
                found.push((region.clone(), i));
            }
        }
        let seen: HashSet<String> = found
            .iter()
            .filter_map(|(_, i)| i.instance_id().map(str::to_string))
            .collect();
        let rest: Vec<String> = ids.iter().filter(|id| !seen.contains(*id)).cloned().collect();
        if rest.is_empty() {
            return Ok(found);
        }
        let mut set = tokio::task::JoinSet::new();
        for region in self.enabled_regions().await? {
            let here: Vec<String> = rest.iter().filter(|id| asked[*id] != region).cloned().collect();
            if here.is_empty() {
                continue;
            }
            let ec2 = self.clients.get(&region).await;
            set.spawn(async move { (region, terminate::describe_ids(&ec2, &here).await) });
        }
        let mut seen = seen;
        while let Some(r) = set.join_next().await {
            let (region, r) = r.map_err(|e| Error::unexpected(format!("a region's search stopped: {e}")))?;
            for i in r? {
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
        let user_data = userdata::encoded(&userdata::script(
            req.deadline,
            req.keepalive,
            req.setup.as_deref(),
            req.command.as_deref(),
        ))?;
        let client = self.clients.get(&req.region).await;
        let now = self.clock.now();
        let id = req.launch_id.to_string();
        let found = match launch::existing(&client, &req.region, req, &cfg.owner, now).await? {
            Existing::None => Vec::new(),
            Existing::All(found) => {
                self.partial_seen.lock().expect("partial").remove(&id);
                self.remember(&found);
                return Ok(found);
            }
            Existing::Partial(found) => {
                let seen = {
                    let mut m = self.partial_seen.lock().expect("partial");
                    let n = m.entry(id.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                if seen <= PARTIAL_PATIENCE {
                    // EC2 may not show every instance of a call yet: let the retry loop ask again.
                    return Err(client.context(
                        Error::new(
                            ErrorKind::Unavailable,
                            format!(
                                "launch {id} shows {} of its {} instances so far",
                                found.len(),
                                req.count
                            ),
                        )
                        .with_context("launch_id", id.clone()),
                    ));
                }
                found
            }
        };
        self.remember(&found);
        let rest = req.count - found.len() as u32;
        let started = async {
            let image = self.images.resolve(&client, arch, &req.instance_type, explicit).await?;
            let cidr = self.ssh_cidr().await?;
            let access = self.access.ensure(&client, &cfg.owner, &cfg.key_dir, &cidr).await?;
            let p = Prepared {
                req,
                image,
                access,
                user_data,
                count: rest,
                token: if found.is_empty() {
                    req.launch_id.to_string()
                } else {
                    launch::fill_token(req, found.len())
                },
            };
            run_with_zone_fallback(&client, &p, &req.region, now).await
        };
        match started.await {
            Ok((got, misses)) => {
                *self.capacity_misses.lock().expect("misses") = misses;
                self.note_launched(&got);
                self.partial_seen.lock().expect("partial").remove(&id);
                let mut all = found;
                all.extend(got);
                Ok(all)
            }
            Err(e) if found.is_empty() => Err(e),
            Err(e) => Err(self.end_partial(req, &found, e).await),
        }
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
        let mut refused = Vec::new();
        let mut to_end: HashMap<String, Vec<String>> = HashMap::new();
        for (region, i) in &found {
            let id = i.instance_id().unwrap_or_default();
            if let Some(r) = terminate::refusal("instance", id, &terminate::instance_owner(i, &owner)) {
                refused.push((id.to_string(), r));
            } else if terminate::has_ended(i) {
                outcome.insert(id.to_string(), TerminateOutcome::AlreadyGone);
            } else {
                to_end.entry(region.clone()).or_default().push(id.to_string());
            }
        }
        if !refused.is_empty() {
            let list: Vec<&str> = refused.iter().map(|(_, r)| r.as_str()).collect();
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{}; herd terminates only owner `{}`'s instances, so nothing was terminated",
                    list.join("; "),
                    tags::sanitize_value(&owner)
                ),
            )
            .with_hint(
                "leave it alone, or end it with the AWS console or `aws ec2 terminate-instances` if it is really yours",
            )
            .with_context("instance", refused[0].0.clone()));
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
        for (region, ids) in to_end {
            let ec2 = self.clients.get(&region).await;
            for t in terminate::terminate_checked(&ec2, &ids).await? {
                outcome.insert(t.id.clone(), t.outcome);
            }
        }
        // Every id asked about gets an answer, in the order asked.
        ids.iter()
            .map(|id| match outcome.get(id) {
                Some(o) => Ok(TerminateResult::new(id, *o)),
                None => Err(Error::unexpected(format!(
                    "herd lost track of instance {id} while terminating"
                ))),
            })
            .collect()
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
        let mut set = tokio::task::JoinSet::new();
        for (i, region) in regions.into_iter().enumerate() {
            let client = self.clients.get(&region).await;
            let req = req.clone();
            set.spawn(async move { (i, list::list_region(&client, &region, &req, now).await) });
        }
        let mut parts = Vec::new();
        while let Some(r) = set.join_next().await {
            let (i, r) = r.map_err(|e| Error::unexpected(format!("a region's listing stopped: {e}")))?;
            parts.push((i, r?.instances));
        }
        // Stable output: regions in the order asked.
        parts.sort_by_key(|(i, _)| *i);
        let out: Vec<Instance> = parts.into_iter().flat_map(|(_, v)| v).collect();
        self.remember(&out);
        Ok(out)
    }

    async fn leftovers(&self, owner: Option<&str>) -> Result<Vec<Leftover>> {
        let regions = self.enabled_regions().await?;
        // Regions are independent: ask them all at once (tens of regions, six calls each).
        let mut set = tokio::task::JoinSet::new();
        for region in regions {
            let client = self.clients.get(&region).await;
            let owner = owner.map(str::to_string);
            set.spawn(async move { reap::leftovers_in(&client, &region, owner.as_deref()).await });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            let r = r.map_err(|e| Error::unexpected(format!("a region's search stopped: {e}")))?;
            out.extend(r?);
        }
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
