//! One launch call on Compute Engine: zonal `instances.bulkInsert` for all N at once,
//! all or nothing (`count` = `minCount` = N), VM names from the launch token through
//! `perInstanceProperties` (never `namePattern`, whose numbering continues after existing
//! names, so a retry would make new VMs), and a `requestId` derived from the same token,
//! so a retry of the call is the same call to GCE. The deadline is the cloud's:
//! `scheduling.terminationTime` with `instanceTerminationAction: DELETE`, STANDARD and
//! SPOT alike; the boot disk goes with the VM (`autoDelete`).

use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use herd_core::plumbing::ZoneFallback;
use herd_core::{tags, Error, Instance, LaunchRequest, Result, Tags};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::client::Gce;
use crate::list;

/// GCE instance names: `[a-z]([-a-z0-9]{0,61}[a-z0-9])?`
/// (<https://cloud.google.com/compute/docs/naming-resources>).
pub const MAX_NAME: usize = 63;

/// The name of the `i`th VM of the call sent under `token` (a launch id, or a fill token
/// of a partial launch): the same on every retry, and distinct across tokens (a hash of
/// the token stands in for what a long one loses to the 63-character limit).
pub fn instance_name(token: &str, i: u32) -> String {
    let clean: String = token
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let suffix = format!("-{i:04}");
    let mut base = format!("herd-{}", clean.trim_matches('-'));
    if base.len() + suffix.len() > MAX_NAME {
        let h = hex(&Sha256::digest(token.as_bytes())[..4]);
        base.truncate(MAX_NAME - suffix.len() - h.len() - 1);
        base = format!("{}-{h}", base.trim_end_matches('-'));
    }
    format!("{base}{suffix}")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The call's `requestId`: a name-based UUID (RFC 9562 version 8 layout) from the
/// SHA-256 of `token`, so every retry of a call sends the same one and no two calls do.
pub fn request_id(token: &str) -> String {
    let mut b: [u8; 16] = Sha256::digest(format!("herd-gce-request:{token}").as_bytes())[..16]
        .try_into()
        .expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The network tag of an owner's VMs, which their firewall rule targets.
pub fn network_tag(owner: &str) -> String {
    let mut t = format!("herd-{}", tags::sanitize_value(owner).replace('_', "-"));
    t.truncate(MAX_NAME);
    t.trim_end_matches('-').to_string()
}

/// What one call needs besides the request.
#[derive(Debug)]
pub struct Call<'a> {
    pub req: &'a LaunchRequest,
    pub token: &'a str,
    pub count: u32,
    pub image: &'a str,
    pub owner: &'a str,
    pub ssh_key: &'a str,
    pub startup_script: &'a str,
}

/// The bulkInsert body, every field of it named in the discovery document's
/// `BulkInsertInstanceResource`.
pub fn body(c: &Call<'_>) -> Value {
    let labels: Map<String, Value> = tags::request_tags(c.req)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let mut per = Map::new();
    for i in 0..c.count {
        let n = instance_name(c.token, i);
        per.insert(n.clone(), json!({ "name": n }));
    }
    let spot = c.req.market.wants_spot();
    let mut scheduling = json!({
        "provisioningModel": if spot { "SPOT" } else { "STANDARD" },
        "instanceTerminationAction": "DELETE",
        "terminationTime": rfc3339(c.req.deadline),
        "automaticRestart": false,
    });
    if spot {
        // Spot VMs cannot live-migrate (GCE: "Spot VMs ... onHostMaintenance TERMINATE").
        scheduling["onHostMaintenance"] = json!("TERMINATE");
    }
    json!({
        "count": c.count.to_string(),
        "minCount": c.count.to_string(),
        "perInstanceProperties": per,
        "instanceProperties": {
            "machineType": c.req.instance_type,
            "description": format!("herd launch {}", c.req.launch_id),
            "labels": labels,
            "tags": { "items": [network_tag(c.owner)] },
            "metadata": { "items": [
                { "key": "ssh-keys", "value": format!("herd:{}", c.ssh_key.trim()) },
                { "key": "startup-script", "value": c.startup_script },
            ]},
            "disks": [{
                "boot": true,
                "autoDelete": true,
                "type": "PERSISTENT",
                "initializeParams": { "sourceImage": c.image, "labels": Value::Object(labels.clone()) },
            }],
            "networkInterfaces": [{
                "network": "global/networks/default",
                "accessConfigs": [{ "type": "ONE_TO_ONE_NAT", "name": "External NAT" }],
            }],
            "scheduling": scheduling,
            // The watchdog deletes its own VM with this account's token (README: which role).
            "serviceAccounts": [{ "email": "default", "scopes": [crate::auth::SCOPE] }],
        },
    })
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Sends one call in `zone` and waits for it; the VMs it made, read back by label.
pub async fn bulk_insert(gce: &Gce, c: &Call<'_>, zone: &str, budget: std::time::Duration) -> Result<Vec<Instance>> {
    let what = format!("instances.bulkInsert of {} in {zone}", c.count);
    let op = gce
        .post(
            &format!("zones/{zone}/instances/bulkInsert"),
            // Per zone: an attempt in another zone is another request to GCE.
            &[("requestId", request_id(&format!("{}@{zone}", c.token)))],
            &body(c),
            &what,
        )
        .await?;
    gce.wait_zone_op(zone, op, budget, &what).await?;
    let names: Vec<String> = (0..c.count).map(|i| instance_name(c.token, i)).collect();
    let filter = format!("labels.{} = \"{}\"", tags::REQUEST, c.req.launch_id);
    let got = list::zone(gce, zone, &filter).await?;
    let mine: Vec<Instance> = got.into_iter().filter(|i| names.contains(&i.id)).collect();
    if mine.len() != names.len() {
        return Err(Error::unexpected(format!(
            "{what} finished, but Compute Engine lists {} of its {} VMs",
            mine.len(),
            names.len()
        ))
        .temporary(true));
    }
    Ok(mine)
}

/// Zone fallback (core's bookkeeping): the pinned zone only, else the zones in order,
/// moving to zones GCE says have capacity (`zonesAvailable`) first.
pub async fn in_some_zone(
    gce: &Gce,
    c: &Call<'_>,
    zones: &[String],
    budget: std::time::Duration,
    misses_out: &Mutex<Vec<String>>,
) -> Result<Vec<Instance>> {
    let mut fb = ZoneFallback::new(&c.req.region, &c.req.instance_type, c.req.zone.as_deref());
    let mut queue: Vec<String> = match c.req.zone.as_deref() {
        Some(z) => vec![z.to_string()],
        None => zones.to_vec(),
    };
    while !queue.is_empty() {
        let zone = queue.remove(0);
        if !fb.worth_trying(&zone) {
            continue;
        }
        let r = bulk_insert(gce, c, &zone, budget).await;
        let hinted: Vec<String> = match &r {
            Err(e) => e
                .context_value("zones_available")
                .map(|z| z.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
            Ok(_) => Vec::new(),
        };
        if let Some(v) = fb.attempt(Some(&zone), r)? {
            *misses_out.lock().expect("misses") = fb.misses().to_vec();
            return Ok(v);
        }
        // GCE's hint first (only zones of this region), then the rest in order.
        let mut next: Vec<String> = hinted
            .into_iter()
            .filter(|z| crate::client::region_of_zone(z) == c.req.region && fb.worth_trying(z))
            .collect();
        let rest: Vec<String> = queue.into_iter().filter(|z| !next.contains(z)).collect();
        next.extend(rest);
        queue = next;
    }
    *misses_out.lock().expect("misses") = fb.misses().to_vec();
    Err(fb.exhausted())
}

/// Labels GCE keeps on a resource, as herd's tags.
pub fn labels_of(v: &Value) -> Tags {
    v.get("labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_stable_and_distinct() {
        let valid = |n: &str| {
            n.len() <= MAX_NAME
                && n.starts_with(|c: char| c.is_ascii_lowercase())
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !n.ends_with('-')
        };
        assert_eq!(instance_name("l-0123abcd", 7), "herd-l-0123abcd-0007");
        let long = "x".repeat(64);
        let n = instance_name(&long, 999);
        assert!(valid(&n), "{n}");
        assert_ne!(n, instance_name(&format!("{}y", "x".repeat(63)), 999));
        assert!(valid(&instance_name("l-abc-fill2", 0)));
    }

    #[test]
    fn request_ids_are_uuids_stable_per_token() {
        let a = request_id("l-abc");
        assert_eq!(a, request_id("l-abc"));
        assert_ne!(a, request_id("l-abc-fill1"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
        assert_ne!(a, "00000000-0000-0000-0000-000000000000");
    }

    #[test]
    fn network_tags_are_gce_names() {
        assert_eq!(network_tag("Ann_B"), "herd-ann-b");
    }
}
