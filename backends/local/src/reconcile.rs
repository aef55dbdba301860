//! Keeping the control plane's rows true to the processes on this host, so that nothing
//! is billed that is not running and nothing runs that the state does not show.
//!
//! **Reconcile** (every `launch`, `terminate`, `list`, `leftovers` and `exec`, before the
//! lazy timers): a live row that should have an agent but has none is ended, with
//! reason `lost: no process` at the last instant the agent was seen alive (its `ended`
//! file, else its heartbeat, else its pid file), or `lost: never started` at its
//! creation instant if no agent ever ran. "Has an agent" checks the process's identity,
//! not just `kill(pid, 0)`: its command line must name the instance (`vm::agent_alive`),
//! so a pid reused by another program does not keep a dead instance billed.
//!
//! **The launching window.** A launch records its rows in one transaction, then starts
//! one agent per row and records each pid. Between the two, a row has no agent and
//! another shell's reconciliation must not reap it. Spawning inside the transaction
//! would close the window but hold the database's write lock while processes start,
//! and an agent would start before its row is visible (it would see "no such
//! instance" and stop). Instead each fresh row carries a *launching marker*: the
//! launcher's pid and start time (`launcher_pid`, `launcher_start`). A row without an
//! agent is left alone while that very process (same pid, same start time) lives; once
//! it is gone (`kill -9` mid-launch) the row is reconciled. If the launcher died after
//! spawning an agent but before recording its pid, the agent's own `agent.pid` file is
//! found and adopted; an agent that is not found sees its row ended within a tick and
//! stops itself.
//!
//! **Adopt** (when a provider opens the state): a VM directory with no row (because
//! `sim.db` was lost, emptied, or was damaged and moved aside) gets its row back from its
//! `spec.json` and `agent.pid`: running if its agent lives, else ended (its volume then
//! shows as a leftover if its disk remains, and whatever still ran in it is killed).
//! The provider warns about every adoption: the state is never silently taken as new
//! while agents run.
//!
//! Rows of virtual instances (no processes) are never touched.

use std::path::Path;

use rusqlite::Transaction;

use crate::lifecycle::reason;
use crate::store::{self, row_from_spec, Row};
use crate::vm::{self, VmDir, VmSpec};

/// Ends the live process rows whose agent is gone; returns them, ended.
pub(crate) fn reconcile(tx: &Transaction<'_>, state_dir: &Path) -> rusqlite::Result<Vec<Row>> {
    let mut lost = Vec::new();
    for r in store::live_processes(tx)? {
        let dir = VmDir::new(state_dir, &r.id);
        match r.pid {
            Some(pid) if vm::agent_alive(pid, &r.id) => continue,
            Some(_) => {}
            None => {
                if r.launcher.is_some_and(|l| l.alive()) {
                    continue; // still being launched
                }
                // Spawned, but the launcher died before recording the pid.
                if let Some(pid) = dir.live_agent(&r.id) {
                    store::set_agent(tx, &r.id, pid)?;
                    continue;
                }
            }
        }
        let (at, why) = match dir.last_seen_alive() {
            Some(seen) => (seen, reason::LOST),
            None => (r.launched_at, reason::NEVER_STARTED),
        };
        let at = at.min(r.deadline).max(r.launched_at);
        if store::end(tx, &r.id, at, why)? {
            if let Some(row) = store::get(tx, &r.id)? {
                lost.push(row);
            }
        }
    }
    Ok(lost)
}

/// What [`adopt`] found.
#[derive(Debug, Default)]
pub(crate) struct Adopted {
    /// Rebuilt as running: their agents live.
    pub running: Vec<String>,
    /// Rebuilt as ended (`lost: no process`): their disks remain, as leftovers.
    pub ended: Vec<String>,
    /// VM directories with a live agent whose spec could not be read: their agents were
    /// stopped, since nothing could show or bill them.
    pub stopped: Vec<String>,
}

impl Adopted {
    pub fn is_empty(&self) -> bool {
        self.running.is_empty() && self.ended.is_empty() && self.stopped.is_empty()
    }
}

/// Rebuilds the rows of VM directories the database does not know, and tightens their
/// permissions. Cheap when nothing is missing: one directory listing and one indexed
/// lookup per VM.
pub(crate) fn adopt(tx: &Transaction<'_>, state_dir: &Path, now: i64) -> rusqlite::Result<Adopted> {
    let mut out = Adopted::default();
    let vms = state_dir.join("vms");
    let _ = vm::tighten(&vms, 0o700);
    let Ok(entries) = std::fs::read_dir(&vms) else {
        return Ok(out);
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("i-"))
        .collect();
    names.sort();
    for id in names {
        let dir = VmDir::new(state_dir, &id);
        let _ = vm::tighten(&dir.root, 0o700);
        let _ = vm::tighten(&dir.spec(), 0o600);
        if store::exists(tx, &id)? {
            continue;
        }
        let live = dir.live_agent(&id);
        let spec: Option<VmSpec> = std::fs::read(dir.spec())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|s: &VmSpec| s.id == id);
        let Some(spec) = spec else {
            if let Some(pid) = live {
                vm::signal_group(pid, libc::SIGTERM);
                out.stopped.push(id);
            }
            continue;
        };
        if live.is_none() && !dir.disk().exists() {
            continue; // history only: nothing runs, nothing is stored
        }
        let mut row = row_from_spec(&spec, now);
        row.pid = live;
        row.cpu_mechanism = std::fs::read_to_string(dir.cpu())
            .ok()
            .and_then(|c| c.split_whitespace().next().map(str::to_string));
        if live.is_none() {
            // Its agent is gone: nothing may keep running in it unseen. The disk stays,
            // as a leftover: recovery deletes nothing.
            for pg in vm::recorded_workloads(&dir) {
                vm::signal_group(pg, libc::SIGKILL);
            }
            let at = dir
                .last_seen_alive()
                .unwrap_or(spec.launched_at)
                .min(spec.deadline)
                .max(spec.launched_at);
            row.ended_at = Some(at);
            row.state_reason = Some(reason::LOST.into());
            out.ended.push(id);
        } else {
            out.running.push(id);
        }
        store::insert(tx, &row)?;
    }
    Ok(out)
}
