//! [`AwsProvider`]: the [`Provider`] trait on EC2. Each operation is a small module;
//! this file holds the state they share (clients, caches) and the capability sheet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herd_core::{
    Arch, BillingRule, Capabilities, Catalog, Cloud, DeadlineEnforcement, Error, Instance, LaunchRequest, Leftover,
    ListRequest, Provider, ProviderInfo, ReapResult, Result, SharedClock, SystemClock, TerminateOutcome,
    TerminateResult,
};

use crate::access::{caller_cidr, AccessCache};
use crate::client::Clients;
use crate::config::{AwsConfig, FALLBACK_REGION};
use crate::images::ImageCache;
use crate::launch::{run_with_zone_fallback, Prepared};
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
}

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
        spot::current(&client, region, types, self.clock.now()).await
    }

    /// Where an instance herd has not seen in this process may be: ids are per region.
    fn remember(&self, instances: &[Instance]) {
        let mut m = self.regions_of.lock().expect("regions");
        for i in instances {
            m.insert(i.id.clone(), i.region.clone());
        }
    }

    /// Which region each of `ids` lives in: the default region first, then every
    /// enabled region at once. Ids found nowhere are left out.
    async fn locate(&self, ids: &[String]) -> Result<Vec<(String, String)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let by_id = |ids: &[String]| ListRequest::new().ids(ids.iter().cloned());
        let home = self.clients.get(&self.default_region).await;
        let found = list::list_region(&home, &self.default_region, &by_id(ids), now).await?;
        let mut out: Vec<(String, String)> = found.instances.into_iter().map(|i| (i.id, i.region)).collect();
        let rest: Vec<String> = ids
            .iter()
            .filter(|id| !out.iter().any(|(x, _)| x == *id))
            .cloned()
            .collect();
        if rest.is_empty() {
            return Ok(out);
        }
        let mut set = tokio::task::JoinSet::new();
        for region in self.enabled_regions().await?.into_iter().skip(1) {
            let client = self.clients.get(&region).await;
            let req = by_id(&rest);
            set.spawn(async move { list::list_region(&client, &region, &req, now).await });
        }
        while let Some(r) = set.join_next().await {
            let r = r.map_err(|e| Error::unexpected(format!("a region's search stopped: {e}")))?;
            out.extend(r?.instances.into_iter().map(|i| (i.id, i.region)));
        }
        Ok(out)
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
        if let Some(found) = launch::existing(&client, &req.region, req, now).await? {
            self.remember(&found);
            return Ok(found);
        }
        let image = self
            .images
            .resolve(&client, &req.region, arch, &req.instance_type, explicit)
            .await?;
        let cidr = self.ssh_cidr().await?;
        let access = self
            .access
            .ensure(&client, &req.region, &cfg.owner, &cfg.key_dir, &cidr)
            .await?;
        let p = Prepared {
            req,
            image,
            access,
            user_data,
        };
        let (got, misses) = run_with_zone_fallback(&client, &p, &req.region, now).await?;
        *self.capacity_misses.lock().expect("misses") = misses;
        self.remember(&got);
        Ok(got)
    }

    async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
        let mut by_region: HashMap<String, Vec<String>> = HashMap::new();
        let mut unknown = Vec::new();
        {
            let known = self.regions_of.lock().expect("regions");
            for id in ids {
                match known.get(id) {
                    Some(r) => by_region.entry(r.clone()).or_default().push(id.clone()),
                    None => unknown.push(id.clone()),
                }
            }
        }
        // An id is only "already gone" once no region has it: a wrong guess must never
        // leave a running instance reported as terminated.
        for (id, region) in self.locate(&unknown).await? {
            by_region.entry(region).or_default().push(id);
        }
        let mut out = Vec::with_capacity(ids.len());
        for (region, ids) in by_region {
            let client = self.clients.get(&region).await;
            out.extend(terminate::terminate_region(&client, &ids).await?);
        }
        // Every id asked about gets an answer, in the order asked.
        let mut ordered = Vec::with_capacity(ids.len());
        for id in ids {
            let r = out
                .iter()
                .find(|t| &t.id == id)
                .cloned()
                .unwrap_or_else(|| TerminateResult::new(id, TerminateOutcome::AlreadyGone));
            ordered.push(r);
        }
        Ok(ordered)
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

    async fn reap(&self, items: &[Leftover]) -> Result<Vec<ReapResult>> {
        // Volumes, interfaces and addresses first: a group or key still referenced by them
        // would refuse to go.
        let order = |k: &str| match k {
            reap::SECURITY_GROUP | reap::KEY_PAIR => 1,
            _ => 0,
        };
        let mut sorted: Vec<&Leftover> = items.iter().collect();
        sorted.sort_by_key(|l| order(&l.kind));
        let mut out = Vec::with_capacity(items.len());
        for l in sorted {
            let client = self.clients.get(&l.region).await;
            out.push(reap::reap_one(&client, l).await?);
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
