//! The SQLite store: the only module that speaks SQL. One connection behind a mutex;
//! WAL so readers never wait for a writer; every change in one immediate transaction
//! (taking the write lock up front, so a busy ledger waits the busy timeout instead of
//! failing half-way).

mod codec;
mod errors;
mod file;
mod migrations;
mod sweeps;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use herd_core::tags::{self, sanitize_value};
use herd_core::{Error, ErrorKind, Instance, InstanceState, LaunchId, LaunchIntent, Result};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

use crate::model::{InstanceFilter, LaunchFilter, LaunchRecord, LaunchStatus, StateChange};
use crate::rules::{self, Step};
use crate::store::{Admit, Run, Store};
use codec::{get_json, get_money, get_opt_parsed, get_opt_ts, get_parsed, get_ts, money, ts};

/// The schema version this herd writes.
pub(crate) const SCHEMA_VERSION: u32 = migrations::MIGRATIONS.len() as u32;

#[derive(Debug)]
pub(crate) struct SqliteStore {
    conn: Mutex<Connection>,
    /// The path as shown in messages (`:memory:` for an in-memory ledger).
    label: String,
    busy_timeout: Duration,
}

impl SqliteStore {
    /// Opens or creates the ledger file. Nothing is written before the file is known to
    /// be a ledger this herd understands, so a bad or newer file is left as it was; an
    /// empty or unreadable one is refused rather than started over (see `file`).
    pub(crate) fn open(path: &Path, busy_timeout: Duration) -> Result<SqliteStore> {
        let label = path.display().to_string();
        file::prepare(path, &label, busy_timeout)?;
        let conn =
            Connection::open_with_flags(path, file::flags()).map_err(|e| errors::map(e, &label, busy_timeout))?;
        SqliteStore::setup(conn, label, busy_timeout, migrations::MIGRATIONS, true)
    }

    pub(crate) fn in_memory(busy_timeout: Duration) -> Result<SqliteStore> {
        let label = ":memory:".to_string();
        let conn = Connection::open_in_memory().map_err(|e| errors::map(e, &label, busy_timeout))?;
        SqliteStore::setup(conn, label, busy_timeout, migrations::MIGRATIONS, false)
    }

    fn setup(
        mut conn: Connection,
        label: String,
        busy_timeout: Duration,
        scripts: &[&str],
        file: bool,
    ) -> Result<SqliteStore> {
        let map = |e| errors::map(e, &label, busy_timeout);
        let known = scripts.len() as u32;
        conn.busy_timeout(busy_timeout).map_err(map)?;
        // The first read of the header: fails with NOTADB on a file that is not SQLite.
        let found = migrations::user_version(&conn).map_err(map)?;
        if found > known {
            return Err(errors::newer_schema(&label, found, known));
        }
        let app = migrations::application_id(&conn).map_err(map)?;
        let foreign = app != migrations::APPLICATION_ID && (app != 0 || !migrations::is_empty(&conn).map_err(map)?);
        if foreign {
            return Err(errors::foreign(&label));
        }
        if file {
            // `journal_mode` answers with a row; already-WAL databases return at once.
            conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
                .map_err(map)?;
            conn.pragma_update(None, "synchronous", "NORMAL").map_err(map)?;
        }
        if found < known {
            let raced = migrations::migrate(&mut conn, scripts).map_err(map)?;
            if raced > known {
                return Err(errors::newer_schema(&label, raced, known));
            }
        }
        conn.set_prepared_statement_cache_capacity(32);
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            label,
            busy_timeout,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic elsewhere while holding the lock leaves no open transaction behind
        // (it rolls back on drop), so the connection is still good.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |e| errors::map(e, &self.label, self.busy_timeout)
    }

    /// Runs `f` in one immediate transaction and commits it.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err())?;
        let out = f(&tx)?;
        tx.commit().map_err(self.err())?;
        Ok(out)
    }
}

const LAUNCH_COLS: &str = "launch_id, cloud, account, owner, cluster, fingerprint, instance_type, region, count, \
     market, hourly_price, reservation, deadline, created_at, status, error";

fn launch_row(row: &Row<'_>) -> rusqlite::Result<LaunchRecord> {
    Ok(LaunchRecord {
        launch_id: get_launch_id(row, 0)?,
        cloud: get_parsed(row, 1)?,
        account: row.get(2)?,
        owner: row.get(3)?,
        cluster: row.get(4)?,
        fingerprint: row.get(5)?,
        instance_type: row.get(6)?,
        region: row.get(7)?,
        count: row.get(8)?,
        market: get_parsed(row, 9)?,
        hourly_price: get_money(row, 10)?,
        reservation: get_money(row, 11)?,
        deadline: get_ts(row, 12)?,
        created_at: get_ts(row, 13)?,
        status: get_parsed(row, 14)?,
        error: row.get(15)?,
    })
}

fn get_launch_id(row: &Row<'_>, idx: usize) -> rusqlite::Result<LaunchId> {
    let s: String = row.get(idx)?;
    LaunchId::new(s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

const INSTANCE_COLS: &str = "id, cloud, region, zone, instance_type, state, state_reason, purchase, batch_launch_id, \
     launched_at, ended_at, deadline, keepalive_secs, addresses, tags, hourly_price";

fn instance_row(row: &Row<'_>) -> rusqlite::Result<Instance> {
    let mut i = Instance::new(
        row.get::<_, String>(0)?,
        get_parsed(row, 1)?,
        row.get::<_, String>(2)?,
        row.get::<_, String>(3)?,
        row.get::<_, String>(4)?,
        get_launch_id(row, 8)?,
        get_ts(row, 9)?,
        get_ts(row, 11)?,
        get_money(row, 15)?,
    );
    i.state = get_parsed(row, 5)?;
    i.state_reason = row.get(6)?;
    i.purchase = get_parsed(row, 7)?;
    i.ended_at = get_opt_ts(row, 10)?;
    i.keepalive = row.get::<_, Option<u64>>(12)?.map(Duration::from_secs);
    i.addresses = get_json(row, 13)?;
    i.tags = get_json(row, 14)?;
    Ok(i)
}

const RUN_COLS: &str = "i.cloud, i.launch_id, COALESCE(l.cluster, i.cluster_key), i.instance_type, i.state, \
     i.hourly_price, i.launched_at, i.ended_at, i.deadline";

fn run_row(row: &Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        cloud: get_parsed(row, 0)?,
        launch_id: row.get(1)?,
        cluster: row.get(2)?,
        instance_type: row.get(3)?,
        state: get_parsed(row, 4)?,
        hourly_price: get_money(row, 5)?,
        launched_at: get_ts(row, 6)?,
        ended_at: get_opt_ts(row, 7)?,
        deadline: get_ts(row, 8)?,
    })
}

/// What an instance inherits from the launch it belongs to.
#[derive(Clone)]
struct LaunchLink {
    owner_key: String,
    cluster_key: String,
}

/// Finds the launch a sighting belongs to: its `herd-launch` tag, else its reported
/// launch id with batch suffixes stripped. Unknown launches (started elsewhere) keep the
/// tag's or reported id, unlinked.
fn link(
    tx: &Transaction<'_>,
    cache: &mut HashMap<String, Option<LaunchLink>>,
    seen: &Instance,
) -> rusqlite::Result<(String, Option<LaunchLink>)> {
    let tag = seen.tag(tags::LAUNCH);
    let candidates = tag.into_iter().chain(rules::launch_candidates(seen.launch_id.as_str()));
    for c in candidates {
        if !cache.contains_key(c) {
            let found = tx
                .prepare_cached("SELECT owner_key, cluster_key FROM launches WHERE launch_id = ?1")?
                .query_row([c], |r| {
                    Ok(LaunchLink {
                        owner_key: r.get(0)?,
                        cluster_key: r.get(1)?,
                    })
                })
                .optional()?;
            cache.insert(c.to_string(), found);
        }
        if let Some(Some(l)) = cache.get(c) {
            return Ok((c.to_string(), Some(l.clone())));
        }
    }
    Ok((tag.unwrap_or(seen.launch_id.as_str()).to_string(), None))
}

fn json<T: serde::Serialize>(v: &T) -> String {
    // Vec<String> and BTreeMap<String, String> always serialize.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

fn record_sighting(
    tx: &Transaction<'_>,
    cache: &mut HashMap<String, Option<LaunchLink>>,
    launched: &mut HashSet<String>,
    seen: &Instance,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let cloud = seen.cloud.as_str();
    let known = tx
        .prepare_cached("SELECT state, state_reason, ended_at FROM instances WHERE cloud = ?1 AND id = ?2")?
        .query_row([cloud, &seen.id], |r| {
            Ok((
                get_parsed::<InstanceState>(r, 0)?,
                r.get::<_, Option<String>>(1)?,
                get_opt_ts(r, 2)?,
            ))
        })
        .optional()?;
    let step = rules::step(known.as_ref().map(|k| k.0), seen.state);
    let ended = rules::ended_at(seen, now);
    let now_s = ts(now);
    match step {
        Step::Stale => return Ok(()),
        Step::First => {
            let (root, link) = link(tx, cache, seen)?;
            let owner_key = link
                .as_ref()
                .map(|l| l.owner_key.clone())
                .or_else(|| seen.tag(tags::OWNER).map(sanitize_value));
            let cluster_key = link
                .as_ref()
                .map(|l| l.cluster_key.clone())
                .or_else(|| seen.tag(tags::CLUSTER).map(sanitize_value));
            if link.is_some() {
                launched.insert(root.clone());
            }
            tx.prepare_cached(
                "INSERT INTO instances (cloud, id, launch_id, batch_launch_id, owner_key, cluster_key, region, zone, \
                 instance_type, state, state_reason, purchase, launched_at, ended_at, deadline, keepalive_secs, \
                 addresses, tags, hourly_price, currency, first_seen, last_seen) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?21)",
            )?
            .execute(params![
                cloud,
                seen.id,
                root,
                seen.launch_id.as_str(),
                owner_key,
                cluster_key,
                seen.region,
                seen.zone,
                seen.instance_type,
                seen.state.as_str(),
                seen.state_reason,
                seen.purchase.as_str(),
                ts(seen.launched_at),
                ended.map(ts),
                ts(seen.deadline),
                seen.keepalive.map(|k| k.as_secs()),
                json(&seen.addresses),
                json(&seen.tags),
                money(seen.hourly_price),
                seen.hourly_price.currency.to_string(),
                now_s,
            ])?;
        }
        Step::Forward(_) | Step::Same => {
            let (_, old_reason, old_ended) = known.unwrap_or((seen.state, None, None));
            let reason = match step {
                Step::Same => seen.state_reason.clone().or(old_reason),
                _ => seen.state_reason.clone(),
            };
            let ended = rules::earliest(old_ended, ended);
            tx.prepare_cached(
                "UPDATE instances SET state = ?3, state_reason = ?4, zone = ?5, deadline = ?6, keepalive_secs = ?7, \
                 addresses = ?8, tags = ?9, ended_at = ?10, last_seen = ?11 WHERE cloud = ?1 AND id = ?2",
            )?
            .execute(params![
                cloud,
                seen.id,
                seen.state.as_str(),
                reason,
                seen.zone,
                ts(seen.deadline),
                seen.keepalive.map(|k| k.as_secs()),
                json(&seen.addresses),
                json(&seen.tags),
                ended.map(ts),
                now_s,
            ])?;
        }
    }
    let from = match step {
        Step::First => None,
        Step::Forward(from) => Some(from),
        Step::Same | Step::Stale => return Ok(()),
    };
    tx.prepare_cached(
        "INSERT INTO state_changes (cloud, instance_id, from_state, to_state, at, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        cloud,
        seen.id,
        from.map(InstanceState::as_str),
        seen.state.as_str(),
        ts(rules::change_at(step, seen, ended, now)),
        seen.state_reason,
    ])?;
    Ok(())
}

/// What `record_end` needs of an instance row.
struct EndFacts {
    cloud: String,
    state: InstanceState,
    ended: Option<DateTime<Utc>>,
    launched_at: DateTime<Utc>,
}

fn record_end(tx: &Transaction<'_>, id: &str, at: DateTime<Utc>, reason: &str) -> rusqlite::Result<()> {
    let rows: Vec<EndFacts> = tx
        .prepare_cached("SELECT cloud, state, ended_at, launched_at FROM instances WHERE id = ?1")?
        .query_map([id], |r| {
            Ok(EndFacts {
                cloud: r.get(0)?,
                state: get_parsed(r, 1)?,
                ended: get_opt_ts(r, 2)?,
                launched_at: get_ts(r, 3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    for EndFacts {
        cloud,
        state,
        ended,
        launched_at,
    } in rows
    {
        let at = at.max(launched_at);
        let end = rules::earliest(ended, Some(at));
        if state == InstanceState::Terminated {
            if end != ended {
                tx.prepare_cached("UPDATE instances SET ended_at = ?3 WHERE cloud = ?1 AND id = ?2")?
                    .execute(params![cloud, id, end.map(ts)])?;
            }
            continue;
        }
        tx.prepare_cached(
            "UPDATE instances SET state = 'terminated', state_reason = ?3, ended_at = ?4 WHERE cloud = ?1 AND id = ?2",
        )?
        .execute(params![cloud, id, reason, end.map(ts)])?;
        tx.prepare_cached(
            "INSERT INTO state_changes (cloud, instance_id, from_state, to_state, at, reason) \
             VALUES (?1, ?2, ?3, 'terminated', ?4, ?5)",
        )?
        .execute(params![cloud, id, state.as_str(), ts(at), reason])?;
    }
    Ok(())
}

/// A `WHERE` clause being assembled from optional filters.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    params: Vec<Value>,
}

impl Where {
    /// Adds `clause`; its anonymous `?` parameters take `values` in order.
    fn and(&mut self, clause: &str, values: impl IntoIterator<Item = Value>) {
        self.clauses.push(clause.to_string());
        self.params.extend(values);
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn limit(l: Option<usize>) -> String {
    l.map(|n| format!(" LIMIT {n}")).unwrap_or_default()
}

impl SqliteStore {
    /// Records a launch (status `started`), or resumes the same request under its id.
    fn insert_launch_in(&self, tx: &Transaction<'_>, intent: &LaunchIntent) -> Result<()> {
        let id = intent.launch_id.as_str();
        let existing: Option<(String, String)> = tx
            .query_row(
                "SELECT fingerprint, status FROM launches WHERE launch_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err())?;
        match existing {
            Some((fp, _)) if fp != intent.fingerprint => Err(Error::new(
                ErrorKind::Conflict,
                format!("launch id `{id}` was already used for a different request"),
            )
            .with_hint("use another launch id, or repeat the original request exactly to resume it")),
            Some((_, status)) => {
                // The same request again (a resume): a failed one is under way again.
                if status == LaunchStatus::Failed.as_str() {
                    tx.execute(
                        "UPDATE launches SET status = 'started', error = NULL WHERE launch_id = ?1",
                        [id],
                    )
                    .map_err(self.err())?;
                }
                Ok(())
            }
            None => {
                tx.execute(
                    &format!(
                        "INSERT INTO launches ({LAUNCH_COLS}, owner_key, cluster_key) VALUES \
                         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'started', NULL, ?15, ?16)"
                    ),
                    params![
                        id,
                        intent.cloud.as_str(),
                        intent.account,
                        intent.owner,
                        intent.cluster,
                        intent.fingerprint,
                        intent.instance_type,
                        intent.region,
                        intent.count,
                        intent.market.as_str(),
                        money(intent.hourly_price),
                        money(intent.reservation),
                        ts(intent.deadline),
                        ts(intent.created_at),
                        sanitize_value(&intent.owner),
                        sanitize_value(&intent.cluster),
                    ],
                )
                .map_err(self.err())?;
                Ok(())
            }
        }
    }
}

/// Launches created by `owner_key` since `since`, each with its instances, read in the
/// caller's transaction so they are one snapshot (and, in a write transaction, current).
fn launches_with_runs_in(
    conn: &Connection,
    owner_key: &str,
    since: DateTime<Utc>,
) -> rusqlite::Result<Vec<(LaunchRecord, Vec<Run>)>> {
    let since = ts(since);
    let launches: Vec<LaunchRecord> = conn
        .prepare_cached(&format!(
            "SELECT {LAUNCH_COLS} FROM launches WHERE owner_key = ?1 AND created_at >= ?2"
        ))
        .and_then(|mut s| s.query_map([owner_key, &since], launch_row)?.collect())?;
    let runs: Vec<Run> = conn
        .prepare_cached(&format!(
            "SELECT {RUN_COLS} FROM instances i JOIN launches l ON l.launch_id = i.launch_id \
             WHERE l.owner_key = ?1 AND l.created_at >= ?2"
        ))
        .and_then(|mut s| s.query_map([owner_key, &since], run_row)?.collect())?;
    let mut by_launch: HashMap<String, Vec<Run>> = HashMap::new();
    for r in runs {
        by_launch.entry(r.launch_id.clone()).or_default().push(r);
    }
    Ok(launches
        .into_iter()
        .map(|l| {
            let runs = by_launch.remove(l.launch_id.as_str()).unwrap_or_default();
            (l, runs)
        })
        .collect())
}

impl Store for SqliteStore {
    fn insert_launch(&self, intent: &LaunchIntent) -> Result<()> {
        self.write(|tx| self.insert_launch_in(tx, intent))
    }

    fn reserve_launch(
        &self,
        intent: &LaunchIntent,
        owner_key: &str,
        since: DateTime<Utc>,
        admit: Admit<'_>,
    ) -> Result<()> {
        // One immediate transaction: the write lock is taken before the day's total is
        // read, so no other herd (in any process) can reserve between the check and the
        // insert; they wait for it up to the busy timeout.
        self.write(|tx| {
            let id = intent.launch_id.as_str();
            let existing: Option<String> = tx
                .query_row("SELECT status FROM launches WHERE launch_id = ?1", [id], |r| r.get(0))
                .optional()
                .map_err(self.err())?;
            // Already reserved (a resume of a launch under way): nothing more to check.
            // A failed one reserves again; a different request under the same id is
            // refused by the insert.
            let resumed = existing.is_some_and(|st| st != LaunchStatus::Failed.as_str());
            if !resumed {
                let mut others = launches_with_runs_in(tx, owner_key, since).map_err(self.err())?;
                others.retain(|(l, _)| l.launch_id.as_str() != id);
                admit(&others)?;
            }
            self.insert_launch_in(tx, intent)
        })
    }

    fn fail_launch(&self, launch_id: &str, error: &str) -> Result<()> {
        self.write(|tx| {
            for c in rules::launch_candidates(launch_id) {
                let n = tx
                    .execute(
                        "UPDATE launches SET status = 'failed', error = COALESCE(error, ?2) WHERE launch_id = ?1",
                        [c, error],
                    )
                    .map_err(self.err())?;
                if n > 0 {
                    break;
                }
            }
            Ok(())
        })
    }

    fn record_sightings(&self, seen: &[Instance], now: DateTime<Utc>) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut cache = HashMap::new();
            let mut launched = HashSet::new();
            for i in seen {
                record_sighting(tx, &mut cache, &mut launched, i, now).map_err(self.err())?;
            }
            for id in &launched {
                tx.prepare_cached(
                    "UPDATE launches SET status = 'launched' WHERE launch_id = ?1 AND status = 'started'",
                )
                .and_then(|mut s| s.execute([id]))
                .map_err(self.err())?;
            }
            Ok(())
        })
    }

    fn record_ends(&self, ids: &[String], at: DateTime<Utc>, reason: &str) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            for id in ids {
                record_end(tx, id, at, reason).map_err(self.err())?;
            }
            Ok(())
        })
    }

    fn instances(&self, f: &InstanceFilter) -> Result<Vec<Instance>> {
        let mut w = Where::default();
        if let Some(c) = f.cloud {
            w.and("cloud = ?", [text(c.as_str())]);
        }
        if let Some(o) = &f.owner {
            w.and("owner_key = ?", [text(sanitize_value(o))]);
        }
        if let Some(c) = &f.cluster {
            w.and("cluster_key = ?", [text(sanitize_value(c))]);
        }
        if let Some(l) = &f.launch_id {
            w.and("(launch_id = ? OR batch_launch_id = ?)", [text(l), text(l)]);
        }
        if !f.ids.is_empty() {
            w.and("id IN (SELECT value FROM json_each(?))", [text(json(&f.ids))]);
        }
        if f.live_only {
            w.and("state <> 'terminated'", []);
        }
        if let Some(s) = f.since {
            w.and("launched_at >= ?", [text(ts(s))]);
        }
        let sql = format!(
            "SELECT {INSTANCE_COLS} FROM instances{} ORDER BY launched_at DESC, id{}",
            w.sql(),
            limit(f.limit)
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(self.err())?;
        let rows = stmt
            .query_map(params_from_iter(&w.params), instance_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.err())?;
        Ok(rows)
    }

    fn launches(&self, f: &LaunchFilter) -> Result<Vec<LaunchRecord>> {
        let mut w = Where::default();
        if let Some(o) = &f.owner {
            w.and("owner_key = ?", [text(sanitize_value(o))]);
        }
        if let Some(c) = &f.cluster {
            w.and("cluster_key = ?", [text(sanitize_value(c))]);
        }
        if let Some(s) = f.since {
            w.and("created_at >= ?", [text(ts(s))]);
        }
        let sql = format!(
            "SELECT {LAUNCH_COLS} FROM launches{} ORDER BY created_at DESC, launch_id{}",
            w.sql(),
            limit(f.limit)
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(self.err())?;
        let rows = stmt
            .query_map(params_from_iter(&w.params), launch_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.err())?;
        Ok(rows)
    }

    fn state_changes(&self, instance_id: &str) -> Result<Vec<StateChange>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT instance_id, from_state, to_state, at, reason FROM state_changes \
                 WHERE instance_id = ?1 ORDER BY seq",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([instance_id], |r| {
                Ok(StateChange {
                    instance_id: r.get(0)?,
                    from: get_opt_parsed(r, 1)?,
                    to: get_parsed(r, 2)?,
                    at: get_ts(r, 3)?,
                    reason: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.err())?;
        Ok(rows)
    }

    fn launches_with_runs(&self, owner_key: &str, since: DateTime<Utc>) -> Result<Vec<(LaunchRecord, Vec<Run>)>> {
        let conn = self.conn();
        // One read transaction, so launches and their instances are one snapshot.
        let tx = conn.unchecked_transaction().map_err(self.err())?;
        let out = launches_with_runs_in(&tx, owner_key, since).map_err(self.err())?;
        tx.finish().map_err(self.err())?;
        Ok(out)
    }

    fn runs_between(
        &self,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
        owner_key: Option<&str>,
    ) -> Result<Vec<Run>> {
        let mut w = Where::default();
        w.and("i.launched_at <= ?", [text(ts(to))]);
        if let Some(f) = from {
            w.and("(i.ended_at IS NULL OR i.ended_at >= ?)", [text(ts(f))]);
        }
        if let Some(o) = owner_key {
            w.and("i.owner_key = ?", [text(o)]);
        }
        let sql = format!(
            "SELECT {RUN_COLS} FROM instances i LEFT JOIN launches l ON l.launch_id = i.launch_id{}",
            w.sql()
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(self.err())?;
        let rows = stmt
            .query_map(params_from_iter(&w.params), run_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.err())?;
        Ok(rows)
    }
}
