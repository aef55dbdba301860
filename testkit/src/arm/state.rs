//! What the fake ARM holds: resource groups and the resources in them (keyed by lower
//! case, as ARM names are case-insensitive), each as the JSON ARM would answer plus the
//! little the fake must remember beside it (power state, a creation's error).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::Value;

use super::ops::Op;
use super::throttle::{CallKind, Throttle};
use super::Recorded;

/// The resource types the fake knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ResourceGroup,
    VirtualNetwork,
    NetworkSecurityGroup,
    PublicIp,
    Nic,
    Vm,
    Disk,
    /// `Microsoft.Authorization/roleAssignments` in a group: the watchdog's identity may
    /// delete its own group.
    RoleAssignment,
}

impl Kind {
    pub const RESOURCES: [Kind; 7] = [
        Kind::VirtualNetwork,
        Kind::NetworkSecurityGroup,
        Kind::PublicIp,
        Kind::Nic,
        Kind::Vm,
        Kind::Disk,
        Kind::RoleAssignment,
    ];

    /// `Microsoft.Network/publicIPAddresses`: the ARM type, as answers spell it.
    pub fn arm_type(self) -> &'static str {
        match self {
            Kind::ResourceGroup => "Microsoft.Resources/resourceGroups",
            Kind::VirtualNetwork => "Microsoft.Network/virtualNetworks",
            Kind::NetworkSecurityGroup => "Microsoft.Network/networkSecurityGroups",
            Kind::PublicIp => "Microsoft.Network/publicIPAddresses",
            Kind::Nic => "Microsoft.Network/networkInterfaces",
            Kind::Vm => "Microsoft.Compute/virtualMachines",
            Kind::Disk => "Microsoft.Compute/disks",
            Kind::RoleAssignment => "Microsoft.Authorization/roleAssignments",
        }
    }

    /// The kind of `namespace/type` in a path, case-insensitively.
    pub fn from_path(ns: &str, ty: &str) -> Option<Kind> {
        let want = format!("{ns}/{ty}").to_ascii_lowercase();
        Kind::RESOURCES
            .into_iter()
            .find(|k| k.arm_type().to_ascii_lowercase() == want)
    }

    pub fn namespace(self) -> &'static str {
        self.arm_type().split('/').next().unwrap_or("")
    }

    /// ARM's naming rule for the kind; `Err` is the message of the 400.
    /// Ref: learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules
    /// (Microsoft.Compute: virtualMachines 1-64 for Linux, no `~!@#$%^&*()=+_[]{}\|;:.'",<>/?`
    /// except a period or underscore inside, not starting with `_`, not ending with `.`
    /// or `-`; Microsoft.Network: 1-80 alphanumerics, `_`, `.`, `-`, starting
    /// alphanumeric, ending alphanumeric or `_`; resource groups: 1-90 alphanumerics,
    /// `_`, `-`, `.`, `(`, `)`, not ending with `.`; disks 1-80 alphanumerics, `_`, `-`, `.`).
    pub fn check_name(self, name: &str) -> Result<(), String> {
        let bad = |why: &str| {
            Err(format!(
                "The resource name '{name}' for type '{}' is invalid: {why}",
                self.arm_type()
            ))
        };
        let alnum = |c: char| c.is_ascii_alphanumeric();
        let first = name.chars().next();
        let last = name.chars().last();
        match self {
            Kind::RoleAssignment => {
                let hex = |n: usize| move |p: &str| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit());
                let parts: Vec<&str> = name.split('-').collect();
                let ok = parts.len() == 5 && [8, 4, 4, 4, 12].iter().zip(&parts).all(|(n, p)| hex(*n)(p));
                if !ok {
                    return bad("a role assignment's name is a GUID");
                }
            }
            Kind::Vm => {
                if name.is_empty() || name.len() > 64 {
                    return bad("a Linux virtual machine name has 1 to 64 characters");
                }
                if name.starts_with('_') {
                    return bad("it cannot start with an underscore");
                }
                if name.ends_with('.') || name.ends_with('-') {
                    return bad("it cannot end with a period or a hyphen");
                }
                if !name.chars().all(|c| alnum(c) || c == '-' || c == '.' || c == '_') {
                    return bad("it can contain only letters, digits, hyphens, periods and underscores");
                }
            }
            Kind::ResourceGroup => {
                if name.is_empty() || name.len() > 90 {
                    return bad("a resource group name has 1 to 90 characters");
                }
                if name.ends_with('.') {
                    return bad("it cannot end with a period");
                }
                if !name.chars().all(|c| alnum(c) || "_-.()".contains(c)) {
                    return bad("it can contain only letters, digits, underscores, hyphens, periods and parentheses");
                }
            }
            _ => {
                if name.is_empty() || name.len() > 80 {
                    return bad("the name has 1 to 80 characters");
                }
                if !name.chars().all(|c| alnum(c) || "_-.".contains(c)) {
                    return bad("it can contain only letters, digits, underscores, periods and hyphens");
                }
                if self != Kind::Disk && (!first.is_some_and(alnum) || !last.is_some_and(|c| alnum(c) || c == '_')) {
                    return bad("it must start with a letter or digit and end with a letter, digit or underscore");
                }
            }
        }
        Ok(())
    }
}

/// A VM's power, as its instance view's `PowerState/...` code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Starting,
    Running,
    Stopped,
    Deallocated,
}

impl Power {
    pub fn code(self) -> &'static str {
        match self {
            Power::Starting => "starting",
            Power::Running => "running",
            Power::Stopped => "stopped",
            Power::Deallocated => "deallocated",
        }
    }
}

/// One resource: ARM's JSON, and what the fake keeps beside it.
#[derive(Debug, Clone)]
pub struct Res {
    pub value: Value,
    pub power: Power,
    /// The error a failed creation ended with (shown in the instance view).
    pub error: Option<(String, String)>,
    /// The operation under way on it (creation, update, deletion), so a re-sent PUT or
    /// DELETE joins it instead of starting another.
    pub op: Option<String>,
}

impl Res {
    pub fn new(value: Value) -> Res {
        Res {
            value,
            power: Power::Starting,
            error: None,
            op: None,
        }
    }
}

/// A resource group, and when its deletion ends.
#[derive(Debug, Clone)]
pub struct Group {
    pub value: Value,
    pub deleting_until: Option<Instant>,
}

/// (kind, group, name), lower case.
pub type Key = (Kind, String, String);

pub fn key(kind: Kind, rg: &str, name: &str) -> Key {
    (kind, rg.to_ascii_lowercase(), name.to_ascii_lowercase())
}

#[derive(Debug)]
pub struct State {
    pub groups: BTreeMap<String, Group>,
    pub res: BTreeMap<Key, Res>,
    pub ops: HashMap<String, Op>,
    /// NIC key -> (reserved until, the VM it was reserved for).
    pub nic_reserved: HashMap<Key, (Instant, String)>,
    /// Scheduled deletions (`Microsoft.ComputeSchedule`) by operation id.
    pub scheduled: BTreeMap<String, super::schedule::Scheduled>,
    pub seen: Vec<Recorded>,
    /// Calls by `METHOD kind` (`PUT virtualMachines`) and by bucket.
    pub calls: BTreeMap<String, u32>,
    pub by_bucket: BTreeMap<CallKind, u32>,
    pub throttled: u32,
    pub throttle: Throttle,
    pub next: u64,
    /// Copied from the faults on every request, for effects that happen when an
    /// operation ends: [`super::Faults::nic_reserved_for`], [`super::Faults::propagate_tags`].
    pub nic_reserved_for: std::time::Duration,
    pub propagate_tags: bool,
    /// System-assigned identities' principal ids, and when they were made.
    pub principals: HashMap<String, Instant>,
    /// The subscription id of the last request (for planted resources' ids).
    pub subscription: String,
}

impl State {
    pub fn new(throttle: Throttle) -> State {
        State {
            groups: BTreeMap::new(),
            res: BTreeMap::new(),
            ops: HashMap::new(),
            nic_reserved: HashMap::new(),
            scheduled: BTreeMap::new(),
            seen: Vec::new(),
            calls: BTreeMap::new(),
            by_bucket: BTreeMap::new(),
            throttled: 0,
            throttle,
            next: 0,
            nic_reserved_for: std::time::Duration::ZERO,
            propagate_tags: true,
            principals: HashMap::new(),
            subscription: "00000000-0000-0000-0000-000000000000".into(),
        }
    }

    pub fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// A GUID-shaped id, deterministic per fake (for `vmId`, operation ids).
    pub fn guid(&mut self) -> String {
        let n = self.next_id();
        format!("00000000-0000-4000-8000-{n:012x}")
    }

    pub fn group_live(&self, rg: &str) -> Option<&Group> {
        self.groups.get(&rg.to_ascii_lowercase())
    }

    /// Resources of a kind, optionally in one group.
    pub fn of_kind(&self, kind: Kind, rg: Option<&str>) -> Vec<&Res> {
        let rg = rg.map(str::to_ascii_lowercase);
        self.res
            .iter()
            .filter(|(k, _)| k.0 == kind && rg.as_ref().is_none_or(|g| &k.1 == g))
            .map(|(_, r)| r)
            .collect()
    }
}

/// The parts of an ARM resource id: (group, kind, name), from
/// `/subscriptions/S/resourceGroups/G/providers/NS/TYPE/NAME[/child/...]`.
pub fn parse_id(id: &str) -> Option<(String, Kind, String)> {
    let segs: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    if segs.len() < 8
        || !segs[0].eq_ignore_ascii_case("subscriptions")
        || !segs[2].eq_ignore_ascii_case("resourcegroups")
        || !segs[4].eq_ignore_ascii_case("providers")
    {
        return None;
    }
    Some((
        segs[3].to_string(),
        Kind::from_path(segs[5], segs[6])?,
        segs[7].to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_arm_rules() {
        assert!(Kind::Vm.check_name("herd-a-b-0").is_ok());
        assert!(Kind::Vm.check_name(&"a".repeat(64)).is_ok());
        assert!(Kind::Vm.check_name(&"a".repeat(65)).is_err());
        assert!(Kind::Vm.check_name("_vm").is_err());
        assert!(Kind::Vm.check_name("vm-").is_err());
        assert!(Kind::Vm.check_name("vm@1").is_err());
        assert!(Kind::Nic.check_name("-nic").is_err());
        assert!(Kind::Nic.check_name("nic_").is_ok());
        assert!(Kind::ResourceGroup.check_name("herd-me-(x)").is_ok());
        assert!(Kind::ResourceGroup.check_name("rg.").is_err());
        let id = "/subscriptions/s/resourceGroups/G/providers/Microsoft.Network/virtualNetworks/v/subnets/default";
        assert_eq!(parse_id(id), Some(("G".into(), Kind::VirtualNetwork, "v".into())));
    }
}
