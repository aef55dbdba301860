//! [`GcpProvider`]: the [`Provider`] trait on Compute Engine. Each operation is a small
//! module; this file holds what they share (the client, made on first use; zones seen)
//! and the capability sheet.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herd_core::plumbing::lookup::{launch_once, Start};
use herd_core::plumbing::{check_owned, in_order, PartialLaunches};
use herd_core::{
    tags, BillingRule, Capabilities, Catalog, Cloud, DeadlineEnforcement, Error, ErrorKind, ExecOutput, ExecRequest,
    Instance, LaunchRequest, Leftover, ListRequest, Login, OutputSink, Provider, ProviderInfo, ReapResult, Result,
    TagLimits, TerminateResult,
};
use herd_guest::boot::Boot;
use herd_guest::expiry::{gce_metadata_headers, DeleteRequest, Expiry, MetadataValue, TokenSource as GuestToken};
use herd_guest::ssh::remote::{self, Sessions};
use herd_guest::ssh::HostKeyStore;
use tokio::sync::OnceCell;

use crate::auth::{Adc, TokenSource};
use crate::client::{region_of_zone, Gce};
use crate::config::GcpConfig;
use crate::launch::Call;
use crate::{access, images, launch, list, reap, terminate};

/// GCE's limit on `scheduling.terminationTime`: at most 120 days ahead
/// (<https://cloud.google.com/compute/docs/instances/limit-vm-runtime>).
pub const MAX_DEADLINE: chrono::TimeDelta = chrono::TimeDelta::days(120);
/// How often a launch found partly done is handed back before the rest is started.
pub const PARTIAL_PATIENCE: u32 = 1;

/// What the GCP backend declares it can do.
pub fn capabilities(catalog: &Catalog) -> Capabilities {
    let mut c = Capabilities::none(BillingRule::GCP);
    c.spot = true;
    c.gpu = false;
    c.tags = true;
    // bulkInsert creates up to 1,000 VMs per call
    // (https://cloud.google.com/compute/docs/instances/multiple/about-bulk-creation).
    c.max_launch_batch = 1000;
    c.max_terminate_batch = 1000;
    c.regions = catalog.regions(Cloud::Gcp).map(|r| r.name.clone()).collect();
    c.idempotent_launch = true;
    c.deadline = DeadlineEnforcement::Cloud;
    c.keepalive = true;
    c.leftovers = true;
    // Spot preemption notice: 30 s (https://cloud.google.com/compute/docs/instances/spot#preemption).
    c.spot_notice = Duration::from_secs(30);
    c.tag_limits = TagLimits::GCE.with_backend_tags(&[tags::REQUEST, tags::SPEC]);
    // Over SSH (herd-guest's transport), with the host key the boot script installs.
    c.exec = true;
    c
}

/// The environment variables tests redirect SSH with (`test-support` builds only).
pub const TEST_ADDRESS_MAP_ENV: &str = "HERD_GCP_TEST_ADDRESS_MAP";
pub const TEST_HOST_KEY_ENV: &str = "HERD_GCP_TEST_HOST_KEY";

/// Compute Engine behind herd's contract.
#[derive(Debug)]
pub struct GcpProvider {
    cfg: GcpConfig,
    caps: Capabilities,
    catalog: Catalog,
    tokens: Option<Arc<dyn TokenSource>>,
    gce: OnceCell<Gce>,
    partial: PartialLaunches,
    misses: Mutex<Vec<String>>,
    zones_of: Mutex<std::collections::HashMap<String, Vec<String>>>,
    /// VMs this process deleted: GCE forgets a deleted VM at once, so lists in this
    /// process show them as terminated, with when (what a person just ended stays visible).
    ended: Mutex<std::collections::HashMap<String, Instance>>,
    /// Open SSH sessions, one per instance, for the process.
    sessions: Sessions,
}

#[derive(Debug)]
pub struct GcpProviderBuilder {
    cfg: GcpConfig,
    catalog: Option<Catalog>,
    tokens: Option<Arc<dyn TokenSource>>,
}

impl GcpProviderBuilder {
    pub fn catalog(mut self, c: Catalog) -> Self {
        self.catalog = Some(c);
        self
    }
    /// Another token source than ADC (tests: a static token).
    pub fn tokens(mut self, t: Arc<dyn TokenSource>) -> Self {
        self.tokens = Some(t);
        self
    }
    pub fn build(self) -> GcpProvider {
        let catalog = self.catalog.unwrap_or_else(|| crate::bundled_catalog().clone());
        GcpProvider {
            caps: capabilities(&catalog),
            catalog,
            cfg: self.cfg,
            tokens: self.tokens,
            gce: OnceCell::new(),
            partial: PartialLaunches::new(PARTIAL_PATIENCE),
            misses: Mutex::new(Vec::new()),
            zones_of: Mutex::new(Default::default()),
            ended: Mutex::new(Default::default()),
            sessions: Sessions::default(),
        }
    }
}

fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

impl GcpProvider {
    pub fn builder(cfg: GcpConfig) -> GcpProviderBuilder {
        GcpProviderBuilder {
            cfg,
            catalog: None,
            tokens: None,
        }
    }

    /// Each launch's SSH host key, beside the owner's key.
    pub fn host_keys(&self) -> HostKeyStore {
        HostKeyStore::under(&self.cfg.key_dir)
    }

    /// How this backend reaches its VMs over SSH.
    fn access(&self) -> remote::Access<'_> {
        remote::Access {
            sessions: &self.sessions,
            key_dir: &self.cfg.key_dir,
            owner: &self.cfg.owner,
            user: &self.cfg.ssh_user,
            map_env: TEST_ADDRESS_MAP_ENV,
        }
    }

    /// The running instance `id` as GCE lists it now, if it is this owner's.
    async fn mine(&self, id: &str) -> Result<Instance> {
        let req = ListRequest::new().ids([id.to_string()]);
        let found = self.list(&req).await?;
        let inst = found
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| Error::not_found(format!("no instance {id} on GCP")).with_hint("`herd ls` lists yours"))?;
        // Core's owner check, on the tags this answer carries.
        check_owned("instance", &self.cfg.owner, [(id, &inst.tags)])?;
        Ok(inst)
    }

    pub fn config(&self) -> &GcpConfig {
        &self.cfg
    }

    /// Zones that had no capacity during the last launch.
    pub fn capacity_misses(&self) -> Vec<String> {
        self.misses.lock().expect("misses").clone()
    }

    /// The client: credentials found and the project known, once.
    async fn gce(&self) -> Result<&Gce> {
        self.gce
            .get_or_try_init(|| async {
                let tokens: Arc<dyn TokenSource> = match &self.tokens {
                    Some(t) => t.clone(),
                    None => Arc::new(Adc::discover(self.cfg.credentials.as_deref(), &process_env).await?),
                };
                let project = self
                    .cfg
                    .project
                    .clone()
                    .or_else(|| process_env("GOOGLE_CLOUD_PROJECT"))
                    .or_else(|| tokens.project())
                    .ok_or_else(|| {
                        Error::config(format!(
                            "no GCP project: herd has credentials ({}) but no project",
                            tokens.describe()
                        ))
                        .with_hint("set [gcp] project in herd.toml, or HERD_GCP_PROJECT")
                    })?;
                Ok(Gce::new(&self.cfg.api_base, &project, tokens, self.cfg.attempt_timeout))
            })
            .await
    }

    /// The zones of `region` to try, in order: `[gcp] zones`, else what `regions.get`
    /// says (asked once per region; the bundled catalog has no GCE zones).
    async fn zones(&self, region: &str) -> Result<Vec<String>> {
        let configured: Vec<String> = self
            .cfg
            .zones
            .iter()
            .filter(|z| region_of_zone(z) == region)
            .cloned()
            .collect();
        if !configured.is_empty() {
            return Ok(configured);
        }
        let from_catalog = self.catalog.find_region(Cloud::Gcp, region)?.zones.clone();
        if !from_catalog.is_empty() {
            return Ok(from_catalog);
        }
        if let Some(z) = self.zones_of.lock().expect("zones").get(region) {
            return Ok(z.clone());
        }
        let gce = self.gce().await?;
        let r = gce.get(&format!("regions/{region}"), &[], "regions.get").await?;
        let mut zones: Vec<String> = r
            .get("zones")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|z| z.as_str().map(|z| crate::client::last_segment(z).to_string()))
            .filter(|z| region_of_zone(z) == region)
            .collect();
        zones.sort();
        if zones.is_empty() {
            return Err(Error::unexpected(format!("Compute Engine lists no zones in {region}")).temporary(true));
        }
        self.zones_of
            .lock()
            .expect("zones")
            .insert(region.to_string(), zones.clone());
        Ok(zones)
    }

    /// Everything that can be refused without a call.
    fn check(&self, req: &LaunchRequest) -> Result<()> {
        self.catalog.find_type(Cloud::Gcp, &req.instance_type)?;
        let ahead = req.deadline - chrono::Utc::now();
        if ahead > MAX_DEADLINE {
            return Err(Error::invalid_spec(format!(
                "a deadline {} days ahead is more than Compute Engine allows (120 days)",
                ahead.num_days()
            ))
            .with_hint("use a shorter --deadline; GCE deletes the VM at its deadline itself"));
        }
        tags::check_limits(&self.caps.tag_limits, &tags::request_tags(req))?;
        Ok(())
    }

    /// A pinned zone must be one of the region's (read-only calls at most).
    fn check_zone(req: &LaunchRequest, zones: &[String]) -> Result<()> {
        if let Some(z) = &req.zone {
            if !zones.contains(z) {
                return Err(Error::invalid_spec(format!("unknown zone `{z}` in {}", req.region))
                    .with_suggestions(herd_core::suggest::did_you_mean(z, zones.iter().map(String::as_str), 3))
                    .with_hint(format!("zones of {}: {}", req.region, zones.join(", "))));
            }
        }
        Ok(())
    }

    /// The watchdog's delete: `instances.delete` on itself, with the VM's own
    /// service-account token, its zone and name read from the metadata server.
    fn expiry(&self) -> Result<Expiry> {
        let md = "http://metadata.google.internal/computeMetadata/v1/instance";
        let d = DeleteRequest::new(
            "DELETE",
            &format!("{}/compute/v1/{{zone}}/instances/{{name}}", self.cfg.api_base),
            vec![
                MetadataValue {
                    name: "zone".into(),
                    url: format!("{md}/zone"),
                },
                MetadataValue {
                    name: "name".into(),
                    url: format!("{md}/name"),
                },
            ],
            GuestToken::gce_default_service_account(),
            gce_metadata_headers(),
        )?;
        Ok(Expiry::Delete(d))
    }

    async fn ssh_cidr(&self) -> Result<String> {
        if let Some(c) = &self.cfg.ssh_cidr {
            access::check_cidr(c)?;
            return Ok(c.clone());
        }
        if self.cfg.is_fake() {
            return Ok("127.0.0.1/32".into());
        }
        herd_guest::address::caller_cidr(&Default::default())
            .await
            .map_err(|e| e.with_hint("set [gcp] ssh_cidr to your address with /32"))
    }
}

#[async_trait]
impl Provider for GcpProvider {
    fn info(&self) -> ProviderInfo {
        let project = self
            .gce
            .get()
            .map(|g| g.project.clone())
            .or_else(|| self.cfg.project.clone())
            .unwrap_or_else(|| "(project from the credentials)".into());
        ProviderInfo::new(Cloud::Gcp, project, self.cfg.home_region())
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn wire_requests(&self) -> Option<u64> {
        Some(self.gce.get().map_or(0, Gce::sent))
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<Vec<Instance>> {
        self.check(req)?;
        let arch = self.catalog.find_type(Cloud::Gcp, &req.instance_type)?.arch;
        let explicit = req.image.as_deref().or(match arch {
            herd_core::Arch::Arm64 => self.cfg.image_arm64.as_deref(),
            _ => self.cfg.image_x86_64.as_deref(),
        });
        let image = images::resolve(arch, &req.instance_type, explicit)?;
        let zones = self.zones(&req.region).await?;
        Self::check_zone(req, &zones)?;
        let ssh_key = herd_guest::key::local_key(&self.cfg.key_dir, &self.cfg.owner)?;
        let store = self.host_keys();
        remote::test_host_key(&store, req.launch_id.as_str(), TEST_HOST_KEY_ENV)?;
        let host_key = store.for_launch(req.launch_id.as_str())?;
        let expiry = self.expiry()?;
        let script = Boot {
            deadline: req.deadline,
            keepalive: req.keepalive,
            expiry: &expiry,
            setup: req.setup.as_deref(),
            command: req.command.as_deref(),
            // The owner's key also travels in `ssh-keys` metadata (the `herd` user); the
            // login here covers another configured user.
            host_key: Some(&host_key),
            login: Some(herd_guest::boot::Login {
                user: &self.cfg.ssh_user,
                public_key: &ssh_key,
            }),
        }
        .script();
        let gce = self.gce().await?;
        let owner = self.cfg.owner.clone();
        let lookup = || async {
            let filter = format!("labels.{} = \"{}\"", tags::REQUEST, req.launch_id);
            let found = list::aggregated(gce, &filter, list::PAGE).await?;
            Ok(found.into_iter().filter(|i| i.region == req.region).collect())
        };
        let start = |s: Start| {
            let (image, owner, ssh_key, script, zones) = (&image, &owner, &ssh_key, &script, &zones);
            async move {
                let cidr = self.ssh_cidr().await?;
                access::ensure(gce, owner, &cidr).await?;
                let call = Call {
                    req,
                    token: &s.token,
                    count: s.count,
                    image,
                    owner,
                    ssh_key,
                    startup_script: script,
                };
                launch::in_some_zone(gce, &call, zones, self.cfg.operation_budget, &self.misses).await
            }
        };
        launch_once(self, &owner, req, &self.partial, lookup, start).await
    }

    async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
        let gce = self.gce().await?;
        let (outcome, deleted) = terminate::terminate(gce, &self.cfg.owner, ids).await?;
        let now = chrono::Utc::now();
        let mut ended = self.ended.lock().expect("ended");
        for mut i in deleted {
            i.state = herd_core::InstanceState::Terminated;
            i.state_reason = Some("terminated by herd".into());
            i.ended_at = Some(now);
            ended.insert(i.id.clone(), i);
        }
        in_order(ids, &outcome)
    }

    async fn list(&self, req: &ListRequest) -> Result<Vec<Instance>> {
        let gce = self.gce().await?;
        let mut out = list::list(gce, req).await?;
        if req.regions.is_empty() && !self.cfg.regions.is_empty() {
            out.retain(|i| self.cfg.regions.contains(&i.region));
        }
        let ended = self.ended.lock().expect("ended");
        for i in ended.values() {
            if !out.iter().any(|o| o.id == i.id) && herd_core::plumbing::admits(req, i) {
                out.push(i.clone());
            }
        }
        Ok(out)
    }

    async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput> {
        self.exec_streaming(id, req, &mut |_, _| {}).await
    }

    async fn exec_streaming(&self, id: &str, req: &ExecRequest, sink: OutputSink<'_>) -> Result<ExecOutput> {
        let inst = self.mine(id).await?;
        self.access().exec(&inst, req, sink).await
    }

    async fn login(&self, id: &str) -> Result<Login> {
        let inst = self.mine(id).await?;
        self.access().login(&inst)
    }

    async fn leftovers(&self, owner: Option<&str>) -> Result<Vec<Leftover>> {
        let gce = self.gce().await?;
        let mut v = reap::leftovers(gce, owner).await?;
        v.sort_by(|a, b| (&a.region, &a.kind, &a.id).cmp(&(&b.region, &b.kind, &b.id)));
        Ok(v)
    }

    async fn reap(&self, items: &[Leftover]) -> Result<Vec<ReapResult>> {
        let gce = self.gce().await?;
        let mut out = Vec::with_capacity(items.len());
        for l in items {
            if !matches!(l.kind.as_str(), reap::DISK | reap::ADDRESS | reap::FIREWALL) {
                return Err(Error::new(
                    ErrorKind::InvalidSpec,
                    format!("GCP has no leftovers of kind {}", l.kind),
                ));
            }
            out.push(reap::reap_one(gce, l, &self.cfg.owner).await);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declares_cloud_deadlines_and_gce_labels() {
        let c = capabilities(crate::bundled_catalog());
        assert_eq!(c.deadline, DeadlineEnforcement::Cloud);
        assert_eq!(c.billing, BillingRule::GCP);
        assert_eq!(c.tag_limits.name, "GCE labels");
        assert!(c.regions.iter().any(|r| r == "us-central1"), "{:?}", c.regions);
    }
}
