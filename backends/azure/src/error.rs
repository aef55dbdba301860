//! Azure Resource Manager's errors to herd's kinds, at one boundary and by one table
//! ([`TABLE`]). ARM reports a failure in two places and both come here: a synchronous
//! answer's `{"error":{"code","message","details"}}` and a finished async operation's
//! `{"status":"Failed","error":{...}}` (<https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/async-operations>).
//! A code the table lacks falls back on the HTTP status ([`by_status`]).

use std::time::Duration;

use herd_core::{Error, ErrorKind};
use serde_json::Value;

/// What to do next about a failure, besides its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing special: the kind says it.
    Stop,
    /// Another zone of the region may have capacity.
    NextZone,
    /// The size is not offered here: another region (the Launcher's or the user's choice).
    NextRegion,
    /// Wait and send the same request again (herd's retry loop).
    Retry,
}

/// One row: an ARM error code, herd's kind, whether a retry may help, what follows, and
/// what to tell the user.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub code: &'static str,
    pub kind: ErrorKind,
    pub temporary: bool,
    pub next: Next,
    pub hint: &'static str,
}

const fn row(code: &'static str, kind: ErrorKind, temporary: bool, next: Next, hint: &'static str) -> Row {
    Row {
        code,
        kind,
        temporary,
        next,
        hint,
    }
}

use ErrorKind::*;

/// Every ARM code herd tells apart. Sources: "Troubleshoot allocation failures"
/// (<https://learn.microsoft.com/en-us/troubleshoot/azure/virtual-machines/windows/allocation-failure>),
/// "Resolve errors for SKU not available", "Resolve errors for resource quotas",
/// "Throttling Resource Manager requests", and ARM's common deployment errors
/// (<https://learn.microsoft.com/en-us/azure/azure-resource-manager/troubleshooting/common-deployment-errors>).
pub const TABLE: &[Row] = &[
    row(
        "AllocationFailed",
        InsufficientCapacity,
        false,
        Next::NextZone,
        "Azure has no capacity for this size in this zone now",
    ),
    row(
        "ZonalAllocationFailed",
        InsufficientCapacity,
        false,
        Next::NextZone,
        "Azure has no capacity for this size in this zone now",
    ),
    row(
        "OverconstrainedAllocationRequest",
        InsufficientCapacity,
        false,
        Next::NextZone,
        "the size, zone and options together have no capacity now",
    ),
    row(
        "OverconstrainedZonalAllocationRequest",
        InsufficientCapacity,
        false,
        Next::NextZone,
        "the size, zone and options together have no capacity now",
    ),
    row(
        "SkuNotAvailable",
        InsufficientCapacity,
        false,
        Next::NextRegion,
        "this size is not offered to the subscription in this region: try another region or size",
    ),
    row(
        "QuotaExceeded",
        QuotaExceeded,
        false,
        Next::Stop,
        "ask for a higher vCPU quota (Azure portal > Quotas > Compute), or launch in another region",
    ),
    row(
        "NicReservedForAnotherVm",
        Unavailable,
        true,
        Next::Retry,
        "the NIC is held for 180 s after its VM's deletion; herd waits and sends it again",
    ),
    row(
        "TooManyRequests",
        RateLimited,
        true,
        Next::Retry,
        "ARM's request limit; herd waits as long as it says and asks again",
    ),
    row(
        "RetryableError",
        Unavailable,
        true,
        Next::Retry,
        "Azure says to try again",
    ),
    row(
        "InternalServerError",
        Unavailable,
        true,
        Next::Retry,
        "Azure failed inside; herd asks again",
    ),
    row("ServiceUnavailable", Unavailable, true, Next::Retry, "Azure is busy; herd asks again"),
    row(
        "ResourceGroupBeingDeleted",
        Unavailable,
        true,
        Next::Retry,
        "the cluster's resource group is still being deleted; herd waits and creates it again",
    ),
    row(
        "ResourceNotFound",
        NotFound,
        false,
        Next::Stop,
        "check the resource group and names",
    ),
    row("ResourceGroupNotFound", NotFound, false, Next::Stop, "the resource group is gone"),
    row("NotFound", NotFound, false, Next::Stop, "check the resource names"),
    row(
        "InvalidResourceName",
        InvalidSpec,
        false,
        Next::Stop,
        "Azure refused a resource name (herd's are from the cluster and launch id: use letters, digits and -)",
    ),
    row(
        "InvalidParameter",
        InvalidSpec,
        false,
        Next::Stop,
        "Azure refused a value of the request",
    ),
    row(
        "InvalidTemplate",
        InvalidSpec,
        false,
        Next::Stop,
        "Azure refused the request's shape",
    ),
    row(
        "ImageNotFound",
        InvalidSpec,
        false,
        Next::Stop,
        "check the image (publisher:offer:sku:version) with `az vm image list`",
    ),
    row(
        "PlatformImageNotFound",
        InvalidSpec,
        false,
        Next::Stop,
        "check the image (publisher:offer:sku:version) with `az vm image list`",
    ),
    row(
        "LocationNotAvailableForResourceType",
        InvalidSpec,
        false,
        Next::Stop,
        "this region does not offer the resource type",
    ),
    row(
        "InvalidAuthenticationToken",
        Unauthenticated,
        false,
        Next::Stop,
        "sign in again: `az login`, or check AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET",
    ),
    row(
        "ExpiredAuthenticationToken",
        Unauthenticated,
        false,
        Next::Stop,
        "sign in again: `az login`",
    ),
    row(
        "AuthenticationFailed",
        Unauthenticated,
        false,
        Next::Stop,
        "sign in again: `az login`",
    ),
    row(
        "AuthorizationFailed",
        PermissionDenied,
        false,
        Next::Stop,
        "the identity needs the Contributor role (or Virtual Machine Contributor and Network Contributor) on the subscription",
    ),
    row(
        "SubscriptionNotFound",
        ConfigInvalid,
        false,
        Next::Stop,
        "check [azure] subscription (or AZURE_SUBSCRIPTION_ID): `az account list`",
    ),
    row(
        "Conflict",
        Conflict,
        false,
        Next::Stop,
        "another operation on the resource is in progress or it changed meanwhile",
    ),
    row(
        "OperationNotAllowed",
        Conflict,
        false,
        Next::Stop,
        "Azure does not allow this operation now",
    ),
];

/// The row of `code`, if the table has it (ARM codes are compared case-insensitively:
/// services differ in case).
pub fn lookup(code: &str) -> Option<&'static Row> {
    TABLE.iter().find(|r| r.code.eq_ignore_ascii_case(code))
}

/// The kind an HTTP status means when the code is unknown (the one fallback).
pub fn by_status(status: u16) -> (ErrorKind, bool) {
    match status {
        400 => (InvalidSpec, false),
        401 => (Unauthenticated, false),
        403 => (PermissionDenied, false),
        404 => (NotFound, false),
        409 | 412 => (Conflict, false),
        429 => (RateLimited, true),
        408 | 500..=599 => (Unavailable, true),
        _ => (Unexpected, false),
    }
}

/// A vCPU quota refusal, read from ARM's message ("... exceeding approved
/// standardDSv3Family Cores quota. Additional details - ... Location: eastus, Current
/// Limit: 50, Current Usage: 48, Additional Required: 4, (Minimum) New Limit Required: 52").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub family: String,
    pub location: Option<String>,
    pub limit: u64,
    pub usage: u64,
    pub required: u64,
}

fn number_after(m: &str, label: &str) -> Option<u64> {
    let i = m.find(label)? + label.len();
    let digits: String = m[i..]
        .trim_start_matches([':', ' '])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

impl Quota {
    pub fn parse(message: &str) -> Option<Quota> {
        let limit = number_after(message, "Current Limit")?;
        let usage = number_after(message, "Current Usage")?;
        let required = number_after(message, "Additional Required")?;
        let family = message
            .find(" Cores quota")
            .map(|end| {
                message[..end]
                    .rsplit(' ')
                    .next()
                    .unwrap_or("")
                    .trim_matches(|c: char| !c.is_ascii_alphanumeric())
                    .to_string()
            })
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "vCPU".into());
        let location = message.find("Location:").map(|i| {
            message[i + 9..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
        });
        Some(Quota {
            family,
            location: location.filter(|l| !l.is_empty()),
            limit,
            usage,
            required,
        })
    }
}

/// One ARM failure, however it arrived.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmError {
    pub status: Option<u16>,
    pub code: String,
    pub message: String,
    /// `Retry-After` of the answer, if any.
    pub retry_after: Option<Duration>,
}

/// The innermost useful `{code, message}`: ARM often wraps the cause in `details`
/// (a deployment's `Conflict` around an `AllocationFailed`), so a detail whose code the
/// table knows wins over a generic outer one.
fn read_error(e: &Value) -> (String, String) {
    let code = e.get("code").and_then(Value::as_str).unwrap_or("").to_string();
    let message = e.get("message").and_then(Value::as_str).unwrap_or("").to_string();
    let known = lookup(&code).is_some_and(|r| !matches!(r.code, "Conflict" | "OperationNotAllowed"));
    if !known {
        for d in e.get("details").and_then(Value::as_array).into_iter().flatten() {
            let (c, m) = read_error(d);
            if lookup(&c).is_some() {
                return (c, m);
            }
        }
    }
    (code, message)
}

/// A synchronous error answer.
pub fn from_http(status: u16, body: &str, retry_after: Option<Duration>) -> ArmError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let (code, message) = match v.get("error") {
        Some(e) => read_error(e),
        None => (String::new(), body.chars().take(200).collect()),
    };
    ArmError {
        status: Some(status),
        code,
        message,
        retry_after,
    }
}

/// A finished async operation's error (`status` Failed or Canceled), if it has one.
pub fn from_operation(op: &Value) -> Option<ArmError> {
    let status = op.get("status").and_then(Value::as_str).unwrap_or("");
    if !status.eq_ignore_ascii_case("failed") && !status.eq_ignore_ascii_case("canceled") {
        return None;
    }
    let (code, message) = match op.get("error") {
        Some(e) => read_error(e),
        None => (status.to_string(), format!("the operation ended {status}")),
    };
    Some(ArmError {
        status: None,
        code,
        message,
        retry_after: None,
    })
}

impl ArmError {
    /// The row for this failure: its code, or the quota reading of `OperationNotAllowed`.
    fn row(&self) -> Option<&'static Row> {
        if self.quota().is_some() {
            return lookup("QuotaExceeded");
        }
        lookup(&self.code)
    }

    pub fn quota(&self) -> Option<Quota> {
        if self.code.eq_ignore_ascii_case("OperationNotAllowed") || self.code.eq_ignore_ascii_case("QuotaExceeded") {
            Quota::parse(&self.message)
        } else {
            None
        }
    }

    /// What the caller should try next.
    pub fn next(&self) -> Next {
        match self.row() {
            Some(r) => r.next,
            None if by_status(self.status.unwrap_or(0)).1 => Next::Retry,
            None => Next::Stop,
        }
    }

    /// herd's error for it; `what` names the call (`virtualMachines.createOrUpdate of herd-x-0000`).
    pub fn into_error(self, what: &str) -> Error {
        let (mut kind, mut temporary, hint) = match self.row() {
            Some(r) => (r.kind, r.temporary, Some(r.hint.to_string())),
            None => {
                let (k, t) = by_status(self.status.unwrap_or(500));
                (k, t, None)
            }
        };
        if self.status == Some(429) {
            kind = RateLimited;
            temporary = true;
        }
        let code = if self.code.is_empty() {
            self.status
                .map(|s| format!("HTTP {s}"))
                .unwrap_or_else(|| "error".into())
        } else {
            self.code.clone()
        };
        let msg = match self.quota() {
            Some(q) => format!(
                "{what}: the {} vCPU quota{} is {}, {} are in use and this launch needs {} more ({code})",
                q.family,
                q.location.as_ref().map(|l| format!(" in {l}")).unwrap_or_default(),
                q.limit,
                q.usage,
                q.required
            ),
            None => format!("{what}: {code}: {}", self.message),
        };
        let mut e = Error::new(kind, msg)
            .temporary(temporary)
            .with_context("azure_code", code);
        if let Some(q) = self.quota() {
            e = e
                .with_context("quota_family", q.family.clone())
                .with_hint(format!(
                    "request a quota increase for {} to at least {} vCPUs (Azure portal > Quotas > Compute), or launch in another region",
                    q.family,
                    q.usage + q.required
                ));
        } else if let Some(h) = hint {
            e = e.with_hint(h);
        }
        match self.next() {
            Next::NextRegion => e = e.with_context("azure_next", "region"),
            Next::NextZone => e = e.with_context("azure_next", "zone"),
            _ => {}
        }
        if let Some(d) = self.retry_after {
            e = e.with_retry_after(d);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_failures_move_to_the_next_zone() {
        for code in [
            "AllocationFailed",
            "ZonalAllocationFailed",
            "OverconstrainedAllocationRequest",
        ] {
            let body = format!(r#"{{"error":{{"code":"{code}","message":"no room"}}}}"#);
            let a = from_http(409, &body, None);
            assert_eq!(a.next(), Next::NextZone, "{code}");
            let e = a.into_error("vm put");
            assert_eq!(e.kind(), InsufficientCapacity);
            assert!(!e.is_temporary());
        }
    }

    #[test]
    fn errors_inside_async_operations_count_the_same() {
        let op = serde_json::json!({"status": "Failed", "error": {"code": "ZonalAllocationFailed", "message": "x"}});
        let a = from_operation(&op).unwrap();
        assert_eq!(a.next(), Next::NextZone);
        assert!(from_operation(&serde_json::json!({"status": "Succeeded"})).is_none());
        assert!(from_operation(&serde_json::json!({"status": "InProgress"})).is_none());
        // A wrapped cause wins over the generic outer code.
        let op = serde_json::json!({"status": "Failed", "error": {"code": "Conflict", "message": "deploy",
            "details": [{"code": "AllocationFailed", "message": "inner"}]}});
        assert_eq!(from_operation(&op).unwrap().code, "AllocationFailed");
    }

    #[test]
    fn sku_not_available_goes_to_another_region_with_the_reason() {
        let body = r#"{"error":{"code":"SkuNotAvailable","message":"The requested VM size Standard_D2s_v5 is currently not available in location 'westus'."}}"#;
        let a = from_http(409, body, None);
        assert_eq!(a.next(), Next::NextRegion);
        let e = a.into_error("vm put");
        assert_eq!(e.kind(), InsufficientCapacity);
        assert!(e.message().contains("not available in location 'westus'"), "{e}");
        assert_eq!(e.context_value("azure_next"), Some("region"));
    }

    #[test]
    fn quota_reads_the_numbers_and_the_family() {
        let m = "Operation could not be completed as it results in exceeding approved standardDSv3Family Cores quota. Additional details - Deployment Model: Resource Manager, Location: eastus, Current Limit: 50, Current Usage: 48, Additional Required: 4, (Minimum) New Limit Required: 52.";
        let body = serde_json::json!({"error": {"code": "OperationNotAllowed", "message": m}}).to_string();
        let a = from_http(409, &body, None);
        assert_eq!(
            a.quota(),
            Some(Quota {
                family: "standardDSv3Family".into(),
                location: Some("eastus".into()),
                limit: 50,
                usage: 48,
                required: 4
            })
        );
        let e = a.into_error("vm put");
        assert_eq!(e.kind(), QuotaExceeded);
        assert!(
            e.message()
                .contains("standardDSv3Family vCPU quota in eastus is 50, 48 are in use and this launch needs 4 more"),
            "{e}"
        );
        assert!(e.hint().unwrap().contains("at least 52"), "{:?}", e.hint());
        // OperationNotAllowed without quota numbers is not a quota error.
        let other = from_http(409, r#"{"error":{"code":"OperationNotAllowed","message":"no"}}"#, None);
        assert_eq!(other.into_error("x").kind(), Conflict);
    }

    #[test]
    fn nic_reserved_waits_and_429_honours_retry_after() {
        let a = from_http(
            400,
            r#"{"error":{"code":"NicReservedForAnotherVm","message":"reserved"}}"#,
            None,
        );
        assert_eq!(a.next(), Next::Retry);
        assert!(a.into_error("x").is_temporary());
        let t = from_http(429, "{}", Some(Duration::from_secs(7))).into_error("x");
        assert_eq!(t.kind(), RateLimited);
        assert!(t.is_temporary());
        assert_eq!(t.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn unknown_codes_fall_back_on_the_status() {
        assert_eq!(from_http(404, "{}", None).into_error("x").kind(), NotFound);
        assert_eq!(from_http(403, "{}", None).into_error("x").kind(), PermissionDenied);
        let e = from_http(503, "not json", None).into_error("x");
        assert_eq!(e.kind(), Unavailable);
        assert!(e.is_temporary());
        assert_eq!(
            from_http(400, r#"{"error":{"code":"InvalidResourceName","message":"bad"}}"#, None)
                .into_error("x")
                .kind(),
            InvalidSpec
        );
    }
}
