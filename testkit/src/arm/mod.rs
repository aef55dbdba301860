//! A stateful Azure Resource Manager on wiremock, for tests only: the calls herd's Azure
//! backend makes (resource groups; virtual networks, NSGs, public IPs and NICs; VMs with
//! inline NIC and public IP configurations, their OS disks, power actions and instance
//! view; long-running operations), held to Azure's official examples ([`examples`]) and
//! to ARM's write throttling ([`throttle`]), with seeded faults ([`Faults`]).
//!
//! # API (stable; the Azure backend's tests build on it)
//!
//! ```text
//! let arm = FakeArm::start(Faults::default()).await;   // panics naming the path if ../shared/data/azure is absent
//! arm.uri();                                           // the ARM endpoint to give the SDK
//! arm.advertise(&proxy.endpoint());                    // URLs in answers name a proxy in front instead
//! arm.set_faults(Faults { throttle_storm: 3, ..Faults::default() }); // at runtime
//! arm.requests();                                      // Vec<Recorded>: method, path, query, body, headers (no Authorization), status
//! arm.requests_to("PUT", Kind::Vm);                    // those of one method on one kind's resources
//! arm.calls();                                         // Calls: reads, writes, deletes, throttled, by "PUT virtualMachines"
//! arm.vms(); arm.nics(); arm.public_ips(); arm.disks(); arm.nsgs(); arm.vnets(); arm.resource_groups(); arm.role_assignments(); // Vec<Value>, as ARM answers GET
//! arm.resources(Kind::Vm);                             // the same, by kind
//! arm.get(Kind::Vm, "rg", "vm");                       // Option<Value>
//! arm.instance_view("rg", "vm");                       // Option<Value>: statuses with ProvisioningState/.. and PowerState/..
//! arm.plant(Kind::Disk, "rg", "orphan", json!({"location": "eastus", "tags": {..}})); // foreign or orphan resources
//! arm.set_deleting("rg", Duration::from_secs(5));      // a group still deleting
//! arm.scheduled_deletes();                             // Vec<Value>: ComputeSchedule operations
//! arm.reset();                                         // a fresh subscription, faults kept
//! Limits::floor(Limits::default().writes, 1200);       // the bucket's floor for a benchmark
//! Limits::default().floor_of(writes, deletes, reads);  // a whole run's floor (arm.calls() gives the counts)
//! ```
//!
//! Wire behaviour, as ARM's REST API (paths case-insensitive, any `api-version` but one
//! required, `Authorization: Bearer <non-empty>` required, 401 otherwise):
//!
//! - `PUT|GET|HEAD|DELETE /subscriptions/S/resourcegroups/G`; `GET /subscriptions/S/resourcegroups`
//!   with `$filter=tagName eq 'k' and tagValue eq 'v'` (or `tagName eq 'k'`). DELETE is 202 +
//!   `Location`; the group is `Deleting` for [`Faults::rg_delete_time`], then gone with all in it;
//!   a PUT into it meanwhile is 409 `ResourceGroupBeingDeleted`.
//! - `PUT|GET|DELETE .../resourceGroups/G/providers/Microsoft.Network/{virtualNetworks,
//!   networkSecurityGroups,publicIPAddresses,networkInterfaces}/N`, and
//!   `.../Microsoft.Compute/{virtualMachines,disks}/N` (disks: no PUT, they come with VMs);
//!   lists per group and per subscription (`/subscriptions/S/providers/NS/TYPE`) paged by
//!   `nextLink` ([`Faults::page_size`]); `/subscriptions/S/resources` and
//!   `.../resourceGroups/G/resources` with a tag `$filter`.
//! - PUT is create-or-update by name: 201 on create, 200 on update, with
//!   `Azure-AsyncOperation` and `Location`; `provisioningState` is `Creating`/`Updating`
//!   until the operation ends. DELETE is 202 with both headers (204 if absent).
//! - VMs: `networkProfile.networkInterfaceConfigurations` create the NIC and public IP
//!   named after their configurations (with the VM's tags, see [`Faults::propagate_tags`]),
//!   `networkInterfaces` attach existing NICs; the OS disk is created when the VM is;
//!   deleting the VM deletes the disk, NICs and public IPs whose `deleteOption` is
//!   `Delete`, detaching the rest (orphans). `GET ...?$expand=instanceView`,
//!   `GET .../instanceView`, `POST .../{powerOff,deallocate,start,simulateEviction}`.
//!   ListAll takes `statusOnly=true` (instance views included).
//! - Role assignments (`.../resourceGroups/G/providers/Microsoft.Authorization/roleAssignments/
//!   GUID`, synchronous) for a VM's system-assigned identity (the fake gives it a
//!   `principalId`; an unknown principal is 400 `PrincipalNotFound`).
//! - `GET /subscriptions/S/providers/Microsoft.Compute/skus` ([`skus`], [`Faults::skus`]),
//!   with `$filter=location eq 'x'`; sizes withheld by [`Faults::sku_not_available`] carry
//!   `restrictions`.
//! - Scheduled deletes ([`schedule`]): `POST /subscriptions/S/providers/Microsoft.ComputeSchedule/
//!   locations/L/virtualMachinesSubmitDelete` and `.../virtualMachinesGetOperationStatus`;
//!   at the deadline the VM is deleted as by a DELETE ([`Faults::compute_schedule`]).
//! - Throttling: [`Limits`] (writes 200 + 10/s, reads 250 + 25/s); over it, 429
//!   `SubscriptionRequestsThrottled` with `Retry-After` (whole seconds, at least 1);
//!   every answer carries `x-ms-ratelimit-remaining-subscription-{reads,writes}`.
//! - Every PUT body is held to Azure's examples: an unknown key path is 400
//!   `InvalidRequestContent` naming it.
//!
//! Layout: this file is the API; [`routes`](self) reads a request (auth, `api-version`,
//! buckets, examples) and dispatches to `groups`, `resources` (network kinds, role
//! assignments, deletes and their cascade), `compute` (VMs), [`schedule`], [`skus`];
//! [`ops`] runs long-running operations over [`state`]; [`examples`] and [`throttle`]
//! hold the fake to Azure's examples and limits.
//!
//! Note for clients on the 0.21 SDK: awaiting a create-or-update builder (`IntoFuture`)
//! re-sends the PUT until an answer reads `Succeeded`, sleeping `Retry-After` (30 s when
//! absent) in between; send it (`.send()`) and poll `Azure-AsyncOperation` instead, or set
//! [`Faults::lro_retry_after`].
//!
//! Where it differs from ARM: one subscription (the id in the path is echoed, not kept
//! apart); NICs created from a VM's configuration are named exactly after the
//! configuration; a VM whose creation fails stays, `Failed`, with its NICs and IPs (as in
//! Azure) until deleted; its OS disk is only created on success.

mod compute;
pub mod examples;
mod groups;
pub mod ops;
mod resources;
mod routes;
pub mod schedule;
pub mod skus;
pub mod state;
pub mod throttle;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use wiremock::{Mock, MockServer};

pub use examples::Examples;
pub use state::Kind;
pub use throttle::{Bucket, CallKind, Limits};

use state::{key, Res, State};
use throttle::Throttle;

/// How a capacity or quota error arrives: as the PUT's own answer (409), or inside the
/// finished async operation (the PUT is 201, the operation `Failed`). Azure does both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    Sync,
    #[default]
    Async,
}

/// A cores quota: VMs of `sizes` count `vcpus_per_vm` each against `limit`, on top of
/// `usage` (cores used outside herd). Over it, a VM PUT is 409 `OperationNotAllowed` with
/// Azure's message ("... exceeding approved standardDSv5Family Cores quota ... Current
/// Limit: 50, Current Usage: 48, Additional Required: 4 ...").
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    pub family: String,
    pub sizes: Vec<String>,
    pub vcpus_per_vm: u32,
    pub limit: u32,
    pub usage: u32,
}

/// How an answer is lost after its effect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LostAnswer {
    /// A 500 `InternalServerError` in place of the real answer.
    Status500,
    /// The real answer, this late (past the client's timeout: a dropped answer).
    Hang(Duration),
}

/// The next `times` calls of `method` on resource type `kind` (`virtualMachines`,
/// `resourcegroups`, case-insensitive; empty: any) take effect, and their answer is lost.
#[derive(Debug, Clone, PartialEq)]
pub struct Lost {
    pub method: String,
    pub kind: String,
    pub times: u32,
    pub answer: LostAnswer,
}

/// What goes wrong, and how the fake keeps time. Counters (`throttle_storm`,
/// `Lost::times`) count down as they fire; [`FakeArm::set_faults`] sets them afresh.
#[derive(Debug, Clone)]
pub struct Faults {
    pub limits: Limits,
    /// Items per list page before a `nextLink`.
    pub page_size: usize,
    /// Polls an operation answers `InProgress` before it ends.
    pub polls_in_progress: u32,
    /// An operation nobody polls ends after this long.
    pub op_time: Duration,
    /// `Retry-After` (seconds) on 201/202 answers and `InProgress` polls; `None`: no header.
    pub lro_retry_after: Option<u32>,
    /// How long a deleted resource group stays `Deleting`.
    pub rg_delete_time: Duration,
    /// How capacity and quota errors arrive.
    pub delivery: Delivery,
    /// (location, zone): a VM there fails with `ZonalAllocationFailed`.
    pub zonal_allocation_failed: Vec<(String, String)>,
    /// (location, zone): a VM there fails with `OverconstrainedAllocationRequest`.
    pub overconstrained: Vec<(String, String)>,
    /// Locations where every VM fails with `AllocationFailed`.
    pub allocation_failed: Vec<String>,
    /// (location, size): 409 `SkuNotAvailable`, always synchronous as in Azure.
    pub sku_not_available: Vec<(String, String)>,
    pub quota: Option<Quota>,
    /// The next N writes answer 429 `TooManyRequests` with `Retry-After: storm_retry_after`.
    pub throttle_storm: u32,
    pub storm_retry_after: u32,
    pub lost: Vec<Lost>,
    /// After a VM's deletion, its detached NICs are reserved for it this long: using or
    /// deleting one is 400 `NicReservedForAnotherVm` (Azure: 180 s). Zero: off.
    pub nic_reserved_for: Duration,
    /// Lists ignore `$filter` (a hostile server: herd must check tags itself).
    pub ignore_filters: bool,
    /// Resources a VM creates (disk, NIC, public IP) carry the VM's tags.
    pub propagate_tags: bool,
    /// Time the fake takes to answer any call.
    pub latency: Duration,
    /// The subscription has `Microsoft.ComputeSchedule` (scheduled deletes); without it,
    /// its calls are 409 `MissingSubscriptionRegistration`.
    pub compute_schedule: bool,
    /// A new system-assigned identity is unknown to role assignments this long (400
    /// `PrincipalNotFound`, Azure's directory replication delay).
    pub principal_delay: Duration,
    /// What `GET .../providers/Microsoft.Compute/skus` lists; `None`: Azure's example's
    /// two entries. Build entries with [`skus::sku`].
    pub skus: Option<Vec<Value>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            limits: Limits::default(),
            page_size: 100,
            polls_in_progress: 1,
            op_time: Duration::from_secs(10),
            lro_retry_after: None,
            rg_delete_time: Duration::from_millis(300),
            delivery: Delivery::Async,
            zonal_allocation_failed: Vec::new(),
            overconstrained: Vec::new(),
            allocation_failed: Vec::new(),
            sku_not_available: Vec::new(),
            quota: None,
            throttle_storm: 0,
            storm_retry_after: 1,
            lost: Vec::new(),
            nic_reserved_for: Duration::ZERO,
            ignore_filters: false,
            propagate_tags: true,
            latency: Duration::ZERO,
            compute_schedule: true,
            principal_delay: Duration::ZERO,
            skus: None,
        }
    }
}

/// One request the fake saw, with the status it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Value,
    /// Lower-case names; `authorization` is never kept.
    pub headers: BTreeMap<String, String>,
    pub status: u16,
}

/// Calls counted by bucket, and by `METHOD type` (`PUT virtualMachines`, `GET operations`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calls {
    pub reads: u32,
    pub writes: u32,
    pub deletes: u32,
    /// Answered 429 (bucket empty or storm).
    pub throttled: u32,
    pub by: BTreeMap<String, u32>,
}

impl Calls {
    pub fn total(&self) -> u32 {
        self.reads + self.writes + self.deletes
    }
}

/// The fake, listening on 127.0.0.1.
pub struct FakeArm {
    server: MockServer,
    base: Arc<Mutex<String>>,
    ex: Arc<Examples>,
    state: Arc<Mutex<State>>,
    faults: Arc<Mutex<Faults>>,
}

impl std::fmt::Debug for FakeArm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeArm")
            .field("uri", &self.server.uri())
            .finish_non_exhaustive()
    }
}

impl FakeArm {
    /// Starts the fake; panics naming the path and the fix when the examples are missing.
    pub async fn start(faults: Faults) -> FakeArm {
        let ex = Arc::new(Examples::load().unwrap_or_else(|e| panic!("{e}")));
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::new(Throttle::new(faults.limits))));
        let faults = Arc::new(Mutex::new(faults));
        let base = Arc::new(Mutex::new(server.uri()));
        Mock::given(wiremock::matchers::any())
            .respond_with(routes::Handler {
                ex: ex.clone(),
                state: state.clone(),
                faults: faults.clone(),
                base: base.clone(),
            })
            .mount(&server)
            .await;
        FakeArm {
            server,
            base,
            ex,
            state,
            faults,
        }
    }

    /// The ARM endpoint (`http://127.0.0.1:PORT`) to give the SDK instead of
    /// `https://management.azure.com`.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The base URL the fake writes into `nextLink`, `Azure-AsyncOperation` and `Location`
    /// (its own by default): a fault proxy in front gives its endpoint here, so the
    /// client's polls and pages go through the proxy too.
    pub fn advertise(&self, base: &str) {
        *self.base.lock().unwrap() = base.trim_end_matches('/').to_string();
    }

    /// New faults; the buckets start full again if the limits changed.
    pub fn set_faults(&self, f: Faults) {
        let mut s = self.state.lock().unwrap();
        if s.throttle.limits() != f.limits {
            s.throttle = Throttle::new(f.limits);
        }
        *self.faults.lock().unwrap() = f;
    }

    pub fn faults(&self) -> Faults {
        self.faults.lock().unwrap().clone()
    }

    /// Forgets everything (a fresh subscription, full buckets), faults kept.
    pub fn reset(&self) {
        let limits = self.faults.lock().unwrap().limits;
        *self.state.lock().unwrap() = State::new(Throttle::new(limits));
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests of `method` on resources of `kind` (the path names the kind's type and a
    /// resource after it: `PUT .../virtualMachines/vm1`, not a list), in order.
    pub fn requests_to(&self, method: &str, kind: Kind) -> Vec<Recorded> {
        let ty = kind.arm_type().rsplit('/').next().unwrap_or("").to_ascii_lowercase();
        self.requests()
            .into_iter()
            .filter(|r| {
                let segs: Vec<String> = r
                    .path
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_ascii_lowercase)
                    .collect();
                r.method == method && segs.len() >= 2 && segs[segs.len() - 2] == ty
            })
            .collect()
    }

    pub fn calls(&self) -> Calls {
        let s = self.state.lock().unwrap();
        let n = |k| s.by_bucket.get(&k).copied().unwrap_or(0);
        Calls {
            reads: n(CallKind::Read),
            writes: n(CallKind::Write),
            deletes: n(CallKind::Delete),
            throttled: s.throttled,
            by: s.calls.clone(),
        }
    }

    /// Resources of a kind as ARM answers GET for them (resource groups included).
    pub fn resources(&self, kind: Kind) -> Vec<Value> {
        let mut s = self.state.lock().unwrap();
        ops::settle(&mut s);
        if kind == Kind::ResourceGroup {
            return s.groups.values().map(groups::group_view).collect();
        }
        s.of_kind(kind, None)
            .into_iter()
            .map(|r| resources::view(r, false))
            .collect()
    }

    pub fn get(&self, kind: Kind, rg: &str, name: &str) -> Option<Value> {
        let mut s = self.state.lock().unwrap();
        ops::settle(&mut s);
        if kind == Kind::ResourceGroup {
            return s.group_live(name).map(groups::group_view);
        }
        s.res.get(&key(kind, rg, name)).map(|r| resources::view(r, false))
    }

    /// A VM's instance view (`statuses`: `ProvisioningState/...`, `PowerState/...`).
    pub fn instance_view(&self, rg: &str, name: &str) -> Option<Value> {
        let mut s = self.state.lock().unwrap();
        ops::settle(&mut s);
        s.res.get(&key(Kind::Vm, rg, name)).map(compute::instance_view)
    }

    /// Scheduled deletions, as `virtualMachinesGetOperationStatus` shows each `operation`.
    pub fn scheduled_deletes(&self) -> Vec<Value> {
        let mut s = self.state.lock().unwrap();
        ops::settle(&mut s);
        s.scheduled.values().map(|x| x.op.clone()).collect()
    }

    pub fn vms(&self) -> Vec<Value> {
        self.resources(Kind::Vm)
    }
    pub fn nics(&self) -> Vec<Value> {
        self.resources(Kind::Nic)
    }
    pub fn public_ips(&self) -> Vec<Value> {
        self.resources(Kind::PublicIp)
    }
    pub fn disks(&self) -> Vec<Value> {
        self.resources(Kind::Disk)
    }
    pub fn nsgs(&self) -> Vec<Value> {
        self.resources(Kind::NetworkSecurityGroup)
    }
    pub fn vnets(&self) -> Vec<Value> {
        self.resources(Kind::VirtualNetwork)
    }
    pub fn role_assignments(&self) -> Vec<Value> {
        self.resources(Kind::RoleAssignment)
    }
    pub fn resource_groups(&self) -> Vec<Value> {
        self.resources(Kind::ResourceGroup)
    }

    /// Plants a resource behind herd's back (foreign, orphaned, or a group of its own):
    /// `value` is its body (`location`, `tags`, `properties`); the fake adds `id` (in the
    /// subscription of the last request, else the zero GUID), `name`, `type` and
    /// `provisioningState: Succeeded`. The group is created if missing; a
    /// planted VM is running.
    pub fn plant(&self, kind: Kind, rg: &str, name: &str, value: Value) {
        let mut s = self.state.lock().unwrap();
        let sub = s.subscription.clone();
        let loc = value.get("location").cloned().unwrap_or(Value::String("eastus".into()));
        let v = if kind == Kind::ResourceGroup {
            value.clone()
        } else {
            serde_json::json!({ "location": loc })
        };
        s.groups
            .entry(rg.to_ascii_lowercase())
            .or_insert_with(|| groups::new_group(&sub, rg, v));
        if kind == Kind::ResourceGroup {
            return;
        }
        let mut v = resources::stamp(&self.ex, kind, &sub, rg, name, value, &mut s);
        v["properties"]["provisioningState"] = Value::String("Succeeded".into());
        let mut r = Res::new(v);
        r.power = state::Power::Running;
        s.res.insert(key(kind, rg, name), r);
    }

    /// Marks group `rg` as deleting for `for_`, then gone with everything in it (as if a
    /// DELETE had been sent).
    pub fn set_deleting(&self, rg: &str, for_: Duration) {
        let mut s = self.state.lock().unwrap();
        let sub = s.subscription.clone();
        groups::group_delete_op(&mut s, &sub, rg, for_);
    }
}
