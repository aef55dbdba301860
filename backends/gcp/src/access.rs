//! How a person reaches a VM: the owner's SSH key in instance metadata (`ssh-keys`, built
//! in launch.rs from herd-guest's key), and a firewall rule allowing SSH only from the
//! caller's address, targeting the owner's network tag. Firewall rules carry no labels,
//! so herd's are found by name prefix ([`PREFIX`]) and their description.

use herd_core::{Error, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::client::Gce;
use crate::launch::{network_tag, request_id};

/// Every firewall rule herd makes starts with this.
pub const PREFIX: &str = "herd-ssh-";

/// The description that says whose a rule is (read back by reap).
pub fn description(owner: &str) -> String {
    format!("herd: SSH for herd owner {}", herd_core::tags::sanitize_value(owner))
}

/// The owner a herd rule's description names.
pub fn owner_of(rule: &Value) -> Option<String> {
    rule.get("description")?
        .as_str()?
        .strip_prefix("herd: SSH for herd owner ")
        .map(str::to_string)
}

/// The rule's name for `owner` from `cidr` (one per owner and address).
pub fn rule_name(owner: &str, cidr: &str) -> String {
    let h: String = Sha256::digest(cidr.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut tag = network_tag(owner);
    tag.truncate(63 - PREFIX.len() - 9 + "herd-".len());
    format!("{PREFIX}{}-{h}", tag.trim_start_matches("herd-").trim_end_matches('-'))
}

/// herd's rules (by name prefix), as GCE lists them.
pub async fn rules(gce: &Gce) -> Result<Vec<Value>> {
    let q = vec![("filter", format!("name eq \"{PREFIX}.*\""))];
    let all = gce.pages("global/firewalls", &q, "", "firewalls.list").await?;
    Ok(all
        .into_iter()
        .filter(|r| {
            r.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.starts_with(PREFIX))
        })
        .collect())
}

/// Makes sure a rule lets `cidr` reach `owner`'s VMs on port 22.
pub async fn ensure(gce: &Gce, owner: &str, cidr: &str) -> Result<()> {
    let tag = network_tag(owner);
    let want = description(owner);
    for r in rules(gce).await? {
        let desc_ok = r.get("description").and_then(Value::as_str) == Some(want.as_str());
        let has = |field: &str, v: &str| {
            r.get(field)
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(v)))
        };
        if desc_ok && has("sourceRanges", cidr) && has("targetTags", &tag) {
            return Ok(());
        }
    }
    let name = rule_name(owner, cidr);
    let body = json!({
        "name": name,
        "description": want,
        "network": "global/networks/default",
        "direction": "INGRESS",
        "priority": 1000,
        "allowed": [{ "IPProtocol": "tcp", "ports": ["22"] }],
        "sourceRanges": [cidr],
        "targetTags": [tag],
    });
    match gce
        .post(
            "global/firewalls",
            &[("requestId", request_id(&name))],
            &body,
            "firewalls.insert",
        )
        .await
    {
        Ok(_) => Ok(()),
        // Made meanwhile by another herd of the same owner: the same rule.
        Err(e) if e.kind() == herd_core::ErrorKind::Conflict => Ok(()),
        Err(e) => Err(e),
    }
}

/// `a.b.c.d/32` (or an IPv6 /128), checked, before any call.
pub fn check_cidr(c: &str) -> Result<()> {
    let ok = c
        .split_once('/')
        .is_some_and(|(ip, bits)| ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(
            Error::config(format!("`{c}` is not an address range like 203.0.113.7/32"))
                .with_hint("set [gcp] ssh_cidr to your address with /32"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_are_gce_names_and_descriptions_say_whose() {
        let n = rule_name("Ann", "203.0.113.7/32");
        assert!(n.starts_with("herd-ssh-ann-") && n.len() <= 63, "{n}");
        assert_ne!(n, rule_name("Ann", "203.0.113.8/32"));
        let long = rule_name(&"x".repeat(80), "1.2.3.4/32");
        assert!(long.len() <= 63, "{long}");
        let r = json!({"description": description("Ann")});
        assert_eq!(owner_of(&r).as_deref(), Some("ann"));
        assert!(check_cidr("1.2.3.4/32").is_ok() && check_cidr("1.2.3.4").is_err());
    }
}
