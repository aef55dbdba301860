//! ARM's long-running operations: a PUT, DELETE or POST answers at once and names an
//! `Azure-AsyncOperation` URL (status JSON) and a `Location` URL (202 until done, then
//! the result); both live on the fake. An operation answers `InProgress` for a set
//! number of polls (of either URL, or GETs and re-PUTs of its resource), or until its
//! time is up, then ends `Succeeded` or `Failed` with ARM's `error` {code, message},
//! and only then does its effect happen (a deletion removes, a creation succeeds).
//!
//! Ref: learn.microsoft.com/azure/azure-resource-manager/management/async-operations.

use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use super::state::{Key, Kind, Power, State};

/// What happens when an operation ends.
#[derive(Debug, Clone)]
pub enum Effect {
    /// A creation or update: the resource's `provisioningState` becomes `Succeeded`
    /// (or `Failed`).
    Create(Key),
    /// A deletion: the resource goes, with what its delete options take along.
    Delete(Key),
    /// A resource group's deletion, with everything in it.
    DeleteGroup(String),
    /// powerOff, deallocate, start.
    Power(Key, Power),
}

/// One operation.
#[derive(Debug, Clone)]
pub struct Op {
    pub id: String,
    /// The URL path of its status (`Azure-AsyncOperation`), and of its result (`Location`).
    pub status_path: String,
    pub result_path: String,
    pub polls: u32,
    pub polls_needed: u32,
    pub done_at: Instant,
    /// (HTTP status, code, message) when it fails.
    pub failure: Option<(u16, String, String)>,
    pub effect: Effect,
    pub finished: bool,
    pub start: String,
    pub end: Option<String>,
}

pub fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Op {
    /// The status document ARM's `Azure-AsyncOperation` URL answers.
    pub fn status_doc(&self) -> Value {
        let status = match (&self.finished, &self.failure) {
            (false, _) => "InProgress",
            (true, None) => "Succeeded",
            (true, Some(_)) => "Failed",
        };
        let mut v = json!({"id": self.status_path, "name": self.id, "status": status, "startTime": self.start});
        if let Some(e) = &self.end {
            v["endTime"] = json!(e);
        }
        if let (true, Some((_, code, message))) = (self.finished, &self.failure) {
            v["error"] = json!({"code": code, "message": message});
        }
        v
    }
}

/// Ends every operation whose time is up (and runs scheduled deletions that are due).
pub fn settle(s: &mut State) {
    let now = Instant::now();
    let due: Vec<String> = s
        .ops
        .values()
        .filter(|o| !o.finished && o.done_at <= now)
        .map(|o| o.id.clone())
        .collect();
    for id in due {
        finish(s, &id);
    }
    super::schedule::settle(s);
}

/// Counts a poll of operation `id`; ends it once it has answered `InProgress` enough times.
pub fn poll(s: &mut State, id: &str) -> Option<Op> {
    let op = s.ops.get_mut(id)?;
    if !op.finished {
        if op.polls >= op.polls_needed {
            finish(s, id);
        } else {
            op.polls += 1;
        }
    }
    s.ops.get(id).cloned()
}

/// Ends operation `id` and applies its effect (once).
pub fn finish(s: &mut State, id: &str) {
    let Some(op) = s.ops.get_mut(id) else { return };
    if op.finished {
        return;
    }
    op.finished = true;
    op.end = Some(now_text());
    let (effect, failure) = (op.effect.clone(), op.failure.clone());
    match effect {
        Effect::Create(k) => {
            let ok = failure.is_none();
            if let Some(r) = s.res.get_mut(&k) {
                r.value["properties"]["provisioningState"] = json!(if ok { "Succeeded" } else { "Failed" });
                if k.0 == Kind::Vm {
                    r.power = if ok { Power::Running } else { Power::Deallocated };
                    r.error = failure.map(|(_, c, m)| (c, m));
                }
            }
            if ok && k.0 == Kind::Vm {
                super::compute::vm_created(s, &k);
            }
        }
        Effect::Delete(k) => {
            if failure.is_none() {
                super::resources::remove(s, &k);
            }
        }
        Effect::DeleteGroup(rg) => {
            s.res.retain(|k, _| k.1 != rg);
            s.nic_reserved.retain(|k, _| k.1 != rg);
            s.groups.remove(&rg);
        }
        Effect::Power(k, p) => {
            if let Some(r) = s.res.get_mut(&k) {
                r.power = p;
            }
        }
    }
}
