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

/// v2: sweeps (the plan as JSON), their cells' status, the instances each cell ran on (price
/// frozen at launch) and one row per finished repetition, so an interrupted sweep resumes.
const V2: &str = r#"
CREATE TABLE sweeps (
    sweep_id    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    owner       TEXT NOT NULL,
    plan        TEXT NOT NULL,        -- JSON
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX sweeps_name ON sweeps (name, updated_at);

CREATE TABLE sweep_cells (
    sweep_id    TEXT NOT NULL REFERENCES sweeps (sweep_id),
    cell_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    output_tail TEXT,
    events      TEXT NOT NULL,        -- JSON array
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (sweep_id, cell_id)
);

CREATE TABLE sweep_instances (
    sweep_id      TEXT NOT NULL REFERENCES sweeps (sweep_id),
    cell_id       TEXT NOT NULL,
    instance_id   TEXT NOT NULL,
    cloud         TEXT NOT NULL,
    region        TEXT NOT NULL,
    zone          TEXT NOT NULL,
    instance_type TEXT NOT NULL,
    purchase      TEXT NOT NULL,
    hourly_price  TEXT NOT NULL,      -- exact decimal, frozen at launch
    launched_at   TEXT NOT NULL,
    running_at    TEXT,
    ready_at      TEXT,
    ended_at      TEXT,
    end_reason    TEXT,
    PRIMARY KEY (sweep_id, instance_id)
);
CREATE INDEX sweep_instances_cell ON sweep_instances (sweep_id, cell_id);

CREATE TRIGGER sweep_instances_price_frozen BEFORE UPDATE OF hourly_price ON sweep_instances
WHEN NEW.hourly_price IS NOT OLD.hourly_price
BEGIN SELECT RAISE(ABORT, 'herd ledger: an instance price is frozen at launch'); END;

CREATE TABLE sweep_results (
    sweep_id    TEXT NOT NULL REFERENCES sweeps (sweep_id),
    cell_id     TEXT NOT NULL,
    repetition  INTEGER NOT NULL,
    instance_id TEXT NOT NULL,
    wall_ns     INTEGER NOT NULL,
    metric      REAL NOT NULL,
    finished_at TEXT NOT NULL,
    PRIMARY KEY (sweep_id, cell_id, repetition)
);
"#;

pub(super) const MIGRATIONS: &[&str] = &[V1, V2];

/// `PRAGMA application_id` of a herd ledger ("herd" in ASCII), so `file(1)` and herd can
/// tell a ledger from any other SQLite database.
pub(super) const APPLICATION_ID: i32 = 0x6865_7264;

pub(super) fn application_id(conn: &Connection) -> rusqlite::Result<i32> {
    conn.query_row("PRAGMA application_id", [], |r| r.get(0))
}

/// Whether the database has any schema at all (a fresh file has none).
pub(super) fn is_empty(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT count(*) = 0 FROM sqlite_master", [], |r| r.get(0))
}

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
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", target)?;
    tx.commit()?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_scripts_apply_on_top_of_earlier_ones() {
        let mut c = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut c, &[V1]).unwrap(), 0);
        assert_eq!(user_version(&c).unwrap(), 1);
        assert_eq!(application_id(&c).unwrap(), APPLICATION_ID);
        c.execute(
            "INSERT INTO state_changes (cloud, instance_id, to_state, at) VALUES ('aws', 'i-1', 'pending', 'x')",
            [],
        )
        .unwrap();

        let v2 = "ALTER TABLE state_changes ADD COLUMN note TEXT";
        assert_eq!(migrate(&mut c, &[V1, v2]).unwrap(), 1);
        assert_eq!(user_version(&c).unwrap(), 2);
        let kept: i64 = c
            .query_row("SELECT count(note IS NULL) FROM state_changes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 1);
        // Already there: nothing runs again.
        assert_eq!(migrate(&mut c, &[V1, v2]).unwrap(), 2);
    }

    #[test]
    fn a_failing_script_leaves_the_database_as_it_was() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, &[V1]).unwrap();
        let broken = "CREATE TABLE extra (x); THIS IS NOT SQL";
        assert!(migrate(&mut c, &[V1, broken]).is_err());
        assert_eq!(user_version(&c).unwrap(), 1);
        let extra: i64 = c
            .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'extra'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(extra, 0);
    }

    #[test]
    fn state_changes_are_append_only_and_prices_frozen() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, &[V1]).unwrap();
        c.execute(
            "INSERT INTO state_changes (cloud, instance_id, to_state, at) VALUES ('aws', 'i-1', 'pending', 'x')",
            [],
        )
        .unwrap();
        assert!(c.execute("UPDATE state_changes SET to_state = 'running'", []).is_err());
        assert!(c.execute("DELETE FROM state_changes", []).is_err());
        c.execute(
            "INSERT INTO instances (cloud, id, launch_id, batch_launch_id, region, zone, instance_type, state, \
             purchase, launched_at, deadline, addresses, tags, hourly_price, first_seen, last_seen) \
             VALUES ('aws', 'i-1', 'l', 'l', 'r', 'z', 't', 'pending', 'spot', 'a', 'd', '[]', '{}', '0.10', 'f', 'l')",
            [],
        )
        .unwrap();
        assert!(c.execute("UPDATE instances SET hourly_price = '0.20'", []).is_err());
        c.execute("UPDATE instances SET hourly_price = '0.10', state = 'running'", [])
            .unwrap();
    }
}
