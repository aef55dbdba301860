//! Resource groups: create-or-update, get, head, and the asynchronous delete that leaves
//! a group `Deleting` for a while, then takes everything in it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::ops::{now_text, Effect, Op};
use super::routes::*;
use super::state::{Group, Kind, State};
use super::Faults;

/// A resource group as ARM stores it (shape of `ResourceGroup_Get`'s answer).
pub(super) fn new_group(sub: &str, name: &str, body: Value) -> Group {
    let mut v = json!({
        "id": format!("/subscriptions/{sub}/resourceGroups/{name}"),
        "name": name,
        "type": Kind::ResourceGroup.arm_type(),
        "location": body.get("location").cloned().unwrap_or(json!("eastus")),
        "properties": {"provisioningState": "Succeeded"},
    });
    if let Some(t) = body.get("tags") {
        v["tags"] = t.clone();
    }
    Group {
        value: v,
        deleting_until: None,
    }
}

pub(super) fn group_view(g: &Group) -> Value {
    let mut v = g.value.clone();
    if g.deleting_until.is_some() {
        v["properties"]["provisioningState"] = json!("Deleting");
    }
    v
}

/// Starts (or finds) the deletion of group `rg`: `Deleting` for `for_`, then gone.
pub(super) fn group_delete_op(s: &mut State, sub: &str, rg: &str, for_: Duration) -> Option<String> {
    let low = rg.to_ascii_lowercase();
    if let Some(o) = s
        .ops
        .values()
        .find(|o| !o.finished && matches!(&o.effect, Effect::DeleteGroup(g) if *g == low))
    {
        return Some(o.id.clone());
    }
    let until = Instant::now() + for_;
    s.groups.get_mut(&low)?.deleting_until = Some(until);
    let id = s.guid();
    s.ops.insert(
        id.clone(),
        Op {
            id: id.clone(),
            status_path: format!("/subscriptions/{sub}/providers/Microsoft.Resources/operations/{id}"),
            result_path: format!("/subscriptions/{sub}/operationresults/{id}"),
            polls: 0,
            polls_needed: u32::MAX,
            done_at: until,
            failure: None,
            effect: Effect::DeleteGroup(low),
            finished: false,
            start: now_text(),
            end: None,
        },
    );
    Some(id)
}

impl Handler {
    /// The group a write goes into must exist and not be deleting.
    pub(super) fn group_open(s: &State, rg: &str) -> Result<(), Reply> {
        match s.group_live(rg) {
            None => Err(group_not_found(rg)),
            Some(g) if g.deleting_until.is_some() => Err(err(
                409,
                "ResourceGroupBeingDeleted",
                &format!("The resource group '{rg}' is in deprovisioning state and cannot perform this operation."),
            )),
            Some(_) => Ok(()),
        }
    }

    pub(super) fn group(&self, s: &mut State, f: &Faults, c: &Call, name: &str) -> Reply {
        let low = name.to_ascii_lowercase();
        match c.method {
            "PUT" => {
                if let Some(p) = self.ex.unknown_path(Kind::ResourceGroup, &c.body) {
                    return invalid_content(Kind::ResourceGroup, &p);
                }
                if let Err(e) = Kind::ResourceGroup.check_name(name) {
                    return err(400, "InvalidResourceName", &e);
                }
                let Some(loc) = s_of(&c.body, "/location") else {
                    return err(
                        400,
                        "LocationRequired",
                        "The location property is required for this definition.",
                    );
                };
                match s.groups.get_mut(&low) {
                    Some(g) if g.deleting_until.is_some() => err(
                        409,
                        "ResourceGroupBeingDeleted",
                        &format!(
                            "The resource group '{name}' is in deprovisioning state and cannot perform this operation."
                        ),
                    ),
                    Some(g) => {
                        let old = s_of(&g.value, "/location").unwrap_or("").to_string();
                        if !old.eq_ignore_ascii_case(loc) {
                            return err(409, "InvalidResourceGroupLocation", &format!(
                                "Invalid resource group location '{loc}'. The Resource group already exists in location '{old}'."));
                        }
                        match c.body.get("tags") {
                            Some(t) => g.value["tags"] = t.clone(),
                            None => {
                                if let Some(m) = g.value.as_object_mut() {
                                    m.remove("tags");
                                }
                            }
                        }
                        reply(200, group_view(g))
                    }
                    None => {
                        let g = new_group(c.sub(), name, c.body.clone());
                        let v = group_view(&g);
                        s.groups.insert(low, g);
                        reply(201, v)
                    }
                }
            }
            "GET" | "HEAD" => match s.group_live(name) {
                Some(g) if c.method == "GET" => reply(200, group_view(g)),
                Some(_) => empty(204),
                None => group_not_found(name),
            },
            "DELETE" => {
                if let Some(t) = c.query.get("forceDeletionTypes") {
                    let ok = [
                        "microsoft.compute/virtualmachines",
                        "microsoft.compute/virtualmachinescalesets",
                    ];
                    if !t
                        .split(',')
                        .all(|x| ok.contains(&x.trim().to_ascii_lowercase().as_str()))
                    {
                        return err(400, "InvalidForceDeletionTypes", &format!(
                            "The value '{t}' of forceDeletionTypes is invalid: Microsoft.Compute/virtualMachines and Microsoft.Compute/virtualMachineScaleSets are supported."));
                    }
                }
                match group_delete_op(s, c.sub(), name, f.rg_delete_time) {
                    None => group_not_found(name),
                    Some(op) => self.with_lro(empty(202), s, f, c, &op, false),
                }
            }
            m => err(
                405,
                "MethodNotAllowed",
                &format!("{m} is not allowed on a resource group"),
            ),
        }
    }
}
