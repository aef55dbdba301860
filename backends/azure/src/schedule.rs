//! The cloud's own hold on the deadline: Azure's scheduled actions
//! (`Microsoft.ComputeSchedule`, `virtualMachinesSubmitDelete`) delete each VM at herd's
//! deadline with herd gone and whatever the guest does (hung, out of memory, its
//! identity lacking a role). The guest watchdog stays as the second layer (and the only
//! one for the idle keepalive, which ends a VM before its deadline).
//!
//! The 0.21 SDK predates the API, so the call is plain REST through [`Arm::post`]; its
//! body is held by the test kit's fake to Azure's examples
//! (`ComputeSchedule_VirtualMachinesSubmitDelete_*_Gen.2025-05-01.json`).
//! Ref: <https://learn.microsoft.com/en-us/rest/api/computeschedule/scheduled-actions/virtual-machines-submit-delete>.

use chrono::{DateTime, SecondsFormat, Utc};
use herd_core::{Error, Result};
use serde_json::{json, Value};

use crate::client::Arm;

pub const API_VERSION: &str = "2025-05-01";

/// VMs per request: scheduled actions take at most 100 resources in one call.
pub const PER_REQUEST: usize = 100;

/// How long a request that fails for a while (503, 429, a lost answer) is sent again,
/// as the operation polls are: the VMs already stand, so this is a layer being added,
/// not a launch to redo; past it the guest layer alone holds the deadline. A duplicate
/// (an answer lost after the effect) schedules a second delete of the same VM, harmless.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// What became of a launch's scheduled deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every VM is deleted by Azure at the deadline.
    All,
    /// The subscription lacks the service (not registered, not offered in the region):
    /// the guest watchdog alone holds the deadline. The reason, as ARM gave it.
    Unavailable(String),
    /// The service refused some VMs (their ids, with its reasons).
    Refused(Vec<String>),
}

/// ARM's resource id of VM `name` in `group`.
pub fn vm_id(subscription: &str, group: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}")
}

/// The request body for `ids`: delete at `deadline` (UTC, initiated then), force
/// deletion (as `herd down`), Azure retrying for 30 minutes if the delete fails.
pub fn body(deadline: DateTime<Utc>, ids: &[String], correlation: &str) -> Value {
    json!({
        "schedule": {
            "deadline": deadline.to_rfc3339_opts(SecondsFormat::Secs, true),
            "timezone": "UTC",
            "deadlineType": "InitiateAt",
        },
        "executionParameters": {
            "retryPolicy": { "retryCount": 5, "retryWindowInMinutes": 30 },
        },
        "resources": { "ids": ids },
        "correlationid": correlation,
        "forceDeletion": true,
    })
}

/// Codes that say the subscription or region does not have the service.
fn unavailable(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "MissingSubscriptionRegistration"
                | "NoRegisteredProviderFound"
                | "SubscriptionNotRegistered"
                | "LocationNotAvailableForResourceType"
                | "InvalidResourceNamespace"
        )
    )
}

/// The ids an answer did not schedule, with ARM's reasons; a body without `results`
/// is malformed (an error), never "all scheduled".
pub fn refused(answer: &Value, ids: &[String]) -> Result<Vec<String>> {
    let Some(results) = answer.get("results").and_then(Value::as_array) else {
        return Err(Error::unexpected(
            "virtualMachinesSubmitDelete: ARM's answer has no `results` list",
        ));
    };
    let mut out = Vec::new();
    for id in ids {
        let r = results.iter().find(|r| {
            r.get("resourceId")
                .and_then(Value::as_str)
                .is_some_and(|x| x.eq_ignore_ascii_case(id))
        });
        let scheduled = r
            .and_then(|r| r.pointer("/operation/operationId"))
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
            && r.and_then(|r| r.get("errorCode"))
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
        if !scheduled {
            let why = r
                .and_then(|r| r.get("errorCode").and_then(Value::as_str))
                .unwrap_or("not in the answer");
            out.push(format!("{} ({why})", crate::client::name_of(id)));
        }
    }
    Ok(out)
}

/// Schedules the deletion of `ids` (ARM ids in `location`) at `deadline`.
pub async fn submit_delete(
    arm: &Arm,
    location: &str,
    deadline: DateTime<Utc>,
    ids: &[String],
    correlation: &str,
    patience: std::time::Duration,
) -> Result<Outcome> {
    let started = std::time::Instant::now();
    let path = format!(
        "/subscriptions/{}/providers/Microsoft.ComputeSchedule/locations/{location}/virtualMachinesSubmitDelete",
        arm.subscription
    );
    let mut refused_all = Vec::new();
    for chunk in ids.chunks(PER_REQUEST) {
        let answer = loop {
            match arm
                .post(
                    &path,
                    API_VERSION,
                    &body(deadline, chunk, correlation),
                    "virtualMachinesSubmitDelete",
                )
                .await
            {
                Ok(a) => break a,
                Err(e) if unavailable(e.context_value("azure_code")) || e.kind() == herd_core::ErrorKind::NotFound => {
                    return Ok(Outcome::Unavailable(e.message().to_string()))
                }
                Err(e) if e.is_temporary() && started.elapsed() < patience => {
                    tokio::time::sleep(e.retry_after().unwrap_or(arm.poll_pause())).await;
                }
                Err(e) => return Err(e),
            }
        };
        refused_all.extend(refused(&answer, chunk)?);
    }
    Ok(if refused_all.is_empty() {
        Outcome::All
    } else {
        Outcome::Refused(refused_all)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_read_per_vm_and_a_bodiless_one_is_an_error() {
        let ids = vec![vm_id("s", "g", "a"), vm_id("s", "g", "b"), vm_id("s", "g", "c")];
        let answer = json!({"results": [
            {"resourceId": ids[0], "operation": {"operationId": "op-1", "state": "Scheduled"}},
            {"resourceId": ids[1], "errorCode": "ResourceNotFound", "errorDetails": "gone"},
        ]});
        assert_eq!(
            refused(&answer, &ids).unwrap(),
            ["b (ResourceNotFound)", "c (not in the answer)"]
        );
        assert!(refused(&json!({"type": "VirtualMachines"}), &ids).is_err());
        let b = body(DateTime::from_timestamp(1_900_000_000, 0).unwrap(), &ids[..1], "l-1");
        assert_eq!(b["schedule"]["deadline"], "2030-03-17T17:46:40Z");
        assert_eq!(b["resources"]["ids"][0], ids[0]);
        assert!(unavailable(Some("MissingSubscriptionRegistration")) && !unavailable(Some("TooManyRequests")));
    }
}
