//! The simulated control plane's state: one SQLite database (`<state_dir>/sim.db`, WAL),
//! shared by every provider on the same dir (every shell) and by the agents. All access
//! goes through this module; `PRAGMA user_version` is the schema version.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use herd_core::{Cloud, Instance, InstanceState, LaunchId, ListRequest, Money, PurchaseOption, Tags};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::{self, Fault};
use crate::lifecycle::Timers;
use crate::pricing;
use crate::vm::{self, AgentPid, VmSpec};

/// The schema this build writes and understands. v2 added the launching marker
/// (`launcher_pid`, `launcher_start`); a v1 state is migrated in place.
pub(crate) const SCHEMA_VERSION: i64 = 2;

const MIGRATE_1_TO_2: &str = "
ALTER TABLE instances ADD COLUMN launcher_pid INTEGER;
ALTER TABLE instances ADD COLUMN launcher_start INTEGER;
CREATE INDEX IF NOT EXISTS instances_agents ON instances(process, ended_at);
";

const SCHEMA: &str = "
CREATE TABLE instances (
    seq               INTEGER PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    region            TEXT NOT NULL,
    zone              TEXT NOT NULL,
    instance_type     TEXT NOT NULL,
    vcpus             INTEGER NOT NULL,
    purchase          TEXT NOT NULL,
    launch_id         TEXT NOT NULL,
    tags              TEXT NOT NULL,
    hourly_price      TEXT NOT NULL,
    launched_at       INTEGER NOT NULL,
    ready_at          INTEGER NOT NULL,
    deadline          INTEGER NOT NULL,
    keepalive_ms      INTEGER,
    interrupt_at      INTEGER,
    last_activity     INTEGER NOT NULL,
    busy              INTEGER NOT NULL DEFAULT 0,
    ended_at          INTEGER,
    state_reason      TEXT,
    process           INTEGER NOT NULL,
    pid               INTEGER,
    pgid              INTEGER,
    cpu_mechanism     TEXT,
    volume_id         TEXT NOT NULL,
    volume_gib        INTEGER NOT NULL,
    volume_deleted_at INTEGER,
    volume_orphaned   INTEGER NOT NULL DEFAULT 0,
    launcher_pid      INTEGER,
    launcher_start    INTEGER
);
CREATE INDEX instances_live ON instances(ended_at);
CREATE INDEX instances_launch ON instances(launch_id);
-- Reconciliation's scan: live rows that should have an agent.
CREATE INDEX instances_agents ON instances(process, ended_at);
CREATE TABLE launches (
    launch_id    TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    instance_ids TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE TABLE buckets (
    name       TEXT PRIMARY KEY,
    tokens     REAL NOT NULL,
    updated_at INTEGER NOT NULL
);
";

const COLUMNS: &str = "seq, id, region, zone, instance_type, vcpus, purchase, launch_id, tags, hourly_price, \
     launched_at, ready_at, deadline, keepalive_ms, interrupt_at, last_activity, busy, ended_at, state_reason, \
     process, pid, cpu_mechanism, volume_id, volume_gib, volume_deleted_at, volume_orphaned";

/// One instance as the control plane stores it. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub seq: i64,
    pub id: String,
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub vcpus: u32,
    pub purchase: PurchaseOption,
    pub launch_id: String,
    pub tags: Tags,
    pub hourly_price: Money,
    pub launched_at: i64,
    pub ready_at: i64,
    pub deadline: i64,
    pub keepalive_ms: Option<i64>,
    pub interrupt_at: Option<i64>,
    pub last_activity: i64,
    pub busy: bool,
    pub ended_at: Option<i64>,
    pub state_reason: Option<String>,
    /// Backed by a real process tree (an agent).
    pub process: bool,
    pub pid: Option<i32>,
    pub cpu_mechanism: Option<String>,
    pub volume_id: String,
    pub volume_gib: u32,
    pub volume_deleted_at: Option<i64>,
    pub volume_orphaned: bool,
}

impl Row {
    pub fn timers(&self) -> Timers {
        Timers {
            deadline: self.deadline,
            interrupt_at: self.interrupt_at,
            keepalive_ms: self.keepalive_ms,
            last_activity: self.last_activity,
            busy: self.busy,
        }
    }

    /// The state is derived from the row and the clock, never stored.
    pub fn state(&self, now: i64) -> InstanceState {
        match self.ended_at {
            Some(_) => InstanceState::Terminated,
            None if now < self.ready_at => InstanceState::Pending,
            None => InstanceState::Running,
        }
    }

    pub fn to_instance(&self, now: i64) -> Instance {
        let launch_id = LaunchId::new(self.launch_id.clone())
            .unwrap_or_else(|_| LaunchId::new("unknown").expect("a valid literal launch id"));
        let mut i = Instance::new(
            &self.id,
            Cloud::Local,
            &self.region,
            &self.zone,
            &self.instance_type,
            launch_id,
            from_ms(self.launched_at),
            from_ms(self.deadline),
            self.hourly_price,
        );
        i.state = self.state(now);
        i.state_reason = self.state_reason.clone();
        i.purchase = self.purchase;
        i.ended_at = self.ended_at.map(from_ms);
        i.keepalive = self.keepalive_ms.map(|k| Duration::from_millis(k.max(0) as u64));
        i.tags = self.tags.clone();
        i.addresses = vec![self.address()];
        i
    }

    /// A process instance lives on this host; a virtual one gets a stable private address.
    fn address(&self) -> String {
        if self.process {
            return "127.0.0.1".into();
        }
        let h = self
            .id
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        format!("10.{}.{}.{}", (h >> 16) & 0xff, (h >> 8) & 0xff, (h & 0xfe).max(2))
    }
}

pub(crate) fn from_ms(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let text_err =
        |i: usize, e: String| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into());
    let purchase: String = r.get(6)?;
    let tags: String = r.get(8)?;
    let price: String = r.get(9)?;
    Ok(Row {
        seq: r.get(0)?,
        id: r.get(1)?,
        region: r.get(2)?,
        zone: r.get(3)?,
        instance_type: r.get(4)?,
        vcpus: r.get(5)?,
        purchase: PurchaseOption::from_str(&purchase).map_err(|e| text_err(6, e.to_string()))?,
        launch_id: r.get(7)?,
        tags: serde_json::from_str(&tags).map_err(|e| text_err(8, e.to_string()))?,
        hourly_price: Money::parse_usd(&price).map_err(|e| text_err(9, e.to_string()))?,
        launched_at: r.get(10)?,
        ready_at: r.get(11)?,
        deadline: r.get(12)?,
        keepalive_ms: r.get(13)?,
        interrupt_at: r.get(14)?,
        last_activity: r.get(15)?,
        busy: r.get(16)?,
        ended_at: r.get(17)?,
        state_reason: r.get(18)?,
        process: r.get(19)?,
        pid: r.get(20)?,
        cpu_mechanism: r.get(21)?,
        volume_id: r.get(22)?,
        volume_gib: r.get(23)?,
        volume_deleted_at: r.get(24)?,
        volume_orphaned: r.get(25)?,
    })
}

/// The database handle. One connection per provider (or agent), behind a mutex.
pub(crate) struct Store {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) `<dir>/sim.db`, private to the user (dir 0700, files
    /// 0600, tightened if they exist wider). A database that is not a database, or is
    /// damaged, is moved aside (never deleted) to `sim.db.corrupt-<time>` and a new one
    /// started; the returned notes say so, and the provider then rebuilds the rows of the
    /// instances still on disk (see `reconcile::adopt`). A newer schema or another
    /// program's database stays an error: those are not damage.
    pub fn open(dir: &Path) -> herd_core::Result<(Store, Vec<String>)> {
        vm::private_dir(dir).map_err(|e| {
            herd_core::Error::config(format!("cannot create the simulator state dir {}: {e}", dir.display()))
                .with_hint("set HERD_SIM_DIR to a writable directory")
        })?;
        // Two shells finding the same damaged file must not both move things aside.
        let _lock = StateLock::acquire(dir)?;
        let path = dir.join("sim.db");
        let mut notes = Vec::new();
        match Store::open_file(&path) {
            Ok(s) => Ok((s, notes)),
            Err(Prep::Db(e)) if is_damage(&e) => {
                let aside = move_aside(&path).map_err(|io| error::io(io, "cannot move aside", &path))?;
                notes.push(format!(
                    "the simulator state {} was unreadable ({e}); moved it aside to {} and started a new one",
                    path.display(),
                    aside.display()
                ));
                let s = Store::open_file(&path).map_err(|p| p.into_error(&path))?;
                Ok((s, notes))
            }
            Err(p) => Err(p.into_error(&path)),
        }
    }

    fn open_file(path: &Path) -> std::result::Result<Store, Prep> {
        // Created private before SQLite sees it; its -wal and -shm files take its mode.
        vm::private_file_options()
            .open(path)
            .map_err(|e| Prep::Fault(error::io(e, "cannot create", path)))?;
        for p in [path.to_path_buf(), sidecar(path, "-wal"), sidecar(path, "-shm")] {
            vm::tighten(&p, 0o600).map_err(|e| Prep::Fault(error::io(e, "cannot make private", &p)))?;
        }
        let conn = Connection::open(path).map_err(Prep::Db)?;
        let store = Store {
            conn: Mutex::new(conn),
            path: Some(path.to_path_buf()),
        };
        store.prepare(true)?;
        for p in [sidecar(path, "-wal"), sidecar(path, "-shm")] {
            vm::tighten(&p, 0o600).map_err(|e| Prep::Fault(error::io(e, "cannot make private", &p)))?;
        }
        Ok(store)
    }

    /// Opens an existing database without creating anything (the agent's view).
    pub fn open_existing(path: &Path) -> herd_core::Result<Store> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| error::db(e, Some(path)))?;
        let store = Store {
            conn: Mutex::new(conn),
            path: Some(path.to_path_buf()),
        };
        store.prepare(false).map_err(|p| p.into_error(path))?;
        Ok(store)
    }

    pub fn open_in_memory() -> herd_core::Result<Store> {
        let conn = Connection::open_in_memory().map_err(|e| error::db(e, None))?;
        let store = Store {
            conn: Mutex::new(conn),
            path: None,
        };
        store.prepare(true).map_err(|p| match p {
            Prep::Db(e) => error::db(e, None),
            Prep::Fault(e) => e,
        })?;
        Ok(store)
    }

    fn shown(&self) -> String {
        self.path
            .as_ref()
            .and_then(|p| p.parent())
            .map_or_else(|| "memory".into(), |p| p.display().to_string())
    }

    fn prepare(&self, create: bool) -> std::result::Result<(), Prep> {
        let mut conn = self.conn.lock().expect("store lock");
        conn.busy_timeout(Duration::from_secs(10)).map_err(Prep::Db)?;
        if self.path.is_some() {
            // WAL: readers (agents ticking) never block the writer (the API).
            let _mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(Prep::Db)?;
            conn.execute_batch("PRAGMA synchronous = NORMAL").map_err(Prep::Db)?;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Prep::Db)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(Prep::Db)?;
        match version {
            SCHEMA_VERSION => {}
            1 => tx.execute_batch(MIGRATE_1_TO_2).map_err(Prep::Db)?,
            0 if create => {
                let tables: i64 = tx
                    .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                    .map_err(Prep::Db)?;
                if tables > 0 {
                    return Err(Prep::Fault(
                        Fault::CorruptState {
                            path: self.shown(),
                            detail: "sim.db holds tables that are not the simulator's".into(),
                        }
                        .into(),
                    ));
                }
                tx.execute_batch(SCHEMA).map_err(Prep::Db)?;
            }
            found => {
                return Err(Prep::Fault(
                    Fault::SchemaVersion {
                        path: self.shown(),
                        found,
                        known: SCHEMA_VERSION,
                    }
                    .into(),
                ))
            }
        }
        if version != SCHEMA_VERSION {
            tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .map_err(Prep::Db)?;
        }
        // Reads every page of the instances table: a damaged file shows here, at open,
        // where it can be moved aside, rather than in the middle of a later call.
        let _rows: i64 = tx
            .query_row("SELECT count(*) FROM instances WHERE id IS NOT NULL", [], |r| r.get(0))
            .map_err(Prep::Db)?;
        tx.commit().map_err(Prep::Db)
    }

    /// Runs `f` in a write transaction (taken up front, so two shells never deadlock
    /// upgrading read locks).
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>) -> herd_core::Result<T> {
        let mut conn = self.conn.lock().expect("store lock");
        let p = self.path.as_deref();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| error::db(e, p))?;
        let out = f(&tx).map_err(|e| error::db(e, p))?;
        tx.commit().map_err(|e| error::db(e, p))?;
        Ok(out)
    }

    /// Like [`Store::write`], for a body that can also fail with a herd error (which
    /// rolls the transaction back).
    pub fn write_or<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<herd_core::Result<T>, rusqlite::Error>,
    ) -> herd_core::Result<T> {
        let mut conn = self.conn.lock().expect("store lock");
        let p = self.path.as_deref();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| error::db(e, p))?;
        match f(&tx).map_err(|e| error::db(e, p))? {
            Ok(v) => {
                tx.commit().map_err(|e| error::db(e, p))?;
                Ok(v)
            }
            Err(e) => Err(e),
        }
    }

    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> herd_core::Result<T> {
        let conn = self.conn.lock().expect("store lock");
        f(&conn).map_err(|e| error::db(e, self.path.as_deref()))
    }
}

/// Why a database could not be prepared: an SQLite error (which may be damage) or a
/// refusal already explained.
enum Prep {
    Db(rusqlite::Error),
    Fault(herd_core::Error),
}

impl From<herd_core::Error> for Prep {
    fn from(e: herd_core::Error) -> Prep {
        Prep::Fault(e)
    }
}

impl Prep {
    fn into_error(self, path: &Path) -> herd_core::Error {
        match self {
            Prep::Db(e) => error::db(e, Some(path)),
            Prep::Fault(e) => e,
        }
    }
}

/// SQLite's word for a file that is not (or no longer) a readable database.
fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt))
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Renames `sim.db` (and its -wal and -shm files, so the copy stays openable) to
/// `sim.db.corrupt-<UTC time>`; returns the new name.
fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let aside = sidecar(path, &format!(".corrupt-{stamp}"));
    std::fs::rename(path, &aside)?;
    for suffix in ["-wal", "-shm"] {
        match std::fs::rename(sidecar(path, suffix), sidecar(&aside, suffix)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(aside)
}

/// An exclusive `flock` on `<state_dir>/sim.lock`, held while the state is opened (and,
/// if damaged, moved aside); released on drop.
struct StateLock(std::fs::File);

impl StateLock {
    fn acquire(dir: &Path) -> herd_core::Result<StateLock> {
        use std::os::fd::AsRawFd;
        let path = dir.join("sim.lock");
        let f = vm::private_file_options()
            .open(&path)
            .map_err(|e| error::io(e, "cannot open", &path))?;
        // SAFETY: plain syscall on an fd this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(error::io(std::io::Error::last_os_error(), "cannot lock", &path));
        }
        Ok(StateLock(f))
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as above; closing the file would release it too.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

pub(crate) fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Row>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM instances WHERE id = ?1"),
        params![id],
        row,
    )
    .optional()
}

pub(crate) fn by_volume(conn: &Connection, volume_id: &str) -> rusqlite::Result<Option<Row>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM instances WHERE volume_id = ?1"),
        params![volume_id],
        row,
    )
    .optional()
}

pub(crate) fn exists(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT 1 FROM instances WHERE id = ?1", params![id], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
}

pub(crate) fn insert(conn: &Connection, r: &Row) -> rusqlite::Result<()> {
    let tags = serde_json::to_string(&r.tags).expect("tags serialize");
    conn.prepare_cached(
        "INSERT INTO instances (id, region, zone, instance_type, vcpus, purchase, launch_id, tags, hourly_price,
            launched_at, ready_at, deadline, keepalive_ms, interrupt_at, last_activity, busy, ended_at,
            state_reason, process, pid, cpu_mechanism, volume_id, volume_gib, volume_deleted_at, volume_orphaned)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
            ?22, ?23, ?24, ?25)",
    )?
    .execute(params![
        r.id,
        r.region,
        r.zone,
        r.instance_type,
        r.vcpus,
        r.purchase.as_str(),
        r.launch_id,
        tags,
        r.hourly_price.amount.to_string(),
        r.launched_at,
        r.ready_at,
        r.deadline,
        r.keepalive_ms,
        r.interrupt_at,
        r.last_activity,
        r.busy,
        r.ended_at,
        r.state_reason,
        r.process,
        r.pid,
        r.cpu_mechanism,
        r.volume_id,
        r.volume_gib,
        r.volume_deleted_at,
        r.volume_orphaned,
    ])?;
    Ok(())
}

/// Ends every live instance whose deadline, interruption or idle timeout has come, at
/// that instant (not "now"): the lazy half of "the cloud enforces it". Returns them.
pub(crate) fn settle(conn: &Connection, now: i64) -> rusqlite::Result<Vec<Row>> {
    let due: Vec<Row> = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM instances WHERE ended_at IS NULL AND (deadline <= ?1 OR interrupt_at <= ?1
               OR (busy = 0 AND keepalive_ms IS NOT NULL AND last_activity + keepalive_ms <= ?1))"
        ))?
        .query_map(params![now], row)?
        .collect::<rusqlite::Result<_>>()?;
    let mut ended = Vec::with_capacity(due.len());
    for mut r in due {
        if let Some((at, why)) = r.timers().due(now) {
            end(conn, &r.id, at, why)?;
            r.ended_at = Some(at);
            r.state_reason = Some(why.into());
            if !r.process {
                // A virtual instance's root volume goes with it, as on a cloud.
                volume_deleted(conn, &r.id, at)?;
                r.volume_deleted_at = Some(at);
            }
            ended.push(r);
        }
    }
    Ok(ended)
}

/// Ends one instance at `at` unless it already ended; whether this call ended it.
pub(crate) fn end(conn: &Connection, id: &str, at: i64, reason: &str) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached("UPDATE instances SET ended_at = ?2, state_reason = ?3 WHERE id = ?1 AND ended_at IS NULL")?
        .execute(params![id, at, reason])?;
    Ok(n == 1)
}

/// A live row that should have an agent process, as reconciliation sees it.
#[derive(Debug, Clone)]
pub(crate) struct LiveProcess {
    pub id: String,
    pub pid: Option<i32>,
    pub launched_at: i64,
    pub deadline: i64,
    /// The process creating it, while its agent is not recorded yet.
    pub launcher: Option<AgentPid>,
}

pub(crate) fn live_processes(conn: &Connection) -> rusqlite::Result<Vec<LiveProcess>> {
    conn.prepare_cached(
        "SELECT id, pid, launched_at, deadline, launcher_pid, launcher_start FROM instances
         WHERE ended_at IS NULL AND process = 1 ORDER BY seq",
    )?
    .query_map([], |r| {
        let launcher_pid: Option<i32> = r.get(4)?;
        Ok(LiveProcess {
            id: r.get(0)?,
            pid: r.get(1)?,
            launched_at: r.get(2)?,
            deadline: r.get(3)?,
            launcher: launcher_pid.map(|pid| AgentPid {
                pid,
                start: r.get(5).ok().flatten(),
            }),
        })
    })?
    .collect()
}

/// Marks rows as being created by `who` until their agents are recorded (see
/// `reconcile`): nobody else reaps them while `who` lives.
pub(crate) fn mark_launching(conn: &Connection, ids: &[String], who: AgentPid) -> rusqlite::Result<()> {
    let json = serde_json::to_string(ids).expect("ids serialize");
    conn.prepare_cached(
        "UPDATE instances SET launcher_pid = ?2, launcher_start = ?3 WHERE id IN (SELECT value FROM json_each(?1))",
    )?
    .execute(params![json, who.pid, who.start])?;
    Ok(())
}

pub(crate) fn set_agent(conn: &Connection, id: &str, pid: i32) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE instances SET pid = ?2, pgid = ?2 WHERE id = ?1",
        params![id, pid],
    )?;
    Ok(())
}

pub(crate) fn volume_deleted(conn: &Connection, id: &str, at: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE instances SET volume_deleted_at = ?2, volume_orphaned = 0 WHERE id = ?1 AND volume_deleted_at IS NULL",
        params![id, at],
    )?;
    Ok(())
}

pub(crate) fn volume_orphaned(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE instances SET volume_orphaned = 1 WHERE id = ?1 AND volume_deleted_at IS NULL",
        params![id],
    )?;
    Ok(())
}

/// Activity for the idle timeout (an exec, a workload that ended).
pub(crate) fn touch(conn: &Connection, id: &str, now: i64, busy: Option<bool>) -> rusqlite::Result<()> {
    match busy {
        Some(b) => conn.execute(
            "UPDATE instances SET last_activity = max(last_activity, ?2), busy = ?3 WHERE id = ?1",
            params![id, now, b],
        )?,
        None => conn.execute(
            "UPDATE instances SET last_activity = max(last_activity, ?2) WHERE id = ?1",
            params![id, now],
        )?,
    };
    Ok(())
}

pub(crate) fn set_cpu_mechanism(conn: &Connection, id: &str, mechanism: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE instances SET cpu_mechanism = ?2 WHERE id = ?1",
        params![id, mechanism],
    )?;
    Ok(())
}

/// The instance ids a launch id produced, and its fingerprint.
pub(crate) fn launch(conn: &Connection, launch_id: &str) -> rusqlite::Result<Option<(String, Vec<String>)>> {
    let got: Option<(String, String)> = conn
        .query_row(
            "SELECT fingerprint, instance_ids FROM launches WHERE launch_id = ?1",
            params![launch_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(got.map(|(fp, ids)| (fp, serde_json::from_str(&ids).unwrap_or_default())))
}

pub(crate) fn record_launch(
    conn: &Connection,
    launch_id: &str,
    fingerprint: &str,
    ids: &[String],
    now: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO launches (launch_id, fingerprint, instance_ids, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            launch_id,
            fingerprint,
            serde_json::to_string(ids).expect("ids serialize"),
            now
        ],
    )?;
    Ok(())
}

pub(crate) fn rows_by_ids(conn: &Connection, ids: &[String]) -> rusqlite::Result<Vec<Row>> {
    let json = serde_json::to_string(ids).expect("ids serialize");
    let mut rows: Vec<Row> = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM instances WHERE id IN (SELECT value FROM json_each(?1))"
        ))?
        .query_map(params![json], row)?
        .collect::<rusqlite::Result<_>>()?;
    let pos = |id: &str| ids.iter().position(|x| x == id).unwrap_or(usize::MAX);
    rows.sort_by_key(|r| pos(&r.id));
    Ok(rows)
}

/// Live instances per zone.
pub(crate) fn live_in_zone(conn: &Connection, zone: &str) -> rusqlite::Result<u32> {
    conn.query_row(
        "SELECT count(*) FROM instances WHERE ended_at IS NULL AND zone = ?1",
        params![zone],
        |r| r.get(0),
    )
}

pub(crate) fn live_vcpus(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row(
        "SELECT coalesce(sum(vcpus), 0) FROM instances WHERE ended_at IS NULL",
        [],
        |r| r.get(0),
    )
}

/// One page of instances matching `req` after `after_seq`, in launch order, with one
/// extra row looked ahead so the caller knows whether another page follows.
pub(crate) fn page(
    conn: &Connection,
    req: &ListRequest,
    after_seq: i64,
    limit: u32,
    now: i64,
) -> rusqlite::Result<Vec<Row>> {
    let mut sql = format!("SELECT {COLUMNS} FROM instances WHERE seq > ?");
    let mut args: Vec<Value> = vec![Value::Integer(after_seq)];
    if !req.regions.is_empty() {
        sql += " AND region IN (SELECT value FROM json_each(?))";
        args.push(Value::Text(serde_json::to_string(&req.regions).expect("json")));
    }
    if !req.ids.is_empty() {
        sql += " AND id IN (SELECT value FROM json_each(?))";
        args.push(Value::Text(serde_json::to_string(&req.ids).expect("json")));
    }
    for (k, v) in &req.tags {
        sql += " AND EXISTS (SELECT 1 FROM json_each(instances.tags) WHERE key = ? AND value = ?)";
        args.push(Value::Text(k.clone()));
        args.push(Value::Text(v.clone()));
    }
    if !req.states.is_empty() {
        let mut any = Vec::new();
        for s in &req.states {
            match s {
                InstanceState::Terminated => any.push("ended_at IS NOT NULL".to_string()),
                InstanceState::Pending => any.push(format!("(ended_at IS NULL AND ready_at > {now})")),
                InstanceState::Running => any.push(format!("(ended_at IS NULL AND ready_at <= {now})")),
                // Ending is instantaneous here: nothing is ever shutting down.
                InstanceState::ShuttingDown => any.push("0".to_string()),
            }
        }
        sql += &format!(" AND ({})", any.join(" OR "));
    }
    sql += " ORDER BY seq LIMIT ?";
    args.push(Value::Integer(i64::from(limit) + 1));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), row)?;
    rows.collect()
}

/// Ended instances whose volume was not deleted (orphaned, or whose agent died).
pub(crate) fn undeleted_volumes(conn: &Connection) -> rusqlite::Result<Vec<Row>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM instances WHERE ended_at IS NOT NULL AND volume_deleted_at IS NULL ORDER BY seq"
    ))?
    .query_map([], row)?
    .collect()
}

/// The row a VM's spec describes. Specs written before the record was kept rebuild with
/// the default region, no tags and the catalog's on-demand price. Also used by an agent
/// that finds its row missing.
pub(crate) fn row_from_spec(spec: &VmSpec, now: i64) -> Row {
    let rec = spec.record.clone();
    let price = rec
        .as_ref()
        .and_then(|r| Money::parse_usd(&r.hourly_price).ok())
        .or_else(|| {
            pricing::local_catalog()
                .offer(
                    Cloud::Local,
                    &spec.instance_type,
                    pricing::DEFAULT_REGION,
                    PurchaseOption::OnDemand,
                )
                .and_then(|o| o.hourly)
        })
        .unwrap_or_default();
    Row {
        seq: 0,
        id: spec.id.clone(),
        region: rec
            .as_ref()
            .map_or_else(|| pricing::DEFAULT_REGION.into(), |r| r.region.clone()),
        zone: rec.as_ref().map_or_else(|| "unknown".into(), |r| r.zone.clone()),
        instance_type: spec.instance_type.clone(),
        vcpus: spec.vcpus,
        purchase: rec.as_ref().map_or(PurchaseOption::OnDemand, |r| r.purchase),
        launch_id: rec.as_ref().map_or_else(|| "unknown".into(), |r| r.launch_id.clone()),
        tags: rec.as_ref().map_or_else(Tags::new, |r| r.tags.clone()),
        hourly_price: price,
        launched_at: spec.launched_at,
        ready_at: spec.ready_at,
        deadline: spec.deadline,
        keepalive_ms: spec.keepalive_ms,
        interrupt_at: spec.interrupt_at,
        // Whether it was busy is unknown: its idle clock restarts now rather than end
        // a running workload (the agent reports busy again at once).
        last_activity: spec.ready_at.max(now),
        busy: false,
        ended_at: None,
        state_reason: None,
        process: true,
        pid: None,
        cpu_mechanism: None,
        volume_id: rec.as_ref().map_or_else(
            || format!("vol-{}", spec.id.trim_start_matches("i-")),
            |r| r.volume_id.clone(),
        ),
        volume_gib: rec.as_ref().map_or(8, |r| r.volume_gib),
        volume_deleted_at: None,
        volume_orphaned: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(id: &str, zone: &str) -> Row {
        Row {
            seq: 0,
            id: id.into(),
            region: "local-east-1".into(),
            zone: zone.into(),
            instance_type: "l1.large".into(),
            vcpus: 1,
            purchase: PurchaseOption::OnDemand,
            launch_id: "l-1".into(),
            tags: [("herd-owner".to_string(), "ann".to_string())].into(),
            hourly_price: Money::parse_usd("0.0416").unwrap(),
            launched_at: 1_000,
            ready_at: 2_000,
            deadline: 100_000,
            keepalive_ms: Some(10_000),
            interrupt_at: None,
            last_activity: 2_000,
            busy: false,
            ended_at: None,
            state_reason: None,
            process: false,
            pid: None,
            cpu_mechanism: None,
            volume_id: format!("vol-{id}"),
            volume_gib: 8,
            volume_deleted_at: None,
            volume_orphaned: false,
        }
    }

    #[test]
    fn rows_round_trip_and_states_derive_from_the_clock() {
        let s = Store::open_in_memory().unwrap();
        let r = sample("i-1", "local-east-1a");
        s.write(|tx| insert(tx, &r)).unwrap();
        let got = s.read(|c| get(c, "i-1")).unwrap().unwrap();
        assert_eq!(
            Row {
                seq: got.seq,
                ..r.clone()
            },
            got
        );
        assert_eq!(got.state(1_500), InstanceState::Pending);
        assert_eq!(got.state(2_000), InstanceState::Running);
        let i = got.to_instance(2_000);
        assert_eq!(i.hourly_price, Money::parse_usd("0.0416").unwrap());
        assert_eq!(i.keepalive, Some(Duration::from_secs(10)));
    }

    #[test]
    fn settle_ends_at_the_due_instant() {
        let s = Store::open_in_memory().unwrap();
        s.write(|tx| insert(tx, &sample("i-1", "z"))).unwrap();
        let mut busy = sample("i-2", "z");
        busy.busy = true;
        s.write(|tx| insert(tx, &busy)).unwrap();
        assert!(s.write(|tx| settle(tx, 11_999)).unwrap().is_empty());
        let ended = s.write(|tx| settle(tx, 50_000)).unwrap();
        assert_eq!(ended.len(), 1);
        let r = s.read(|c| get(c, "i-1")).unwrap().unwrap();
        assert_eq!((r.ended_at, r.state_reason.as_deref()), (Some(12_000), Some("idle")));
        let ended = s.write(|tx| settle(tx, 200_000)).unwrap();
        assert_eq!(ended[0].id, "i-2");
        assert_eq!(ended[0].ended_at, Some(100_000));
        // Ending twice changes nothing.
        assert!(!s.write(|tx| end(tx, "i-2", 300_000, "terminated")).unwrap());
    }

    #[test]
    fn pages_filter_by_tags_states_and_ids() {
        let s = Store::open_in_memory().unwrap();
        for i in 0..7 {
            let mut r = sample(&format!("i-{i}"), "z");
            if i % 2 == 0 {
                r.tags.insert("team".into(), "x".into());
            }
            if i == 6 {
                r.ended_at = Some(3_000);
            }
            s.write(|tx| insert(tx, &r)).unwrap();
        }
        let req = ListRequest::new().tag("team", "x");
        let p = s.read(|c| page(c, &req, 0, 2, 5_000)).unwrap();
        assert_eq!(p.len(), 3, "two plus one looked ahead");
        let req = ListRequest::new().tag("team", "x").state(InstanceState::Running);
        assert_eq!(s.read(|c| page(c, &req, 0, 100, 5_000)).unwrap().len(), 3);
        let req = ListRequest::new().state(InstanceState::Pending);
        assert_eq!(s.read(|c| page(c, &req, 0, 100, 1_500)).unwrap().len(), 6);
        let req = ListRequest::new().ids(["i-3".to_string(), "i-9".to_string()]);
        assert_eq!(s.read(|c| page(c, &req, 0, 100, 0)).unwrap().len(), 1);
        let req = ListRequest::new().region("local-west-1");
        assert!(s.read(|c| page(c, &req, 0, 100, 0)).unwrap().is_empty());
    }

    #[test]
    fn newer_schema_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join("sim.db")).unwrap();
        c.execute_batch("PRAGMA user_version = 7").unwrap();
        drop(c);
        let e = Store::open(dir.path()).unwrap_err();
        assert_eq!(e.kind(), herd_core::ErrorKind::ConfigInvalid);
        assert!(e.message().contains("schema v7"), "{e}");
        assert!(e.hint().unwrap().contains("aside"), "{e:?}");
    }

    #[test]
    fn a_damaged_database_is_moved_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = vec![0x42u8; 8192];
        std::fs::write(dir.path().join("sim.db"), &garbage).unwrap();
        let (s, notes) = Store::open(dir.path()).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("unreadable") && notes[0].contains("moved it aside"),
            "{notes:?}"
        );
        let aside: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("sim.db.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(std::fs::read(&aside[0]).unwrap(), garbage, "kept byte for byte");
        assert!(notes[0].contains(&aside[0].display().to_string()));
        // The new state works.
        s.write(|tx| insert(tx, &sample("i-1", "z"))).unwrap();
        drop(s);

        // A database damaged past its header (a truncated file) is found at open too.
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path()).unwrap();
        for i in 0..400 {
            s.write(|tx| insert(tx, &sample(&format!("i-{i}"), "z"))).unwrap();
        }
        s.read(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
            .unwrap();
        drop(s);
        let db = dir.path().join("sim.db");
        let len = std::fs::metadata(&db).unwrap().len();
        assert!(len > 8 * 4096, "{len}");
        let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        f.set_len(len / 2).unwrap();
        drop(f);
        let (_s, notes) = Store::open(dir.path()).unwrap();
        assert_eq!(notes.len(), 1, "a truncated database is damage: {notes:?}");
    }

    #[test]
    fn another_programs_database_is_refused_not_moved() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("sim.db")).unwrap();
        c.execute_batch("CREATE TABLE other (x)").unwrap();
        drop(c);
        let e = Store::open(dir.path()).unwrap_err();
        assert_eq!(e.kind(), herd_core::ErrorKind::ConfigInvalid, "{e:?}");
        assert!(e.message().contains("not the simulator's"), "{e}");
        assert!(e.hint().is_some());
        assert!(dir.path().join("sim.db").exists());
    }

    #[test]
    fn a_v1_state_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("sim.db")).unwrap();
        let v1 = SCHEMA.replace(",\n    launcher_pid      INTEGER,\n    launcher_start    INTEGER", "");
        let v1 = v1.replace(
            "-- Reconciliation's scan: live rows that should have an agent.\nCREATE INDEX instances_agents ON instances(process, ended_at);",
            "",
        );
        assert!(!v1.contains("launcher_pid") && !v1.contains("instances_agents"), "{v1}");
        c.execute_batch(&v1).unwrap();
        c.execute_batch("PRAGMA user_version = 1").unwrap();
        let r = sample("i-1", "z");
        let tags = serde_json::to_string(&r.tags).unwrap();
        c.execute(
            "INSERT INTO instances (id, region, zone, instance_type, vcpus, purchase, launch_id, tags, hourly_price,
                launched_at, ready_at, deadline, last_activity, process, volume_id, volume_gib)
             VALUES ('i-1', 'local-east-1', 'z', 'l1.large', 1, 'on-demand', 'l-1', ?1, '0.0416', 1000, 2000,
                100000, 2000, 1, 'vol-1', 8)",
            [tags],
        )
        .unwrap();
        drop(c);
        let (s, notes) = Store::open(dir.path()).unwrap();
        assert!(notes.is_empty());
        let v: i64 = s
            .read(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let live = s.read(live_processes).unwrap();
        assert_eq!((live.len(), live[0].launcher), (1, None));
        s.write(|tx| mark_launching(tx, &["i-1".to_string()], AgentPid::me()))
            .unwrap();
        assert_eq!(s.read(live_processes).unwrap()[0].launcher, Some(AgentPid::me()));
    }

    #[cfg(unix)]
    #[test]
    fn state_files_are_private_and_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("fresh/sim");
        let (s, _) = Store::open(&dir).unwrap();
        s.write(|tx| insert(tx, &sample("i-1", "z"))).unwrap();
        assert_eq!(mode(&dir), 0o700);
        for f in ["sim.db", "sim.db-wal", "sim.db-shm", "sim.lock"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        drop(s);
        // A state left world-readable by an older herd is tightened on open.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.join("sim.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_s, _) = Store::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("sim.db")), 0o600);
    }
}
