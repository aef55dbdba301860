//! Ending VMs: each id is read from GCE first (its zone and labels: core's owner check
//! runs on what the resource itself carries, and one foreign VM refuses the whole call
//! before any delete), then `instances.delete` per VM, many at once but a bounded number
//! in flight (GCE's per-minute write quota is the limit: a refusal is `RateLimited`, for
//! herd's retry loop). A 404 is "already gone"; so is a VM GCE no longer lists.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use herd_core::plumbing::check_owned;
use herd_core::{tags, Instance, Result, TerminateOutcome};
use tokio::sync::Semaphore;

use crate::client::Gce;
use crate::launch::MAX_NAME;
use crate::list;

/// Deletes in flight at once: GCE counts writes per minute (default 1,200 "queries per
/// minute" for writes per project region, https://cloud.google.com/compute/api-quota),
/// so more connections would only meet the quota sooner.
pub const IN_FLIGHT: usize = 32;
/// Names per lookup filter (GCE's filter length is bounded; 100 names of up to 63
/// characters fit well under it).
const NAMES_PER_LOOKUP: usize = 100;

/// Whether `id` can be a GCE instance name at all.
pub fn is_name(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NAME
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The VMs among `names` GCE knows, read from the resources themselves. Many names:
/// one paged list of the owner's VMs answers for most (2 calls for 1,000, where name
/// filters would take 10), and only the names it lacks are looked up by name -- a
/// foreign VM among them is found there and refuses the call; none found: already gone.
pub async fn find(gce: &Gce, owner: &str, names: &[String]) -> Result<Vec<Instance>> {
    let mut out: Vec<Instance> = Vec::new();
    let mut rest: Vec<String> = names.to_vec();
    if names.len() > NAMES_PER_LOOKUP {
        let mut mine = herd_core::Tags::new();
        mine.insert(tags::OWNER.into(), owner.into());
        let wanted: HashSet<&String> = names.iter().collect();
        for i in list::aggregated(gce, &list::label_filter(&mine), list::PAGE).await? {
            if wanted.contains(&i.id) && !out.iter().any(|o| o.id == i.id) {
                out.push(i);
            }
        }
        let have: HashSet<&str> = out.iter().map(|i| i.id.as_str()).collect();
        rest.retain(|n| !have.contains(n.as_str()));
    }
    for chunk in rest.chunks(NAMES_PER_LOOKUP) {
        // `name eq "a|b"` is a regular-expression match on the full name.
        let filter = format!("name eq \"{}\"", chunk.join("|"));
        for i in list::aggregated(gce, &filter, list::PAGE).await? {
            if chunk.contains(&i.id) && !out.iter().any(|o: &Instance| o.id == i.id) {
                out.push(i);
            }
        }
    }
    Ok(out)
}

/// Deletes `names` (checked to be `owner`'s first); every name gets an outcome, and the
/// VMs deleted are returned as they were last seen.
pub async fn terminate(
    gce: &Gce,
    owner: &str,
    names: &[String],
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
    let found = find(gce, owner, &wanted).await?;
    check_owned("instance", owner, found.iter().map(|i| (i.id.as_str(), &i.tags))).map_err(|e| {
        e.with_hint("leave it alone, or delete it with `gcloud compute instances delete` if it is really yours")
    })?;
    for n in &wanted {
        if !found.iter().any(|i| &i.id == n) {
            outcome.insert(n.clone(), TerminateOutcome::AlreadyGone);
        }
    }
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    // Once GCE refuses one delete for the quota, the queued ones are not sent: they
    // would only be refused too, and the retry loop's wait is what helps.
    let throttled = Arc::new(AtomicBool::new(false));
    let mut set = tokio::task::JoinSet::new();
    let mut deleted = Vec::new();
    for i in found.clone() {
        let gce = gce.clone();
        let gate = gate.clone();
        let throttled = throttled.clone();
        set.spawn(async move {
            let _p = gate.acquire_owned().await.expect("open semaphore");
            if throttled.load(Ordering::Relaxed) {
                return (i.id, None);
            }
            let r = gce
                .delete(
                    &format!("zones/{}/instances/{}", i.zone, i.id),
                    &[],
                    &format!("instances.delete of {}", i.id),
                )
                .await;
            if r.as_ref().is_err_and(|e| e.kind() == herd_core::ErrorKind::RateLimited) {
                throttled.store(true, Ordering::Relaxed);
            }
            (i.id, Some(r))
        });
    }
    let mut first_err = None;
    while let Some(j) = set.join_next().await {
        let (id, r) = j.map_err(|e| herd_core::Error::unexpected(format!("a delete task failed: {e}")))?;
        let Some(r) = r else { continue };
        match r {
            Ok(_) => {
                deleted.extend(found.iter().filter(|i| i.id == id).cloned());
                outcome.insert(id, TerminateOutcome::Terminated);
            }
            Err(e) if e.kind() == herd_core::ErrorKind::NotFound => {
                outcome.insert(id, TerminateOutcome::AlreadyGone);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    // Deleting is idempotent: herd's retry loop asks again, and what went is then gone.
    match first_err {
        Some(e) => Err(e),
        None => Ok((outcome, deleted)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gce_names_are_looked_up() {
        assert!(is_name("herd-l-1-0000"));
        assert!(!is_name("i-0abc; drop"));
        assert!(!is_name("Herd"));
        assert!(!is_name(""));
    }
}
