//! Virtual machines: create-or-update with inline NIC and public IP configurations or
//! attached NICs, the seeded capacity and quota faults, power actions and Spot eviction,
//! the instance view, and the OS disk made when the VM is.

use std::time::Instant;

use serde_json::{json, Value};

use super::ops::{self, now_text, Effect};
use super::resources::{remove, stamp, view};
use super::routes::*;
use super::state::{key, parse_id, Key, Kind, Power, Res, State};
use super::{Delivery, Faults};

pub(super) fn instance_view(r: &Res) -> Value {
    instance_view_of(r)
}

/// Shaped after `VirtualMachine_Get_InstanceView.json` (no boot diagnostics or patch
/// status: the fake enables neither).
pub(super) fn instance_view_of(r: &Res) -> Value {
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

impl Handler {
    pub(super) fn vm_fault(
        &self,
        s: &State,
        f: &Faults,
        c: &Call,
        k: &Key,
        loc: &str,
    ) -> Option<(u16, String, String)> {
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
    pub(super) fn vm_put(&self, s: &mut State, f: &Faults, c: &Call, rg: &str, name: &str, loc: &str) -> Reply {
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

    pub(super) fn vm_action(&self, s: &mut State, f: &Faults, c: &Call, rg: &str, name: &str, action: &str) -> Reply {
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
}
