//! The schema, as an ordered list of scripts: script `i` takes a database from
//! `PRAGMA user_version` `i` to `i + 1`. Append new scripts; never edit a shipped one.

use rusqlite::{Connection, TransactionBehavior};

/// v1: launches, instances (price frozen as exact decimal text), append-only state changes.
const V1: &str = r#"
CREATE TABLE launches (
    launch_id     TEXT PRIMARY KEY,
    cloud         TEXT NOT NULL,
    account       TEXT NOT NULL,
    owner         TEXT NOT NULL,
    owner_key     TEXT NOT NULL,      -- owner as sanitized in the herd-owner tag
    cluster       TEXT NOT NULL,
    cluster_key   TEXT NOT NULL,      -- cluster as sanitized in the herd-cluster tag
    fingerprint   TEXT NOT NULL,
    instance_type TEXT NOT NULL,
    region        TEXT NOT NULL,
    count         INTEGER NOT NULL,
    market        TEXT NOT NULL,
    hourly_price  TEXT NOT NULL,      -- exact decimal
    reservation   TEXT NOT NULL,      -- exact decimal
    currency      TEXT NOT NULL DEFAULT 'USD',
    deadline      TEXT NOT NULL,      -- RFC 3339 UTC, fixed width: sorts as text
    created_at    TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('started', 'launched', 'failed')),
    error         TEXT
);
CREATE INDEX launches_owner_created ON launches (owner_key, created_at);
CREATE INDEX launches_cluster ON launches (cluster_key);
CREATE INDEX launches_created ON launches (created_at);

CREATE TABLE instances (
    cloud           TEXT NOT NULL,
    id              TEXT NOT NULL,
    launch_id       TEXT NOT NULL,    -- the launch, batches folded in
    batch_launch_id TEXT NOT NULL,    -- as the cloud reported it (`<launch>-b0`, `-od`)
    owner_key       TEXT,
    cluster_key     TEXT,
    region          TEXT NOT NULL,
    zone            TEXT NOT NULL,
    instance_type   TEXT NOT NULL,
    state           TEXT NOT NULL,
    state_reason    TEXT,
    purchase        TEXT NOT NULL,
    launched_at     TEXT NOT NULL,
    ended_at        TEXT,
    deadline        TEXT NOT NULL,
    keepalive_secs  INTEGER,
    addresses       TEXT NOT NULL,    -- JSON array
    tags            TEXT NOT NULL,    -- JSON object
    hourly_price    TEXT NOT NULL,    -- exact decimal, frozen at the first sighting
    currency        TEXT NOT NULL DEFAULT 'USD',
    first_seen      TEXT NOT NULL,
    last_seen       TEXT NOT NULL,
    PRIMARY KEY (cloud, id)
);
CREATE INDEX instances_id ON instances (id);
CREATE INDEX instances_launch ON instances (launch_id);
CREATE INDEX instances_batch ON instances (batch_launch_id);
CREATE INDEX instances_owner ON instances (owner_key, launched_at);
CREATE INDEX instances_cluster ON instances (cluster_key);
CREATE INDEX instances_launched ON instances (launched_at);
CREATE INDEX instances_live ON instances (launched_at) WHERE state <> 'terminated';

-- The price is what a report months later relies on: refuse to change it.
CREATE TRIGGER instances_price_frozen BEFORE UPDATE OF hourly_price, currency ON instances
WHEN NEW.hourly_price IS NOT OLD.hourly_price OR NEW.currency IS NOT OLD.currency
BEGIN SELECT RAISE(ABORT, 'herd ledger: an instance price is frozen at launch'); END;

CREATE TABLE state_changes (
    seq         INTEGER PRIMARY KEY,
    cloud       TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    at          TEXT NOT NULL,
    reason      TEXT
);
CREATE INDEX state_changes_instance ON state_changes (instance_id, seq);

CREATE TRIGGER state_changes_no_update BEFORE UPDATE ON state_changes
BEGIN SELECT RAISE(ABORT, 'herd ledger: state changes are append-only'); END;
CREATE TRIGGER state_changes_no_delete BEFORE DELETE ON state_changes
BEGIN SELECT RAISE(ABORT, 'herd ledger: state changes are append-only'); END;
"#;

pub(super) const MIGRATIONS: &[&str] = &[V1];

pub(super) fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Applies the scripts after the database's version, all in one immediate transaction
/// (so two herds opening a fresh ledger at once migrate it once). Returns the version
/// found inside the transaction, which may be newer than `scripts` knows: the caller
/// checks that before and after.
pub(super) fn migrate(conn: &mut Connection, scripts: &[&str]) -> rusqlite::Result<u32> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = user_version(&tx)?;
    let target = scripts.len() as u32;
    if found >= target {
        return Ok(found);
    }
    for script in &scripts[found as usize..] {
        tx.execute_batch(script)?;
    }
    tx.pragma_update(None, "user_version", target)?;
    tx.commit()?;
    Ok(found)
}
