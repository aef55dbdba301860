//! A stateful Compute Engine on wiremock, for tests only: it implements the calls herd's
//! GCP backend makes (bulk insert, operations and their wait, aggregated and zonal
//! lists with herd's filters and paging, get, delete; firewalls, disks, addresses), keeps
//! instances, disks, firewalls and operations, and holds every request body to Google's
//! discovery document ([`schema`]). Operations finish after a set delay and `wait`
//! returns early, as GCE's does; a VM whose `scheduling.terminationTime` passed is
//! deleted with its auto-delete disks, as the real control plane does.
//!
//! Seeded faults ([`Faults`]): zone exhaustion with a `zonesAvailable` hint, quota in
//! the finished operation, a per-minute rate limit, 503s, and answers lost after the
//! effect. Where it differs from GCE: README of herd-gcp.

pub mod schema;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use schema::Discovery;

/// What goes wrong, and how the fake keeps time.
#[derive(Debug, Clone)]
pub struct Faults {
    /// How long an operation takes.
    pub op_delay: Duration,
    /// The longest a `wait` call blocks before answering a running operation.
    pub wait_cap: Duration,
    /// Zones with no capacity: a bulk insert there finishes with
    /// `ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS` naming `zones_available`.
    pub exhausted: Vec<String>,
    pub zones_available: Vec<String>,
    /// Bulk inserts finish with `QUOTA_EXCEEDED` (CPUS in the zone's region).
    pub quota: bool,
    /// At most this many calls of a method per minute, then 403 `rateLimitExceeded`.
    pub per_minute: Vec<(String, u32)>,
    /// The quota's window: a minute, as GCE's; shorter for the benchmark.
    pub window: Duration,
    /// The first N calls of a method answer 503 before any effect.
    pub unavailable: Vec<(String, u32)>,
    /// The first N calls of a method act, then answer 500 (the answer is lost).
    pub lost_after_effect: Vec<(String, u32)>,
    /// Time the fake takes to answer any call (the benchmark's "fake's own time").
    pub latency: Duration,
    /// Zones an aggregated list cannot reach: their VMs are left out, the scope carries
    /// GCE's `UNREACHABLE` warning and the page's `unreachables` names it, as a
    /// `returnPartialSuccess` answer does during a zone outage.
    pub unreachable: Vec<String>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            op_delay: Duration::from_millis(50),
            wait_cap: Duration::from_millis(500),
            exhausted: Vec::new(),
            zones_available: Vec::new(),
            quota: false,
            per_minute: Vec::new(),
            window: Duration::from_secs(60),
            unavailable: Vec::new(),
            lost_after_effect: Vec::new(),
            latency: Duration::ZERO,
            unreachable: Vec::new(),
        }
    }
}

/// One request the fake saw (after its method was found).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Value,
    pub status: u16,
}

#[derive(Debug)]
struct Op {
    value: Value,
    done_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// (zone, name) -> instance.
    instances: BTreeMap<(String, String), Value>,
    disks: BTreeMap<(String, String), Value>,
    firewalls: BTreeMap<String, Value>,
    addresses: BTreeMap<(String, String), Value>,
    ops: HashMap<String, Op>,
    request_ids: HashMap<String, String>,
    calls: HashMap<String, u32>,
    minute: HashMap<String, (Instant, u32)>,
    seen: Vec<Recorded>,
    next_id: u64,
}

struct Handler {
    doc: Arc<Discovery>,
    state: Arc<Mutex<State>>,
    faults: Arc<Mutex<Faults>>,
    base: String,
}

/// The fake, listening on 127.0.0.1.
pub struct FakeGce {
    server: MockServer,
    state: Arc<Mutex<State>>,
    faults: Arc<Mutex<Faults>>,
}

impl std::fmt::Debug for FakeGce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGce")
            .field("uri", &self.server.uri())
            .finish_non_exhaustive()
    }
}

fn err(status: u16, reason: &str, message: &str) -> ResponseTemplate {
    let name = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    ResponseTemplate::new(status).set_body_json(json!({"error": {
        "code": status, "message": message, "status": name,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
    }}))
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl FakeGce {
    /// Starts the fake; panics with the fix when the discovery document is missing.
    pub async fn start(faults: Faults) -> FakeGce {
        let doc = Discovery::load().unwrap_or_else(|e| panic!("{e}"));
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        let faults = Arc::new(Mutex::new(faults));
        Mock::given(wiremock::matchers::any())
            .respond_with(Handler {
                doc: Arc::new(doc),
                state: state.clone(),
                faults: faults.clone(),
                base: server.uri(),
            })
            .mount(&server)
            .await;
        FakeGce { server, state, faults }
    }

    /// The API base to give herd (`[gcp] api_base`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn set_faults(&self, f: Faults) {
        *self.faults.lock().unwrap() = f;
    }

    /// Forgets everything (a fresh project), faults kept.
    pub fn reset(&self) {
        *self.state.lock().unwrap() = State::default();
    }

    /// Requests of method `id` (`compute.instances.bulkInsert`), in order.
    pub fn requests(&self, id: &str) -> Vec<Recorded> {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|r| r.method == id)
            .cloned()
            .collect()
    }

    /// Every request, in order.
    pub fn all_requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Instances the fake holds now, as GCE would answer `get` for them.
    pub fn instances(&self) -> Vec<Value> {
        let mut s = self.state.lock().unwrap();
        purge(&mut s);
        s.instances.values().map(|v| with_status(v, &s)).collect()
    }

    pub fn disks(&self) -> Vec<Value> {
        self.state.lock().unwrap().disks.values().cloned().collect()
    }

    pub fn firewalls(&self) -> Vec<Value> {
        self.state.lock().unwrap().firewalls.values().cloned().collect()
    }

    /// Plants a resource behind herd's back (hostile and reap tests): `kind` is
    /// `instance`, `disk` or `address`; `zone` is a region for addresses.
    pub fn plant(&self, kind: &str, zone: &str, name: &str, mut v: Value) {
        let mut s = self.state.lock().unwrap();
        v["name"] = json!(name);
        match kind {
            "instance" => {
                v["zone"] = json!(format!("{}/compute/v1/projects/p/zones/{zone}", "https://fake"));
                v.as_object_mut().unwrap().entry("status").or_insert(json!("RUNNING"));
                v.as_object_mut()
                    .unwrap()
                    .entry("creationTimestamp")
                    .or_insert(json!(now_text()));
                s.instances.insert((zone.into(), name.into()), v);
            }
            "disk" => {
                v["zone"] = json!(format!("zones/{zone}"));
                s.disks.insert((zone.into(), name.into()), v);
            }
            _ => {
                v["region"] = json!(format!("regions/{zone}"));
                s.addresses.insert((zone.into(), name.into()), v);
            }
        }
    }
}

/// Deletes VMs past their `terminationTime` (the cloud's deadline) and their auto-delete disks.
fn purge(s: &mut State) {
    let now = Utc::now();
    let gone: Vec<(String, String)> = s
        .instances
        .iter()
        .filter(|(_, v)| {
            v.pointer("/scheduling/terminationTime")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t <= now)
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in gone {
        remove_instance(s, &k);
    }
}

fn remove_instance(s: &mut State, k: &(String, String)) {
    if let Some(v) = s.instances.remove(k) {
        for d in v.get("disks").and_then(Value::as_array).into_iter().flatten() {
            let name = d.get("deviceName").and_then(Value::as_str).unwrap_or("").to_string();
            let key = (k.0.clone(), name);
            if d.get("autoDelete").and_then(Value::as_bool) == Some(true) {
                s.disks.remove(&key);
            } else if let Some(disk) = s.disks.get_mut(&key) {
                disk["users"] = json!([]);
            }
        }
    }
}

/// An instance as GCE shows it now: PROVISIONING until its operation is done.
fn with_status(v: &Value, s: &State) -> Value {
    let mut v = v.clone();
    if let Some(op) = v.get("_op").and_then(Value::as_str).and_then(|o| s.ops.get(o)) {
        if Instant::now() >= op.done_at {
            v["status"] = json!("RUNNING");
        }
    }
    if let Value::Object(m) = &mut v {
        m.remove("_op");
    }
    v
}

/// herd's filter forms, as GCE reads them: `(labels.K = "V") AND ...`, `labels.K:*`,
/// `labels.K = "V"`, and `name eq "a|b"` / `name eq "prefix.*"`. An unknown form is an
/// error, so the fake never silently matches everything.
fn matches(filter: &str, v: &Value) -> Result<bool, String> {
    if filter.trim().is_empty() {
        return Ok(true);
    }
    for part in filter.split(" AND ") {
        let p = part.trim().trim_start_matches('(').trim_end_matches(')').trim();
        let ok = if let Some(k) = p.strip_prefix("labels.").and_then(|r| r.strip_suffix(":*")) {
            v.pointer(&format!("/labels/{k}")).is_some()
        } else if let Some((k, val)) = p.strip_prefix("labels.").and_then(|r| r.split_once(" = ")) {
            v.pointer(&format!("/labels/{}", k.trim())).and_then(Value::as_str) == Some(val.trim().trim_matches('"'))
        } else if let Some(re) = p.strip_prefix("name eq ") {
            let re = re.trim().trim_matches('"');
            let name = v.get("name").and_then(Value::as_str).unwrap_or("");
            match re.strip_suffix(".*") {
                Some(prefix) if !prefix.contains('|') => name.starts_with(prefix),
                _ => re.split('|').any(|n| n == name),
            }
        } else {
            return Err(format!("Invalid value for field 'filter': '{filter}'"));
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Handler {
    fn op(&self, s: &mut State, kind: &str, zone: Option<&str>, target: &str, error: Option<Value>) -> Value {
        s.next_id += 1;
        let name = format!("operation-{}-{}", s.next_id, kind);
        let delay = self.faults.lock().unwrap().op_delay;
        let mut v = json!({
            "kind": "compute#operation", "id": s.next_id.to_string(), "name": name,
            "operationType": kind, "targetLink": target, "status": "RUNNING", "progress": 0,
            "insertTime": now_text(),
        });
        if let Some(z) = zone {
            v["zone"] = json!(format!("{}/compute/v1/projects/p/zones/{z}", self.base));
        }
        if let Some(e) = error {
            v["error"] = e;
            v["httpErrorStatusCode"] = json!(400);
        }
        s.ops.insert(
            name,
            Op {
                value: v.clone(),
                done_at: Instant::now() + delay,
            },
        );
        v
    }

    fn op_now(s: &State, name: &str) -> Option<(Value, Duration)> {
        let op = s.ops.get(name)?;
        let mut v = op.value.clone();
        let left = op.done_at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            v["status"] = json!("DONE");
            v["progress"] = json!(100);
            v["endTime"] = json!(now_text());
        }
        Some((v, left))
    }

    fn list(&self, items: Vec<Value>, q: &BTreeMap<String, String>, aggregated_key: Option<&str>) -> ResponseTemplate {
        let filter = q.get("filter").cloned().unwrap_or_default();
        let mut hits = Vec::new();
        for v in items {
            match matches(&filter, &v) {
                Ok(true) => hits.push(v),
                Ok(false) => {}
                Err(e) => return err(400, "invalid", &e),
            }
        }
        let page: usize = q
            .get("maxResults")
            .and_then(|m| m.parse().ok())
            .unwrap_or(500)
            .clamp(1, 500);
        let start: usize = match q.get("pageToken") {
            Some(t) => match t.strip_prefix("page-").and_then(|n| n.parse().ok()) {
                Some(n) => n,
                None => return err(400, "invalid", "Invalid value for field 'pageToken'"),
            },
            None => 0,
        };
        let end = (start + page).min(hits.len());
        let chunk: Vec<Value> = hits.get(start..end).unwrap_or(&[]).to_vec();
        let mut out = match aggregated_key {
            Some(key) => {
                let gone = self.faults.lock().unwrap().unreachable.clone();
                let mut by: Map<String, Value> = Map::new();
                for v in chunk {
                    let scope = v
                        .get("zone")
                        .or_else(|| v.get("region"))
                        .and_then(Value::as_str)
                        .map(|z| {
                            let parts: Vec<&str> = z.rsplitn(3, '/').collect();
                            format!("{}/{}", parts.get(1).unwrap_or(&"zones"), parts[0])
                        })
                        .unwrap_or_default();
                    if gone.iter().any(|z| scope == format!("zones/{z}")) {
                        continue;
                    }
                    by.entry(scope)
                        .or_insert_with(|| json!({ key: [] }))
                        .get_mut(key)
                        .and_then(Value::as_array_mut)
                        .expect("an array")
                        .push(v);
                }
                for z in &gone {
                    by.insert(
                        format!("zones/{z}"),
                        json!({ "warning": {
                            "code": "UNREACHABLE",
                            "message": format!("There was a problem fetching results from zone '{z}'"),
                            "data": [{ "key": "scope", "value": format!("zones/{z}") }],
                        }}),
                    );
                }
                let mut v = json!({ "kind": "compute#aggregatedList", "items": by });
                if !gone.is_empty() {
                    v["unreachables"] = json!(gone.iter().map(|z| format!("zones/{z}")).collect::<Vec<_>>());
                }
                v
            }
            None => json!({ "kind": "compute#list", "items": chunk }),
        };
        if end < hits.len() {
            out["nextPageToken"] = json!(format!("page-{end}"));
        }
        ResponseTemplate::new(200).set_body_json(out)
    }

    fn bulk_insert(&self, s: &mut State, zone: &str, q: &BTreeMap<String, String>, body: &Value) -> ResponseTemplate {
        if let Some(rid) = q.get("requestId") {
            if let Some(existing) = s.request_ids.get(rid).cloned() {
                if let Some((v, _)) = Handler::op_now(s, &existing) {
                    return ResponseTemplate::new(200).set_body_json(v);
                }
            }
        }
        let per = body
            .get("perInstanceProperties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let count: usize = body
            .get("count")
            .and_then(Value::as_str)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let min: usize = body
            .get("minCount")
            .and_then(Value::as_str)
            .and_then(|c| c.parse().ok())
            .unwrap_or(count);
        if body.get("namePattern").is_some() || per.len() != count || min > count || count == 0 {
            return err(400, "invalid", "Invalid value for field 'resource': count must match perInstanceProperties (herd's fake supports only perInstanceProperties)");
        }
        let target = format!("{}/compute/v1/projects/p/zones/{zone}/instances", self.base);
        let f = self.faults.lock().unwrap().clone();
        let op_error = if f.exhausted.iter().any(|z| z == zone) {
            Some(json!({"errors": [{"code": "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
                "message": format!("The zone '{zone}' does not have enough resources available to fulfill the request."),
                "errorDetails": [{"errorInfo": {"reason": "resource_availability", "domain": "compute.googleapis.com",
                    "metadatas": {"zone": zone, "zonesAvailable": f.zones_available.join(",")}}}]}]}))
        } else if f.quota {
            let region = zone.rsplit_once('-').map(|r| r.0).unwrap_or(zone);
            Some(
                json!({"errors": [{"code": "QUOTA_EXCEEDED", "message": format!("Quota 'CPUS' exceeded. Limit: 8.0 in region {region}."),
                "errorDetails": [{"quotaInfo": {"metricName": "compute.googleapis.com/cpus", "limitName": "CPUS-per-project-region",
                    "dimensions": {"region": region}, "limit": 8.0}}]}]}),
            )
        } else if per
            .keys()
            .any(|n| s.instances.contains_key(&(zone.to_string(), n.clone())))
        {
            Some(json!({"errors": [{"code": "RESOURCE_ALREADY_EXISTS", "message": "The resource already exists"}]}))
        } else {
            None
        };
        let failed = op_error.is_some();
        let op = self.op(s, "bulkInsert", Some(zone), &target, op_error);
        let op_name = op["name"].as_str().unwrap_or("").to_string();
        if let Some(rid) = q.get("requestId") {
            s.request_ids.insert(rid.clone(), op_name.clone());
        }
        if failed {
            return ResponseTemplate::new(200).set_body_json(op);
        }
        let props = body.get("instanceProperties").cloned().unwrap_or(json!({}));
        for name in per.keys() {
            s.next_id += 1;
            let mut v = props.clone();
            let mtype = props.get("machineType").and_then(Value::as_str).unwrap_or("e2-micro");
            v["name"] = json!(name);
            v["id"] = json!(s.next_id.to_string());
            v["kind"] = json!("compute#instance");
            v["zone"] = json!(format!("{}/compute/v1/projects/p/zones/{zone}", self.base));
            v["machineType"] = json!(format!(
                "{}/compute/v1/projects/p/zones/{zone}/machineTypes/{mtype}",
                self.base
            ));
            v["status"] = json!("PROVISIONING");
            v["creationTimestamp"] = json!(now_text());
            v["selfLink"] = json!(format!("{target}/{name}"));
            v["_op"] = json!(op_name);
            let n = s.next_id;
            if let Some(nics) = v.get_mut("networkInterfaces").and_then(Value::as_array_mut) {
                for nic in nics {
                    nic["networkIP"] = json!(format!("10.128.{}.{}", (n / 250) % 250, n % 250 + 2));
                    for ac in nic
                        .get_mut("accessConfigs")
                        .and_then(Value::as_array_mut)
                        .into_iter()
                        .flatten()
                    {
                        ac["natIP"] = json!(format!("34.0.{}.{}", (n / 250) % 250, n % 250 + 2));
                    }
                }
            }
            if let Some(disks) = v.get_mut("disks").and_then(Value::as_array_mut) {
                for (i, d) in disks.iter_mut().enumerate() {
                    let dn = if i == 0 { name.clone() } else { format!("{name}-{i}") };
                    d["deviceName"] = json!(dn);
                    let labels = d.pointer("/initializeParams/labels").cloned().unwrap_or(json!({}));
                    s.disks.insert(
                        (zone.to_string(), dn.clone()),
                        json!({"name": dn, "zone": format!("zones/{zone}"), "sizeGb": "10", "labels": labels,
                               "users": [format!("{target}/{name}")]}),
                    );
                }
            }
            s.instances.insert((zone.to_string(), name.clone()), v);
        }
        ResponseTemplate::new(200).set_body_json(op)
    }

    fn dispatch(
        &self,
        s: &mut State,
        id: &str,
        p: &BTreeMap<String, String>,
        q: &BTreeMap<String, String>,
        body: &Value,
    ) -> ResponseTemplate {
        let zone = p.get("zone").cloned().unwrap_or_default();
        match id {
            "compute.instances.bulkInsert" => self.bulk_insert(s, &zone, q, body),
            "compute.zoneOperations.wait" | "compute.zoneOperations.get" => {
                let Some((v, left)) = Handler::op_now(s, &p["operation"]) else {
                    return err(
                        404,
                        "notFound",
                        &format!("The resource 'operations/{}' was not found", p["operation"]),
                    );
                };
                if id.ends_with("get") || left.is_zero() {
                    return ResponseTemplate::new(200).set_body_json(v);
                }
                // wait: block until done, or return early (still running) after the cap.
                let cap = self.faults.lock().unwrap().wait_cap;
                let mut v = v;
                if left <= cap {
                    v["status"] = json!("DONE");
                    v["progress"] = json!(100);
                }
                ResponseTemplate::new(200).set_body_json(v).set_delay(left.min(cap))
            }
            "compute.instances.aggregatedList" => {
                let items = s.instances.values().map(|v| with_status(v, s)).collect();
                self.list(items, q, Some("instances"))
            }
            "compute.instances.list" => {
                let items = s
                    .instances
                    .iter()
                    .filter(|(k, _)| k.0 == zone)
                    .map(|(_, v)| with_status(v, s))
                    .collect();
                self.list(items, q, None)
            }
            "compute.instances.get" => match s.instances.get(&(zone.clone(), p["instance"].clone())) {
                Some(v) => ResponseTemplate::new(200).set_body_json(with_status(v, s)),
                None => err(
                    404,
                    "notFound",
                    &format!(
                        "The resource 'projects/p/zones/{zone}/instances/{}' was not found",
                        p["instance"]
                    ),
                ),
            },
            "compute.instances.delete" => {
                let k = (zone.clone(), p["instance"].clone());
                if !s.instances.contains_key(&k) {
                    return err(
                        404,
                        "notFound",
                        &format!("The resource 'projects/p/zones/{zone}/instances/{}' was not found", k.1),
                    );
                }
                remove_instance(s, &k);
                let op = self.op(s, "delete", Some(&zone), &k.1, None);
                ResponseTemplate::new(200).set_body_json(op)
            }
            "compute.firewalls.list" => {
                let items = s.firewalls.values().cloned().collect();
                self.list(items, q, None)
            }
            "compute.firewalls.insert" => {
                let name = body["name"].as_str().unwrap_or("").to_string();
                if s.firewalls.contains_key(&name) {
                    return err(
                        409,
                        "alreadyExists",
                        &format!("The resource 'projects/p/global/firewalls/{name}' already exists"),
                    );
                }
                s.firewalls.insert(name.clone(), body.clone());
                let op = self.op(s, "insert", None, &name, None);
                ResponseTemplate::new(200).set_body_json(op)
            }
            "compute.firewalls.delete" => match s.firewalls.remove(&p["firewall"]) {
                Some(_) => ResponseTemplate::new(200).set_body_json(self.op(s, "delete", None, &p["firewall"], None)),
                None => err(404, "notFound", "The firewall was not found"),
            },
            "compute.disks.aggregatedList" => {
                let items = s.disks.values().cloned().collect();
                self.list(items, q, Some("disks"))
            }
            "compute.disks.delete" => {
                let k = (zone.clone(), p["disk"].clone());
                match s.disks.get(&k) {
                    None => err(404, "notFound", "The disk was not found"),
                    Some(d) if d.get("users").and_then(Value::as_array).is_some_and(|u| !u.is_empty()) => {
                        err(400, "resourceInUseByAnotherResource", "The disk is in use")
                    }
                    Some(_) => {
                        s.disks.remove(&k);
                        ResponseTemplate::new(200).set_body_json(self.op(s, "delete", Some(&zone), &k.1, None))
                    }
                }
            }
            "compute.addresses.aggregatedList" => {
                let items = s.addresses.values().cloned().collect();
                self.list(items, q, Some("addresses"))
            }
            "compute.addresses.delete" => {
                let k = (p["region"].clone(), p["address"].clone());
                match s.addresses.remove(&k) {
                    Some(_) => ResponseTemplate::new(200).set_body_json(self.op(s, "delete", None, &k.1, None)),
                    None => err(404, "notFound", "The address was not found"),
                }
            }
            "compute.regions.get" => {
                let r = &p["region"];
                let letters: &[&str] = if r == "us-central1" {
                    &["a", "b", "c", "f"]
                } else {
                    &["a", "b", "c"]
                };
                let zones: Vec<String> = letters
                    .iter()
                    .map(|l| format!("{}/compute/v1/projects/p/zones/{r}-{l}", self.base))
                    .collect();
                ResponseTemplate::new(200)
                    .set_body_json(json!({"kind": "compute#region", "name": r, "status": "UP", "zones": zones}))
            }
            other => err(
                501,
                "notImplemented",
                &format!("herd's fake Compute Engine does not implement {other}"),
            ),
        }
    }
}

impl Respond for Handler {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let latency = self.faults.lock().unwrap().latency;
        let r = self.respond_now(req);
        if latency.is_zero() {
            r
        } else {
            r.set_delay(latency)
        }
    }
}

impl Handler {
    fn respond_now(&self, req: &Request) -> ResponseTemplate {
        let path = req.url.path();
        let Some(rest) = path.strip_prefix("/compute/v1/") else {
            return err(404, "notFound", &format!("no such API: {path}"));
        };
        let Some((id, schema_name, params)) = self.doc.method(req.method.as_str(), rest) else {
            return err(
                404,
                "notFound",
                &format!("Compute Engine has no method {} {rest}", req.method),
            );
        };
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !auth.starts_with("Bearer ") || auth.len() <= "Bearer ".len() {
            return err(
                401,
                "required_authentication",
                "Request is missing required authentication credential.",
            );
        }
        let query: BTreeMap<String, String> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if query.contains_key("access_token") || query.contains_key("oauth_token") {
            return err(400, "invalid", "herd's fake refuses tokens in URLs");
        }
        let body: Value = if req.body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&req.body) {
                Ok(v) => v,
                Err(e) => return err(400, "parseError", &format!("Invalid JSON payload received. {e}")),
            }
        };
        let mut s = self.state.lock().unwrap();
        purge(&mut s);
        let record = |s: &mut State, status: u16| {
            s.seen.push(Recorded {
                method: id.clone(),
                path: rest.to_string(),
                query: query.clone(),
                body: body.clone(),
                status,
            })
        };
        if let Some(name) = &schema_name {
            if let Err(e) = self.doc.validate(&id, name, &body) {
                record(&mut s, 400);
                return err(400, "invalid", &e);
            }
        }
        let f = self.faults.lock().unwrap().clone();
        let nth = {
            let n = s.calls.entry(id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if let Some((_, limit)) = f.per_minute.iter().find(|(m, _)| *m == id) {
            let w = s.minute.entry(id.clone()).or_insert((Instant::now(), 0));
            if w.0.elapsed() >= f.window {
                *w = (Instant::now(), 0);
            }
            w.1 += 1;
            if w.1 > *limit {
                record(&mut s, 403);
                return err(403, "rateLimitExceeded", &format!("Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'compute.googleapis.com' ({id})"));
            }
        }
        if f.unavailable.iter().any(|(m, n)| *m == id && nth <= *n) {
            record(&mut s, 503);
            return err(503, "backendError", "The service is currently unavailable.");
        }
        let r = self.dispatch(&mut s, &id, &params, &query, &body);
        if f.lost_after_effect.iter().any(|(m, n)| *m == id && nth <= *n) {
            record(&mut s, 500);
            return err(
                500,
                "internalError",
                "Internal error. Please try again or contact Google Support.",
            );
        }
        record(&mut s, 200);
        r
    }
}
