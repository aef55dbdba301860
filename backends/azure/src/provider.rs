//! [`AzureProvider`]: the [`Provider`] trait on Azure Resource Manager. Each operation is
//! a small module; this file holds what they share (the SDK clients, made on first use,
//! after the subscription and credential are known) and the capability sheet.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herd_core::plumbing::lookup::{classify, launch_once, Existing, Start};
use herd_core::plumbing::{check_owned, in_order, PartialLaunches};
use herd_core::{
    tags, BillingRule, Capabilities, Catalog, Cloud, DeadlineEnforcement, Error, ErrorKind, ExecOutput, ExecRequest,
    Instance, LaunchRequest, Leftover, ListRequest, Login, OutputSink, Provider, ProviderInfo, ReapResult, Result,
    TagLimits, TerminateResult,
};
use herd_guest::boot::Boot;
use herd_guest::expiry::{azure_metadata_headers, DeleteRequest, Expiry, MetadataValue, TokenSource as GuestToken};
use herd_guest::ssh::remote::{self, Sessions};
use herd_guest::ssh::HostKeyStore;
use tokio::sync::OnceCell;

use crate::client::{Arm, Transport};
use crate::config::AzureConfig;
use crate::launch::{vm_name, Plan};
use crate::{access, images, launch, list, reap, schedule, skus, terminate};

/// What the Azure backend declares it can do.
pub fn capabilities(catalog: &Catalog) -> Capabilities {
    let mut c = Capabilities::none(BillingRule::AZURE);
    c.spot = true;
    c.gpu = false;
    c.tags = true;
    // One PUT per VM, paced to ARM's write bucket (200 burst, 10/s:
    // https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/request-limits-and-throttling);
    // 1,000 is herd's own bound for one call (about 80 s of writes).
    c.max_launch_batch = 1000;
    c.max_terminate_batch = 1000;
    c.regions = catalog.regions(Cloud::Azure).map(|r| r.name.clone()).collect();
    // Deterministic names from the launch id: a re-sent PUT converges.
    c.idempotent_launch = true;
    // The guest's watchdog deletes its own VM through ARM with its managed identity.
    c.deadline = DeadlineEnforcement::Guest;
    c.keepalive = true;
    c.leftovers = true;
    // Spot eviction notice: 30 s through Scheduled Events
    // (https://learn.microsoft.com/en-us/azure/virtual-machines/spot-vms#eviction-policy).
    c.spot_notice = Duration::from_secs(30);
    c.tag_limits = TagLimits::AZURE.with_backend_tags(&[tags::REQUEST, tags::SPEC]);
    // Over SSH (herd-guest's transport), with the host key the boot script installs.
    c.exec = true;
    c
}

/// The environment variables tests redirect SSH with (`test-support` builds only).
pub const TEST_ADDRESS_MAP_ENV: &str = "HERD_AZURE_TEST_ADDRESS_MAP";
pub const TEST_HOST_KEY_ENV: &str = "HERD_AZURE_TEST_HOST_KEY";

/// The compute API version the watchdog's DELETE uses (the SDK package's).
pub const COMPUTE_API_VERSION: &str = "2024-07-01";

/// ARM behind herd's contract.
#[derive(Debug)]
pub struct AzureProvider {
    cfg: AzureConfig,
    caps: Capabilities,
    catalog: Catalog,
    credential: Option<Arc<dyn azure_core::auth::TokenCredential>>,
    env: fn(&str) -> Option<String>,
    arm: OnceCell<Arm>,
    partial: PartialLaunches,
    misses: Mutex<Vec<String>>,
    ended: Mutex<std::collections::HashMap<String, Instance>>,
    /// Groups this process made ready (group, NSG with this SSH range, VNet): the subnet
    /// id by (group, range), so a retried launch does not PUT them again.
    ready: Mutex<std::collections::HashMap<(String, String), String>>,
    /// VMs made by attempts of a launch that ended in a temporary error, by launch id: the
    /// retry sends only the other PUTs, without a lookup first (a VM whose answer was lost
    /// is PUT again under its name, which converges on it).
    progress: Mutex<std::collections::HashMap<String, Vec<Instance>>>,
    /// The last launch's scheduled deletes, and whether stderr was told they are missing.
    deadline_layers: Mutex<schedule::Outcome>,
    warned: std::sync::atomic::AtomicBool,
    /// Open SSH sessions, one per instance, for the process.
    sessions: Sessions,
}

#[derive(Debug)]
pub struct AzureProviderBuilder {
    cfg: AzureConfig,
    catalog: Option<Catalog>,
    credential: Option<Arc<dyn azure_core::auth::TokenCredential>>,
    env: fn(&str) -> Option<String>,
}

fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

impl AzureProviderBuilder {
    pub fn catalog(mut self, c: Catalog) -> Self {
        self.catalog = Some(c);
        self
    }
    /// A fixed token instead of the credential chain (tests).
    pub fn token(mut self, t: impl Into<String>) -> Self {
        self.credential = Some(Arc::new(crate::auth::StaticToken::new(t)));
        self
    }
    /// Where variables are read from (tests: none at all).
    pub fn env(mut self, env: fn(&str) -> Option<String>) -> Self {
        self.env = env;
        self
    }
    pub fn build(self) -> AzureProvider {
        let catalog = self.catalog.unwrap_or_else(|| crate::bundled_catalog().clone());
        AzureProvider {
            caps: capabilities(&catalog),
            catalog,
            cfg: self.cfg,
            credential: self.credential,
            env: self.env,
            arm: OnceCell::new(),
            partial: PartialLaunches::new(1),
            misses: Mutex::new(Vec::new()),
            ended: Mutex::new(Default::default()),
            ready: Mutex::new(Default::default()),
            progress: Mutex::new(Default::default()),
            deadline_layers: Mutex::new(schedule::Outcome::All),
            warned: Default::default(),
            sessions: Sessions::default(),
        }
    }
}

impl AzureProvider {
    pub fn builder(cfg: AzureConfig) -> AzureProviderBuilder {
        AzureProviderBuilder {
            cfg,
            catalog: None,
            credential: None,
            env: process_env,
        }
    }

    pub fn config(&self) -> &AzureConfig {
        &self.cfg
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

    /// The running VM `id` as ARM lists it now, if it is this owner's, with its public
    /// address (a separate resource on Azure, read only here).
    async fn mine(&self, id: &str) -> Result<Instance> {
        let req = ListRequest::new().ids([id.to_string()]);
        let mut inst =
            self.list(&req).await?.into_iter().find(|i| i.id == id).ok_or_else(|| {
                Error::not_found(format!("no instance {id} on Azure")).with_hint("`herd ls` lists yours")
            })?;
        check_owned("instance", &self.cfg.owner, [(id, &inst.tags)])?;
        let group = list::group_of(&inst)
            .ok_or_else(|| Error::unexpected(format!("ARM listed VM {id} without its resource group")))?
            .to_string();
        if let Some(ip) = access::public_ip(self.arm().await?, &group, id).await? {
            inst.addresses.push(ip);
        }
        Ok(inst)
    }

    /// Zones that had no capacity during the last launch.
    pub fn capacity_misses(&self) -> Vec<String> {
        self.misses.lock().expect("misses").clone()
    }

    /// The clients: subscription and credential found, once; no call is made here.
    async fn arm(&self) -> Result<&Arm> {
        self.arm
            .get_or_try_init(|| async {
                let env = self.env;
                let subscription = self.cfg.resolve_subscription(&env)?;
                let transport = Arc::new(Transport::new(self.cfg.attempt_timeout));
                let credential = match &self.credential {
                    Some(c) => c.clone(),
                    None => crate::auth::discover(self.cfg.credential.as_deref(), &env, transport.clone())?.0,
                };
                Arm::new(
                    &self.cfg.api_base,
                    &subscription,
                    credential,
                    transport,
                    self.cfg.max_poll,
                )
            })
            .await
    }

    /// Zones of `region` to try: `[azure] zones`, else the catalog's (none: regional VMs).
    fn zones(&self, region: &str) -> Result<Vec<String>> {
        let r = self.catalog.find_region(Cloud::Azure, region)?;
        if !self.cfg.zones.is_empty() {
            return Ok(self.cfg.zones.clone());
        }
        Ok(r.zones
            .iter()
            .map(|z| z.rsplit('-').next().unwrap_or(z).to_string())
            .collect())
    }

    /// Everything that can be refused without a call.
    fn check(&self, req: &LaunchRequest) -> Result<(images::Image, String, String)> {
        let t = self.catalog.find_type(Cloud::Azure, &req.instance_type)?;
        self.catalog.find_region(Cloud::Azure, &req.region)?;
        let explicit = req.image.as_deref().or(match t.arch {
            herd_core::Arch::Arm64 => self.cfg.image_arm64.as_deref(),
            _ => self.cfg.image_x86_64.as_deref(),
        });
        let image = images::resolve(t.arch, &req.instance_type, explicit)?;
        tags::check_limits(&self.caps.tag_limits, &tags::request_tags(req))?;
        let cluster = access::cluster_of(&req.tags);
        let group = access::group_name(&self.cfg.owner, &cluster)?;
        if let Some(z) = &req.zone {
            let zones = self.zones(&req.region)?;
            if !zones.is_empty() && !zones.contains(z) {
                return Err(Error::invalid_spec(format!("unknown zone `{z}` in {}", req.region))
                    .with_suggestions(herd_core::suggest::did_you_mean(z, zones.iter().map(String::as_str), 3))
                    .with_hint(format!("zones of {}: {}", req.region, zones.join(", "))));
            }
        }
        Ok((image, cluster, group))
    }

    /// The watchdog's delete: `DELETE` on its own VM (its resource id from IMDS), with the
    /// VM's system-assigned managed identity's token; the NIC, IP and disk go with it.
    fn expiry(&self) -> Result<Expiry> {
        let d = DeleteRequest::new(
            "DELETE",
            &format!(
                "{}{{vm_id}}?api-version={COMPUTE_API_VERSION}&forceDeletion=true",
                self.cfg.api_base
            ),
            vec![MetadataValue {
                name: "vm_id".into(),
                url: "http://169.254.169.254/metadata/instance/compute/resourceId?api-version=2021-02-01&format=text"
                    .into(),
            }],
            GuestToken::azure_managed_identity(),
            azure_metadata_headers(),
        )?;
        Ok(Expiry::Delete(d))
    }

    /// Azure's own deadline for `vms` ([`schedule`]): where the subscription lacks the
    /// service, or it refuses a VM, the guest watchdog alone holds the deadline, and
    /// stderr says so once per process.
    async fn schedule_deletes(&self, arm: &Arm, req: &LaunchRequest, group: &str, vms: &[Instance]) {
        if vms.is_empty() {
            return;
        }
        let ids: Vec<String> = vms
            .iter()
            .map(|i| schedule::vm_id(&arm.subscription, group, &i.id))
            .collect();
        let outcome = match schedule::submit_delete(
            arm,
            &req.region,
            req.deadline,
            &ids,
            req.launch_id.as_str(),
            schedule::PATIENCE,
        )
        .await
        {
            Ok(o) => o,
            // Refused (a permission, a malformed answer) or still failing after the
            // schedule's own patience: the VMs stand, and the guest layer holds.
            Err(e) => schedule::Outcome::Unavailable(e.message().to_string()),
        };
        let warning = match &outcome {
            schedule::Outcome::All => None,
            schedule::Outcome::Unavailable(why) => Some(format!(
                "Azure's scheduled deletes (Microsoft.ComputeSchedule) are not available here ({why}); \
                 only the VM's own watchdog ends it at its deadline (`herd down` and `herd reap` still do); \
                 `az provider register --namespace Microsoft.ComputeSchedule` adds the cloud's layer"
            )),
            schedule::Outcome::Refused(which) => Some(format!(
                "Azure did not schedule the deletion of {}; their own watchdog still ends them at the deadline",
                which.join(", ")
            )),
        };
        *self.deadline_layers.lock().expect("layers") = outcome;
        if let Some(w) = warning {
            if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                eprintln!("warning: {w}");
            }
        }
    }

    /// How the last launch's deadline is held by Azure itself ([`schedule::Outcome`]).
    pub fn scheduled_deletes(&self) -> schedule::Outcome {
        self.deadline_layers.lock().expect("layers").clone()
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
            .map_err(|e| e.with_hint("set [azure] ssh_cidr to your address with /32"))
    }
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

#[async_trait]
impl Provider for AzureProvider {
    fn info(&self) -> ProviderInfo {
        let sub = self
            .arm
            .get()
            .map(|a| a.subscription.clone())
            .or_else(|| self.cfg.subscription.clone())
            .unwrap_or_else(|| "(default subscription)".into());
        ProviderInfo::new(Cloud::Azure, sub, self.cfg.home_region())
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn wire_requests(&self) -> Option<u64> {
        Some(self.arm.get().map_or(0, Arm::sent))
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<Vec<Instance>> {
        let (image, cluster, group) = self.check(req)?;
        let zones = self.zones(&req.region)?;
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
            host_key: Some(&host_key),
            // The owner's key also admits the admin user (`osProfile`); the login here
            // covers another configured user.
            login: Some(herd_guest::boot::Login {
                user: &self.cfg.ssh_user,
                public_key: &ssh_key,
            }),
        }
        .script();
        let custom_data = base64(&script);
        let arm = self.arm().await?;
        let owner = self.cfg.owner.clone();
        let budget = self.cfg.operation_budget;
        // What an earlier call of this launch made: kept, and only the rest is sent.
        let have: Mutex<Vec<Instance>> = Mutex::new(Vec::new());
        let earlier = self.progress.lock().expect("progress").remove(req.launch_id.as_str());
        let kept: Mutex<Vec<Instance>> = Mutex::new(Vec::new());
        let lookup = || async {
            if let Some(v) = earlier {
                // A retry in this process: what the earlier attempts made is known.
                *have.lock().expect("have") = v;
                return Ok(Vec::new());
            }
            let found: Vec<Instance> = list::in_group(arm, &group)
                .await?
                .into_iter()
                .filter(|i| i.tag(tags::REQUEST) == Some(req.launch_id.as_str()))
                .collect();
            // Names are the launch's own: a partial launch is completed under them
            // (re-sent PUTs converge), not under a fill token.
            match classify(req, &owner, found.clone())? {
                Existing::Partial(p) => {
                    *have.lock().expect("have") = p;
                    Ok(Vec::new())
                }
                _ => Ok(found),
            }
        };
        let start = |s: Start| {
            let (image, script, group, cluster, zones, have) = (&image, &custom_data, &group, &cluster, &zones, &have);
            let ssh_key = &ssh_key;
            async move {
                let cidr = self.ssh_cidr().await?;
                let key = (group.clone(), cidr.clone());
                let known = self.ready.lock().expect("ready").get(&key).cloned();
                let subnet = match known {
                    Some(s) => s,
                    None => {
                        let s =
                            access::ensure(arm, group, &req.region, &self.cfg.owner, cluster, &cidr, budget).await?;
                        self.ready.lock().expect("ready").insert(key.clone(), s.clone());
                        s
                    }
                };
                let names: Vec<String> = (0..req.count).map(|i| vm_name(&s.token, i)).collect();
                let made: Vec<String> = have.lock().expect("have").iter().map(|i| i.id.clone()).collect();
                let missing: Vec<String> = names.iter().filter(|n| !made.contains(n)).cloned().collect();
                let plan = Plan {
                    req,
                    token: &s.token,
                    group,
                    subnet_id: &subnet,
                    image,
                    ssh_key,
                    custom_data: script,
                };
                let made_now =
                    match launch::in_some_zone(arm, &plan, &missing, zones, budget, &self.misses, &kept).await {
                        Ok(v) => v,
                        Err(e) => {
                            let e = if e.context_value("azure_next") == Some("region") {
                                skus::with_other_regions(arm, &self.catalog, &req.instance_type, &req.region, e).await
                            } else {
                                e
                            };
                            if e.kind() == ErrorKind::NotFound {
                                // The group went meanwhile (deleted elsewhere): made anew next time.
                                self.ready.lock().expect("ready").remove(&key);
                            }
                            if !e.is_temporary() && !made.is_empty() {
                                // All or nothing: what an earlier call made goes too.
                                let _ = launch::delete_vms(arm, group, &made, budget).await;
                                return Err(e.map_message(|m| {
                                    format!("{m}; the {} VMs an earlier attempt made were deleted", made.len())
                                }));
                            }
                            if e.is_temporary() {
                                let mut all = have.lock().expect("have").clone();
                                all.extend(kept.lock().expect("kept").drain(..));
                                self.progress
                                    .lock()
                                    .expect("progress")
                                    .insert(req.launch_id.to_string(), all);
                            }
                            return Err(e);
                        }
                    };
                let mut got: Vec<Instance> = have.lock().expect("have").clone();
                got.extend(made_now);
                self.schedule_deletes(arm, req, group, &got).await;
                Ok(got)
            }
        };
        launch_once(self, &owner, req, &self.partial, lookup, start).await
    }

    async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
        let arm = self.arm().await?;
        let (outcome, deleted) = terminate::terminate(arm, &self.cfg.owner, ids, self.cfg.operation_budget).await?;
        // A group may have gone with its last VM: made ready again on the next launch.
        self.ready.lock().expect("ready").clear();
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
        let arm = self.arm().await?;
        let mut out = list::list(arm, req).await?;
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
        let arm = self.arm().await?;
        let mut v = reap::leftovers(arm, owner).await?;
        v.sort_by(|a, b| (&a.region, &a.kind, &a.id).cmp(&(&b.region, &b.kind, &b.id)));
        Ok(v)
    }

    async fn reap(&self, items: &[Leftover]) -> Result<Vec<ReapResult>> {
        let arm = self.arm().await?;
        let mut out = Vec::with_capacity(items.len());
        for l in items {
            if !matches!(l.kind.as_str(), reap::GROUP | reap::DISK | reap::NIC | reap::PUBLIC_IP) {
                return Err(Error::new(
                    ErrorKind::InvalidSpec,
                    format!("Azure has no leftovers of kind {}", l.kind),
                ));
            }
            out.push(reap::reap_one(arm, l, &self.cfg.owner, self.cfg.operation_budget).await);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declares_guest_deadlines_and_azure_tags() {
        let c = capabilities(crate::bundled_catalog());
        assert_eq!(c.deadline, DeadlineEnforcement::Guest);
        assert_eq!(c.billing, BillingRule::AZURE);
        assert_eq!(c.tag_limits.name, "Azure");
        assert!(c.regions.iter().any(|r| r == "eastus"), "{:?}", c.regions);
    }
}
