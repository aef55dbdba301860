//! The SQL of sweep records (schema v2).

use herd_core::Result;
use rusqlite::{params, OptionalExtension, Row};

use super::codec::{get_money, get_opt_ts, get_parsed, get_ts, money, ts};
use super::SqliteStore;
use crate::sweeps::{SweepCellRecord, SweepData, SweepInstanceRecord, SweepRecord, SweepResultRecord, SweepStore};

const SWEEP_COLS: &str = "sweep_id, name, owner, plan, created_at, updated_at";

fn sweep_row(r: &Row<'_>) -> rusqlite::Result<SweepRecord> {
    let plan: String = r.get(3)?;
    Ok(SweepRecord {
        sweep_id: r.get(0)?,
        name: r.get(1)?,
        owner: r.get(2)?,
        plan: serde_json::from_str(&plan).unwrap_or(serde_json::Value::Null),
        created_at: get_ts(r, 4)?,
        updated_at: get_ts(r, 5)?,
    })
}

impl SweepStore for SqliteStore {
    fn upsert_sweep(&self, s: &SweepRecord) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO sweeps (sweep_id, name, owner, plan, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (sweep_id) DO UPDATE SET plan = excluded.plan, updated_at = excluded.updated_at",
                params![s.sweep_id, s.name, s.owner, s.plan.to_string(), ts(s.created_at), ts(s.updated_at)],
            )
            .map_err(self.err())?;
            Ok(())
        })
    }

    fn upsert_sweep_cell(&self, c: &SweepCellRecord) -> Result<()> {
        let events = serde_json::to_string(&c.events).unwrap_or_else(|_| "[]".into());
        self.write(|tx| {
            tx.execute(
                "INSERT INTO sweep_cells (sweep_id, cell_id, status, error, output_tail, events, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (sweep_id, cell_id) DO UPDATE SET \
                 status = excluded.status, error = excluded.error, output_tail = excluded.output_tail, \
                 events = excluded.events, updated_at = excluded.updated_at",
                params![
                    c.sweep_id,
                    c.cell_id,
                    c.status,
                    c.error,
                    c.output_tail,
                    events,
                    ts(c.updated_at)
                ],
            )
            .map_err(self.err())?;
            Ok(())
        })
    }

    fn upsert_sweep_instance(&self, i: &SweepInstanceRecord) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO sweep_instances (sweep_id, cell_id, instance_id, cloud, region, zone, instance_type, \
                 purchase, hourly_price, launched_at, running_at, ready_at, ended_at, end_reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
                 ON CONFLICT (sweep_id, instance_id) DO UPDATE SET running_at = excluded.running_at, \
                 ready_at = excluded.ready_at, ended_at = excluded.ended_at, end_reason = excluded.end_reason",
                params![
                    i.sweep_id,
                    i.cell_id,
                    i.instance_id,
                    i.cloud.as_str(),
                    i.region,
                    i.zone,
                    i.instance_type,
                    i.purchase.as_str(),
                    money(i.hourly_price),
                    ts(i.launched_at),
                    i.running_at.map(ts),
                    i.ready_at.map(ts),
                    i.ended_at.map(ts),
                    i.end_reason,
                ],
            )
            .map_err(self.err())?;
            Ok(())
        })
    }

    fn insert_sweep_result(&self, r: &SweepResultRecord) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO sweep_results (sweep_id, cell_id, repetition, instance_id, wall_ns, metric, \
                 finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    r.sweep_id,
                    r.cell_id,
                    r.repetition,
                    r.instance_id,
                    r.wall_ns as i64,
                    r.metric,
                    ts(r.finished_at)
                ],
            )
            .map_err(self.err())?;
            Ok(())
        })
    }

    fn sweep(&self, sweep_id: &str) -> Result<Option<SweepData>> {
        let conn = self.conn();
        let err = self.err();
        let sweep = conn
            .prepare_cached(&format!("SELECT {SWEEP_COLS} FROM sweeps WHERE sweep_id = ?1"))
            .and_then(|mut s| s.query_row([sweep_id], sweep_row).optional())
            .map_err(&err)?;
        let Some(sweep) = sweep else { return Ok(None) };
        let cells = conn
            .prepare_cached(
                "SELECT sweep_id, cell_id, status, error, output_tail, events, updated_at FROM sweep_cells \
                 WHERE sweep_id = ?1 ORDER BY cell_id",
            )
            .and_then(|mut s| {
                s.query_map([sweep_id], |r| {
                    let events: String = r.get(5)?;
                    Ok(SweepCellRecord {
                        sweep_id: r.get(0)?,
                        cell_id: r.get(1)?,
                        status: r.get(2)?,
                        error: r.get(3)?,
                        output_tail: r.get(4)?,
                        events: serde_json::from_str(&events).unwrap_or_default(),
                        updated_at: get_ts(r, 6)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(&err)?;
        let instances = conn
            .prepare_cached(
                "SELECT sweep_id, cell_id, instance_id, cloud, region, zone, instance_type, purchase, hourly_price, \
                 launched_at, running_at, ready_at, ended_at, end_reason FROM sweep_instances WHERE sweep_id = ?1 \
                 ORDER BY launched_at, instance_id",
            )
            .and_then(|mut s| {
                s.query_map([sweep_id], |r| {
                    Ok(SweepInstanceRecord {
                        sweep_id: r.get(0)?,
                        cell_id: r.get(1)?,
                        instance_id: r.get(2)?,
                        cloud: get_parsed(r, 3)?,
                        region: r.get(4)?,
                        zone: r.get(5)?,
                        instance_type: r.get(6)?,
                        purchase: get_parsed(r, 7)?,
                        hourly_price: get_money(r, 8)?,
                        launched_at: get_ts(r, 9)?,
                        running_at: get_opt_ts(r, 10)?,
                        ready_at: get_opt_ts(r, 11)?,
                        ended_at: get_opt_ts(r, 12)?,
                        end_reason: r.get(13)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(&err)?;
        let results = conn
            .prepare_cached(
                "SELECT sweep_id, cell_id, repetition, instance_id, wall_ns, metric, finished_at FROM sweep_results \
                 WHERE sweep_id = ?1 ORDER BY cell_id, repetition",
            )
            .and_then(|mut s| {
                s.query_map([sweep_id], |r| {
                    Ok(SweepResultRecord {
                        sweep_id: r.get(0)?,
                        cell_id: r.get(1)?,
                        repetition: r.get(2)?,
                        instance_id: r.get(3)?,
                        wall_ns: r.get::<_, i64>(4)?.max(0) as u64,
                        metric: r.get(5)?,
                        finished_at: get_ts(r, 6)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(&err)?;
        Ok(Some(SweepData {
            sweep,
            cells,
            instances,
            results,
        }))
    }

    fn sweeps(&self, limit: Option<usize>) -> Result<Vec<SweepRecord>> {
        let conn = self.conn();
        let lim = limit.map_or(-1, |l| l as i64);
        conn.prepare_cached(&format!(
            "SELECT {SWEEP_COLS} FROM sweeps ORDER BY updated_at DESC, sweep_id LIMIT ?1"
        ))
        .and_then(|mut s| s.query_map([lim], sweep_row)?.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(self.err())
    }
}
