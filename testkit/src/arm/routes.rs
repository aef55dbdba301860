//! The fake ARM's request handling: authentication, `api-version`, throttling, the
//! examples' check, then one function per call; answers in ARM's shapes (error bodies
//! `{"error": {"code", "message"}}`, ids `/subscriptions/S/resourceGroups/G/providers/...`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use wiremock::{Request, Respond, ResponseTemplate};

use super::examples::Examples;
use super::ops::{self, now_text, Effect, Op};
use super::state::{key, parse_id, Group, Key, Kind, Power, Res, State};
use super::throttle::CallKind;
use super::{Delivery, Faults, LostAnswer, Recorded};

pub(super) struct Handler {
    pub ex: Arc<Examples>,
    pub state: Arc<Mutex<State>>,
    pub faults: Arc<Mutex<Faults>>,
    pub base: String,
}

/// An answer before it becomes wiremock's.
struct Reply {
    status: u16,
    body: Option<Value>,
    headers: Vec<(String, String)>,
    delay: Option<Duration>,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        body: Some(body),
        headers: Vec::new(),
        delay: None,
    }
}

fn empty(status: u16) -> Reply {
    Reply {
        status,
        body: None,
        headers: Vec::new(),
        delay: None,
    }
}

fn err(status: u16, code: &str, message: &str) -> Reply {
    reply(status, json!({"error": {"code": code, "message": message}}))
}

impl Reply {
    fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

/// One request, read once.
struct Call<'a> {
    method: &'a str,
    /// Path segments as sent, and lower-cased for matching.
    segs: Vec<&'a str>,
    low: Vec<String>,
    query: BTreeMap<String, String>,
    /// The raw query, for `nextLink`s that keep the caller's parameters.
    raw_query: &'a str,
    path: &'a str,
    body: Value,
    api: String,
    /// `Authorization: Bearer <something>` was sent (the token itself is never kept).
    auth_ok: bool,
}

impl Call<'_> {
    fn is(&self, pattern: &[&str]) -> bool {
        self.low.len() == pattern.len() && pattern.iter().zip(&self.low).all(|(p, s)| p.is_empty() || p == s)
    }
    fn sub(&self) -> &str {
        self.segs.get(1).copied().unwrap_or("")
    }
}

impl Respond for Handler {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let latency = self.faults.lock().unwrap().latency;
        let r = self.respond_now(req);
        let delay = r.delay.unwrap_or(Duration::ZERO) + latency;
        let mut t = ResponseTemplate::new(r.status);
        for (k, v) in &r.headers {
            t = t.insert_header(k.as_str(), v.as_str());
        }
        if let Some(b) = r.body.filter(|_| req.method.as_str() != "HEAD") {
            t = t.set_body_raw(
                serde_json::to_vec(&b).unwrap_or_default(),
                "application/json; charset=utf-8",
            );
        }
        if delay.is_zero() {
            t
        } else {
            t.set_delay(delay)
        }
    }
}

/// `resourcegroups`, `virtualmachines`, `operations`: what a call is on, for counting
/// and for [`super::Lost`].
fn target_type(low: &[String]) -> String {
    match low.iter().position(|s| s == "providers") {
        Some(i) if low.len() > i + 2 => {
            if low.get(i + 2).map(String::as_str) == Some("locations") {
                low.get(i + 4).cloned().unwrap_or_default()
            } else {
                low[i + 2].clone()
            }
        }
        _ => low.get(2).cloned().unwrap_or_default(),
    }
}

fn label(method: &str, low: &[String]) -> String {
    let ty = target_type(low);
    let canon = Kind::RESOURCES
        .into_iter()
        .map(|k| k.arm_type().split('/').nth(1).unwrap_or(""))
        .chain([
            "resourceGroups",
            "operations",
            "operationResults",
            "resources",
            "virtualMachinesSubmitDelete",
            "virtualMachinesGetOperationStatus",
        ])
        .find(|c| c.eq_ignore_ascii_case(&ty))
        .unwrap_or(&ty)
        .to_string();
    let action = match low.iter().position(|s| s == "virtualmachines") {
        Some(i) if low.len() == i + 3 => format!("/{}", low[i + 2]),
        _ => String::new(),
    };
    format!("{method} {canon}{action}")
}

impl Handler {
    fn respond_now(&self, req: &Request) -> Reply {
        let method = req.method.as_str();
        let path = req.url.path();
        let headers: BTreeMap<String, String> = req
            .headers
            .iter()
            .filter(|(k, _)| k.as_str() != "authorization")
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let query: BTreeMap<String, String> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let body: Value = if req.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&req.body).unwrap_or(Value::String(String::from_utf8_lossy(&req.body).into()))
        };
        // ARM keeps no nulls; the record keeps the body as sent.
        let sent = body;
        let body = super::examples::without_nulls(&sent);
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let low: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let call = Call {
            auth_ok: auth.strip_prefix("Bearer ").is_some_and(|t| !t.trim().is_empty()),
            method,
            segs,
            low,
            api: query.get("api-version").cloned().unwrap_or_default(),
            query,
            raw_query: req.url.query().unwrap_or(""),
            path,
            body,
        };
        let mut s = self.state.lock().unwrap();
        let mut f = self.faults.lock().unwrap();
        s.nic_reserved_for = f.nic_reserved_for;
        if call.low.first().map(String::as_str) == Some("subscriptions") && call.segs.len() > 1 {
            s.subscription = call.segs[1].to_string();
        }
        s.propagate_tags = f.propagate_tags;
        ops::settle(&mut s);
        let mut r = self.checked(&mut s, &mut f, &call, &req.body);
        if r.status < 400 {
            let ty = target_type(&call.low);
            if let Some(l) = f
                .lost
                .iter_mut()
                .find(|l| l.times > 0 && l.method == method && (l.kind.is_empty() || l.kind.eq_ignore_ascii_case(&ty)))
            {
                l.times -= 1;
                r = match l.answer {
                    LostAnswer::Status500 => err(500, "InternalServerError", "Encountered internal server error. Diagnostic information: timestamp '', subscription id '', tracking id '', request correlation id ''."),
                    LostAnswer::Hang(d) => Reply { delay: Some(d), ..r },
                };
            }
        }
        s.seen.push(Recorded {
            method: method.to_string(),
            path: path.to_string(),
            query: call.query.clone(),
            body: sent,
            headers,
            status: r.status,
        });
        r
    }
}

fn not_found(kind: Kind, rg: &str, name: &str) -> Reply {
    err(
        404,
        "ResourceNotFound",
        &format!(
            "The Resource '{}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            kind.arm_type()
        ),
    )
}

fn group_not_found(rg: &str) -> Reply {
    err(
        404,
        "ResourceGroupNotFound",
        &format!("Resource group '{rg}' could not be found."),
    )
}

/// ARM's answer to a body with a key path no example has.
fn invalid_content(kind: Kind, path: &str) -> Reply {
    let member = path.rsplit('.').next().unwrap_or(path).trim_end_matches("[]");
    err(
        400,
        "InvalidRequestContent",
        &format!(
            "The request content was invalid and could not be deserialized: 'Could not find member '{member}' on object of type '{}'. Path '{path}'.' (herd's fake ARM: the path is in none of Azure's examples for this type, nor in its allow-list)",
            kind.arm_type()
        ),
    )
}

fn s_of<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

fn arr<'a>(v: &'a Value, ptr: &str) -> Vec<&'a Value> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Sets `v[k]` when absent (a default the examples' answers show).
fn default(v: &mut Value, k: &str, d: Value) {
    if let Value::Object(m) = v {
        m.entry(k.to_string()).or_insert(d);
    }
}

/// The id of resource `name` of `kind` in the group of resource id `id`.
fn sibling_id(id: &str, kind: Kind, name: &str) -> String {
    let prefix = id.split("/providers/").next().unwrap_or(id);
    format!("{prefix}/providers/{}/{name}", kind.arm_type())
}

/// A resource group as ARM stores it (shape of `ResourceGroup_Get`'s answer).
pub(super) fn new_group(sub: &str, name: &str, body: Value) -> Group {
    let mut v = json!({
        "id": format!("/subscriptions/{sub}/resourceGroups/{name}"),
        "name": name,
        "type": Kind::ResourceGroup.arm_type(),
        "location": body.get("location").cloned().unwrap_or(json!("eastus")),
        "properties": {"provisioningState": "Succeeded"},
    });
    if let Some(t) = body.get("tags") {
        v["tags"] = t.clone();
    }
    Group {
        value: v,
        deleting_until: None,
    }
}

pub(super) fn group_view(g: &Group) -> Value {
    let mut v = g.value.clone();
    if g.deleting_until.is_some() {
        v["properties"]["provisioningState"] = json!("Deleting");
    }
    v
}

/// Starts (or finds) the deletion of group `rg`: `Deleting` for `for_`, then gone.
pub(super) fn group_delete_op(s: &mut State, sub: &str, rg: &str, for_: Duration) -> Option<String> {
    let low = rg.to_ascii_lowercase();
    if let Some(o) = s
        .ops
        .values()
        .find(|o| !o.finished && matches!(&o.effect, Effect::DeleteGroup(g) if *g == low))
    {
        return Some(o.id.clone());
    }
    let until = Instant::now() + for_;
    s.groups.get_mut(&low)?.deleting_until = Some(until);
    let id = s.guid();
    s.ops.insert(
        id.clone(),
        Op {
            id: id.clone(),
            status_path: format!("/subscriptions/{sub}/providers/Microsoft.Resources/operations/{id}"),
            result_path: format!("/subscriptions/{sub}/operationresults/{id}"),
            polls: 0,
            polls_needed: u32::MAX,
            done_at: until,
            failure: None,
            effect: Effect::DeleteGroup(low),
            finished: false,
            start: now_text(),
            end: None,
        },
    );
    Some(id)
}

/// ARM's JSON for a new or updated resource: the body plus `id`, `name`, `type` and the
/// read-only fields the examples' answers show for the type.
pub(super) fn stamp(ex: &Examples, kind: Kind, sub: &str, rg: &str, name: &str, mut v: Value, s: &mut State) -> Value {
    if !v.is_object() {
        v = json!({});
    }
    let id = format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/{}/{name}",
        kind.arm_type()
    );
    v["id"] = json!(id);
    v["name"] = json!(name);
    v["type"] = json!(kind.arm_type());
    if !v["properties"].is_object() {
        v["properties"] = json!({});
    }
    let n = s.next_id();
    let p = &mut v["properties"];
    p["provisioningState"] = json!("Succeeded");
    match kind {
        Kind::VirtualNetwork => {
            for sn in p.get_mut("subnets").and_then(Value::as_array_mut).into_iter().flatten() {
                let sn_name = sn["name"].as_str().unwrap_or("").to_string();
                sn["id"] = json!(format!("{id}/subnets/{sn_name}"));
                if !sn["properties"].is_object() {
                    sn["properties"] = json!({});
                }
                sn["properties"]["provisioningState"] = json!("Succeeded");
            }
            default(p, "virtualNetworkPeerings", json!([]));
        }
        Kind::NetworkSecurityGroup => {
            for r in p
                .get_mut("securityRules")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let rn = r["name"].as_str().unwrap_or("").to_string();
                r["id"] = json!(format!("{id}/securityRules/{rn}"));
                if !r["properties"].is_object() {
                    r["properties"] = json!({});
                }
                r["properties"]["provisioningState"] = json!("Succeeded");
            }
            // Azure's six default rules, as its example answer lists them.
            let mut defaults = ex
                .file("NetworkSecurityGroup_Create_WithRule.2025-03-01.json")
                .and_then(|f| f.pointer("/responses/201/body/properties/defaultSecurityRules"))
                .cloned()
                .unwrap_or(json!([]));
            for r in defaults.as_array_mut().into_iter().flatten() {
                let rn = r["name"].as_str().unwrap_or("").to_string();
                r["id"] = json!(format!("{id}/defaultSecurityRules/{rn}"));
            }
            p["defaultSecurityRules"] = defaults;
        }
        Kind::PublicIp => {
            let standard = s_of(&v, "/sku/name").is_none_or(|n| n.eq_ignore_ascii_case("Standard"));
            default(&mut v, "sku", json!({"name": "Standard", "tier": "Regional"}));
            let p = &mut v["properties"];
            default(p, "publicIPAddressVersion", json!("IPv4"));
            default(
                p,
                "publicIPAllocationMethod",
                json!(if standard { "Static" } else { "Dynamic" }),
            );
            default(p, "idleTimeoutInMinutes", json!(4));
            p["ipAddress"] = json!(format!("20.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255));
        }
        Kind::Nic => {
            for (i, ipc) in p
                .get_mut("ipConfigurations")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let cn = ipc["name"].as_str().unwrap_or("").to_string();
                ipc["id"] = json!(format!("{id}/ipConfigurations/{cn}"));
                if !ipc["properties"].is_object() {
                    ipc["properties"] = json!({});
                }
                let ip = &mut ipc["properties"];
                ip["provisioningState"] = json!("Succeeded");
                ip["privateIPAddress"] = json!(format!("10.0.{}.{}", (n >> 8) & 255, (n & 255) as usize + 4 + i));
                default(ip, "privateIPAllocationMethod", json!("Dynamic"));
                default(ip, "privateIPAddressVersion", json!("IPv4"));
                default(ip, "primary", json!(i == 0));
            }
            default(p, "dnsSettings", json!({"dnsServers": [], "appliedDnsServers": []}));
            default(p, "enableAcceleratedNetworking", json!(false));
            default(p, "enableIPForwarding", json!(false));
            default(p, "vnetEncryptionSupported", json!(false));
        }
        Kind::Disk => default(p, "diskState", json!("Unattached")),
        Kind::Vm | Kind::ResourceGroup | Kind::RoleAssignment => {}
    }
    v
}

/// A resource as GET answers it (a VM's secrets never come back, as in ARM).
pub(super) fn view(r: &Res, instance_view: bool) -> Value {
    let mut v = r.value.clone();
    if let Some(os) = v.pointer_mut("/properties/osProfile").and_then(Value::as_object_mut) {
        os.remove("adminPassword");
        os.remove("customData");
    }
    if let Some(p) = v.get_mut("properties").and_then(Value::as_object_mut) {
        p.remove("userData");
    }
    if instance_view && r.value["type"] == Kind::Vm.arm_type() {
        v["properties"]["instanceView"] = instance_view_of(r);
    }
    v
}

pub(super) fn instance_view(r: &Res) -> Value {
    instance_view_of(r)
}

/// Shaped after `VirtualMachine_Get_InstanceView.json` (no boot diagnostics or patch
/// status: the fake enables neither).
fn instance_view_of(r: &Res) -> Value {
    let v = &r.value;
    let now = now_text();
    let ps = s_of(v, "/properties/provisioningState").unwrap_or("Succeeded");
    let mut statuses = vec![match (&r.error, ps) {
        (Some((code, msg)), "Failed") => json!({"code": format!("ProvisioningState/failed/{code}"), "level": "Error",
            "displayStatus": "Provisioning failed", "message": msg, "time": now}),
        _ => json!({"code": format!("ProvisioningState/{}", ps.to_ascii_lowercase()), "level": "Info",
            "displayStatus": if ps == "Succeeded" { "Provisioning succeeded".to_string() } else { ps.to_string() }, "time": now}),
    }];
    if ps != "Failed" {
        statuses.push(
            json!({"code": format!("PowerState/{}", r.power.code()), "level": "Info",
            "displayStatus": format!("VM {}", r.power.code())}),
        );
    }
    let disk = s_of(v, "/properties/storageProfile/osDisk/name").unwrap_or("");
    json!({
        "platformUpdateDomain": 0, "platformFaultDomain": 0,
        "computerName": s_of(v, "/properties/osProfile/computerName").unwrap_or(""),
        "osName": "ubuntu", "osVersion": "24.04",
        "vmAgent": {"vmAgentVersion": "2.13.1.1", "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
            "displayStatus": "Ready", "message": "Guest Agent is running", "time": now}], "extensionHandlers": []},
        "disks": [{"name": disk, "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
            "displayStatus": "Provisioning succeeded", "time": now}]}],
        "extensions": [],
        "hyperVGeneration": "V2",
        "isVMInStandbyPool": false,
        "statuses": statuses,
    })
}

/// A VM's creation succeeded: its OS disk now exists, attached.
pub(super) fn vm_created(s: &mut State, k: &Key) {
    let Some(vm) = s.res.get(k).map(|r| r.value.clone()) else {
        return;
    };
    let vm_id = vm["id"].as_str().unwrap_or("").to_string();
    let os = &vm["properties"]["storageProfile"]["osDisk"];
    let name = os["name"].as_str().unwrap_or("").to_string();
    let dk = key(Kind::Disk, &k.1, &name);
    if let Some(d) = s.res.get_mut(&dk) {
        d.value["managedBy"] = json!(vm_id);
        d.value["properties"]["diskState"] = json!("Attached");
        return;
    }
    let mut d = json!({
        "name": name, "id": sibling_id(&vm_id, Kind::Disk, &name), "type": Kind::Disk.arm_type(),
        "location": vm["location"], "managedBy": vm_id,
        "sku": {"name": os.pointer("/managedDisk/storageAccountType").cloned().unwrap_or(json!("Premium_LRS"))},
        "properties": {"osType": os.get("osType").cloned().unwrap_or(json!("Linux")), "hyperVGeneration": "V2",
            "creationData": {"createOption": "FromImage"},
            "diskSizeGB": os.get("diskSizeGB").cloned().unwrap_or(json!(30)),
            "diskState": "Attached", "provisioningState": "Succeeded", "timeCreated": now_text()},
    });
    if let Some(z) = vm.get("zones") {
        d["zones"] = z.clone();
    }
    if s.propagate_tags {
        if let Some(t) = vm.get("tags") {
            d["tags"] = t.clone();
        }
    }
    let mut r = Res::new(d);
    r.power = Power::Running;
    s.res.insert(dk, r);
}

/// Removes a resource; a VM takes along what its delete options say, and detaches the rest.
pub(super) fn remove(s: &mut State, k: &Key) {
    let Some(r) = s.res.remove(k) else { return };
    let v = r.value;
    match k.0 {
        Kind::Nic => {
            for ipc in arr(&v, "/properties/ipConfigurations") {
                if let Some((g, Kind::PublicIp, n)) = s_of(ipc, "/properties/publicIPAddress/id").and_then(parse_id) {
                    if let Some(p) = s.res.get_mut(&key(Kind::PublicIp, &g, &n)) {
                        if let Some(m) = p.value["properties"].as_object_mut() {
                            m.remove("ipConfiguration");
                        }
                    }
                }
            }
        }
        Kind::Vm => {
            let vm_id = v["id"].as_str().unwrap_or("").to_string();
            let os = &v["properties"]["storageProfile"]["osDisk"];
            let dk = key(Kind::Disk, &k.1, os["name"].as_str().unwrap_or(""));
            if os["deleteOption"] == "Delete" {
                s.res.remove(&dk);
            } else if let Some(d) = s.res.get_mut(&dk) {
                if let Some(m) = d.value.as_object_mut() {
                    m.remove("managedBy");
                }
                d.value["properties"]["diskState"] = json!("Unattached");
            }
            let mut pip_delete = Vec::new();
            for cfg in arr(&v, "/properties/networkProfile/networkInterfaceConfigurations") {
                for ipc in arr(cfg, "/properties/ipConfigurations") {
                    if let Some(pc) = ipc.pointer("/properties/publicIPAddressConfiguration") {
                        if s_of(pc, "/properties/deleteOption") == Some("Delete") {
                            pip_delete.push(s_of(pc, "/name").unwrap_or("").to_ascii_lowercase());
                        }
                    }
                }
            }
            for ni in arr(&v, "/properties/networkProfile/networkInterfaces") {
                let Some((g, Kind::Nic, n)) = s_of(ni, "/id").and_then(parse_id) else {
                    continue;
                };
                let nk = key(Kind::Nic, &g, &n);
                if s_of(ni, "/properties/deleteOption") == Some("Delete") {
                    let pips: Vec<String> = s
                        .res
                        .get(&nk)
                        .map(|nic| {
                            arr(&nic.value, "/properties/ipConfigurations")
                                .into_iter()
                                .filter_map(|c| s_of(c, "/properties/publicIPAddress/id").map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    remove(s, &nk);
                    for p in pips {
                        if let Some((pg, Kind::PublicIp, pn)) = parse_id(&p) {
                            if pip_delete.contains(&pn.to_ascii_lowercase()) {
                                s.res.remove(&key(Kind::PublicIp, &pg, &pn));
                            }
                        }
                    }
                } else if let Some(nic) = s.res.get_mut(&nk) {
                    if let Some(m) = nic.value["properties"].as_object_mut() {
                        m.remove("virtualMachine");
                    }
                    if !s.nic_reserved_for.is_zero() {
                        s.nic_reserved
                            .insert(nk, (Instant::now() + s.nic_reserved_for, vm_id.clone()));
                    }
                }
            }
        }
        _ => {}
    }
}

/// A `$filter` of ARM's tag and type conditions: `tagName eq 'k' and tagValue eq 'v'`,
/// `resourceType eq 'T'`, `name eq 'N'`. Anything else is refused, so the fake never
/// silently matches everything.
fn parse_filter(f: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = f.trim().to_string();
    while !rest.is_empty() {
        let (part, tail) = match rest.to_ascii_lowercase().find(" and ") {
            Some(i) => (rest[..i].to_string(), rest[i + 5..].to_string()),
            None => (rest.clone(), String::new()),
        };
        let bad =
            || format!("Invalid $filter '{f}': herd's fake ARM reads tagName, tagValue, resourceType and name with eq");
        let (field, value) = part.trim().split_once(" eq ").ok_or_else(bad)?;
        let field = field.trim().to_ascii_lowercase();
        let value = value
            .trim()
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .ok_or_else(bad)?;
        if !["tagname", "tagvalue", "resourcetype", "name"].contains(&field.as_str()) {
            return Err(bad());
        }
        out.push((field, value.replace("''", "'")));
        rest = tail.trim().to_string();
    }
    Ok(out)
}

fn filter_matches(conds: &[(String, String)], v: &Value) -> bool {
    let tag_name = conds.iter().find(|c| c.0 == "tagname").map(|c| c.1.as_str());
    let tag = tag_name.and_then(|n| {
        v.get("tags")
            .and_then(Value::as_object)
            .and_then(|t| t.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)))
            .map(|(_, x)| x.as_str().unwrap_or(""))
    });
    conds.iter().all(|(f, want)| match f.as_str() {
        "tagname" => tag.is_some(),
        "tagvalue" => tag == Some(want.as_str()),
        "resourcetype" => s_of(v, "/type").is_some_and(|t| t.eq_ignore_ascii_case(want)),
        _ => s_of(v, "/name").is_some_and(|t| t.eq_ignore_ascii_case(want)),
    })
}

fn new_op(
    s: &mut State,
    f: &Faults,
    sub: &str,
    ns: &str,
    loc: &str,
    effect: Effect,
    failure: Option<(u16, String, String)>,
) -> String {
    let id = s.guid();
    let at = format!(
        "/subscriptions/{sub}/providers/{ns}/locations/{}",
        loc.to_ascii_lowercase()
    );
    s.ops.insert(
        id.clone(),
        Op {
            id: id.clone(),
            status_path: format!("{at}/operations/{id}"),
            result_path: format!("{at}/operationResults/{id}"),
            polls: 0,
            polls_needed: f.polls_in_progress,
            done_at: Instant::now() + f.op_time,
            failure,
            effect,
            finished: false,
            start: now_text(),
            end: None,
        },
    );
    id
}

impl Handler {
    /// Authentication, `api-version`, the buckets, then the call.
    fn checked(&self, s: &mut State, f: &mut Faults, c: &Call, raw: &[u8]) -> Reply {
        if !c.auth_ok {
            return err(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing or is not a Bearer token.")
                .header("www-authenticate", "Bearer authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", error=\"invalid_token\"");
        }
        if c.api.is_empty() {
            return err(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        if !raw.is_empty() && !c.body.is_object() {
            return err(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: the body is not a JSON object.",
            );
        }
        let kind = CallKind::of(c.method);
        *s.by_bucket.entry(kind).or_insert(0) += 1;
        *s.calls.entry(label(c.method, &c.low)).or_insert(0) += 1;
        let header = if kind == CallKind::Delete && f.limits.deletes.is_none() {
            CallKind::Write.header()
        } else {
            kind.header()
        };
        if kind != CallKind::Read && f.throttle_storm > 0 {
            f.throttle_storm -= 1;
            s.throttled += 1;
            return err(429, "TooManyRequests", "The request is being throttled as the limit has been reached for operation type - Write. For more information, see - https://aka.ms/srpthrottlinglimits")
                .header("retry-after", f.storm_retry_after.to_string());
        }
        match s.throttle.take(kind) {
            Ok(left) => self.dispatch(s, f, c).header(header, left.to_string()),
            Err(wait) => {
                s.throttled += 1;
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                let what = if kind == CallKind::Read { "read" } else { "write" };
                err(429, "SubscriptionRequestsThrottled", &format!(
                    "Number of '{what}' requests for subscription '{}' actor 'herd' exceeded. Please try again after '{secs}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.",
                    c.sub()))
                .header("retry-after", secs.to_string())
                .header(header, "0")
            }
        }
    }

    fn dispatch(&self, s: &mut State, f: &Faults, c: &Call) -> Reply {
        let (m, seg) = (c.method, &c.segs);
        let get = m == "GET";
        if c.is(&["subscriptions", "", "operationresults", ""]) && get {
            return self.op_result(s, f, c, seg[3]);
        }
        if c.is(&["subscriptions", "", "providers", "", "locations", "", "operations", ""]) && get {
            return self.op_status(s, f, seg[7]);
        }
        if c.is(&[
            "subscriptions",
            "",
            "providers",
            "",
            "locations",
            "",
            "operationresults",
            "",
        ]) && get
        {
            return self.op_result(s, f, c, seg[7]);
        }
        if c.is(&["subscriptions", "", "resourcegroups"]) && get {
            return self.list_groups(s, f, c);
        }
        if c.is(&["subscriptions", "", "resourcegroups", ""]) {
            return self.group(s, f, c, seg[3]);
        }
        if c.is(&["subscriptions", "", "resources"]) && get {
            return self.list_generic(s, f, c, None);
        }
        if c.is(&["subscriptions", "", "resourcegroups", "", "resources"]) && get {
            return self.list_generic(s, f, c, Some(seg[3]));
        }
        if c.is(&["subscriptions", "", "providers", "microsoft.compute", "skus"]) && get {
            let loc = c.query.get("$filter").and_then(|x| {
                x.trim()
                    .strip_prefix("location eq '")
                    .and_then(|r| r.strip_suffix('\''))
                    .map(str::to_string)
            });
            if c.query.contains_key("$filter") && loc.is_none() && !f.ignore_filters {
                return err(
                    400,
                    "InvalidFilterInQueryString",
                    "The skus list takes only $filter=location eq '<location>'.",
                );
            }
            let all = f.skus.clone().unwrap_or_else(|| super::skus::example_skus(&self.ex));
            let items = super::skus::listed(&all, &f.sku_not_available, loc.as_deref().filter(|_| !f.ignore_filters));
            return self.page(f, c, items);
        }
        if c.is(&[
            "subscriptions",
            "",
            "providers",
            "microsoft.computeschedule",
            "locations",
            "",
            "",
        ]) && m == "POST"
        {
            return self.schedule(s, f, c, seg[5], seg[6]);
        }
        let provider_at = if c.is(&["subscriptions", "", "providers", "", ""]) {
            Some(3)
        } else if c.low.len() >= 7
            && c.low[0] == "subscriptions"
            && c.low[2] == "resourcegroups"
            && c.low[4] == "providers"
        {
            Some(5)
        } else {
            None
        };
        let Some(at) = provider_at else {
            return err(
                404,
                "NotFound",
                &format!("herd's fake ARM has no route for {m} {}", c.path),
            );
        };
        let Some(kind) = Kind::from_path(seg[at], seg[at + 1]) else {
            return err(400, "InvalidResourceType", &format!(
                "The resource type '{}' could not be found in the namespace '{}' for api version '{}' (herd's fake ARM models resource groups, virtualNetworks, networkSecurityGroups, publicIPAddresses, networkInterfaces, virtualMachines and disks).",
                seg[at + 1], seg[at], c.api));
        };
        let rg = (at == 5).then(|| seg[3]);
        match (seg.len() - at, rg) {
            (2, rg) if get => self.list(s, f, c, kind, rg),
            (3, Some(rg)) => self.resource(s, f, c, kind, rg, seg[at + 2]),
            (4, Some(rg)) if kind == Kind::Vm => self.vm_action(s, f, c, rg, seg[at + 2], &c.low[at + 3]),
            _ => err(
                405,
                "MethodNotAllowed",
                &format!("herd's fake ARM does not serve {m} {}", c.path),
            ),
        }
    }

    /// `Microsoft.ComputeSchedule`'s VM actions.
    fn schedule(&self, s: &mut State, f: &Faults, c: &Call, loc: &str, action: &str) -> Reply {
        if !f.compute_schedule {
            return err(409, "MissingSubscriptionRegistration", "The subscription is not registered to use namespace 'Microsoft.ComputeSchedule'. See https://aka.ms/rps-not-found for how to register subscriptions.");
        }
        let canon = ["virtualMachinesSubmitDelete", "virtualMachinesGetOperationStatus"]
            .into_iter()
            .find(|a| a.eq_ignore_ascii_case(action));
        let Some(canon) = canon else {
            return err(
                404,
                "NotFound",
                &format!("herd's fake ARM has no Microsoft.ComputeSchedule action {action}"),
            );
        };
        if let Some(p) = self.ex.unknown_action_path(canon, &c.body) {
            return err(400, "InvalidRequestContent", &format!(
                "The request content was invalid and could not be deserialized: unknown member at path '{p}' (herd's fake ARM: not in Azure's examples for {canon})."));
        }
        if canon == "virtualMachinesGetOperationStatus" {
            return reply(200, super::schedule::status(s, &c.body));
        }
        let (status, body) = super::schedule::submit_delete(s, c.sub(), loc, &c.body);
        reply(status, body)
    }

    fn with_lro(&self, r: Reply, s: &State, f: &Faults, c: &Call, op: &str, async_header: bool) -> Reply {
        let Some(op) = s.ops.get(op) else { return r };
        let q = format!("?api-version={}", c.api);
        let mut r = r.header("location", format!("{}{}{q}", self.base, op.result_path));
        if async_header {
            r = r.header("azure-asyncoperation", format!("{}{}{q}", self.base, op.status_path));
        }
        match f.lro_retry_after {
            Some(n) => r.header("retry-after", n.to_string()),
            None => r,
        }
    }

    fn op_status(&self, s: &mut State, f: &Faults, id: &str) -> Reply {
        let Some(op) = ops::poll(s, id) else {
            return err(404, "NotFound", &format!("The operation '{id}' was not found."));
        };
        let r = reply(200, op.status_doc());
        match (op.finished, f.lro_retry_after) {
            (false, Some(n)) => r.header("retry-after", n.to_string()),
            _ => r,
        }
    }

    fn op_result(&self, s: &mut State, f: &Faults, c: &Call, id: &str) -> Reply {
        let Some(op) = ops::poll(s, id) else {
            return err(404, "NotFound", &format!("The operation '{id}' was not found."));
        };
        if !op.finished {
            return self.with_lro(empty(202), s, f, c, id, false);
        }
        if let Some((status, code, message)) = &op.failure {
            return err(*status, code, message);
        }
        match &op.effect {
            Effect::Create(k) => match s.res.get(k) {
                Some(r) => reply(200, view(r, false)),
                None => empty(204),
            },
            _ => empty(200),
        }
    }

    /// The group a write goes into must exist and not be deleting.
    fn group_open(s: &State, rg: &str) -> Result<(), Reply> {
        match s.group_live(rg) {
            None => Err(group_not_found(rg)),
            Some(g) if g.deleting_until.is_some() => Err(err(
                409,
                "ResourceGroupBeingDeleted",
                &format!("The resource group '{rg}' is in deprovisioning state and cannot perform this operation."),
            )),
            Some(_) => Ok(()),
        }
    }

    fn group(&self, s: &mut State, f: &Faults, c: &Call, name: &str) -> Reply {
        let low = name.to_ascii_lowercase();
        match c.method {
            "PUT" => {
                if let Some(p) = self.ex.unknown_path(Kind::ResourceGroup, &c.body) {
                    return invalid_content(Kind::ResourceGroup, &p);
                }
                if let Err(e) = Kind::ResourceGroup.check_name(name) {
                    return err(400, "InvalidResourceName", &e);
                }
                let Some(loc) = s_of(&c.body, "/location") else {
                    return err(
                        400,
                        "LocationRequired",
                        "The location property is required for this definition.",
                    );
                };
                match s.groups.get_mut(&low) {
                    Some(g) if g.deleting_until.is_some() => err(
                        409,
                        "ResourceGroupBeingDeleted",
                        &format!(
                            "The resource group '{name}' is in deprovisioning state and cannot perform this operation."
                        ),
                    ),
                    Some(g) => {
                        let old = s_of(&g.value, "/location").unwrap_or("").to_string();
                        if !old.eq_ignore_ascii_case(loc) {
                            return err(409, "InvalidResourceGroupLocation", &format!(
                                "Invalid resource group location '{loc}'. The Resource group already exists in location '{old}'."));
                        }
                        match c.body.get("tags") {
                            Some(t) => g.value["tags"] = t.clone(),
                            None => {
                                if let Some(m) = g.value.as_object_mut() {
                                    m.remove("tags");
                                }
                            }
                        }
                        reply(200, group_view(g))
                    }
                    None => {
                        let g = new_group(c.sub(), name, c.body.clone());
                        let v = group_view(&g);
                        s.groups.insert(low, g);
                        reply(201, v)
                    }
                }
            }
            "GET" | "HEAD" => match s.group_live(name) {
                Some(g) if c.method == "GET" => reply(200, group_view(g)),
                Some(_) => empty(204),
                None => group_not_found(name),
            },
            "DELETE" => {
                if let Some(t) = c.query.get("forceDeletionTypes") {
                    let ok = [
                        "microsoft.compute/virtualmachines",
                        "microsoft.compute/virtualmachinescalesets",
                    ];
                    if !t
                        .split(',')
                        .all(|x| ok.contains(&x.trim().to_ascii_lowercase().as_str()))
                    {
                        return err(400, "InvalidForceDeletionTypes", &format!(
                            "The value '{t}' of forceDeletionTypes is invalid: Microsoft.Compute/virtualMachines and Microsoft.Compute/virtualMachineScaleSets are supported."));
                    }
                }
                match group_delete_op(s, c.sub(), name, f.rg_delete_time) {
                    None => group_not_found(name),
                    Some(op) => self.with_lro(empty(202), s, f, c, &op, false),
                }
            }
            m => err(
                405,
                "MethodNotAllowed",
                &format!("{m} is not allowed on a resource group"),
            ),
        }
    }

    /// A reference to another resource must name one that exists (a subnet inside its
    /// virtual network).
    fn check_ref(s: &State, id: &str, want: Kind, from: &str) -> Result<(), Reply> {
        let missing = || {
            err(400, "InvalidResourceReference", &format!(
            "Resource {id} referenced by resource {from} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region."))
        };
        let Some((g, kind, name)) = parse_id(id) else {
            return Err(missing());
        };
        let Some(r) = s.res.get(&key(kind, &g, &name)).filter(|_| kind == want) else {
            return Err(missing());
        };
        if want == Kind::VirtualNetwork {
            let segs: Vec<&str> = id.split('/').filter(|x| !x.is_empty()).collect();
            let sub = segs.get(9).copied().unwrap_or("");
            let has = segs.get(8).is_some_and(|x| x.eq_ignore_ascii_case("subnets"))
                && arr(&r.value, "/properties/subnets")
                    .iter()
                    .any(|sn| s_of(sn, "/name").is_some_and(|n| n.eq_ignore_ascii_case(sub)));
            if !has {
                return Err(missing());
            }
        }
        Ok(())
    }

    /// A NIC a VM wants must not be reserved for a deleted VM nor used by another one.
    fn nic_free(s: &State, nk: &Key, vm_id: &str) -> Result<(), Reply> {
        if let Some((until, old)) = s.nic_reserved.get(nk) {
            let left = until.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                let secs = left.as_secs_f64().ceil() as u64;
                return Err(err(400, "NicReservedForAnotherVm", &format!(
                    "Nic(s) in request is reserved for another Virtual Machine for {secs} seconds. Please provide another nic(s) or retry after {secs} seconds. Reserved VM: {old}")));
            }
        }
        if let Some(other) = s
            .res
            .get(nk)
            .and_then(|n| s_of(&n.value, "/properties/virtualMachine/id").map(str::to_string))
        {
            if !other.eq_ignore_ascii_case(vm_id) {
                let nic = s
                    .res
                    .get(nk)
                    .and_then(|n| s_of(&n.value, "/id").map(str::to_string))
                    .unwrap_or_default();
                return Err(err(
                    400,
                    "NicInUse",
                    &format!("Network Interface {nic} is used by existing resource {other}."),
                ));
            }
        }
        Ok(())
    }

    fn resource(&self, s: &mut State, f: &Faults, c: &Call, kind: Kind, rg: &str, name: &str) -> Reply {
        let k = key(kind, rg, name);
        match c.method {
            "PUT" => {
                if kind == Kind::Disk {
                    return err(
                        400,
                        "OperationNotAllowed",
                        "herd's fake ARM creates managed disks only with their VMs.",
                    );
                }
                if let Some(p) = self.ex.unknown_path(kind, &c.body) {
                    return invalid_content(kind, &p);
                }
                if let Err(r) = Handler::group_open(s, rg) {
                    return r;
                }
                if let Err(e) = kind.check_name(name) {
                    let code = if kind == Kind::Vm {
                        "InvalidParameter"
                    } else {
                        "InvalidResourceName"
                    };
                    return err(400, code, &e);
                }
                let loc = match s_of(&c.body, "/location") {
                    Some(l) => l.to_string(),
                    None if kind == Kind::RoleAssignment => String::new(),
                    None => {
                        return err(
                            400,
                            "LocationRequired",
                            "The location property is required for this definition.",
                        )
                    }
                };
                if kind == Kind::Vm {
                    return self.vm_put(s, f, c, rg, name, &loc);
                }
                if kind == Kind::RoleAssignment {
                    return self.role_put(s, f, c, rg, name);
                }
                self.net_put(s, f, c, kind, rg, name, &loc)
            }
            "GET" => {
                if s.group_live(rg).is_none() {
                    return group_not_found(rg);
                }
                if let Some(op) = s.res.get(&k).and_then(|r| r.op.clone()) {
                    ops::poll(s, &op);
                }
                let expand = c
                    .query
                    .get("$expand")
                    .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"));
                match s.res.get(&k) {
                    Some(r) => reply(200, view(r, expand)),
                    None => not_found(kind, rg, name),
                }
            }
            "DELETE" => self.delete(s, f, c, kind, rg, name),
            m => err(
                405,
                "MethodNotAllowed",
                &format!("{m} is not allowed on {}", kind.arm_type()),
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn net_put(&self, s: &mut State, f: &Faults, c: &Call, kind: Kind, rg: &str, name: &str, loc: &str) -> Reply {
        let k = key(kind, rg, name);
        let me = format!(
            "/subscriptions/{}/resourceGroups/{rg}/providers/{}/{name}",
            c.sub(),
            kind.arm_type()
        );
        let b = &c.body;
        let mut refs: Vec<(String, Kind)> = Vec::new();
        let mut pips = Vec::new();
        if let Some(n) = s_of(b, "/properties/networkSecurityGroup/id") {
            refs.push((n.to_string(), Kind::NetworkSecurityGroup));
        }
        for ipc in arr(b, "/properties/ipConfigurations") {
            if let Some(id) = s_of(ipc, "/properties/subnet/id") {
                refs.push((id.to_string(), Kind::VirtualNetwork));
            }
            if let Some(id) = s_of(ipc, "/properties/publicIPAddress/id") {
                refs.push((id.to_string(), Kind::PublicIp));
                pips.push((
                    id.to_string(),
                    format!("{me}/ipConfigurations/{}", s_of(ipc, "/name").unwrap_or("")),
                ));
            }
        }
        for sn in arr(b, "/properties/subnets") {
            if let Some(id) = s_of(sn, "/properties/networkSecurityGroup/id") {
                refs.push((id.to_string(), Kind::NetworkSecurityGroup));
            }
        }
        for (id, want) in &refs {
            if let Err(r) = Handler::check_ref(s, id, *want, &me) {
                return r;
            }
        }
        let old = s.res.get(&k).map(|r| r.value.clone());
        let mut v = stamp(&self.ex, kind, c.sub(), rg, name, b.clone(), s);
        // What others set on it survives an update: a NIC's VM, a public IP's NIC and address.
        for keep in ["virtualMachine", "ipConfiguration", "ipAddress"] {
            if let Some(x) = old.as_ref().and_then(|o| o["properties"].get(keep)) {
                v["properties"][keep] = x.clone();
            }
        }
        v["properties"]["provisioningState"] = json!(if old.is_some() { "Updating" } else { "Creating" });
        for (pip, ipc) in pips {
            if let Some((g, _, n)) = parse_id(&pip) {
                if let Some(p) = s.res.get_mut(&key(Kind::PublicIp, &g, &n)) {
                    p.value["properties"]["ipConfiguration"] = json!({"id": ipc});
                }
            }
        }
        let op = new_op(s, f, c.sub(), kind.namespace(), loc, Effect::Create(k.clone()), None);
        let mut r = Res::new(v);
        r.op = Some(op.clone());
        let body = view(&r, false);
        s.res.insert(k, r);
        let status = if old.is_some() { 200 } else { 201 };
        self.with_lro(reply(status, body), s, f, c, &op, true)
    }

    /// A role assignment: synchronous, for a principal the directory knows, once per
    /// (principal, role) at a scope.
    fn role_put(&self, s: &mut State, f: &Faults, c: &Call, rg: &str, name: &str) -> Reply {
        let (Some(role), Some(principal)) = (
            s_of(&c.body, "/properties/roleDefinitionId"),
            s_of(&c.body, "/properties/principalId"),
        ) else {
            return err(
                400,
                "InvalidRoleAssignmentRequest",
                "properties.roleDefinitionId and properties.principalId are required.",
            );
        };
        let known = s
            .principals
            .get(principal)
            .is_some_and(|t| t.elapsed() >= f.principal_delay);
        if !known {
            return err(400, "PrincipalNotFound", &format!(
                "Principal {} does not exist in the directory 00000000-0000-0000-0000-00000000aaaa. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
                principal.replace('-', "")));
        }
        let k = key(Kind::RoleAssignment, rg, name);
        let same = |v: &Value| {
            s_of(v, "/properties/roleDefinitionId") == Some(role)
                && s_of(v, "/properties/principalId") == Some(principal)
        };
        if s.res
            .iter()
            .any(|(rk, r)| rk.0 == Kind::RoleAssignment && rk.1 == k.1 && *rk != k && same(&r.value))
        {
            return err(409, "RoleAssignmentExists", "The role assignment already exists.");
        }
        let existed = s.res.contains_key(&k);
        let mut v = stamp(&self.ex, Kind::RoleAssignment, c.sub(), rg, name, c.body.clone(), s);
        let now = now_text();
        let p = &mut v["properties"];
        if let Some(m) = p.as_object_mut() {
            m.remove("provisioningState");
        }
        p["scope"] = json!(format!("/subscriptions/{}/resourceGroups/{rg}", c.sub()));
        default(p, "principalType", json!("ServicePrincipal"));
        p["createdOn"] = json!(now);
        p["updatedOn"] = json!(now);
        let mut r = Res::new(v);
        r.power = Power::Running;
        let body = r.value.clone();
        s.res.insert(k, r);
        reply(if existed { 200 } else { 201 }, body)
    }

    fn vm_fault(&self, s: &State, f: &Faults, c: &Call, k: &Key, loc: &str) -> Option<(u16, String, String)> {
        let size = s_of(&c.body, "/properties/hardwareProfile/vmSize").unwrap_or("");
        if let Some(q) = &f.quota {
            if q.sizes.iter().any(|z| z.eq_ignore_ascii_case(size)) {
                let live = s
                    .res
                    .iter()
                    .filter(|(rk, r)| {
                        rk.0 == Kind::Vm
                            && *rk != k
                            && s_of(&r.value, "/properties/provisioningState") != Some("Failed")
                            && s_of(&r.value, "/properties/hardwareProfile/vmSize")
                                .is_some_and(|vs| q.sizes.iter().any(|z| z.eq_ignore_ascii_case(vs)))
                    })
                    .count() as u32;
                let usage = q.usage + live * q.vcpus_per_vm;
                if usage + q.vcpus_per_vm > q.limit {
                    return Some((409, "OperationNotAllowed".into(), format!(
                        "Operation could not be completed as it results in exceeding approved {} Cores quota. Additional details - Deployment Model: Resource Manager, Location: {loc}, Current Limit: {}, Current Usage: {usage}, Additional Required: {}, (Minimum) New Limit Required: {}. Submit a request for Quota increase at https://aka.ms/ProdportalCRP/#blade/Microsoft_Azure_Capacity/UsageAndQuota.ReactView/Parameters/%7B%22subscriptionId%22:%22{}%22%7D by specifying parameters listed in the ‘Details’ section for deployment to succeed. Please read more about quota limits at https://docs.microsoft.com/en-us/azure/azure-supportability/per-vm-quota-requests",
                        q.family, q.limit, q.vcpus_per_vm, usage + q.vcpus_per_vm, c.sub())));
                }
            }
        }
        let zone = s_of(&c.body, "/zones/0");
        let here = |list: &[(String, String)]| {
            zone.is_some_and(|z| list.iter().any(|(l, fz)| l.eq_ignore_ascii_case(loc) && fz == z))
        };
        if here(&f.zonal_allocation_failed) {
            return Some((409, "ZonalAllocationFailed".into(), "Allocation failed. We do not have sufficient capacity for the requested VM size in this zone. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance".into()));
        }
        if here(&f.overconstrained) {
            return Some((409, "OverconstrainedAllocationRequest".into(), "Allocation failed. VM(s) with the following constraints cannot be allocated, because the condition is too restrictive. Please remove some constraints and try again. Constraints applied are: - Availability Zone - Networking Constraints (such as Accelerated Networking or IPv6) - VM Size".into()));
        }
        if f.allocation_failed.iter().any(|l| l.eq_ignore_ascii_case(loc)) {
            return Some((409, "AllocationFailed".into(), "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance".into()));
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn vm_put(&self, s: &mut State, f: &Faults, c: &Call, rg: &str, name: &str, loc: &str) -> Reply {
        let k = key(Kind::Vm, rg, name);
        let b = &c.body;
        let sub = c.sub();
        let vm_id =
            format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}");
        let Some(size) = s_of(b, "/properties/hardwareProfile/vmSize").map(str::to_string) else {
            return err(
                400,
                "InvalidParameter",
                "Required parameter 'hardwareProfile.vmSize' is missing (null).",
            );
        };
        // A re-sent PUT of a VM that exists and did not fail converges on it.
        let existing = s.res.get(&k).map(|r| {
            (
                s_of(&r.value, "/properties/provisioningState")
                    .unwrap_or("")
                    .to_string(),
                r.op.clone(),
            )
        });
        if let Some((state, op)) = &existing {
            if state != "Failed" {
                let pending = op
                    .as_ref()
                    .filter(|o| s.ops.get(*o).is_some_and(|x| !x.finished))
                    .cloned();
                let op = match pending {
                    Some(o) => {
                        ops::poll(s, &o);
                        o
                    }
                    None => {
                        let o = new_op(s, f, sub, "Microsoft.Compute", loc, Effect::Create(k.clone()), None);
                        let r = s.res.get_mut(&k).expect("the VM");
                        match b.get("tags") {
                            Some(t) => r.value["tags"] = t.clone(),
                            None => {
                                if let Some(m) = r.value.as_object_mut() {
                                    m.remove("tags");
                                }
                            }
                        }
                        r.value["properties"]["provisioningState"] = json!("Updating");
                        r.op = Some(o.clone());
                        o
                    }
                };
                let body = view(&s.res[&k], false);
                return self.with_lro(reply(200, body), s, f, c, &op, true);
            }
        }
        if f.sku_not_available
            .iter()
            .any(|(l, z)| l.eq_ignore_ascii_case(loc) && z.eq_ignore_ascii_case(&size))
        {
            let zones = arr(b, "/zones")
                .iter()
                .filter_map(|z| z.as_str())
                .collect::<Vec<_>>()
                .join(",");
            return err(409, "SkuNotAvailable", &format!(
                "The requested VM size for resource '{vm_id}' is currently not available in location '{loc}' zones '{zones}' for subscription '{sub}'. Please try another size or deploy to a different location or zones. See https://aka.ms/azureskunotavailable for details."));
        }
        let failure = self.vm_fault(s, f, c, &k, loc);
        if let (Some((st, code, msg)), Delivery::Sync) = (&failure, f.delivery) {
            return err(*st, code, msg);
        }
        // Check every NIC, public IP and reference before creating anything.
        let tags = b.get("tags").filter(|_| s.propagate_tags).cloned();
        let mut plans: Vec<(Kind, String, Value)> = Vec::new();
        let mut nics_out = Vec::new();
        let mut attach = Vec::new();
        for (i, cfg) in arr(b, "/properties/networkProfile/networkInterfaceConfigurations")
            .into_iter()
            .enumerate()
        {
            let nic_name = s_of(cfg, "/name").unwrap_or("");
            if let Err(e) = Kind::Nic.check_name(nic_name) {
                return err(400, "InvalidResourceName", &e);
            }
            let nk = key(Kind::Nic, rg, nic_name);
            if let Err(r) = Handler::nic_free(s, &nk, &vm_id) {
                return r;
            }
            let nic_id = sibling_id(&vm_id, Kind::Nic, nic_name);
            let mut ipcs = Vec::new();
            for (j, ipc) in arr(cfg, "/properties/ipConfigurations").into_iter().enumerate() {
                let ipc_name = s_of(ipc, "/name").unwrap_or("ipconfig1");
                let Some(subnet) = s_of(ipc, "/properties/subnet/id") else {
                    return err(400, "InvalidParameter", &format!(
                        "Subnet is required for IP configuration '{ipc_name}' of network interface configuration '{nic_name}'."));
                };
                if let Err(r) = Handler::check_ref(s, subnet, Kind::VirtualNetwork, &vm_id) {
                    return r;
                }
                let mut props = json!({"primary": ipc.pointer("/properties/primary").cloned().unwrap_or(json!(j == 0)),
                    "subnet": {"id": subnet}});
                if let Some(pc) = ipc.pointer("/properties/publicIPAddressConfiguration") {
                    let pip_name = s_of(pc, "/name").unwrap_or("");
                    if let Err(e) = Kind::PublicIp.check_name(pip_name) {
                        return err(400, "InvalidResourceName", &e);
                    }
                    let mut pip = json!({"location": loc, "properties": {
                        "ipConfiguration": {"id": format!("{nic_id}/ipConfigurations/{ipc_name}")}}});
                    if let Some(sku) = pc.get("sku") {
                        pip["sku"] = sku.clone();
                    }
                    for (from, to) in [
                        ("publicIPAllocationMethod", "publicIPAllocationMethod"),
                        ("publicIPAddressVersion", "publicIPAddressVersion"),
                        ("idleTimeoutInMinutes", "idleTimeoutInMinutes"),
                    ] {
                        if let Some(x) = pc.pointer(&format!("/properties/{from}")) {
                            pip["properties"][to] = x.clone();
                        }
                    }
                    if let Some(t) = &tags {
                        pip["tags"] = t.clone();
                    }
                    props["publicIPAddress"] = json!({"id": sibling_id(&vm_id, Kind::PublicIp, pip_name)});
                    plans.push((Kind::PublicIp, pip_name.to_string(), pip));
                }
                ipcs.push(json!({"name": ipc_name, "properties": props}));
            }
            let mut nic = json!({"location": loc, "properties": {"ipConfigurations": ipcs, "virtualMachine": {"id": vm_id},
                "primary": cfg.pointer("/properties/primary").cloned().unwrap_or(json!(i == 0))}});
            if let Some(x) = cfg.pointer("/properties/enableAcceleratedNetworking") {
                nic["properties"]["enableAcceleratedNetworking"] = x.clone();
            }
            if let Some(nsg) = s_of(cfg, "/properties/networkSecurityGroup/id") {
                if let Err(r) = Handler::check_ref(s, nsg, Kind::NetworkSecurityGroup, &vm_id) {
                    return r;
                }
                nic["properties"]["networkSecurityGroup"] = json!({"id": nsg});
            }
            if let Some(t) = &tags {
                nic["tags"] = t.clone();
            }
            plans.push((Kind::Nic, nic_name.to_string(), nic));
            nics_out.push(json!({"id": nic_id, "properties": {
                "primary": cfg.pointer("/properties/primary").cloned().unwrap_or(json!(i == 0)),
                "deleteOption": s_of(cfg, "/properties/deleteOption").unwrap_or("Detach")}}));
        }
        for ni in arr(b, "/properties/networkProfile/networkInterfaces") {
            let id = s_of(ni, "/id").unwrap_or("");
            if let Err(r) = Handler::check_ref(s, id, Kind::Nic, &vm_id) {
                return r;
            }
            let Some((g, _, n)) = parse_id(id) else { continue };
            let nk = key(Kind::Nic, &g, &n);
            if let Err(r) = Handler::nic_free(s, &nk, &vm_id) {
                return r;
            }
            attach.push(nk);
            nics_out.push(json!({"id": id, "properties": {
                "primary": ni.pointer("/properties/primary").cloned().unwrap_or(json!(true)),
                "deleteOption": s_of(ni, "/properties/deleteOption").unwrap_or("Detach")}}));
        }
        if nics_out.is_empty() {
            return err(400, "InvalidParameter", "At least one network interface is required: set networkProfile.networkInterfaces or networkProfile.networkInterfaceConfigurations.");
        }
        for (kind, n, body) in plans {
            let mut v = stamp(&self.ex, kind, sub, rg, &n, body, s);
            if let Some(old) = s.res.get(&key(kind, rg, &n)) {
                if let Some(ip) = old.value.pointer("/properties/ipAddress") {
                    v["properties"]["ipAddress"] = ip.clone();
                }
            }
            s.res.insert(key(kind, rg, &n), Res::new(v));
        }
        for nk in attach {
            if let Some(nic) = s.res.get_mut(&nk) {
                nic.value["properties"]["virtualMachine"] = json!({"id": vm_id});
            }
        }
        s.nic_reserved.retain(|_, (until, _)| *until > Instant::now());
        let mut v = stamp(&self.ex, Kind::Vm, sub, rg, name, b.clone(), s);
        let n = s.next_id();
        let vm_guid = s.guid();
        let p = &mut v["properties"];
        p["vmId"] = json!(vm_guid);
        p["timeCreated"] = json!(now_text());
        p["provisioningState"] = json!("Creating");
        p["networkProfile"]["networkInterfaces"] = json!(nics_out);
        if !p["storageProfile"].is_object() {
            p["storageProfile"] = json!({});
        }
        let sp = &mut p["storageProfile"];
        default(sp, "dataDisks", json!([]));
        if !sp["osDisk"].is_object() {
            sp["osDisk"] = json!({"createOption": "FromImage"});
        }
        let os = &mut sp["osDisk"];
        default(os, "name", json!(format!("{name}_OsDisk_1_{n:032x}")));
        default(os, "osType", json!("Linux"));
        let disk_name = os["name"].as_str().unwrap_or("").to_string();
        if !os["managedDisk"].is_object() {
            os["managedDisk"] = json!({});
        }
        os["managedDisk"]["id"] = json!(sibling_id(&vm_id, Kind::Disk, &disk_name));
        if p["osProfile"].is_object() {
            default(&mut p["osProfile"], "secrets", json!([]));
        }
        if s_of(&v, "/identity/type").is_some_and(|t| t.contains("SystemAssigned")) {
            let principal = s.guid();
            s.principals.insert(principal.clone(), Instant::now());
            v["identity"]["principalId"] = json!(principal);
            v["identity"]["tenantId"] = json!("00000000-0000-0000-0000-00000000aaaa");
        }
        let op = new_op(s, f, sub, "Microsoft.Compute", loc, Effect::Create(k.clone()), failure);
        let mut r = Res::new(v);
        r.op = Some(op.clone());
        let body = view(&r, false);
        s.res.insert(k, r);
        let status = if existing.is_some() { 200 } else { 201 };
        self.with_lro(reply(status, body), s, f, c, &op, true)
    }

    fn delete(&self, s: &mut State, f: &Faults, c: &Call, kind: Kind, rg: &str, name: &str) -> Reply {
        let k = key(kind, rg, name);
        if s.group_live(rg).is_none() {
            return group_not_found(rg);
        }
        let Some(r) = s.res.get(&k) else { return empty(204) };
        let id = s_of(&r.value, "/id").unwrap_or("").to_string();
        if kind == Kind::RoleAssignment {
            let v = r.value.clone();
            s.res.remove(&k);
            return reply(200, v);
        }
        if let Some(op) = r.op.clone().filter(|o| {
            s.ops
                .get(o)
                .is_some_and(|x| !x.finished && matches!(x.effect, Effect::Delete(_)))
        }) {
            return self.with_lro(empty(202), s, f, c, &op, true);
        }
        let used_by = |pred: &dyn Fn(&Value) -> bool| {
            s.res
                .iter()
                .filter(|(rk, _)| **rk != k)
                .find(|(_, x)| pred(&x.value))
                .map(|(_, x)| s_of(&x.value, "/id").unwrap_or("").to_string())
        };
        let refers = |v: &Value, to: &str| {
            key_paths_values(v).iter().any(|x| {
                x.eq_ignore_ascii_case(to)
                    || x.to_ascii_lowercase()
                        .starts_with(&format!("{}/", to.to_ascii_lowercase()))
            })
        };
        match kind {
            Kind::Nic => {
                if let Err(e) = Handler::nic_free(s, &k, "") {
                    if let Some(vm) = s_of(&r.value, "/properties/virtualMachine/id") {
                        return err(400, "NicInUse", &format!(
                            "Network Interface {id} is used by existing resource {vm}. In order to delete the network interface, it must be dissociated from the resource. To learn more, see aka.ms/deletenic."));
                    }
                    return e;
                }
            }
            Kind::PublicIp => {
                if let Some(ipc) = s_of(&r.value, "/properties/ipConfiguration/id") {
                    return err(400, "PublicIPAddressInUse", &format!(
                        "Public IP address {id} can not be deleted since it is still allocated to resource {ipc}. In order to delete the public IP, disassociate/detach the Public IP address from the resource. To learn how to do this, see aka.ms/deletepublicip."));
                }
            }
            Kind::Disk => {
                if let Some(vm) = s_of(&r.value, "/managedBy") {
                    return err(
                        409,
                        "OperationNotAllowed",
                        &format!("Disk {name} is attached to VM {vm}."),
                    );
                }
            }
            Kind::NetworkSecurityGroup | Kind::VirtualNetwork => {
                if let Some(user) = used_by(&|v: &Value| v["type"] == Kind::Nic.arm_type() && refers(v, &id)) {
                    let code = if kind == Kind::VirtualNetwork {
                        "InUseSubnetCannotBeDeleted"
                    } else {
                        "InUseNetworkSecurityGroupCannotBeDeleted"
                    };
                    return err(
                        400,
                        code,
                        &format!("{} {id} is in use by {user} and cannot be deleted.", kind.arm_type()),
                    );
                }
            }
            _ => {}
        }
        let loc = s_of(&r.value, "/location").unwrap_or("eastus").to_string();
        let op = new_op(s, f, c.sub(), kind.namespace(), &loc, Effect::Delete(k.clone()), None);
        if let Some(r) = s.res.get_mut(&k) {
            r.value["properties"]["provisioningState"] = json!("Deleting");
            r.op = Some(op.clone());
        }
        self.with_lro(empty(202), s, f, c, &op, true)
    }

    fn vm_action(&self, s: &mut State, f: &Faults, c: &Call, rg: &str, name: &str, action: &str) -> Reply {
        let k = key(Kind::Vm, rg, name);
        let Some(r) = s.res.get(&k) else {
            return not_found(Kind::Vm, rg, name);
        };
        let loc = s_of(&r.value, "/location").unwrap_or("eastus").to_string();
        let to = match (c.method, action) {
            ("GET", "instanceview") => return reply(200, instance_view_of(r)),
            ("POST", "poweroff") => Power::Stopped,
            ("POST", "deallocate") => Power::Deallocated,
            ("POST", "start") => Power::Running,
            ("POST", "simulateeviction") => {
                if s_of(&r.value, "/properties/priority") != Some("Spot") {
                    return err(
                        409,
                        "OperationNotAllowed",
                        "Simulate eviction is only supported for Spot virtual machines.",
                    );
                }
                if s_of(&r.value, "/properties/evictionPolicy") == Some("Delete") {
                    remove(s, &k);
                } else if let Some(r) = s.res.get_mut(&k) {
                    r.power = Power::Deallocated;
                }
                return empty(204);
            }
            (m, a) => {
                return err(
                    405,
                    "MethodNotAllowed",
                    &format!("herd's fake ARM does not serve {m} virtualMachines/{a}"),
                )
            }
        };
        let op = new_op(s, f, c.sub(), "Microsoft.Compute", &loc, Effect::Power(k, to), None);
        self.with_lro(empty(202), s, f, c, &op, true)
    }

    fn filter(&self, f: &Faults, c: &Call) -> Result<Vec<(String, String)>, Reply> {
        match c.query.get("$filter") {
            Some(x) if !f.ignore_filters => parse_filter(x).map_err(|e| err(400, "InvalidFilterInQueryString", &e)),
            _ => Ok(Vec::new()),
        }
    }

    fn list_groups(&self, s: &State, f: &Faults, c: &Call) -> Reply {
        let conds = match self.filter(f, c) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let items = s
            .groups
            .values()
            .map(group_view)
            .filter(|v| filter_matches(&conds, v))
            .collect();
        self.page(f, c, items)
    }

    /// `Resources_List`: every resource (id, name, type, location, tags, managedBy).
    fn list_generic(&self, s: &State, f: &Faults, c: &Call, rg: Option<&str>) -> Reply {
        if let Some(g) = rg.filter(|g| s.group_live(g).is_none()) {
            return group_not_found(g);
        }
        let conds = match self.filter(f, c) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let rg = rg.map(str::to_ascii_lowercase);
        let items = s
            .res
            .iter()
            .filter(|(k, _)| rg.as_ref().is_none_or(|g| &k.1 == g))
            .map(|(_, r)| {
                let mut m = Map::new();
                for f in ["id", "name", "type", "location", "tags", "managedBy", "zones"] {
                    if let Some(x) = r.value.get(f) {
                        m.insert(f.into(), x.clone());
                    }
                }
                Value::Object(m)
            })
            .filter(|v| filter_matches(&conds, v))
            .collect();
        self.page(f, c, items)
    }

    fn list(&self, s: &State, f: &Faults, c: &Call, kind: Kind, rg: Option<&str>) -> Reply {
        if let Some(g) = rg.filter(|g| s.group_live(g).is_none()) {
            return group_not_found(g);
        }
        if c.query.contains_key("$filter") && !f.ignore_filters {
            return err(400, "InvalidParameter", &format!(
                "herd's fake ARM does not filter lists of {} (Azure takes only 'virtualMachineScaleSet/id' eq '...' there); herd filters by tags itself.",
                kind.arm_type()));
        }
        let expand = c.query.get("statusOnly").is_some_and(|x| x == "true")
            || c.query
                .get("$expand")
                .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"));
        let items = s.of_kind(kind, rg);
        self.page_of(f, c, &items, |r| view(r, expand))
    }

    /// One page of `items` from `$skiptoken`, with a `nextLink` keeping the caller's query.
    fn page(&self, f: &Faults, c: &Call, items: Vec<Value>) -> Reply {
        self.page_of(f, c, &items, Clone::clone)
    }

    /// [`Handler::page`], rendering only the page's items (a VM list of thousands).
    fn page_of<T>(&self, f: &Faults, c: &Call, items: &[T], render: impl Fn(&T) -> Value) -> Reply {
        let start = match c.query.get("$skiptoken") {
            None => 0,
            Some(t) => match t.parse::<usize>() {
                Ok(n) if n <= items.len() => n,
                _ => return err(400, "InvalidSkipToken", &format!("The skip token '{t}' is not valid.")),
            },
        };
        let end = (start + f.page_size.max(1)).min(items.len());
        let page: Vec<Value> = items[start..end].iter().map(render).collect();
        let mut out = json!({ "value": page });
        if end < items.len() {
            let kept: Vec<&str> = c
                .raw_query
                .split('&')
                .filter(|p| {
                    let k = p.split('=').next().unwrap_or("");
                    !k.is_empty() && k != "$skiptoken" && !k.eq_ignore_ascii_case("%24skiptoken")
                })
                .collect();
            out["nextLink"] = json!(format!("{}{}?{}&$skiptoken={end}", self.base, c.path, kept.join("&")));
        }
        reply(200, out)
    }
}

/// Every string value in `v` (to find references to an id).
fn key_paths_values(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}
