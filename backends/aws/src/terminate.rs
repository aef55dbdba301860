//! TerminateInstances, only for instances an answer shows are the caller's.
//!
//! Before any TerminateInstances, each id is described by `InstanceIds` and its
//! `herd-owner` tag read from that answer: an instance of another owner, or with no herd
//! tag at all, is refused (core's [`herd_core::plumbing::ownership`]: `PermissionDenied`,
//! naming whose it is) and nothing in the call is terminated. The TerminateInstances
//! answer is then matched id by id ([`herd_core::plumbing::match_answer`]): an id missing
//! from it is an error, never "already gone". Only an id that no region knows is gone.

use std::collections::HashSet;

use aws_sdk_ec2::types::{Instance as Ec2Instance, InstanceStateName};
use herd_core::plumbing::match_answer;
pub use herd_core::plumbing::ownership::{owner_in as owner_of, refusal, Owner};
use herd_core::{Error, ErrorKind, Result, Tags, TerminateOutcome, TerminateResult};

use crate::client::Ec2;
use crate::error::ids_in_message;
use crate::list::Pages;

/// Most ids one TerminateInstances (or DescribeInstances by id) call names: EC2 accepts
/// up to 1,000 instance ids per TerminateInstances call (API reference).
pub const MAX_BATCH: usize = 1000;

/// Whether `id` can name an EC2 instance at all: `i-` and 8 or 17 hex digits (EC2's
/// "Resource IDs"). Anything else is no EC2 instance, so it is gone without a call.
pub fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-")
        .is_some_and(|h| (h.len() == 8 || h.len() == 17) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An instance's tags as the answer has them.
pub fn tags_of(i: &Ec2Instance) -> Tags {
    i.tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect()
}

pub fn instance_owner(i: &Ec2Instance, owner: &str) -> Owner {
    owner_of(
        i.tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value().unwrap_or_default()))),
        owner,
    )
}

/// The instances among `ids` that this region knows, read by `InstanceIds` (never a
/// filter: the answer is then about exactly those ids). Ids EC2 names as unknown are left
/// out; instances in the answer that were not asked about are ignored.
pub async fn describe_ids(ec2: &Ec2, ids: &[String]) -> Result<Vec<Ec2Instance>> {
    let mut out: Vec<Ec2Instance> = Vec::new();
    let mut got: HashSet<String> = HashSet::new();
    let mut queue: std::collections::VecDeque<Vec<String>> = ids.chunks(MAX_BATCH).map(<[String]>::to_vec).collect();
    while let Some(mut batch) = queue.pop_front() {
        match describe_exact(ec2, &batch).await {
            Ok(found) => {
                for i in found {
                    if let Some(id) = i.instance_id() {
                        if batch.iter().any(|b| b == id) && got.insert(id.to_string()) {
                            out.push(i);
                        }
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let named = ids_in_message(e.message());
                let before = batch.len();
                batch.retain(|id| !named.contains(id));
                if batch.len() < before {
                    if !batch.is_empty() {
                        queue.push_back(batch);
                    }
                } else if batch.len() > 1 {
                    // The message named none of them: one at a time, so one unknown id
                    // cannot hide the others.
                    queue.extend(batch.into_iter().map(|id| vec![id]));
                }
                // A single id EC2 does not know: not in this region.
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

async fn describe_exact(ec2: &Ec2, ids: &[String]) -> Result<Vec<Ec2Instance>> {
    let mut out = Vec::new();
    let mut pages = Pages::new("DescribeInstances", 1000);
    let mut token: Option<String> = None;
    loop {
        let r = ec2
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .set_next_token(token.take())
            .send()
            .await
            .map_err(ec2.err())?;
        out.extend(r.reservations().iter().flat_map(|res| res.instances()).cloned());
        match pages.next(r.next_token()).map_err(|e| ec2.context(e))? {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// Whether an instance in an answer has already ended (nothing to terminate).
pub fn has_ended(i: &Ec2Instance) -> bool {
    matches!(
        i.state().and_then(|s| s.name()),
        Some(InstanceStateName::ShuttingDown) | Some(InstanceStateName::Terminated)
    )
}

/// TerminateInstances for ids already checked to be the caller's, matched id by id.
pub async fn terminate_checked(ec2: &Ec2, ids: &[String]) -> Result<Vec<TerminateResult>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_BATCH) {
        let r = ec2
            .terminate_instances()
            .set_instance_ids(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(ec2.err());
        let r = match r {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Described a moment ago, unknown now: EC2's views disagree for a while
                // (eventual consistency). A retry describes again and settles it.
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("EC2 did not find instances it listed a moment ago ({})", e.message()),
                )
                .with_source(e));
            }
            Err(e) => return Err(e),
        };
        let answered = r.terminating_instances().iter().filter_map(|t| {
            let was = t.previous_state().and_then(|s| s.name());
            let outcome = match was {
                Some(InstanceStateName::ShuttingDown) | Some(InstanceStateName::Terminated) => {
                    TerminateOutcome::AlreadyGone
                }
                _ => TerminateOutcome::Terminated,
            };
            Some((t.instance_id()?, outcome))
        });
        // Terminating is idempotent: on an id left out, the retry loop may ask again.
        out.extend(match_answer("EC2's TerminateInstances", chunk, answered).map_err(|e| ec2.context(e))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_have_ec2s_shape() {
        assert!(is_instance_id("i-0123456789abcdef0"));
        assert!(is_instance_id("i-1234abcd"));
        assert!(!is_instance_id("i-xyz"));
        assert!(!is_instance_id("vm-0001"));
        assert!(!is_instance_id("i-0123456789abcdef0; rm"));
    }
}
