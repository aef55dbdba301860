//! SQLite failures as herd errors a user can act on.

use std::time::Duration;

use herd_core::{Error, ErrorKind};
use rusqlite::ErrorCode;

const MOVE_ASIDE: &str = "nothing in the cloud is lost: `herd down --all` still stops everything from the clouds' \
     own tags, and `herd ls` re-records live instances from them into a new ledger";

/// How to get going again with a ledger that cannot be used.
fn move_aside(label: &str) -> String {
    format!("move it aside (`mv {label} {label}.bad`) and herd starts a new one; {MOVE_ASIDE}")
}

/// The ledger file is not a SQLite database or is damaged.
pub(super) fn corrupted(label: &str) -> Error {
    Error::config(format!(
        "ledger {label} is not a readable herd ledger (not a SQLite database, or corrupted)"
    ))
    .with_hint(move_aside(label))
}

/// A 0-byte file where the ledger should be: truncated, or made by something else. Taking
/// it as a new ledger would forget the day's spend, so it is refused.
pub(super) fn empty(label: &str) -> Error {
    Error::config(format!(
        "ledger {label} is empty (0 bytes): its record of launches and spend is gone, so herd will not \
         start over in it silently"
    ))
    .with_hint(move_aside(label))
}

pub(super) fn not_a_file(label: &str) -> Error {
    Error::config(format!("ledger {label} is not a file"))
        .with_hint("point HERD_LEDGER (or `ledger` in herd.toml) at a file")
}

/// The file exists but this user cannot read it.
pub(super) fn unreadable(label: &str, e: std::io::Error) -> Error {
    Error::config(format!("cannot read ledger {label}: {e}"))
        .with_hint(format!(
            "check its permissions (it should be yours, mode 600), or {}",
            move_aside(label)
        ))
        .with_source(e)
}

/// A SQLite database, but someone else's: herd will not add its tables to it.
pub(super) fn foreign(label: &str) -> Error {
    Error::config(format!("{label} is a SQLite database but not a herd ledger"))
        .with_hint("point HERD_LEDGER at another file; herd leaves this one untouched")
}

pub(super) fn newer_schema(label: &str, found: u32, known: u32) -> Error {
    Error::config(format!(
        "ledger {label} was written by a newer herd (schema v{found}, this herd knows v{known})"
    ))
    .with_hint("upgrade herd, or point HERD_LEDGER at another file")
}

pub(super) fn io(label: &str, what: &str, e: std::io::Error) -> Error {
    Error::config(format!("cannot {what} for ledger {label}: {e}"))
        .with_hint("check the permissions, or point HERD_LEDGER at a writable file")
        .with_source(e)
}

/// Maps any SQLite error met while using the ledger at `label`.
pub(super) fn map(e: rusqlite::Error, label: &str, busy_timeout: Duration) -> Error {
    let err = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Error::new(
                ErrorKind::Unavailable,
                format!(
                    "ledger {label} is busy: another herd process held it for more than {} ms",
                    busy_timeout.as_millis()
                ),
            )
            .temporary(true)
            .with_hint("try again in a moment; if it stays busy, look for a stuck `herd` process using this ledger"),
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => corrupted(label),
            ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly => {
                Error::config(format!("cannot write to ledger {label}: {e}"))
                    .with_hint("check the file's permissions, or point HERD_LEDGER at a writable file")
            }
            ErrorCode::DiskFull => Error::new(
                ErrorKind::Unavailable,
                format!("cannot write to ledger {label}: disk full"),
            )
            .temporary(false)
            .with_hint("free some disk space, then try again"),
            _ => Error::unexpected(format!("ledger {label}: {e}")),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => {
            Error::unexpected(format!("ledger {label} holds a value this herd cannot read: {e}"))
                .with_hint(format!("if the file was edited by hand, {}", move_aside(label)))
        }
        _ => Error::unexpected(format!("ledger {label}: {e}")),
    };
    err.with_source(e)
}
