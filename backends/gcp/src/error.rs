//! Compute Engine's errors to herd's kinds, at one boundary and by one table
//! ([`TABLE`]). GCE says what went wrong in two places, and both come here: an HTTP
//! error's `error.errors[].reason` (`rateLimitExceeded`, `notFound`, ...) and a finished
//! operation's `error.errors[].code` (`ZONE_RESOURCE_POOL_EXHAUSTED`, `QUOTA_EXCEEDED`).
//! A code the table lacks falls back on the HTTP status. Shapes after the discovery
//! document's `Operation.error` and <https://cloud.google.com/compute/docs/api/handling-errors>.

use herd_core::{Error, ErrorKind};
use serde_json::Value;

/// One row: a GCE reason or operation code, herd's kind, whether a retry may help, and
/// what to tell the user.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub code: &'static str,
    pub kind: ErrorKind,
    pub temporary: bool,
    pub hint: &'static str,
}

const fn row(code: &'static str, kind: ErrorKind, temporary: bool, hint: &'static str) -> Row {
    Row {
        code,
        kind,
        temporary,
        hint,
    }
}

use ErrorKind::*;

/// Every GCE reason and operation code herd tells apart.
pub const TABLE: &[Row] = &[
    // https://cloud.google.com/compute/api-quota: per-minute API rate quotas (403 or 429).
    row(
        "rateLimitExceeded",
        RateLimited,
        true,
        "Compute Engine's per-minute API quota; herd waits and asks again",
    ),
    row(
        "userRateLimitExceeded",
        RateLimited,
        true,
        "Compute Engine's per-user API quota; herd waits and asks again",
    ),
    row(
        "RESOURCE_OPERATION_RATE_EXCEEDED",
        RateLimited,
        true,
        "too many operations on one resource at once; herd waits and asks again",
    ),
    // Resource quotas: in an HTTP error (`quotaExceeded`) or an operation (`QUOTA_EXCEEDED`).
    row(
        "quotaExceeded",
        QuotaExceeded,
        false,
        "ask for a higher quota (IAM & Admin > Quotas), or launch in another region",
    ),
    row(
        "QUOTA_EXCEEDED",
        QuotaExceeded,
        false,
        "ask for a higher quota (IAM & Admin > Quotas), or launch in another region",
    ),
    row(
        "GPUS_ALL_REGIONS",
        QuotaExceeded,
        false,
        "the project's GPUS_ALL_REGIONS quota counts every region: another region will not help; ask for more",
    ),
    // https://cloud.google.com/compute/docs/troubleshooting/troubleshooting-resource-availability
    row(
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        InsufficientCapacity,
        false,
        "the zone has no capacity for this type now",
    ),
    row(
        "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        InsufficientCapacity,
        false,
        "the zone has no capacity for this type now",
    ),
    row(
        "VM_MIN_COUNT_NOT_REACHED",
        InsufficientCapacity,
        false,
        "fewer VMs than asked could start in the zone, so none were kept",
    ),
    row(
        "notFound",
        NotFound,
        false,
        "check the project, zone, machine type and image names",
    ),
    row(
        "alreadyExists",
        Conflict,
        false,
        "a resource of that name exists already",
    ),
    row(
        "RESOURCE_ALREADY_EXISTS",
        Conflict,
        false,
        "a resource of that name exists already",
    ),
    row(
        "invalid",
        InvalidSpec,
        false,
        "Compute Engine refused the request's values",
    ),
    row("badRequest", InvalidSpec, false, "Compute Engine refused the request"),
    row("required", InvalidSpec, false, "a required field is missing"),
    row("conditionNotMet", Conflict, false, "the resource changed meanwhile"),
    row(
        "resourceInUseByAnotherResource",
        Conflict,
        false,
        "another resource still uses it",
    ),
    row(
        "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE",
        Conflict,
        false,
        "another resource still uses it",
    ),
    row(
        "authError",
        Unauthenticated,
        false,
        "refresh the credentials: `gcloud auth application-default login`",
    ),
    row(
        "required_authentication",
        Unauthenticated,
        false,
        "refresh the credentials: `gcloud auth application-default login`",
    ),
    row(
        "forbidden",
        PermissionDenied,
        false,
        "the credentials lack a Compute Engine permission (roles/compute.instanceAdmin.v1 covers herd)",
    ),
    row(
        "accessNotConfigured",
        PermissionDenied,
        false,
        "enable the Compute Engine API: `gcloud services enable compute.googleapis.com`",
    ),
    row(
        "backendError",
        Unavailable,
        true,
        "a transient Compute Engine failure; herd asks again",
    ),
    row(
        "internalError",
        Unavailable,
        true,
        "a transient Compute Engine failure; herd asks again",
    ),
    row(
        "INTERNAL_ERROR",
        Unavailable,
        true,
        "a transient Compute Engine failure; herd asks again",
    ),
    row(
        "UNSUPPORTED_OPERATION",
        InvalidSpec,
        false,
        "this combination of type, image or options is not supported",
    ),
];

/// The row of `code`, if the table has it.
pub fn lookup(code: &str) -> Option<&'static Row> {
    TABLE.iter().find(|r| r.code == code)
}

/// The kind an HTTP status means when the code is unknown (the one fallback).
pub fn by_status(status: u16) -> (ErrorKind, bool) {
    match status {
        400 | 412 => (InvalidSpec, false),
        401 => (Unauthenticated, false),
        403 => (PermissionDenied, false),
        404 => (NotFound, false),
        409 => (Conflict, false),
        429 => (RateLimited, true),
        500..=599 => (Unavailable, true),
        _ => (Unexpected, false),
    }
}

/// One GCE error, however it arrived.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GceError {
    pub status: Option<u16>,
    pub code: String,
    pub message: String,
    /// `errorInfo.metadatas.zonesAvailable`: zones that could take it now.
    pub zones_available: Vec<String>,
    /// `quotaInfo`: metric, limit, region.
    pub quota: Option<(String, f64, Option<String>)>,
}

fn details(item: &Value, out: &mut GceError) {
    for d in item.get("errorDetails").and_then(Value::as_array).into_iter().flatten() {
        if let Some(z) = d.pointer("/errorInfo/metadatas/zonesAvailable").and_then(Value::as_str) {
            out.zones_available = z
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(q) = d.get("quotaInfo") {
            let metric = q.get("metricName").and_then(Value::as_str).unwrap_or("?").to_string();
            let limit = q.get("limit").and_then(Value::as_f64).unwrap_or(0.0);
            let region = q
                .pointer("/dimensions/region")
                .and_then(Value::as_str)
                .map(str::to_string);
            out.quota = Some((metric, limit, region));
        }
    }
}

/// An HTTP error answer: `{"error":{"code":429,"message":..,"errors":[{"reason":..}]}}`.
pub fn from_http(status: u16, body: &str) -> GceError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let e = v.get("error").cloned().unwrap_or(Value::Null);
    let first = e.pointer("/errors/0").cloned().unwrap_or(Value::Null);
    let mut out = GceError {
        status: Some(status),
        code: first
            .get("reason")
            .or_else(|| first.get("code"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        message: e
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| body.chars().take(200).collect()),
        ..Default::default()
    };
    details(&first, &mut out);
    out
}

/// A finished operation's `error` (the first error: GCE lists the cause first).
pub fn from_operation(op: &Value) -> Option<GceError> {
    let first = op.pointer("/error/errors/0")?;
    let mut out = GceError {
        status: op.get("httpErrorStatusCode").and_then(Value::as_u64).map(|s| s as u16),
        code: first.get("code").and_then(Value::as_str).unwrap_or("").to_string(),
        message: first.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
        ..Default::default()
    };
    details(first, &mut out);
    Some(out)
}

impl GceError {
    /// herd's error for it; `what` names the call (`instances.bulkInsert in us-central1-a`).
    pub fn into_error(self, what: &str) -> Error {
        let (kind, temporary, hint) = match lookup(&self.code) {
            Some(r) => (r.kind, r.temporary, Some(r.hint.to_string())),
            None => {
                let (k, t) = by_status(self.status.unwrap_or(500));
                (k, t, None)
            }
        };
        let code = if self.code.is_empty() {
            self.status.map(|s| format!("HTTP {s}")).unwrap_or_default()
        } else {
            self.code.clone()
        };
        let mut msg = format!("{what}: {code}: {}", self.message);
        if let Some((metric, limit, region)) = &self.quota {
            msg = format!(
                "{what}: quota {metric} (limit {limit}{}) would be exceeded: {}",
                region.as_ref().map(|r| format!(" in {r}")).unwrap_or_default(),
                self.message
            );
        }
        let mut e = Error::new(kind, msg)
            .temporary(temporary)
            .with_context("gce_code", code);
        if let Some(h) = hint {
            e = e.with_hint(h);
        }
        if !self.zones_available.is_empty() {
            e = e.with_context("zones_available", self.zones_available.join(","));
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_of_the_issue_maps_to_its_kind() {
        let want = [
            ("rateLimitExceeded", RateLimited, true),
            ("quotaExceeded", QuotaExceeded, false),
            ("QUOTA_EXCEEDED", QuotaExceeded, false),
            ("GPUS_ALL_REGIONS", QuotaExceeded, false),
            ("ZONE_RESOURCE_POOL_EXHAUSTED", InsufficientCapacity, false),
            ("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", InsufficientCapacity, false),
            ("VM_MIN_COUNT_NOT_REACHED", InsufficientCapacity, false),
            ("RESOURCE_OPERATION_RATE_EXCEEDED", RateLimited, true),
            ("notFound", NotFound, false),
            ("alreadyExists", Conflict, false),
            ("invalid", InvalidSpec, false),
            ("authError", Unauthenticated, false),
            ("forbidden", PermissionDenied, false),
        ];
        for (code, kind, temp) in want {
            let r = lookup(code).unwrap_or_else(|| panic!("{code} missing"));
            assert_eq!((r.kind, r.temporary), (kind, temp), "{code}");
        }
        let mut codes: Vec<&str> = TABLE.iter().map(|r| r.code).collect();
        codes.sort();
        let n = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), n, "a code listed twice");
    }

    #[test]
    fn http_errors_are_read_with_both_rate_limit_statuses() {
        for status in [403, 429] {
            let body = r#"{"error":{"code":403,"message":"Rate Limit Exceeded","errors":[{"reason":"rateLimitExceeded","domain":"usageLimits"}]}}"#;
            let e = from_http(status, body).into_error("instances.delete");
            assert_eq!(e.kind(), RateLimited);
            assert!(e.is_temporary());
        }
        let e = from_http(502, "<html>bad gateway</html>").into_error("x");
        assert_eq!((e.kind(), e.is_temporary()), (Unavailable, true));
        let e = from_http(401, "{}").into_error("x");
        assert_eq!(e.kind(), Unauthenticated);
    }

    #[test]
    fn operation_errors_carry_zones_available_and_the_quota() {
        let op = serde_json::json!({"status":"DONE","httpErrorStatusCode":503,"error":{"errors":[{
            "code":"ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS","message":"no e2-micro",
            "errorDetails":[{"errorInfo":{"reason":"resource_availability","metadatas":{"zonesAvailable":"us-central1-c,us-central1-f"}}}]}]}});
        let g = from_operation(&op).unwrap();
        assert_eq!(g.zones_available, ["us-central1-c", "us-central1-f"]);
        let e = g.into_error("bulkInsert");
        assert_eq!(e.kind(), InsufficientCapacity);
        assert_eq!(e.context_value("zones_available"), Some("us-central1-c,us-central1-f"));
        let op = serde_json::json!({"error":{"errors":[{"code":"QUOTA_EXCEEDED","message":"Quota 'CPUS' exceeded.",
            "errorDetails":[{"quotaInfo":{"metricName":"compute.googleapis.com/cpus","limitName":"CPUS-per-project-region","limit":24.0,"dimensions":{"region":"us-central1"}}}]}]}});
        let e = from_operation(&op).unwrap().into_error("bulkInsert");
        assert_eq!(e.kind(), QuotaExceeded);
        assert!(
            e.message()
                .contains("compute.googleapis.com/cpus (limit 24 in us-central1)"),
            "{e}"
        );
        assert!(e.hint().unwrap().contains("another region"));
        assert!(from_operation(&serde_json::json!({"status":"DONE"})).is_none());
    }
}
