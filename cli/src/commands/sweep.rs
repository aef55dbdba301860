//! `herd sweep plan|run|report|ls`: one workload across instance types, regions and
//! markets, and a price-performance report. The work is herd-sweep's; this file reads
//! flags, draws progress on stderr and prints data on stdout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use herd_core::{Cloud, Error, ErrorKind, Instance};
use herd_sweep::plan::Cell as SweepCell;
use herd_sweep::{report, CellOutcome, CellStatus, Launchers, Plan, Progress, Runner, Scores, Spec};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::args::{SweepArgs, SweepCommand, SweepPlanArgs, SweepReportArgs, SweepRunArgs};
use crate::context::Context;
use crate::printer::{styled, Cell, Style, Table};

pub fn run(ctx: &Context, a: &SweepArgs) -> anyhow::Result<()> {
    match &a.command {
        SweepCommand::Plan(p) => plan(ctx, p),
        SweepCommand::Run(r) => run_sweep(ctx, r),
        SweepCommand::Report(r) => report_cmd(ctx, r),
        SweepCommand::Ls(l) => ls(ctx, l.json),
    }
}

/// One launcher per cloud the matrix names (the configured cloud when it names none). A
/// cloud this herd cannot reach is left out, and the plan drops its cells with the reason.
fn launchers(ctx: &Context, spec: &Spec) -> anyhow::Result<Launchers> {
    let mut out = BTreeMap::new();
    let configured = ctx.launcher()?;
    out.insert(configured.info().cloud, configured.clone());
    for name in &spec.matrix.clouds {
        let cloud: Cloud = name.parse()?;
        if let std::collections::btree_map::Entry::Vacant(slot) = out.entry(cloud) {
            if let Ok(l) = ctx.launcher_for(cloud) {
                slot.insert(l.clone());
            }
        }
    }
    Ok(out)
}

fn load(ctx: &Context, spec: &Path) -> anyhow::Result<(Spec, Plan, Launchers)> {
    let spec = Spec::load(spec)?;
    let launchers = launchers(ctx, &spec)?;
    let plan = herd_sweep::plan(&spec, &launchers)?;
    Ok((spec, plan, launchers))
}

#[derive(Serialize)]
struct PlanOut<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    over_budget: bool,
}

fn plan(ctx: &Context, a: &SweepPlanArgs) -> anyhow::Result<()> {
    let (_, plan, _) = load(ctx, &a.spec)?;
    if a.json {
        ctx.printer.json(&PlanOut {
            plan: &plan,
            over_budget: plan.over_budget(),
        })?;
    } else {
        print_plan(ctx, &plan);
    }
    plan.check()?;
    Ok(())
}

fn print_plan(ctx: &Context, plan: &Plan) {
    let mut t = Table::new(&["cell", "type", "region", "market", ">vCPUs", ">$/h", ">worst case"]);
    for c in &plan.cells {
        t.row(vec![
            Cell::from(c.id.as_str()),
            Cell::from(c.instance_type.as_str()),
            Cell::from(c.region.as_str()),
            Cell::from(c.market.as_str()),
            Cell::from(c.vcpus.to_string()),
            Cell::from(c.hourly.display_amount()),
            Cell::from(c.worst_case.to_string()),
        ]);
    }
    for d in &plan.dropped {
        t.row(vec![
            styled("dropped", Style::Yellow),
            Cell::from(d.instance_type.as_str()),
            Cell::from(d.region.as_str()),
            Cell::from(d.market.as_str()),
            Cell::from(""),
            Cell::from(""),
            styled(d.reason.clone(), Style::Dim),
        ]);
    }
    let total = plan.worst_case.to_string();
    let budget_cell = if plan.over_budget() {
        styled(format!("{total} > budget {}", plan.budget), Style::Red)
    } else {
        styled(format!("{total} of {}", plan.budget), Style::Green)
    };
    t.footer(vec![
        Cell::from(format!("{} cells x {} repetitions", plan.cells.len(), plan.repetitions)),
        Cell::from(""),
        Cell::from(""),
        Cell::from(""),
        Cell::from(""),
        Cell::from(""),
        budget_cell,
    ]);
    ctx.printer.table(&t);
    ctx.printer.note(format!(
        "sweep {}: worst case = on-demand price x {} timeout per instance, {} at a time",
        plan.sweep_id,
        herd_core::guardrails::human(plan.timeout),
        plan.concurrency
    ));
}

fn run_sweep(ctx: &Context, a: &SweepRunArgs) -> anyhow::Result<()> {
    let (spec, mut plan, launchers) = load(ctx, &a.spec)?;
    if let Some(c) = a.concurrency {
        plan.concurrency = c.max(1);
    }
    if a.dry_run {
        print_plan(ctx, &plan);
        plan.check()?;
        return Err(Error::new(ErrorKind::Conflict, "dry run: nothing launched").into());
    }
    plan.check()?;
    let ledger = ctx.ledger()?.clone();
    let progress = std::sync::Arc::new(Bars::new(ctx));
    let runner = Runner {
        launchers,
        ledger: ledger.clone(),
        progress: progress.clone(),
        owner: ctx.owner().to_string(),
    };
    ctx.printer.note(format!(
        "sweep {}: {} cells x {} repetitions, worst case {} (budget {}), {} at a time",
        plan.sweep_id,
        plan.cells.len(),
        plan.repetitions,
        plan.worst_case,
        plan.budget,
        plan.concurrency
    ));
    let summary = ctx.block_on(async {
        let (tx, rx) = herd_sweep::cancel_pair();
        let printer = ctx.printer.clone();
        let bars = progress.clone();
        let ctrl_c = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                bars.suspend(|| printer.warn("interrupted: stopping the cells and terminating their instances"));
                let _ = tx.send(true);
            }
        });
        let out = runner.run(&spec, &plan, rx).await;
        ctrl_c.abort();
        out
    })??;
    progress.clear();
    let skipped = summary.skipped_repetitions();
    if skipped > 0 {
        ctx.printer.note(format!(
            "resumed: {skipped} repetition(s) already in the ledger were not run again"
        ));
    }
    if summary.swept_up > 0 {
        ctx.printer.warn(format!(
            "the final clean-up terminated {} instance(s) a cell had not",
            summary.swept_up
        ));
    }
    let data = ledger
        .sweep(&plan.sweep_id)?
        .ok_or_else(|| Error::unexpected("the sweep vanished from the ledger"))?;
    let scores = herd_sweep::score(&data)?;
    print_scores(ctx, &scores);
    if let Some(dir) = &a.out {
        write_report(ctx, &scores, dir)?;
    }
    let failed = summary.count(CellStatus::Failed);
    if summary.cancelled {
        return Err(Error::new(ErrorKind::Conflict, "the sweep was interrupted")
            .with_hint(format!(
                "finished repetitions are kept; `herd sweep run {}` resumes",
                a.spec.display()
            ))
            .into());
    }
    if failed > 0 {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!("{failed} of {} cells failed (see above)", plan.cells.len()),
        )
        .with_hint("fix the cause and run the same spec again: finished repetitions are kept")
        .into());
    }
    Ok(())
}

fn print_scores(ctx: &Context, s: &Scores) {
    // The page's headers and cells (herd-sweep's report::rows): the same units and
    // rounding in the terminal as in the browser. `>` right-aligns the number columns.
    let headers: Vec<&'static str> = report::headers(s)
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if report::TEXT_COLUMNS.contains(&i) {
                h
            } else {
                format!(">{h}")
            };
            &*Box::leak(h.into_boxed_str())
        })
        .collect();
    let status_col = report::TEXT_COLUMNS[3];
    let mut t = Table::new(&headers);
    for (row, cell) in report::table(s).into_iter().zip(s.by_work()) {
        let style = match cell.status.as_str() {
            "done" if cell.pareto => Some(Style::Green),
            "done" => None,
            _ => Some(Style::Red),
        };
        t.row(
            row.into_iter()
                .enumerate()
                .map(|(i, v)| match style {
                    Some(st) if i == 1 || i == status_col => styled(v, st),
                    _ => Cell::from(v),
                })
                .collect(),
        );
    }
    ctx.printer.table(&t);
    ctx.printer.note(format!(
        "ranked by work per dollar; *front = Pareto front of cost per result vs time to result; billed in total {}",
        s.billed_total
    ));
    for c in report::failures(s) {
        ctx.printer.warn(format!(
            "{} {}: {}",
            report::label(c),
            c.status,
            c.error.as_deref().unwrap_or("no error recorded")
        ));
        if let Some(t) = c.output_tail.as_deref().filter(|t| !t.is_empty()) {
            ctx.printer.note(format!("  last output:\n{}", indent(t)));
        }
    }
}

fn indent(t: &str) -> String {
    t.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// Writes every format into `dir`; returns the page's path.
fn write_report(ctx: &Context, s: &Scores, dir: &Path) -> anyhow::Result<PathBuf> {
    let files = report::write_all(s, dir)?;
    let page = dir.join("index.html");
    ctx.printer.note(format!(
        "report: {} ({} files: HTML, CSV, JSON, SVG and PNG charts)",
        page.display(),
        files.len()
    ));
    Ok(page)
}

/// What opens a page in the user's browser; a test passes its own.
pub trait Opener {
    /// Starts the browser on `page`; an error says what could not be started.
    fn open(&self, page: &Path) -> std::io::Result<()>;
}

/// `$BROWSER` when set (a `:`-separated list, the first entry used; `%s` stands for the
/// page, else the page is the last argument), else `open` on macOS and `xdg-open`
/// elsewhere. The browser is started and left running; herd does not wait for it.
#[derive(Debug)]
pub struct SystemOpener {
    pub browser: Option<String>,
}

impl SystemOpener {
    pub fn from_env() -> Self {
        SystemOpener {
            browser: std::env::var("BROWSER").ok().filter(|b| !b.trim().is_empty()),
        }
    }

    /// The program and its arguments that open `page`.
    pub fn command(&self, page: &Path) -> (String, Vec<String>) {
        let page = page.display().to_string();
        let first = self
            .browser
            .as_deref()
            .and_then(|b| b.split(':').map(str::trim).find(|b| !b.is_empty()));
        match first {
            Some(b) => {
                let mut words = b.split_whitespace().map(str::to_string);
                let prog = words.next().unwrap_or_default();
                let mut args: Vec<String> = words.collect();
                if args.iter().any(|a| a.contains("%s")) {
                    args = args.into_iter().map(|a| a.replace("%s", &page)).collect();
                } else {
                    args.push(page);
                }
                (prog, args)
            }
            None if cfg!(target_os = "macos") => ("open".into(), vec![page]),
            None => ("xdg-open".into(), vec![page]),
        }
    }
}

impl Opener for SystemOpener {
    fn open(&self, page: &Path) -> std::io::Result<()> {
        let (prog, args) = self.command(page);
        std::process::Command::new(&prog)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start `{prog}`: {e}")))
    }
}

/// Opens the page; never fails the command: without a browser it says where the page
/// is and how to open it.
pub fn open_page(ctx: &Context, page: &Path, opener: &dyn Opener) {
    match opener.open(page) {
        Ok(()) => ctx.printer.note(format!("opening {} in the browser", page.display())),
        Err(e) => {
            ctx.printer.warn(format!(
                "could not open a browser ({e}); the report is at {}",
                page.display()
            ));
            ctx.printer
                .note("hint: set BROWSER to your browser's command (e.g. BROWSER=firefox), or open the file yourself");
        }
    }
}

fn report_cmd(ctx: &Context, a: &SweepReportArgs) -> anyhow::Result<()> {
    let ledger = ctx.ledger()?;
    let id = resolve(ctx, &a.sweep)?;
    let data = ledger.sweep(&id)?.ok_or_else(|| {
        Error::not_found(format!("no sweep `{id}` in the ledger")).with_hint("`herd sweep ls` lists the sweeps")
    })?;
    let scores = herd_sweep::score(&data)?;
    if a.json {
        ctx.printer.json(&scores)?;
    } else {
        print_scores(ctx, &scores);
    }
    let dir = match (&a.out, a.open) {
        (Some(d), _) => Some(d.clone()),
        // Next to the ledger, in herd's own data dir: one directory per sweep.
        (None, true) => Some(
            ctx.settings
                .ledger
                .parent()
                .unwrap_or(Path::new("."))
                .join("reports")
                .join(&scores.sweep_id),
        ),
        (None, false) => None,
    };
    if let Some(dir) = dir {
        let page = write_report(ctx, &scores, &dir)?;
        if a.open {
            open_page(ctx, &page, &SystemOpener::from_env());
        }
    }
    Ok(())
}

/// A sweep id, a sweep name (its latest run), or the path of a spec.
fn resolve(ctx: &Context, what: &str) -> anyhow::Result<String> {
    let ledger = ctx.ledger()?;
    let all = ledger.sweeps(None)?;
    if all.iter().any(|s| s.sweep_id == what) {
        return Ok(what.to_string());
    }
    if let Some(s) = all.iter().find(|s| s.name == what) {
        return Ok(s.sweep_id.clone());
    }
    let p = PathBuf::from(what);
    if p.is_file() {
        return Ok(Spec::load(&p)?.sweep_id());
    }
    let names: Vec<&str> = all
        .iter()
        .flat_map(|s| [s.sweep_id.as_str(), s.name.as_str()])
        .collect();
    Err(Error::not_found(format!("no sweep `{what}` in the ledger"))
        .with_suggestions(herd_core::suggest::did_you_mean(what, names, 3))
        .with_hint("pass a sweep id or name from `herd sweep ls`, or the spec file")
        .into())
}

#[derive(Serialize)]
struct LsRow {
    sweep_id: String,
    name: String,
    cells: usize,
    done: usize,
    failed: usize,
    repetitions: usize,
    updated_at: chrono::DateTime<chrono::Utc>,
}

fn ls(ctx: &Context, json: bool) -> anyhow::Result<()> {
    let ledger = ctx.ledger()?;
    let mut rows = Vec::new();
    for s in ledger.sweeps(None)? {
        let d = ledger.sweep(&s.sweep_id)?;
        let (cells, done, failed, reps) = d.as_ref().map_or((0, 0, 0, 0), |d| {
            let n = d.sweep.plan["cells"].as_array().map_or(0, Vec::len);
            let done = d.cells.iter().filter(|c| c.status == "done").count();
            let failed = d.cells.iter().filter(|c| c.status == "failed").count();
            (n, done, failed, d.results.len())
        });
        rows.push(LsRow {
            sweep_id: s.sweep_id,
            name: s.name,
            cells,
            done,
            failed,
            repetitions: reps,
            updated_at: s.updated_at,
        });
    }
    if json {
        return ctx.printer.json(&rows);
    }
    if rows.is_empty() {
        ctx.printer
            .note("no sweeps yet; try `herd sweep run examples/compress/sweep.toml`");
        return Ok(());
    }
    let mut t = Table::new(&["sweep", "name", ">cells", ">done", ">failed", ">results", "updated"]);
    for r in rows {
        t.row(vec![
            Cell::from(r.sweep_id),
            Cell::from(r.name),
            Cell::from(r.cells.to_string()),
            Cell::from(r.done.to_string()),
            Cell::from(r.failed.to_string()),
            Cell::from(r.repetitions.to_string()),
            Cell::from(r.updated_at.format("%Y-%m-%d %H:%M").to_string()),
        ]);
    }
    ctx.printer.table(&t);
    Ok(())
}

/// Progress on stderr: one bar for the whole sweep (repetitions), one line per running
/// cell. Without a terminal, one line per finished cell instead.
struct Bars {
    multi: Option<MultiProgress>,
    overall: std::sync::OnceLock<ProgressBar>,
    cells: Mutex<BTreeMap<String, ProgressBar>>,
    printer: crate::printer::Printer,
    /// `[logs] warn_mb_per_min` (0: off).
    chatty_threshold: f64,
    /// Instances running at once (the chatty projection's fleet), known at `started`.
    fleet: std::sync::atomic::AtomicUsize,
    /// The chatty-log warning is printed once per sweep.
    warned: std::sync::atomic::AtomicBool,
}

impl Bars {
    fn new(ctx: &Context) -> Self {
        let interactive = ctx.printer.interactive_stderr();
        let multi = interactive.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Bars {
            multi,
            overall: std::sync::OnceLock::new(),
            cells: Mutex::new(BTreeMap::new()),
            printer: ctx.printer.clone(),
            chatty_threshold: ctx.settings.log_warn_mb_per_min,
            fleet: std::sync::atomic::AtomicUsize::new(1),
            warned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn suspend(&self, f: impl FnOnce()) {
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }

    fn clear(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }

    fn cell_bar(&self, cell: &SweepCell) -> Option<ProgressBar> {
        let m = self.multi.as_ref()?;
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            cells
                .entry(cell.id.clone())
                .or_insert_with(|| {
                    let b = m.add(ProgressBar::new_spinner());
                    if let Ok(st) = ProgressStyle::with_template("  {spinner} {prefix:40} {msg} ({elapsed})") {
                        b.set_style(st);
                    }
                    b.set_prefix(format!("{}@{} {}", cell.instance_type, cell.region, cell.market));
                    b.enable_steady_tick(Duration::from_millis(120));
                    b
                })
                .clone(),
        )
    }
}

impl Progress for Bars {
    fn started(&self, plan: &Plan, todo: &BTreeMap<String, u32>) {
        let total: u64 = todo.values().map(|n| u64::from(*n)).sum();
        let at_once = plan.concurrency.min(todo.len()).max(1);
        self.fleet.store(at_once, std::sync::atomic::Ordering::Relaxed);
        if let Some(m) = &self.multi {
            let b = m.add(ProgressBar::new(total));
            if let Ok(st) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} repetitions ({elapsed})") {
                b.set_style(st.progress_chars("=> "));
            }
            b.set_prefix(format!("sweep {}", plan.name));
            let _ = self.overall.set(b);
        }
    }

    fn stage(&self, cell: &SweepCell, stage: &str) {
        if let Some(b) = self.cell_bar(cell) {
            b.set_message(stage.to_string());
        }
    }

    fn repetition(&self, _cell: &SweepCell, _rep: u32, _wall: Duration) {
        if let Some(b) = self.overall.get() {
            b.inc(1);
        }
    }

    fn event(&self, cell: &SweepCell, event: &str) {
        let line = format!("{}@{}: {event}", cell.instance_type, cell.region);
        self.suspend(|| self.printer.note(&line));
    }

    fn output(&self, _cell: &SweepCell, inst: &Instance, bytes: u64, wall: Duration) {
        use std::sync::atomic::Ordering;
        let fleet = self.fleet.load(Ordering::Relaxed);
        let Some(w) = super::chatty::from_output(self.chatty_threshold, inst, bytes, wall, fleet) else {
            return;
        };
        if self.warned.swap(true, Ordering::Relaxed) {
            return;
        }
        self.suspend(|| {
            self.printer.warn(w.message());
            self.printer
                .note(format!("hint: {}", herd_guest::lograte::Warning::HINT));
        });
    }

    fn finished(&self, cell: &SweepCell, o: &CellOutcome) {
        let bar = self.cells.lock().unwrap_or_else(|p| p.into_inner()).remove(&cell.id);
        if let Some(b) = bar {
            b.finish_and_clear();
            if let Some(m) = &self.multi {
                m.remove(&b);
            }
        }
        let what = match o.status {
            CellStatus::Done => format!("done ({} run, {} kept)", o.ran, o.skipped),
            s => format!("{}: {}", s.as_str(), o.error.as_deref().unwrap_or("")),
        };
        let line = format!("{}@{} {}: {what}", cell.instance_type, cell.region, cell.market);
        self.suspend(|| self.printer.note(&line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_command_follows_browser_conventions() {
        let page = Path::new("/tmp/r/index.html");
        let o = |b: Option<&str>| SystemOpener {
            browser: b.map(str::to_string),
        };
        assert_eq!(
            o(Some("firefox --new-tab")).command(page),
            ("firefox".into(), vec!["--new-tab".into(), "/tmp/r/index.html".into()])
        );
        assert_eq!(
            o(Some("w3m -o x=%s:lynx")).command(page),
            ("w3m".into(), vec!["-o".into(), "x=/tmp/r/index.html".into()])
        );
        let (prog, args) = o(None).command(page);
        assert!(prog == "xdg-open" || prog == "open");
        assert_eq!(args, vec!["/tmp/r/index.html".to_string()]);
    }

    #[test]
    fn a_browser_that_cannot_start_is_an_error_the_caller_can_report() {
        let o = SystemOpener {
            browser: Some("/nonexistent/browser".into()),
        };
        let e = o.open(Path::new("/tmp/x.html")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/browser"), "{e}");
    }
}
