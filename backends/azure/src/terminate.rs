//! Ending VMs: the subscription's VMs are read first (each VM's own tags: core's owner
//! check runs on what the resource carries, and one foreign VM refuses the whole call
//! before any delete), then each VM is deleted (`forceDeletion=true`, which ARM honours
//! where the size allows it) and its deletion waited for; its NIC, IP and OS disk go with
//! it (`deleteOption: Delete`). A 404 is "already gone". A cluster's resource group whose
//! last VM went is deleted too (its VNet and NSG cost nothing, but leave nothing), once
//! its own tags say it is herd's and this owner's; that deletion is not waited for.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use herd_core::plumbing::{check_owned, owner_of, Owner};
use herd_core::{tags, ErrorKind, Instance, Result, TerminateOutcome};
use tokio::sync::Semaphore;

use crate::client::{herd_error, json, Arm};
use crate::launch::{delete_vm, IN_FLIGHT, MAX_NAME};
use crate::list::{self, group_of, tags_of};

pub fn is_name(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NAME
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Deletes `names` (checked to be `owner`'s first); every name gets an outcome, and the
/// VMs deleted are returned as they were last seen.
pub async fn terminate(
    arm: &Arm,
    owner: &str,
    names: &[String],
    budget: Duration,
) -> Result<(HashMap<String, TerminateOutcome>, Vec<Instance>)> {
    let mut outcome: HashMap<String, TerminateOutcome> = HashMap::new();
    let mut wanted: Vec<String> = Vec::new();
    for n in names {
        if !is_name(n) {
            outcome.insert(n.clone(), TerminateOutcome::AlreadyGone);
        } else if !wanted.contains(n) {
            wanted.push(n.clone());
        }
    }
    if wanted.is_empty() {
        return Ok((outcome, Vec::new()));
    }
    let all = list::all(arm).await?;
    let found: Vec<Instance> = all.iter().filter(|i| wanted.contains(&i.id)).cloned().collect();
    check_owned("VM", owner, found.iter().map(|i| (i.id.as_str(), &i.tags)))
        .map_err(|e| e.with_hint("leave it alone, or delete it with `az vm delete` if it is really yours"))?;
    for n in &wanted {
        if !found.iter().any(|i| &i.id == n) {
            outcome.insert(n.clone(), TerminateOutcome::AlreadyGone);
        }
    }
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut set = tokio::task::JoinSet::new();
    for i in found.clone() {
        let (arm, gate) = (arm.clone(), gate.clone());
        set.spawn(async move {
            let _p = gate.acquire_owned().await.expect("open semaphore");
            let g = group_of(&i).unwrap_or_default().to_string();
            let r = delete_vm(&arm, &g, &i.id, budget).await;
            (i.id, r)
        });
    }
    let mut first_err = None;
    let mut deleted = Vec::new();
    while let Some(j) = set.join_next().await {
        let (id, r) = j.map_err(|e| herd_core::Error::unexpected(format!("a delete task failed: {e}")))?;
        match r {
            Ok(true) => {
                deleted.extend(found.iter().filter(|i| i.id == id).cloned());
                outcome.insert(id, TerminateOutcome::Terminated);
            }
            Ok(false) => {
                outcome.insert(id, TerminateOutcome::AlreadyGone);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        // Deleting is idempotent: herd's retry loop asks again, and what went is then gone.
        return Err(e);
    }
    let groups: HashSet<String> = found.iter().filter_map(|i| group_of(i).map(str::to_string)).collect();
    for g in groups {
        let left = all
            .iter()
            .any(|i| group_of(i) == Some(g.as_str()) && !found.iter().any(|f| f.id == i.id));
        if !left {
            delete_group_if_empty(arm, &g, owner).await?;
        }
    }
    Ok((outcome, deleted))
}

/// Deletes resource group `g` if its own tags make it `owner`'s and no VM is left in it.
/// `true` if a deletion was asked for.
pub async fn delete_group_if_empty(arm: &Arm, g: &str, owner: &str) -> Result<bool> {
    let what = format!("resourceGroups.get of {g}");
    let group = match arm
        .resources
        .resource_groups_client()
        .get(g, &arm.subscription)
        .send()
        .await
    {
        Ok(r) => r.into_body().await.map_err(|e| herd_error(e, &what))?,
        Err(e) => {
            let e = herd_error(e, &what);
            if e.kind() == ErrorKind::NotFound {
                return Ok(false);
            }
            return Err(e);
        }
    };
    let t = tags_of(&json(&group));
    if !matches!(owner_of(&t, owner), Owner::Mine) || !t.contains_key(tags::CLUSTER) {
        return Ok(false);
    }
    if !list::in_group(arm, g).await?.is_empty() {
        return Ok(false);
    }
    let what = format!("resourceGroups.delete of {g}");
    match arm
        .resources
        .resource_groups_client()
        .delete(g, &arm.subscription)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => {
            let e = herd_error(e, &what);
            if e.kind() == ErrorKind::NotFound {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_azure_names_are_looked_up() {
        assert!(is_name("herd-l-1-0000"));
        assert!(!is_name("i-0abc; drop"));
        assert!(!is_name(""));
    }
}
