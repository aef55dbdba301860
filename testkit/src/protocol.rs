//! What the fault proxy must know of a cloud's wire protocol, and nothing more: how to
//! read a request (its operation, parameters, zone, and whether it launches, terminates or
//! changes anything), how that cloud writes an error, how it filters and pages. The proxy
//! core ([`crate::proxy`]) is the same for every cloud; a new cloud adds one of these.
//!
//! - [`Ec2Query`]: EC2's query protocol (form-encoded `Action=...`, XML answers);
//! - [`GceJson`]: Compute Engine's JSON REST (`/compute/v1/projects/P/zones/Z/instances`);
//! - [`ArmJson`]: Azure Resource Manager's JSON REST (`/subscriptions/S/.../virtualMachines/N`).

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;

/// What a request does to the account, as far as a fault cares: whether an error after it
/// leaves something behind. `Launch` is the one the fault cases aim at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Starts instances (EC2 RunInstances, GCE instances.insert, ARM PUT virtualMachines).
    Launch,
    /// Ends instances.
    Terminate,
    /// Any other write (tags, groups, keys, disks).
    Change,
    /// Reads only: an error after it leaves nothing behind.
    Read,
}

/// One request the proxy saw, read by its protocol.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The operation: EC2's `Action`, or `collection.verb` for the JSON clouds
    /// (`instances.insert`, `virtualMachines.createOrUpdate`).
    pub action: String,
    /// EC2's form parameters; the query parameters of a JSON REST call.
    pub params: HashMap<String, String>,
    /// The zone the request names, if any.
    pub zone: Option<String>,
    pub effect: Effect,
    pub method: String,
    pub path: String,
    /// The body as sent (JSON for the REST clouds; the form for EC2, also in `params`).
    pub body: String,
}

impl Seen {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
    /// Parameters whose name starts with `prefix`, sorted.
    pub fn with_prefix(&self, prefix: &str) -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = self
            .params
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        v.sort();
        v
    }
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A failure named the same way for every cloud; each protocol writes it as its cloud does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    Throttled,
    /// A temporary 5xx.
    Unavailable,
    Internal,
    /// The zone (or region) has no capacity for the type now.
    NoCapacity,
    /// An account limit (vCPUs, instances) would be passed.
    Quota,
}

/// A request as it arrived.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Without the `?`; empty when there is none.
    pub query: &'a str,
    pub body: &'a [u8],
}

/// A request as it will be forwarded: a fault may change both halves.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Path and query, as sent upstream.
    pub target: String,
    pub body: Bytes,
}

/// An answer the proxy writes itself.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// One cloud's wire protocol, as the fault proxy needs it.
pub trait Protocol: Send + Sync + fmt::Debug + 'static {
    fn name(&self) -> &'static str;
    /// Reads a request.
    fn classify(&self, req: &Incoming<'_>) -> Seen;
    /// The status and error code this cloud answers `f` with.
    fn failure(&self, f: Failure) -> (u16, &'static str);
    /// This cloud's error document for `code`, with its headers.
    fn error(&self, status: u16, code: &str) -> Reply;
    /// The content type of this cloud's answers.
    fn content_type(&self) -> &'static str;
    /// The request without its filters (and, with `ids_too`, without the id and name
    /// lists a read narrows its answer with), as a server that ignores them would see it.
    fn unfiltered(&self, req: &Outgoing, seen: &Seen, ids_too: bool) -> Outgoing;
    /// The request without its page token (the upstream knows only its own tokens).
    fn without_page_token(&self, req: &Outgoing, seen: &Seen) -> Outgoing;
    /// The answer with its next-page token set to `token` (replacing any); `here` is the
    /// proxy's URL of the request, for clouds whose token is a link.
    fn with_page_token(&self, body: &str, token: &str, here: &str) -> String;
}

/// `%XX` and `+` decoded.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encoded for a form or a query (unreserved characters kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The pairs of a form body or a query string.
pub fn parse_form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// `params` re-encoded without the names `drop` picks, sorted.
fn form_without(params: &HashMap<String, String>, drop: impl Fn(&str) -> bool) -> String {
    let mut kept: Vec<(&String, &String)> = params.iter().filter(|(k, _)| !drop(k)).collect();
    kept.sort();
    kept.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The target with the query parameters `drop` picks removed.
fn target_without(target: &str, drop: impl Fn(&str) -> bool) -> String {
    match target.split_once('?') {
        Some((path, query)) => {
            let q = form_without(&parse_form(query), drop);
            if q.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{q}")
            }
        }
        None => target.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// EC2

/// EC2's query protocol: form-encoded `Action=...` bodies, XML answers, `nextToken` paging.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ec2Query;

/// The id and name lists a `Describe*` call narrows its answer with.
const EC2_SELECTORS: [&str; 10] = [
    "InstanceId.",
    "VolumeId.",
    "NetworkInterfaceId.",
    "AllocationId.",
    "PublicIp.",
    "GroupId.",
    "GroupName.",
    "KeyName.",
    "KeyPairId.",
    "ImageId.",
];

/// EC2's error document.
pub fn ec2_error_body(code: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
         <Message>injected by herd's test proxy: {code}</Message></Error></Errors>\
         <RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
    )
}

/// Sets an EC2 answer's `nextToken` (replacing any): the same token every time means a
/// server that repeats itself.
pub fn with_next_token(body: &str, token: &str) -> String {
    let mut b = body.to_string();
    while let Some(start) = b.find("<nextToken>") {
        match b[start..].find("</nextToken>") {
            Some(end) => b.replace_range(start..start + end + "</nextToken>".len(), ""),
            None => break,
        }
    }
    match b.rfind("</") {
        Some(i) => {
            b.insert_str(i, &format!("<nextToken>{token}</nextToken>"));
            b
        }
        None => b,
    }
}

/// Removes every `<item>...</item>` (at any depth, innermost first) that mentions `needle`.
pub fn without_items_mentioning(body: &str, needle: &str) -> String {
    let mut b = body.to_string();
    let mut from = 0;
    while let Some(rel) = b[from..].find(needle) {
        let at = from + rel;
        let (Some(open), Some(close_rel)) = (b[..at].rfind("<item>"), b[at..].find("</item>")) else {
            break;
        };
        let close = at + close_rel + "</item>".len();
        b.replace_range(open..close, "");
        from = open;
    }
    b
}

impl Protocol for Ec2Query {
    fn name(&self) -> &'static str {
        "ec2-query"
    }

    fn classify(&self, req: &Incoming<'_>) -> Seen {
        let body = String::from_utf8_lossy(req.body).into_owned();
        let params = parse_form(&body);
        let action = params.get("Action").cloned().unwrap_or_default();
        let effect = match action.as_str() {
            "RunInstances" => Effect::Launch,
            "TerminateInstances" => Effect::Terminate,
            a if a.starts_with("Describe") || a.starts_with("Get") => Effect::Read,
            _ => Effect::Change,
        };
        Seen {
            zone: params.get("Placement.AvailabilityZone").cloned(),
            action,
            params,
            effect,
            method: req.method.to_string(),
            path: req.path.to_string(),
            body,
        }
    }

    /// EC2's codes for each (docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html);
    /// the statuses are the ones herd's tests have always injected for them.
    fn failure(&self, f: Failure) -> (u16, &'static str) {
        match f {
            Failure::Throttled => (503, "RequestLimitExceeded"),
            Failure::Unavailable => (503, "Unavailable"),
            Failure::Internal => (500, "InternalError"),
            Failure::NoCapacity => (500, "InsufficientInstanceCapacity"),
            Failure::Quota => (400, "VcpuLimitExceeded"),
        }
    }

    fn error(&self, status: u16, code: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), self.content_type().into())],
            body: ec2_error_body(code),
        }
    }

    fn content_type(&self) -> &'static str {
        "text/xml"
    }

    fn unfiltered(&self, req: &Outgoing, seen: &Seen, ids_too: bool) -> Outgoing {
        let describe = seen.action.starts_with("Describe");
        Outgoing {
            target: req.target.clone(),
            body: Bytes::from(form_without(&seen.params, |k| {
                k.starts_with("Filter.")
                    || (ids_too
                        && describe
                        && (EC2_SELECTORS.iter().any(|p| k.starts_with(p)) || k.starts_with("Owner.")))
            })),
        }
    }

    fn without_page_token(&self, req: &Outgoing, seen: &Seen) -> Outgoing {
        Outgoing {
            target: req.target.clone(),
            body: Bytes::from(form_without(&seen.params, |k| k == "NextToken")),
        }
    }

    fn with_page_token(&self, body: &str, token: &str, _here: &str) -> String {
        with_next_token(body, token)
    }
}

// ---------------------------------------------------------------------------------------
// JSON REST (GCE, ARM)

fn set_json_field(body: &str, field: &str, value: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.insert(field.into(), serde_json::Value::String(value.into()));
            serde_json::Value::Object(m).to_string()
        }
        _ => body.to_string(),
    }
}

/// The collections of Compute Engine's API that herd's backend touches: a path ending on
/// one of these names a collection; ending on anything else after a name, an item or a
/// custom verb (`instances/NAME/stop`, `instances/bulkInsert`).
const GCE_COLLECTIONS: [&str; 14] = [
    "projects",
    "zones",
    "regions",
    "instances",
    "disks",
    "images",
    "machineTypes",
    "networks",
    "subnetworks",
    "firewalls",
    "addresses",
    "operations",
    "instanceTemplates",
    "snapshots",
];

/// `collection.verb` of a Compute Engine path (`rest`: after the version, markers dropped).
fn gce_action(method: &str, rest: &[&str], aggregated: bool) -> String {
    let n = rest.len();
    let Some(last) = rest.last() else {
        return format!("root.{}", method.to_ascii_lowercase());
    };
    if GCE_COLLECTIONS.contains(last) {
        let verb = match method {
            "GET" if aggregated => "aggregatedList",
            "GET" => "list",
            "POST" => "insert",
            _ => "call",
        };
        return format!("{last}.{verb}");
    }
    let owner = rest[..n - 1]
        .iter()
        .rev()
        .find(|s| GCE_COLLECTIONS.contains(s))
        .copied()
        .unwrap_or("");
    // An item: GET/DELETE/PATCH on it; POST is a custom verb, on the collection
    // (`instances/bulkInsert`) or on an item (`instances/NAME/stop`).
    let verb = match method {
        "GET" => "get",
        "DELETE" => "delete",
        "PATCH" | "PUT" => "update",
        _ => last,
    };
    format!("{owner}.{verb}")
}

/// Compute Engine's JSON REST: `/compute/v1/projects/P/zones/Z/instances[/NAME[/VERB]]`,
/// `filter` and `pageToken` query parameters, `nextPageToken` in answers, and errors as
/// `{"error":{"code":429,"message":...,"errors":[{"reason":"rateLimitExceeded"}]}}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GceJson;

impl Protocol for GceJson {
    fn name(&self) -> &'static str {
        "gce-json"
    }

    fn classify(&self, req: &Incoming<'_>) -> Seen {
        let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
        // After `compute/v1` (or any version) the path alternates collection and name,
        // but for the `global` and `aggregated` markers.
        let start = segs
            .iter()
            .position(|s| s.len() > 1 && s.starts_with('v') && s[1..].starts_with(|c: char| c.is_ascii_digit()));
        let rest: Vec<&str> = start.map(|i| segs[i + 1..].to_vec()).unwrap_or_else(|| segs.clone());
        let aggregated = rest.contains(&"aggregated");
        let rest: Vec<&str> = rest
            .into_iter()
            .filter(|s| *s != "global" && *s != "aggregated")
            .collect();
        let zone = rest
            .iter()
            .position(|s| *s == "zones")
            .and_then(|i| rest.get(i + 1))
            .map(|z| z.to_string());
        let action = gce_action(req.method, &rest, aggregated);
        let effect = match action.as_str() {
            "instances.insert" | "instances.bulkInsert" => Effect::Launch,
            "instances.delete" => Effect::Terminate,
            _ if req.method == "GET" => Effect::Read,
            _ => Effect::Change,
        };
        Seen {
            action,
            params: parse_form(req.query),
            zone,
            effect,
            method: req.method.to_string(),
            path: req.path.to_string(),
            body: String::from_utf8_lossy(req.body).into_owned(),
        }
    }

    /// Statuses and reasons after cloud.google.com/apis/design/errors (the status names),
    /// Compute Engine's "API rate limits" page (429 rateLimitExceeded) and its
    /// "Troubleshooting resource availability errors" page (ZONE_RESOURCE_POOL_EXHAUSTED).
    fn failure(&self, f: Failure) -> (u16, &'static str) {
        match f {
            Failure::Throttled => (429, "rateLimitExceeded"),
            Failure::Unavailable => (503, "backendError"),
            Failure::Internal => (500, "internalError"),
            Failure::NoCapacity => (503, "ZONE_RESOURCE_POOL_EXHAUSTED"),
            Failure::Quota => (403, "QUOTA_EXCEEDED"),
        }
    }

    fn error(&self, status: u16, code: &str) -> Reply {
        let status_name = match status {
            400 => "INVALID_ARGUMENT",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            409 => "ALREADY_EXISTS",
            429 => "RESOURCE_EXHAUSTED",
            503 => "UNAVAILABLE",
            _ => "INTERNAL",
        };
        let message = format!("injected by herd's test proxy: {code}");
        let body = serde_json::json!({
            "error": {
                "code": status,
                "message": message,
                "errors": [{ "message": message, "domain": "global", "reason": code }],
                "status": status_name,
            }
        })
        .to_string();
        Reply {
            status,
            headers: vec![("content-type".into(), self.content_type().into())],
            body,
        }
    }

    fn content_type(&self) -> &'static str {
        "application/json; charset=UTF-8"
    }

    fn unfiltered(&self, req: &Outgoing, _seen: &Seen, _ids_too: bool) -> Outgoing {
        Outgoing {
            target: target_without(&req.target, |k| k == "filter"),
            body: req.body.clone(),
        }
    }

    fn without_page_token(&self, req: &Outgoing, _seen: &Seen) -> Outgoing {
        Outgoing {
            target: target_without(&req.target, |k| k == "pageToken"),
            body: req.body.clone(),
        }
    }

    fn with_page_token(&self, body: &str, token: &str, _here: &str) -> String {
        set_json_field(body, "nextPageToken", token)
    }
}

/// `type.verb` of an ARM path after `providers/Namespace`, which strictly alternates
/// type and name: PUT creates or updates an item, POST on an item's trailing segment is
/// an action (`virtualMachines/NAME/powerOff`).
fn arm_action(method: &str, rest: &[&str]) -> String {
    let n = rest.len();
    let on_item = n.is_multiple_of(2) && n > 0;
    let (kind, verb) = match (method, on_item) {
        (_, _) if n == 0 => ("", "call"),
        ("GET", true) => (rest[n - 2], "get"),
        ("GET", false) => (rest[n - 1], "list"),
        ("DELETE", true) => (rest[n - 2], "delete"),
        ("PUT", true) => (rest[n - 2], "createOrUpdate"),
        ("PATCH", true) => (rest[n - 2], "update"),
        ("POST", false) if n >= 3 => (rest[n - 3], rest[n - 1]),
        (_, true) => (rest[n - 2], "call"),
        (_, false) => (rest[n - 1], "call"),
    };
    format!("{kind}.{verb}")
}

/// ARM's error document.
fn arm_error(code: &str) -> String {
    let message = format!("injected by herd's test proxy: {code}");
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}

/// Azure Resource Manager's JSON REST:
/// `/subscriptions/S/resourceGroups/G/providers/Microsoft.Compute/virtualMachines/N`,
/// `$filter` and `$skiptoken`, `nextLink` in answers, errors as
/// `{"error":{"code":"...","message":...}}` and `Retry-After` on 429.
#[derive(Debug, Clone, Copy)]
pub struct ArmJson {
    /// The `Retry-After` of a throttled answer, in seconds.
    pub retry_after_secs: u32,
}

impl Default for ArmJson {
    fn default() -> Self {
        ArmJson { retry_after_secs: 1 }
    }
}

impl Protocol for ArmJson {
    fn name(&self) -> &'static str {
        "arm-json"
    }

    fn classify(&self, req: &Incoming<'_>) -> Seen {
        let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
        // After `providers/Namespace` the path alternates type and name; before it,
        // subscriptions/S/resourceGroups/G do.
        let rest: Vec<&str> = match segs.iter().position(|s| s.eq_ignore_ascii_case("providers")) {
            Some(i) if i + 2 <= segs.len() => segs[i + 2..].to_vec(),
            _ => segs.clone(),
        };
        let action = arm_action(req.method, &rest);
        let body = String::from_utf8_lossy(req.body).into_owned();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        let zone = json["zones"][0].as_str().map(str::to_string);
        let vm = action.starts_with("virtualMachines.");
        let effect = match (req.method, vm) {
            ("PUT", true) => Effect::Launch,
            ("DELETE", true) => Effect::Terminate,
            ("GET", _) => Effect::Read,
            _ => Effect::Change,
        };
        let mut params = parse_form(req.query);
        if let Some(l) = json["location"].as_str() {
            params.insert("location".into(), l.into());
        }
        Seen {
            action,
            params,
            zone,
            effect,
            method: req.method.to_string(),
            path: req.path.to_string(),
            body,
        }
    }

    /// Codes from learn.microsoft.com: "Throttling Resource Manager requests" (429 with
    /// Retry-After), "Troubleshoot allocation failures" (AllocationFailed), "Resolve
    /// errors for resource quotas" (QuotaExceeded) and ARM's common error codes.
    fn failure(&self, f: Failure) -> (u16, &'static str) {
        match f {
            Failure::Throttled => (429, "TooManyRequests"),
            Failure::Unavailable => (503, "ServiceUnavailable"),
            Failure::Internal => (500, "InternalServerError"),
            Failure::NoCapacity => (409, "AllocationFailed"),
            Failure::Quota => (409, "QuotaExceeded"),
        }
    }

    fn error(&self, status: u16, code: &str) -> Reply {
        let mut headers = vec![("content-type".to_string(), self.content_type().to_string())];
        if status == 429 {
            headers.push(("retry-after".into(), self.retry_after_secs.to_string()));
        }
        Reply {
            status,
            headers,
            body: arm_error(code),
        }
    }

    fn content_type(&self) -> &'static str {
        "application/json; charset=utf-8"
    }

    fn unfiltered(&self, req: &Outgoing, _seen: &Seen, _ids_too: bool) -> Outgoing {
        Outgoing {
            target: target_without(&req.target, |k| k == "$filter"),
            body: req.body.clone(),
        }
    }

    fn without_page_token(&self, req: &Outgoing, _seen: &Seen) -> Outgoing {
        Outgoing {
            target: target_without(&req.target, |k| k == "$skiptoken"),
            body: req.body.clone(),
        }
    }

    fn with_page_token(&self, body: &str, token: &str, here: &str) -> String {
        let base = target_without(here, |k| k == "$skiptoken");
        let sep = if base.contains('?') { '&' } else { '?' };
        set_json_field(body, "nextLink", &format!("{base}{sep}$skiptoken={}", encode(token)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming<'a>(method: &'a str, path: &'a str, query: &'a str, body: &'a [u8]) -> Incoming<'a> {
        Incoming {
            method,
            path,
            query,
            body,
        }
    }

    #[test]
    fn form_decoding() {
        let p = parse_form("Action=RunInstances&UserData=YQ%3D%3D&TagSpecification.1.Tag.1.Value=a+b");
        assert_eq!(p["Action"], "RunInstances");
        assert_eq!(p["UserData"], "YQ==");
        assert_eq!(p["TagSpecification.1.Tag.1.Value"], "a b");
    }

    #[test]
    fn ec2_requests_are_read_with_their_zone_and_effect() {
        let s = Ec2Query.classify(&incoming(
            "POST",
            "/",
            "",
            b"Action=RunInstances&Placement.AvailabilityZone=us-east-1b&MinCount=2",
        ));
        assert_eq!((s.action.as_str(), s.effect), ("RunInstances", Effect::Launch));
        assert_eq!(s.zone.as_deref(), Some("us-east-1b"));
        let d = Ec2Query.classify(&incoming("POST", "/", "", b"Action=DescribeInstances&Filter.1.Name=x"));
        assert_eq!(d.effect, Effect::Read);
        let out = Ec2Query.unfiltered(
            &Outgoing {
                target: "/".into(),
                body: Bytes::new(),
            },
            &d,
            false,
        );
        assert_eq!(out.body, Bytes::from("Action=DescribeInstances"));
    }

    #[test]
    fn gce_paths_name_the_operation_and_the_zone() {
        let z = "/compute/v1/projects/p/zones/us-east1-b";
        let cases = [
            ("POST", "/instances", "instances.insert", Effect::Launch),
            ("GET", "/instances", "instances.list", Effect::Read),
            ("GET", "/instances/vm-1", "instances.get", Effect::Read),
            ("DELETE", "/instances/vm-1", "instances.delete", Effect::Terminate),
            ("POST", "/instances/bulkInsert", "instances.bulkInsert", Effect::Launch),
            (
                "POST",
                "/instances/vm-1/setLabels",
                "instances.setLabels",
                Effect::Change,
            ),
        ];
        for (method, tail, action, effect) in cases {
            let path = format!("{z}{tail}");
            let s = GceJson.classify(&incoming(method, &path, "filter=x&pageToken=t", b""));
            assert_eq!((s.action.as_str(), s.effect), (action, effect), "{method} {path}");
            assert_eq!(s.zone.as_deref(), Some("us-east1-b"), "{path}");
            assert_eq!(s.param("pageToken"), Some("t"));
        }
        let agg = GceJson.classify(&incoming("GET", "/compute/v1/projects/p/aggregated/instances", "", b""));
        assert_eq!(
            (agg.action.as_str(), agg.zone.as_deref()),
            ("instances.aggregatedList", None)
        );
        let out = GceJson.without_page_token(
            &Outgoing {
                target: "/compute/v1/projects/p/zones/z/instances?filter=x&pageToken=t".into(),
                body: Bytes::new(),
            },
            &agg,
        );
        assert_eq!(out.target, "/compute/v1/projects/p/zones/z/instances?filter=x");
    }

    #[test]
    fn gce_errors_have_the_numeric_code_and_a_reason() {
        let (status, code) = GceJson.failure(Failure::Throttled);
        let r = GceJson.error(status, code);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["code"], 429);
        assert_eq!(v["error"]["errors"][0]["reason"], "rateLimitExceeded");
        assert!(v["error"]["message"].as_str().unwrap().contains("rateLimitExceeded"));
    }

    #[test]
    fn arm_puts_launch_and_throttles_say_when_to_retry() {
        let vm = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines";
        let s = ArmJson::default().classify(&incoming(
            "PUT",
            &format!("{vm}/vm-1"),
            "api-version=2024-07-01",
            br#"{"location":"eastus","zones":["2"]}"#,
        ));
        assert_eq!(
            (s.action.as_str(), s.effect),
            ("virtualMachines.createOrUpdate", Effect::Launch)
        );
        assert_eq!(s.zone.as_deref(), Some("2"));
        assert_eq!(s.param("location"), Some("eastus"));
        let off = ArmJson::default().classify(&incoming("POST", &format!("{vm}/vm-1/powerOff"), "", b""));
        assert_eq!(off.action, "virtualMachines.powerOff");
        let list = ArmJson::default().classify(&incoming("GET", vm, "", b""));
        assert_eq!(
            (list.action.as_str(), list.effect),
            ("virtualMachines.list", Effect::Read)
        );
        let nic = ArmJson::default().classify(&incoming(
            "PUT",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/n",
            "",
            b"{}",
        ));
        assert_eq!(nic.effect, Effect::Change);
        let r = ArmJson { retry_after_secs: 7 }.error(429, "TooManyRequests");
        assert!(
            r.headers.contains(&("retry-after".into(), "7".into())),
            "{:?}",
            r.headers
        );
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "TooManyRequests");
        let linked = ArmJson::default().with_page_token("{\"value\":[]}", "p2", "http://h/x?api-version=1");
        let v: serde_json::Value = serde_json::from_str(&linked).unwrap();
        assert_eq!(v["nextLink"], "http://h/x?api-version=1&$skiptoken=p2");
    }
}
