//! TerminateInstances, idempotent: an unknown or already-ended id is `AlreadyGone`.
//! EC2 fails a whole call when one id is unknown, so those ids are set aside and the
//! call repeated with the rest.

use aws_sdk_ec2::types::InstanceStateName;
use aws_sdk_ec2::Client;
use herd_core::{ErrorKind, Result, TerminateOutcome, TerminateResult};

use crate::error::{from_sdk, ids_in_message};

/// Most ids one TerminateInstances call may name (EC2 API reference).
pub const MAX_BATCH: usize = 1000;

pub async fn terminate_region(client: &Client, ids: &[String]) -> Result<Vec<TerminateResult>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_BATCH) {
        let mut rest: Vec<String> = chunk.to_vec();
        while !rest.is_empty() {
            let r = client
                .terminate_instances()
                .set_instance_ids(Some(rest.clone()))
                .send()
                .await
                .map_err(from_sdk);
            match r {
                Ok(r) => {
                    for t in r.terminating_instances() {
                        let was = t.previous_state().and_then(|s| s.name());
                        let outcome = match was {
                            Some(InstanceStateName::ShuttingDown) | Some(InstanceStateName::Terminated) => {
                                TerminateOutcome::AlreadyGone
                            }
                            _ => TerminateOutcome::Terminated,
                        };
                        out.push(TerminateResult::new(t.instance_id().unwrap_or_default(), outcome));
                    }
                    break;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let gone = ids_in_message(e.message());
                    let before = rest.len();
                    rest.retain(|id| !gone.contains(id));
                    if rest.len() == before {
                        // The message named no id we sent: one of them is malformed.
                        // Ask one at a time so the others are still terminated.
                        if rest.len() == 1 {
                            out.push(TerminateResult::new(rest.remove(0), TerminateOutcome::AlreadyGone));
                        } else {
                            for id in std::mem::take(&mut rest) {
                                out.extend(Box::pin(terminate_region(client, &[id])).await?);
                            }
                        }
                        continue;
                    }
                    for id in chunk.iter().filter(|id| gone.contains(id)) {
                        out.push(TerminateResult::new(id.clone(), TerminateOutcome::AlreadyGone));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}
