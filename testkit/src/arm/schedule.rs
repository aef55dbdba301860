//! Azure's scheduled actions (`Microsoft.ComputeSchedule`), the cloud-side layer that
//! deletes a VM at its deadline with herd gone: `virtualMachinesSubmitDelete` schedules
//! the deletion of VMs by id at `schedule.deadline`, `virtualMachinesGetOperationStatus`
//! reports each operation. Bodies are held to Azure's examples
//! (`ComputeSchedule_VirtualMachines*_Gen.2025-05-01.json`) and answers shaped after them.
//! At the deadline the fake deletes the VM as a DELETE would (its delete options apply).
//!
//! Ref: learn.microsoft.com/rest/api/computeschedule/scheduled-actions.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::state::{key, parse_id, Key, Kind, State};

/// One scheduled deletion.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub vm: Key,
    pub at: DateTime<Utc>,
    /// The `operation` object of Azure's answer (state `Scheduled`, then `Succeeded`).
    pub op: Value,
}

/// Deletes the VMs whose deadline passed.
pub fn settle(s: &mut State) {
    let now = Utc::now();
    let due: Vec<String> = s
        .scheduled
        .iter()
        .filter(|(_, x)| x.at <= now && x.op["state"] == "Scheduled")
        .map(|(id, _)| id.clone())
        .collect();
    for id in due {
        let vm = s.scheduled[&id].vm.clone();
        super::resources::remove(s, &vm);
        let x = s.scheduled.get_mut(&id).expect("scheduled");
        x.op["state"] = json!("Succeeded");
        x.op["completedAt"] = json!(now.to_rfc3339_opts(SecondsFormat::Millis, true));
    }
}

/// `virtualMachinesSubmitDelete`: (status, answer).
pub fn submit_delete(s: &mut State, sub: &str, location: &str, body: &Value) -> (u16, Value) {
    let deadline = body
        .pointer("/schedule/deadline")
        .or_else(|| body.pointer("/schedule/deadLine"))
        .and_then(Value::as_str);
    let at = match deadline.map(DateTime::parse_from_rfc3339) {
        Some(Ok(t)) => t.with_timezone(&Utc),
        Some(Err(_)) | None => {
            return (
                400,
                json!({"error": {"code": "InvalidParameter", "message": "schedule.deadline must be an RFC 3339 time."}}),
            )
        }
    };
    let ids: Vec<String> = body
        .pointer("/resources/ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        return (
            400,
            json!({"error": {"code": "InvalidParameter", "message": "resources.ids must name at least one virtual machine."}}),
        );
    }
    let retry = body
        .pointer("/executionParameters/retryPolicy")
        .cloned()
        .unwrap_or(json!({"retryCount": 0, "retryWindowInMinutes": 0}));
    let mut results = Vec::new();
    for id in ids {
        let vm = parse_id(&id)
            .filter(|(_, k, _)| *k == Kind::Vm)
            .map(|(g, k, n)| key(k, &g, &n));
        let Some(vm) = vm.filter(|k| s.res.contains_key(k)) else {
            results.push(json!({"resourceId": id, "errorCode": "ResourceNotFound",
                "errorDetails": format!("The virtual machine '{id}' was not found.")}));
            continue;
        };
        let op_id = s.guid();
        let op = json!({
            "operationId": op_id, "resourceId": id, "opType": "Delete", "subscriptionId": sub.trim_start_matches("/subscriptions/"),
            "deadline": at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "deadlineType": body.pointer("/schedule/deadlineType").cloned().unwrap_or(json!("InitiateAt")),
            "state": "Scheduled", "timezone": body.pointer("/schedule/timezone").cloned().unwrap_or(json!("UTC")),
            "retryPolicy": retry,
        });
        results.push(json!({"resourceId": id, "operation": op}));
        s.scheduled.insert(op_id, Scheduled { vm, at, op });
    }
    (
        200,
        json!({"type": "VirtualMachines", "location": location, "description": "Delete Resource request", "results": results}),
    )
}

/// `virtualMachinesGetOperationStatus`.
pub fn status(s: &State, body: &Value) -> Value {
    let results: Vec<Value> = body
        .get("operationIds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|id| match s.scheduled.get(id) {
            Some(x) => json!({"resourceId": x.op["resourceId"], "operation": x.op}),
            None => json!({"errorCode": "NotFound", "errorDetails": format!("The operation '{id}' was not found.")}),
        })
        .collect();
    json!({ "results": results })
}
