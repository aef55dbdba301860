//! The simulated control plane's faults and failures, mapped to herd's `ErrorKind`s in
//! one place (the table a reader looks for in every backend's `error.rs`).

use std::path::Path;

use herd_core::{Error, ErrorKind};

/// What went wrong inside the simulator, before it becomes a `herd_core::Error`.
#[derive(Debug)]
pub(crate) enum Fault {
    /// A token bucket ran dry (EC2's `RequestLimitExceeded`). Like EC2, the simulator
    /// does not say when to retry: clients must back off blind, as they would on EC2.
    Throttled { api: &'static str },
    /// An injected transient failure; `committed` when the effect happened and only the
    /// response was lost.
    Transient { api: &'static str, committed: bool },
    /// Every candidate zone is full (EC2's `InsufficientInstanceCapacity`).
    Capacity { instance_type: String, zones: Vec<String> },
    /// The account's vCPU limit (EC2's `VcpuLimitExceeded`).
    VcpuQuota { limit: u32, live: u32, asked: u32 },
    /// Same launch id, other spec (EC2's `IdempotentParameterMismatch`).
    IdempotencyMismatch { launch_id: String },
    /// A state dir written by a schema this build does not know.
    SchemaVersion { path: String, found: i64, known: i64 },
    /// The state database is unreadable.
    CorruptState { path: String, detail: String },
}

impl From<Fault> for Error {
    fn from(f: Fault) -> Error {
        match f {
            Fault::Throttled { api } => Error::new(
                ErrorKind::RateLimited,
                format!("RequestLimitExceeded: the simulator throttled {api} (token bucket empty)"),
            )
            .with_hint("slow down; the bucket refills every second, like EC2's"),
            Fault::Transient { api, committed } => Error::new(
                ErrorKind::Unavailable,
                if committed {
                    format!("{api}: the simulated API applied the request but the response was lost (injected fault)")
                } else {
                    format!("{api}: the simulated API is temporarily unavailable (injected fault)")
                },
            ),
            Fault::Capacity { instance_type, zones } => Error::new(
                ErrorKind::InsufficientCapacity,
                format!(
                    "InsufficientInstanceCapacity: no capacity for {instance_type} in {}",
                    zones.join(", ")
                ),
            )
            .with_hint("try another region or instance type, or wait for instances to end"),
            Fault::VcpuQuota { limit, live, asked } => Error::new(
                ErrorKind::QuotaExceeded,
                format!(
                    "VcpuLimitExceeded: {asked} more vCPUs would exceed the simulator's limit of {limit} ({live} in use)"
                ),
            )
            .with_hint(
                "terminate instances you no longer need (`herd down`), or raise `vcpu_quota` under [simulator.faults] in herd.toml",
            ),
            Fault::IdempotencyMismatch { launch_id } => Error::new(
                ErrorKind::Conflict,
                format!(
                    "IdempotentParameterMismatch: launch id `{launch_id}` was already used for a different request"
                ),
            )
            .with_hint("use a new launch id, or repeat the original request exactly"),
            Fault::SchemaVersion { path, found, known } => Error::config(format!(
                "the simulator state at {path} was written by herd-sim schema v{found}; this herd understands v{known}"
            ))
            .with_hint(format!(
                "move {path} aside (or set HERD_SIM_DIR to another directory), or upgrade herd"
            )),
            Fault::CorruptState { path, detail } => {
                Error::config(format!("the simulator state at {path} is unreadable: {detail}")).with_hint(format!(
                    "move {path} aside; the simulator starts afresh (instances recorded there are forgotten)"
                ))
            }
        }
    }
}

/// A database failure: busy is temporary, a damaged file is a config problem the user
/// can fix, anything else is unexpected.
pub(crate) fn db(e: rusqlite::Error, path: Option<&Path>) -> Error {
    let shown = path.map_or_else(|| "the in-memory simulator".to_string(), |p| p.display().to_string());
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        use rusqlite::ErrorCode as C;
        match f.code {
            C::DatabaseBusy | C::DatabaseLocked => {
                return Error::new(
                    ErrorKind::Unavailable,
                    format!("the simulator state at {shown} is busy"),
                )
                .with_source(e)
            }
            C::NotADatabase | C::DatabaseCorrupt => {
                return Error::from(Fault::CorruptState {
                    path: shown,
                    detail: e.to_string(),
                })
            }
            C::CannotOpen | C::ReadOnly | C::PermissionDenied => {
                return Error::config(format!("cannot open the simulator state at {shown}: {e}"))
                    .with_hint("check that the directory is writable, or set HERD_SIM_DIR to another one")
            }
            _ => {}
        }
    }
    Error::unexpected(format!("simulator state ({shown}): {e}")).with_source(e)
}

/// A file-system failure on the simulator's own files.
pub(crate) fn io(e: std::io::Error, what: &str, path: &Path) -> Error {
    Error::unexpected(format!("{what} {}: {e}", path.display())).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_map_to_kinds() {
        let cases: Vec<(Fault, ErrorKind, bool)> = vec![
            (Fault::Throttled { api: "RunInstances" }, ErrorKind::RateLimited, true),
            (
                Fault::Transient {
                    api: "RunInstances",
                    committed: true,
                },
                ErrorKind::Unavailable,
                true,
            ),
            (
                Fault::Capacity {
                    instance_type: "l1.large".into(),
                    zones: vec!["local-east-1a".into()],
                },
                ErrorKind::InsufficientCapacity,
                false,
            ),
            (
                Fault::VcpuQuota {
                    limit: 4,
                    live: 4,
                    asked: 1,
                },
                ErrorKind::QuotaExceeded,
                false,
            ),
            (
                Fault::IdempotencyMismatch { launch_id: "x".into() },
                ErrorKind::Conflict,
                false,
            ),
            (
                Fault::SchemaVersion {
                    path: "/s".into(),
                    found: 9,
                    known: 1,
                },
                ErrorKind::ConfigInvalid,
                false,
            ),
            (
                Fault::CorruptState {
                    path: "/s".into(),
                    detail: "x".into(),
                },
                ErrorKind::ConfigInvalid,
                false,
            ),
        ];
        for (f, kind, temporary) in cases {
            let e = Error::from(f);
            assert_eq!(e.kind(), kind, "{e}");
            assert_eq!(e.is_temporary(), temporary, "{e}");
        }
    }

    #[test]
    fn throttling_does_not_say_when_to_come_back() {
        // EC2's RequestLimitExceeded carries no retry hint; neither does the simulator.
        let e = Error::from(Fault::Throttled {
            api: "DescribeInstances",
        });
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn schema_error_names_both_versions_and_what_to_do() {
        let e = Error::from(Fault::SchemaVersion {
            path: "/tmp/sim".into(),
            found: 7,
            known: 1,
        });
        assert!(e.message().contains("schema v7") && e.message().contains("v1"), "{e}");
        assert!(e.hint().unwrap().contains("move /tmp/sim aside"));
    }

    #[test]
    fn busy_database_is_temporary() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("database is locked".into()),
        );
        assert_eq!(db(busy, None).kind(), ErrorKind::Unavailable);
        let corrupt = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB), None);
        assert_eq!(db(corrupt, Some(Path::new("/x"))).kind(), ErrorKind::ConfigInvalid);
    }
}
