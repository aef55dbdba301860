//! EC2's error codes as herd [`ErrorKind`]s: one table, so every call site agrees on
//! what is temporary, what is the user's to fix, and what to tell them.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use herd_core::{Error, ErrorKind};

/// EC2 error code -> (kind, hint). Codes from the EC2 API reference, "Error codes".
/// Temporariness follows the kind ([`ErrorKind::is_temporary_by_default`]).
pub const TABLE: &[(&str, ErrorKind, Option<&str>)] = &[
    // Credentials and permissions.
    (
        "AuthFailure",
        ErrorKind::Unauthenticated,
        Some("check your AWS credentials (`aws sts get-caller-identity`, or --profile)"),
    ),
    (
        "InvalidClientTokenId",
        ErrorKind::Unauthenticated,
        Some("the access key is not known to AWS; check your credentials or --profile"),
    ),
    (
        "SignatureDoesNotMatch",
        ErrorKind::Unauthenticated,
        Some("the secret key does not match the access key"),
    ),
    (
        "ExpiredToken",
        ErrorKind::Unauthenticated,
        Some("your session expired; log in again (`aws sso login`)"),
    ),
    (
        "RequestExpired",
        ErrorKind::Unauthenticated,
        Some("check this machine's clock"),
    ),
    (
        "UnauthorizedOperation",
        ErrorKind::PermissionDenied,
        Some("your IAM identity lacks a permission herd needs; see backends/aws/README.md for the policy"),
    ),
    (
        "OptInRequired",
        ErrorKind::PermissionDenied,
        Some("this region or service needs an opt-in on the account"),
    ),
    ("Blocked", ErrorKind::PermissionDenied, None),
    // Things that are not there.
    ("InvalidInstanceID.NotFound", ErrorKind::NotFound, None),
    ("InvalidInstanceID.Malformed", ErrorKind::NotFound, None),
    ("InvalidKeyPair.NotFound", ErrorKind::NotFound, None),
    ("InvalidGroup.NotFound", ErrorKind::NotFound, None),
    ("InvalidGroupId.Malformed", ErrorKind::NotFound, None),
    ("InvalidVolume.NotFound", ErrorKind::NotFound, None),
    ("InvalidNetworkInterfaceID.NotFound", ErrorKind::NotFound, None),
    ("InvalidAllocationID.NotFound", ErrorKind::NotFound, None),
    // The request itself is wrong.
    (
        "InvalidAMIID.NotFound",
        ErrorKind::InvalidSpec,
        Some("the image does not exist in this region"),
    ),
    (
        "InvalidAMIID.Malformed",
        ErrorKind::InvalidSpec,
        Some("an image id looks like `ami-0123456789abcdef0`"),
    ),
    (
        "InvalidInstanceType",
        ErrorKind::InvalidSpec,
        Some("`herd catalog --cloud aws` lists the types"),
    ),
    (
        "InvalidInstanceType.NotFound",
        ErrorKind::InvalidSpec,
        Some("`herd catalog --cloud aws` lists the types"),
    ),
    ("InvalidParameterValue", ErrorKind::InvalidSpec, None),
    ("InvalidParameterCombination", ErrorKind::InvalidSpec, None),
    ("InvalidParameter", ErrorKind::InvalidSpec, None),
    ("MissingParameter", ErrorKind::InvalidSpec, None),
    ("InvalidUserData.Malformed", ErrorKind::InvalidSpec, None),
    ("InvalidZone.NotFound", ErrorKind::InvalidSpec, None),
    (
        "Unsupported",
        ErrorKind::Unsupported,
        Some("this type is not offered in that zone or region"),
    ),
    ("UnsupportedOperation", ErrorKind::Unsupported, None),
    // Capacity: try another zone, type or region.
    (
        "InsufficientInstanceCapacity",
        ErrorKind::InsufficientCapacity,
        Some("AWS has no capacity for this type there now; try another region or type, or later"),
    ),
    ("InsufficientHostCapacity", ErrorKind::InsufficientCapacity, None),
    ("InsufficientCapacity", ErrorKind::InsufficientCapacity, None),
    (
        "InsufficientFreeAddressesInSubnet",
        ErrorKind::InsufficientCapacity,
        None,
    ),
    (
        "SpotMaxPriceTooLow",
        ErrorKind::InsufficientCapacity,
        Some("the spot price is above the maximum"),
    ),
    // Account limits: ask AWS for more.
    (
        "InstanceLimitExceeded",
        ErrorKind::QuotaExceeded,
        Some("ask AWS for a higher instance quota (Service Quotas console), or launch fewer"),
    ),
    (
        "VcpuLimitExceeded",
        ErrorKind::QuotaExceeded,
        Some("ask AWS for a higher vCPU quota for this family (Service Quotas console), or launch fewer"),
    ),
    (
        "MaxSpotInstanceCountExceeded",
        ErrorKind::QuotaExceeded,
        Some("ask AWS for a higher spot quota"),
    ),
    (
        "AddressLimitExceeded",
        ErrorKind::QuotaExceeded,
        Some("`herd reap` releases unused addresses"),
    ),
    (
        "VolumeLimitExceeded",
        ErrorKind::QuotaExceeded,
        Some("`herd reap` deletes unattached volumes"),
    ),
    ("SecurityGroupLimitExceeded", ErrorKind::QuotaExceeded, None),
    ("ResourceLimitExceeded", ErrorKind::QuotaExceeded, None),
    // Throttling: herd's retry loop waits.
    ("RequestLimitExceeded", ErrorKind::RateLimited, None),
    ("Throttling", ErrorKind::RateLimited, None),
    ("ThrottlingException", ErrorKind::RateLimited, None),
    // Conflicts.
    (
        "IdempotentParameterMismatch",
        ErrorKind::Conflict,
        Some("this launch id was used for a different launch; use a new id"),
    ),
    ("IncorrectInstanceState", ErrorKind::Conflict, None),
    ("IncorrectState", ErrorKind::Conflict, None),
    ("DependencyViolation", ErrorKind::Conflict, None),
    ("InvalidGroup.InUse", ErrorKind::Conflict, None),
    ("InvalidGroup.Duplicate", ErrorKind::Conflict, None),
    ("InvalidKeyPair.Duplicate", ErrorKind::Conflict, None),
    ("InvalidPermission.Duplicate", ErrorKind::Conflict, None),
    // The service is having a bad moment.
    ("InternalError", ErrorKind::Unavailable, None),
    ("InternalFailure", ErrorKind::Unavailable, None),
    ("ServiceUnavailable", ErrorKind::Unavailable, None),
    ("Unavailable", ErrorKind::Unavailable, None),
];

/// The kind and hint for an EC2 error code, when the table knows it.
pub fn classify(code: &str) -> Option<(ErrorKind, Option<&'static str>)> {
    TABLE.iter().find(|(c, _, _)| *c == code).map(|(_, k, h)| (*k, *h))
}

/// A herd error from a service error's code, message and HTTP status.
pub fn from_code(code: Option<&str>, message: Option<&str>, status: Option<u16>) -> Error {
    let text = match (code, message) {
        (Some(c), Some(m)) => format!("EC2 said {c}: {m}"),
        (Some(c), None) => format!("EC2 said {c}"),
        (None, Some(m)) => format!("EC2 said: {m}"),
        (None, None) => format!("EC2 answered HTTP {}", status.unwrap_or(0)),
    };
    let (kind, hint) = match code.and_then(classify) {
        Some(found) => found,
        None => match status {
            Some(s) if s >= 500 => (ErrorKind::Unavailable, None),
            Some(429) => (ErrorKind::RateLimited, None),
            Some(401) => (ErrorKind::Unauthenticated, None),
            Some(403) => (ErrorKind::PermissionDenied, None),
            _ => (ErrorKind::Unexpected, None),
        },
    };
    let mut e = Error::new(kind, text);
    if let Some(h) = hint {
        e = e.with_hint(h);
    }
    if let Some(c) = code {
        e = e.with_context("ec2_code", c.to_string());
    }
    e
}

/// Any SDK failure as a herd error. Transport failures are temporary, so herd's retry
/// loop (the only one: the SDK's is off) decides whether to try again. Messages come from
/// EC2's code and message, never from the SDK's `Debug` (kept only as the `source`).
pub fn from_sdk<E, R>(err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static + HasStatus,
{
    from_sdk_at(err, None)
}

/// [`from_sdk`], naming the endpoint in the sentences where it is what went wrong
/// (timeouts, refused connections, malformed answers).
pub fn from_sdk_at<E, R>(err: SdkError<E, R>, endpoint: Option<&str>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static + HasStatus,
{
    let at = endpoint.map(|e| format!(" at {e}")).unwrap_or_default();
    let timeout = || {
        Error::new(ErrorKind::Timeout, format!("EC2{at} did not answer in time")).with_hint(
            "herd tries again while its patience lasts; `attempt_timeout` and `connect_timeout` in AwsConfig bound each try",
        )
    };
    match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status_code();
            let inner = se.err();
            let e = from_code(inner.code(), inner.message(), Some(status));
            e.with_source(err)
        }
        SdkError::TimeoutError(_) => timeout().with_source(err),
        SdkError::DispatchFailure(d) => {
            if d.is_timeout() {
                timeout().with_source(err)
            } else if is_credentials(&format!("{err:?}")) {
                credentials_error(&err)
            } else {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("could not reach EC2{at} (connection failed)"),
                )
                .with_source(err)
            }
        }
        SdkError::ResponseError(r) => {
            if let Some(m) = malformed(&err) {
                return Error::new(ErrorKind::Unexpected, format!("{m}{}", if at.is_empty() { String::new() } else { format!(" (from{at})") }))
                    .temporary(true)
                    .with_hint("a whole answer may come on the next try; if this keeps happening, the endpoint or a proxy in between is cutting answers short")
                    .with_context("action", m.action.clone())
                    .with_source(err);
            }
            let status = r.raw().status_code();
            let e = from_code(None, Some("an answer herd could not read"), Some(status));
            let kind = if status >= 500 || status == 0 {
                ErrorKind::Unavailable
            } else {
                e.kind()
            };
            Error::new(kind, e.message().to_string()).with_source(err)
        }
        SdkError::ConstructionFailure(_) => {
            if is_credentials(&format!("{err:?}")) {
                credentials_error(&err)
            } else {
                Error::unexpected("could not build the EC2 request").with_source(err)
            }
        }
        _ => Error::unexpected("EC2 request failed").with_source(err),
    }
}

/// The answer check's verdict, when that is why the SDK failed.
fn malformed<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a crate::client::MalformedAnswer> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(m) = e.downcast_ref::<crate::client::MalformedAnswer>() {
            return Some(m);
        }
        cur = e.source();
    }
    None
}

fn is_credentials(debug: &str) -> bool {
    let d = debug.to_ascii_lowercase();
    d.contains("credential") || d.contains("identity")
}

fn credentials_error<E: std::fmt::Debug>(_err: &E) -> Error {
    // The SDK's text can carry profile details; say what to do instead of echoing it.
    Error::new(ErrorKind::Unauthenticated, "no AWS credentials found").with_hint(
        "set AWS_PROFILE or --profile, run `aws sso login`, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    )
}

/// The HTTP status of a raw response, whatever the SDK's response type.
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_ec2::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// The instance ids an `InvalidInstanceID.NotFound` message names
/// ("The instance IDs 'i-1, i-2' do not exist").
pub fn ids_in_message(message: &str) -> Vec<String> {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("i-") && w.len() > 2)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_maps_the_codes_that_matter() {
        let expect = [
            ("AuthFailure", ErrorKind::Unauthenticated, false),
            ("UnauthorizedOperation", ErrorKind::PermissionDenied, false),
            ("InvalidInstanceID.NotFound", ErrorKind::NotFound, false),
            ("InsufficientInstanceCapacity", ErrorKind::InsufficientCapacity, false),
            ("InstanceLimitExceeded", ErrorKind::QuotaExceeded, false),
            ("VcpuLimitExceeded", ErrorKind::QuotaExceeded, false),
            ("RequestLimitExceeded", ErrorKind::RateLimited, true),
            ("IdempotentParameterMismatch", ErrorKind::Conflict, false),
            ("InvalidParameterValue", ErrorKind::InvalidSpec, false),
            ("Unsupported", ErrorKind::Unsupported, false),
            ("InternalError", ErrorKind::Unavailable, true),
        ];
        for (code, kind, temporary) in expect {
            let e = from_code(Some(code), Some("msg"), Some(400));
            assert_eq!(e.kind(), kind, "{code}");
            assert_eq!(e.is_temporary(), temporary, "{code}");
            assert_eq!(e.context_value("ec2_code"), Some(code));
        }
    }

    #[test]
    fn table_has_no_duplicate_codes() {
        let mut codes: Vec<&str> = TABLE.iter().map(|(c, _, _)| *c).collect();
        codes.sort_unstable();
        let n = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), n);
    }

    #[test]
    fn quota_and_capacity_errors_say_what_to_do() {
        for code in [
            "InstanceLimitExceeded",
            "VcpuLimitExceeded",
            "InsufficientInstanceCapacity",
            "AuthFailure",
        ] {
            assert!(from_code(Some(code), None, Some(400)).hint().is_some(), "{code}");
        }
    }

    #[test]
    fn unknown_codes_fall_back_on_the_status() {
        assert_eq!(from_code(Some("Weird"), None, Some(503)).kind(), ErrorKind::Unavailable);
        assert!(from_code(None, None, Some(500)).is_temporary());
        assert_eq!(from_code(None, None, Some(429)).kind(), ErrorKind::RateLimited);
        assert_eq!(from_code(Some("Weird"), None, Some(400)).kind(), ErrorKind::Unexpected);
    }

    #[test]
    fn not_found_message_names_its_ids() {
        assert_eq!(
            ids_in_message("The instance IDs 'i-0000000000000dead, i-0123456789abcdef0' do not exist"),
            vec!["i-0000000000000dead", "i-0123456789abcdef0"]
        );
        assert_eq!(ids_in_message("The instance ID 'i-1a' does not exist"), vec!["i-1a"]);
    }
}
