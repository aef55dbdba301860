//! The fake ARM's request handling: authentication, `api-version`, throttling, the
//! examples' check, then one function per call; answers in ARM's shapes (error bodies
//! `{"error": {"code", "message"}}`, ids `/subscriptions/S/resourceGroups/G/providers/...`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use wiremock::{Request, Respond, ResponseTemplate};

use super::examples::Examples;
use super::groups::group_view;
use super::ops::{self, now_text, Effect, Op};
use super::resources::view;
use super::state::{Kind, State};
use super::throttle::CallKind;
use super::{Faults, LostAnswer, Recorded};

pub(super) struct Handler {
    pub ex: Arc<Examples>,
    pub state: Arc<Mutex<State>>,
    pub faults: Arc<Mutex<Faults>>,
    /// The base URL written into `nextLink`, `Azure-AsyncOperation` and `Location`.
    pub base: Arc<Mutex<String>>,
}

/// An answer before it becomes wiremock's.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Option<Value>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) delay: Option<Duration>,
}

pub(super) fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        body: Some(body),
        headers: Vec::new(),
        delay: None,
    }
}

pub(super) fn empty(status: u16) -> Reply {
    Reply {
        status,
        body: None,
        headers: Vec::new(),
        delay: None,
    }
}

pub(super) fn err(status: u16, code: &str, message: &str) -> Reply {
    reply(status, json!({"error": {"code": code, "message": message}}))
}

impl Reply {
    pub(super) fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

/// One request, read once.
pub(super) struct Call<'a> {
    pub(super) method: &'a str,
    /// Path segments as sent, and lower-cased for matching.
    pub(super) segs: Vec<&'a str>,
    pub(super) low: Vec<String>,
    pub(super) query: BTreeMap<String, String>,
    /// The raw query, for `nextLink`s that keep the caller's parameters.
    pub(super) raw_query: &'a str,
    pub(super) path: &'a str,
    pub(super) body: Value,
    pub(super) api: String,
    /// `Authorization: Bearer <something>` was sent (the token itself is never kept).
    pub(super) auth_ok: bool,
    pub(super) base: String,
}

impl Call<'_> {
    pub(super) fn is(&self, pattern: &[&str]) -> bool {
        self.low.len() == pattern.len() && pattern.iter().zip(&self.low).all(|(p, s)| p.is_empty() || p == s)
    }
    pub(super) fn sub(&self) -> &str {
        self.segs.get(1).copied().unwrap_or("")
    }
}

impl Respond for Handler {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let latency = self.faults.lock().unwrap().latency;
        let r = self.respond_now(req);
        let delay = r.delay.unwrap_or(Duration::ZERO) + latency;
        let mut t = ResponseTemplate::new(r.status);
        for (k, v) in &r.headers {
            t = t.insert_header(k.as_str(), v.as_str());
        }
        if let Some(b) = r.body.filter(|_| req.method.as_str() != "HEAD") {
            t = t.set_body_raw(
                serde_json::to_vec(&b).unwrap_or_default(),
                "application/json; charset=utf-8",
            );
        }
        if delay.is_zero() {
            t
        } else {
            t.set_delay(delay)
        }
    }
}

/// `resourcegroups`, `virtualmachines`, `operations`: what a call is on, for counting
/// and for [`super::Lost`].
pub(super) fn target_type(low: &[String]) -> String {
    match low.iter().position(|s| s == "providers") {
        Some(i) if low.len() > i + 2 => {
            if low.get(i + 2).map(String::as_str) == Some("locations") {
                low.get(i + 4).cloned().unwrap_or_default()
            } else {
                low[i + 2].clone()
            }
        }
        _ => low.get(2).cloned().unwrap_or_default(),
    }
}

pub(super) fn label(method: &str, low: &[String]) -> String {
    let ty = target_type(low);
    let canon = Kind::RESOURCES
        .into_iter()
        .map(|k| k.arm_type().split('/').nth(1).unwrap_or(""))
        .chain([
            "resourceGroups",
            "operations",
            "operationResults",
            "resources",
            "virtualMachinesSubmitDelete",
            "virtualMachinesGetOperationStatus",
        ])
        .find(|c| c.eq_ignore_ascii_case(&ty))
        .unwrap_or(&ty)
        .to_string();
    let action = match low.iter().position(|s| s == "virtualmachines") {
        Some(i) if low.len() == i + 3 => format!("/{}", low[i + 2]),
        _ => String::new(),
    };
    format!("{method} {canon}{action}")
}

impl Handler {
    fn respond_now(&self, req: &Request) -> Reply {
        let method = req.method.as_str();
        let path = req.url.path();
        let headers: BTreeMap<String, String> = req
            .headers
            .iter()
            .filter(|(k, _)| k.as_str() != "authorization")
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let query: BTreeMap<String, String> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let body: Value = if req.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&req.body).unwrap_or(Value::String(String::from_utf8_lossy(&req.body).into()))
        };
        // ARM keeps no nulls; the record keeps the body as sent.
        let sent = body;
        let body = super::examples::without_nulls(&sent);
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let low: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let call = Call {
            base: self.base.lock().unwrap().clone(),
            auth_ok: auth.strip_prefix("Bearer ").is_some_and(|t| !t.trim().is_empty()),
            method,
            segs,
            low,
            api: query.get("api-version").cloned().unwrap_or_default(),
            query,
            raw_query: req.url.query().unwrap_or(""),
            path,
            body,
        };
        let mut s = self.state.lock().unwrap();
        let mut f = self.faults.lock().unwrap();
        s.nic_reserved_for = f.nic_reserved_for;
        if call.low.first().map(String::as_str) == Some("subscriptions") && call.segs.len() > 1 {
            s.subscription = call.segs[1].to_string();
        }
        s.propagate_tags = f.propagate_tags;
        ops::settle(&mut s);
        let mut r = self.checked(&mut s, &mut f, &call, &req.body);
        if r.status < 400 {
            let ty = target_type(&call.low);
            if let Some(l) = f
                .lost
                .iter_mut()
                .find(|l| l.times > 0 && l.method == method && (l.kind.is_empty() || l.kind.eq_ignore_ascii_case(&ty)))
            {
                l.times -= 1;
                r = match l.answer {
                    LostAnswer::Status500 => err(500, "InternalServerError", "Encountered internal server error. Diagnostic information: timestamp '', subscription id '', tracking id '', request correlation id ''."),
                    LostAnswer::Hang(d) => Reply { delay: Some(d), ..r },
                };
            }
        }
        s.seen.push(Recorded {
            method: method.to_string(),
            path: path.to_string(),
            query: call.query.clone(),
            body: sent,
            headers,
            status: r.status,
        });
        r
    }
}

pub(super) fn not_found(kind: Kind, rg: &str, name: &str) -> Reply {
    err(
        404,
        "ResourceNotFound",
        &format!(
            "The Resource '{}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            kind.arm_type()
        ),
    )
}

pub(super) fn group_not_found(rg: &str) -> Reply {
    err(
        404,
        "ResourceGroupNotFound",
        &format!("Resource group '{rg}' could not be found."),
    )
}

/// ARM's answer to a body with a key path no example has.
pub(super) fn invalid_content(kind: Kind, path: &str) -> Reply {
    let member = path.rsplit('.').next().unwrap_or(path).trim_end_matches("[]");
    err(
        400,
        "InvalidRequestContent",
        &format!(
            "The request content was invalid and could not be deserialized: 'Could not find member '{member}' on object of type '{}'. Path '{path}'.' (herd's fake ARM: the path is in none of Azure's examples for this type, nor in its allow-list)",
            kind.arm_type()
        ),
    )
}

pub(super) fn s_of<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

pub(super) fn arr<'a>(v: &'a Value, ptr: &str) -> Vec<&'a Value> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Sets `v[k]` when absent (a default the examples' answers show).
pub(super) fn default(v: &mut Value, k: &str, d: Value) {
    if let Value::Object(m) = v {
        m.entry(k.to_string()).or_insert(d);
    }
}

/// The id of resource `name` of `kind` in the group of resource id `id`.
pub(super) fn sibling_id(id: &str, kind: Kind, name: &str) -> String {
    let prefix = id.split("/providers/").next().unwrap_or(id);
    format!("{prefix}/providers/{}/{name}", kind.arm_type())
}

/// A `$filter` of ARM's tag and type conditions: `tagName eq 'k' and tagValue eq 'v'`,
/// `resourceType eq 'T'`, `name eq 'N'`. Anything else is refused, so the fake never
/// silently matches everything.
pub(super) fn parse_filter(f: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = f.trim().to_string();
    while !rest.is_empty() {
        let (part, tail) = match rest.to_ascii_lowercase().find(" and ") {
            Some(i) => (rest[..i].to_string(), rest[i + 5..].to_string()),
            None => (rest.clone(), String::new()),
        };
        let bad =
            || format!("Invalid $filter '{f}': herd's fake ARM reads tagName, tagValue, resourceType and name with eq");
        let (field, value) = part.trim().split_once(" eq ").ok_or_else(bad)?;
        let field = field.trim().to_ascii_lowercase();
        let value = value
            .trim()
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .ok_or_else(bad)?;
        if !["tagname", "tagvalue", "resourcetype", "name"].contains(&field.as_str()) {
            return Err(bad());
        }
        out.push((field, value.replace("''", "'")));
        rest = tail.trim().to_string();
    }
    Ok(out)
}

pub(super) fn filter_matches(conds: &[(String, String)], v: &Value) -> bool {
    let tag_name = conds.iter().find(|c| c.0 == "tagname").map(|c| c.1.as_str());
    let tag = tag_name.and_then(|n| {
        v.get("tags")
            .and_then(Value::as_object)
            .and_then(|t| t.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)))
            .map(|(_, x)| x.as_str().unwrap_or(""))
    });
    conds.iter().all(|(f, want)| match f.as_str() {
        "tagname" => tag.is_some(),
        "tagvalue" => tag == Some(want.as_str()),
        "resourcetype" => s_of(v, "/type").is_some_and(|t| t.eq_ignore_ascii_case(want)),
        _ => s_of(v, "/name").is_some_and(|t| t.eq_ignore_ascii_case(want)),
    })
}

pub(super) fn new_op(
    s: &mut State,
    f: &Faults,
    sub: &str,
    ns: &str,
    loc: &str,
    effect: Effect,
    failure: Option<(u16, String, String)>,
) -> String {
    let id = s.guid();
    let at = format!(
        "/subscriptions/{sub}/providers/{ns}/locations/{}",
        loc.to_ascii_lowercase()
    );
    s.ops.insert(
        id.clone(),
        Op {
            id: id.clone(),
            status_path: format!("{at}/operations/{id}"),
            result_path: format!("{at}/operationResults/{id}"),
            polls: 0,
            polls_needed: f.polls_in_progress,
            done_at: Instant::now() + f.op_time,
            failure,
            effect,
            finished: false,
            start: now_text(),
            end: None,
        },
    );
    id
}

impl Handler {
    /// Authentication, `api-version`, the buckets, then the call.
    fn checked(&self, s: &mut State, f: &mut Faults, c: &Call, raw: &[u8]) -> Reply {
        if !c.auth_ok {
            return err(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing or is not a Bearer token.")
                .header("www-authenticate", "Bearer authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", error=\"invalid_token\"");
        }
        if c.api.is_empty() {
            return err(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        if !raw.is_empty() && !c.body.is_object() {
            return err(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: the body is not a JSON object.",
            );
        }
        let kind = CallKind::of(c.method);
        *s.by_bucket.entry(kind).or_insert(0) += 1;
        *s.calls.entry(label(c.method, &c.low)).or_insert(0) += 1;
        let header = if kind == CallKind::Delete && f.limits.deletes.is_none() {
            CallKind::Write.header()
        } else {
            kind.header()
        };
        if kind != CallKind::Read && f.throttle_storm > 0 {
            f.throttle_storm -= 1;
            s.throttled += 1;
            return err(429, "TooManyRequests", "The request is being throttled as the limit has been reached for operation type - Write. For more information, see - https://aka.ms/srpthrottlinglimits")
                .header("retry-after", f.storm_retry_after.to_string());
        }
        match s.throttle.take(kind) {
            Ok(left) => self.dispatch(s, f, c).header(header, left.to_string()),
            Err(wait) => {
                s.throttled += 1;
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                let what = if kind == CallKind::Read { "read" } else { "write" };
                err(429, "SubscriptionRequestsThrottled", &format!(
                    "Number of '{what}' requests for subscription '{}' actor 'herd' exceeded. Please try again after '{secs}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.",
                    c.sub()))
                .header("retry-after", secs.to_string())
                .header(header, "0")
            }
        }
    }

    fn dispatch(&self, s: &mut State, f: &Faults, c: &Call) -> Reply {
        let (m, seg) = (c.method, &c.segs);
        let get = m == "GET";
        if c.is(&["subscriptions", "", "operationresults", ""]) && get {
            return self.op_result(s, f, c, seg[3]);
        }
        if c.is(&["subscriptions", "", "providers", "", "locations", "", "operations", ""]) && get {
            return self.op_status(s, f, seg[7]);
        }
        if c.is(&[
            "subscriptions",
            "",
            "providers",
            "",
            "locations",
            "",
            "operationresults",
            "",
        ]) && get
        {
            return self.op_result(s, f, c, seg[7]);
        }
        if c.is(&["subscriptions", "", "resourcegroups"]) && get {
            return self.list_groups(s, f, c);
        }
        if c.is(&["subscriptions", "", "resourcegroups", ""]) {
            return self.group(s, f, c, seg[3]);
        }
        if c.is(&["subscriptions", "", "resources"]) && get {
            return self.list_generic(s, f, c, None);
        }
        if c.is(&["subscriptions", "", "resourcegroups", "", "resources"]) && get {
            return self.list_generic(s, f, c, Some(seg[3]));
        }
        if c.is(&["subscriptions", "", "providers", "microsoft.compute", "skus"]) && get {
            let loc = c.query.get("$filter").and_then(|x| {
                x.trim()
                    .strip_prefix("location eq '")
                    .and_then(|r| r.strip_suffix('\''))
                    .map(str::to_string)
            });
            if c.query.contains_key("$filter") && loc.is_none() && !f.ignore_filters {
                return err(
                    400,
                    "InvalidFilterInQueryString",
                    "The skus list takes only $filter=location eq '<location>'.",
                );
            }
            let all = f.skus.clone().unwrap_or_else(|| super::skus::example_skus(&self.ex));
            let items = super::skus::listed(&all, &f.sku_not_available, loc.as_deref().filter(|_| !f.ignore_filters));
            return self.page(f, c, items);
        }
        if c.is(&[
            "subscriptions",
            "",
            "providers",
            "microsoft.computeschedule",
            "locations",
            "",
            "",
        ]) && m == "POST"
        {
            return self.schedule(s, f, c, seg[5], seg[6]);
        }
        let provider_at = if c.is(&["subscriptions", "", "providers", "", ""]) {
            Some(3)
        } else if c.low.len() >= 7
            && c.low[0] == "subscriptions"
            && c.low[2] == "resourcegroups"
            && c.low[4] == "providers"
        {
            Some(5)
        } else {
            None
        };
        let Some(at) = provider_at else {
            return err(
                404,
                "NotFound",
                &format!("herd's fake ARM has no route for {m} {}", c.path),
            );
        };
        let Some(kind) = Kind::from_path(seg[at], seg[at + 1]) else {
            return err(400, "InvalidResourceType", &format!(
                "The resource type '{}' could not be found in the namespace '{}' for api version '{}' (herd's fake ARM models resource groups, virtualNetworks, networkSecurityGroups, publicIPAddresses, networkInterfaces, virtualMachines and disks).",
                seg[at + 1], seg[at], c.api));
        };
        let rg = (at == 5).then(|| seg[3]);
        match (seg.len() - at, rg) {
            (2, rg) if get => self.list(s, f, c, kind, rg),
            (3, Some(rg)) => self.resource(s, f, c, kind, rg, seg[at + 2]),
            (4, Some(rg)) if kind == Kind::Vm => self.vm_action(s, f, c, rg, seg[at + 2], &c.low[at + 3]),
            _ => err(
                405,
                "MethodNotAllowed",
                &format!("herd's fake ARM does not serve {m} {}", c.path),
            ),
        }
    }

    /// `Microsoft.ComputeSchedule`'s VM actions.
    fn schedule(&self, s: &mut State, f: &Faults, c: &Call, loc: &str, action: &str) -> Reply {
        if !f.compute_schedule {
            return err(409, "MissingSubscriptionRegistration", "The subscription is not registered to use namespace 'Microsoft.ComputeSchedule'. See https://aka.ms/rps-not-found for how to register subscriptions.");
        }
        let canon = ["virtualMachinesSubmitDelete", "virtualMachinesGetOperationStatus"]
            .into_iter()
            .find(|a| a.eq_ignore_ascii_case(action));
        let Some(canon) = canon else {
            return err(
                404,
                "NotFound",
                &format!("herd's fake ARM has no Microsoft.ComputeSchedule action {action}"),
            );
        };
        if let Some(p) = self.ex.unknown_action_path(canon, &c.body) {
            return err(400, "InvalidRequestContent", &format!(
                "The request content was invalid and could not be deserialized: unknown member at path '{p}' (herd's fake ARM: not in Azure's examples for {canon})."));
        }
        if canon == "virtualMachinesGetOperationStatus" {
            return reply(200, super::schedule::status(s, &c.body));
        }
        let (status, body) = super::schedule::submit_delete(s, c.sub(), loc, &c.body);
        reply(status, body)
    }

    pub(super) fn with_lro(&self, r: Reply, s: &State, f: &Faults, c: &Call, op: &str, async_header: bool) -> Reply {
        let Some(op) = s.ops.get(op) else { return r };
        let q = format!("?api-version={}", c.api);
        let mut r = r.header("location", format!("{}{}{q}", c.base, op.result_path));
        if async_header {
            r = r.header("azure-asyncoperation", format!("{}{}{q}", c.base, op.status_path));
        }
        match f.lro_retry_after {
            Some(n) => r.header("retry-after", n.to_string()),
            None => r,
        }
    }

    fn op_status(&self, s: &mut State, f: &Faults, id: &str) -> Reply {
        let Some(op) = ops::poll(s, id) else {
            return err(404, "NotFound", &format!("The operation '{id}' was not found."));
        };
        let r = reply(200, op.status_doc());
        match (op.finished, f.lro_retry_after) {
            (false, Some(n)) => r.header("retry-after", n.to_string()),
            _ => r,
        }
    }

    fn op_result(&self, s: &mut State, f: &Faults, c: &Call, id: &str) -> Reply {
        let Some(op) = ops::poll(s, id) else {
            return err(404, "NotFound", &format!("The operation '{id}' was not found."));
        };
        if !op.finished {
            return self.with_lro(empty(202), s, f, c, id, false);
        }
        if let Some((status, code, message)) = &op.failure {
            return err(*status, code, message);
        }
        match &op.effect {
            Effect::Create(k) => match s.res.get(k) {
                Some(r) => reply(200, view(r, false)),
                None => empty(204),
            },
            _ => empty(200),
        }
    }

    pub(super) fn filter(&self, f: &Faults, c: &Call) -> Result<Vec<(String, String)>, Reply> {
        match c.query.get("$filter") {
            Some(x) if !f.ignore_filters => parse_filter(x).map_err(|e| err(400, "InvalidFilterInQueryString", &e)),
            _ => Ok(Vec::new()),
        }
    }

    fn list_groups(&self, s: &State, f: &Faults, c: &Call) -> Reply {
        let conds = match self.filter(f, c) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let items = s
            .groups
            .values()
            .map(group_view)
            .filter(|v| filter_matches(&conds, v))
            .collect();
        self.page(f, c, items)
    }

    /// `Resources_List`: every resource (id, name, type, location, tags, managedBy).
    fn list_generic(&self, s: &State, f: &Faults, c: &Call, rg: Option<&str>) -> Reply {
        if let Some(g) = rg.filter(|g| s.group_live(g).is_none()) {
            return group_not_found(g);
        }
        let conds = match self.filter(f, c) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let rg = rg.map(str::to_ascii_lowercase);
        let items = s
            .res
            .iter()
            .filter(|(k, _)| rg.as_ref().is_none_or(|g| &k.1 == g))
            .map(|(_, r)| {
                let mut m = Map::new();
                for f in ["id", "name", "type", "location", "tags", "managedBy", "zones"] {
                    if let Some(x) = r.value.get(f) {
                        m.insert(f.into(), x.clone());
                    }
                }
                Value::Object(m)
            })
            .filter(|v| filter_matches(&conds, v))
            .collect();
        self.page(f, c, items)
    }

    fn list(&self, s: &State, f: &Faults, c: &Call, kind: Kind, rg: Option<&str>) -> Reply {
        if let Some(g) = rg.filter(|g| s.group_live(g).is_none()) {
            return group_not_found(g);
        }
        if c.query.contains_key("$filter") && !f.ignore_filters {
            return err(400, "InvalidParameter", &format!(
                "herd's fake ARM does not filter lists of {} (Azure takes only 'virtualMachineScaleSet/id' eq '...' there); herd filters by tags itself.",
                kind.arm_type()));
        }
        let expand = c.query.get("statusOnly").is_some_and(|x| x == "true")
            || c.query
                .get("$expand")
                .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"));
        let items = s.of_kind(kind, rg);
        self.page_of(f, c, &items, |r| view(r, expand))
    }

    /// One page of `items` from `$skiptoken`, with a `nextLink` keeping the caller's query.
    pub(super) fn page(&self, f: &Faults, c: &Call, items: Vec<Value>) -> Reply {
        self.page_of(f, c, &items, Clone::clone)
    }

    /// [`Handler::page`], rendering only the page's items (a VM list of thousands).
    pub(super) fn page_of<T>(&self, f: &Faults, c: &Call, items: &[T], render: impl Fn(&T) -> Value) -> Reply {
        let start = match c.query.get("$skiptoken") {
            None => 0,
            Some(t) => match t.parse::<usize>() {
                Ok(n) if n <= items.len() => n,
                _ => return err(400, "InvalidSkipToken", &format!("The skip token '{t}' is not valid.")),
            },
        };
        let end = (start + f.page_size.max(1)).min(items.len());
        let page: Vec<Value> = items[start..end].iter().map(render).collect();
        let mut out = json!({ "value": page });
        if end < items.len() {
            let kept: Vec<&str> = c
                .raw_query
                .split('&')
                .filter(|p| {
                    let k = p.split('=').next().unwrap_or("");
                    !k.is_empty() && k != "$skiptoken" && !k.eq_ignore_ascii_case("%24skiptoken")
                })
                .collect();
            out["nextLink"] = json!(format!("{}{}?{}&$skiptoken={end}", c.base, c.path, kept.join("&")));
        }
        reply(200, out)
    }
}
