//! Resources in a group: create-or-update of the network kinds and role assignments,
//! get, delete (refused while something uses the resource, as ARM does), and the JSON
//! the fake stores for each kind, shaped after Azure's examples' answers.

use std::time::Instant;

use serde_json::{json, Value};

use super::compute::instance_view_of;
use super::examples::Examples;
use super::ops::{self, now_text, Effect};
use super::routes::*;
use super::state::{key, parse_id, Key, Kind, Power, Res, State};
use super::Faults;

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

/// Every string value in `v` (to find references to an id).
pub(super) fn key_paths_values(v: &Value) -> Vec<String> {
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

impl Handler {
    /// A reference to another resource must name one that exists (a subnet inside its
    /// virtual network).
    pub(super) fn check_ref(s: &State, id: &str, want: Kind, from: &str) -> Result<(), Reply> {
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
    pub(super) fn nic_free(s: &State, nk: &Key, vm_id: &str) -> Result<(), Reply> {
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

    pub(super) fn resource(&self, s: &mut State, f: &Faults, c: &Call, kind: Kind, rg: &str, name: &str) -> Reply {
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
                if s.res
                    .get(&k)
                    .and_then(|r| s_of(&r.value, "/properties/provisioningState"))
                    == Some("Deleting")
                {
                    return err(409, "AnotherOperationInProgress", &format!(
                        "Operation 'PUT' on {} '{name}' is not allowed: the resource is being deleted. Another operation on this or dependent resource is in progress."
                        , kind.arm_type()));
                }
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
    pub(super) fn net_put(
        &self,
        s: &mut State,
        f: &Faults,
        c: &Call,
        kind: Kind,
        rg: &str,
        name: &str,
        loc: &str,
    ) -> Reply {
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
    pub(super) fn role_put(&self, s: &mut State, f: &Faults, c: &Call, rg: &str, name: &str) -> Reply {
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

    pub(super) fn delete(&self, s: &mut State, f: &Faults, c: &Call, kind: Kind, rg: &str, name: &str) -> Reply {
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
}
