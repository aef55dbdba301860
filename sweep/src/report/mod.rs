//! A scored sweep as a terminal table, CSV, JSON, two charts (SVG and PNG) and an HTML
//! page that embeds them. Everything here is a pure function of [`Scores`], so a report
//! written months later from the ledger is the same report.

pub mod canvas;
pub mod charts;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use herd_core::{Error, Market, Result};

use crate::score::{CellScore, Scores, Stats};
use canvas::{escape, Canvas, Pixels, Svg};

/// A short name for a cell: `l1.large@local-east-1`, plus the market when not on-demand
/// and the cloud when not the simulator.
pub fn label(c: &CellScore) -> String {
    let mut s = format!("{}@{}", c.cell.instance_type, c.cell.region);
    if c.cell.cloud != herd_core::Cloud::Local {
        s = format!("{}:{s}", c.cell.cloud);
    }
    match c.cell.market {
        Market::OnDemand => {}
        m => s.push_str(&format!(" {m}")),
    }
    s
}

pub const HEADERS: [&str; 12] = [
    "#",
    "cell",
    "reps",
    "run (median ±spread)",
    "metric",
    "boot+setup",
    "to result",
    "$/h",
    "billed",
    "$/result",
    "work/$",
    "status",
];

/// The ranked table (by work per dollar), one row of text cells per cell; the CLI styles it.
pub fn table(s: &Scores) -> Vec<Vec<String>> {
    s.by_work()
        .into_iter()
        .map(|c| {
            let metric = if s.metric.source == crate::spec::MetricSource::WallTime {
                "-".to_string()
            } else {
                c.metric
                    .map_or("-".into(), |m| format!("{} {}", charts::num(m.median), s.metric.unit))
            };
            let mut status = c.status.clone();
            if c.pareto {
                status.push_str(" *front");
            }
            if let Some(r) = c.rank_time {
                status.push_str(&format!(" t#{r}"));
            }
            vec![
                c.rank_work.map_or("-".into(), |r| r.to_string()),
                label(c),
                format!("{}/{}", c.repetitions, s.repetitions),
                c.wall.map_or("-".into(), spread),
                metric,
                match (c.boot_s, c.setup_s) {
                    (Some(b), Some(st)) => format!("{b:.1}+{st:.1}s"),
                    _ => "-".into(),
                },
                c.time_to_result_s.map_or("-".into(), |t| format!("{t:.1}s")),
                c.hourly.display_amount(),
                format!("{:.6}", c.billed.amount.round_dp(6)),
                c.cost_per_result
                    .map_or("-".into(), |m| format!("{:.6}", m.amount.round_dp(6))),
                c.work_per_dollar.map_or("-".into(), charts::num),
                status,
            ]
        })
        .collect()
}

fn spread(w: Stats) -> String {
    format!("{}s ±{:.1}%", charts::num(w.median), w.spread_percent())
}

/// The failed cells, each with its error and the workload's last output lines.
pub fn failures(s: &Scores) -> Vec<&CellScore> {
    s.cells.iter().filter(|c| c.status != "done").collect()
}

pub fn csv(s: &Scores) -> String {
    let mut out = String::from(
        "rank_work,rank_time,pareto,cloud,region,instance_type,market,vcpus,status,repetitions,wall_median_s,wall_min_s,\
         wall_max_s,wall_spread_pct,metric_median,metric_spread_pct,boot_s,setup_s,time_to_result_s,hourly_usd,\
         billed_usd,cost_per_result_usd,work_per_dollar,error\n",
    );
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for c in s.by_work() {
        let row = [
            c.rank_work.map_or(String::new(), |r| r.to_string()),
            c.rank_time.map_or(String::new(), |r| r.to_string()),
            c.pareto.to_string(),
            c.cell.cloud.to_string(),
            c.cell.region.clone(),
            c.cell.instance_type.clone(),
            c.cell.market.to_string(),
            c.cell.vcpus.to_string(),
            c.status.clone(),
            c.repetitions.to_string(),
            f(c.wall.map(|w| w.median)),
            f(c.wall.map(|w| w.min)),
            f(c.wall.map(|w| w.max)),
            f(c.wall.map(|w| w.spread_percent())),
            f(c.metric.map(|m| m.median)),
            f(c.metric.map(|m| m.spread_percent())),
            f(c.boot_s),
            f(c.setup_s),
            f(c.time_to_result_s),
            c.hourly.amount.to_string(),
            c.billed.amount.to_string(),
            c.cost_per_result.map_or(String::new(), |m| m.amount.to_string()),
            f(c.work_per_dollar),
            c.error.clone().unwrap_or_default(),
        ];
        let line: Vec<String> = row.iter().map(|v| csv_field(v)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

pub fn json(s: &Scores) -> String {
    serde_json::to_string_pretty(s).expect("scores serialize") + "\n"
}

pub fn scatter_svg(s: &Scores) -> String {
    draw_svg(s, charts::scatter)
}
pub fn bars_svg(s: &Scores) -> String {
    draw_svg(s, charts::bars)
}
pub fn scatter_png(s: &Scores) -> Vec<u8> {
    draw_png(s, charts::scatter)
}
pub fn bars_png(s: &Scores) -> Vec<u8> {
    draw_png(s, charts::bars)
}

fn draw_svg(s: &Scores, f: fn(&mut dyn Canvas, &Scores)) -> String {
    let mut c = Svg::new(charts::W, charts::H);
    f(&mut c, s);
    c.finish()
}

fn draw_png(s: &Scores, f: fn(&mut dyn Canvas, &Scores)) -> Vec<u8> {
    let mut c = Pixels::new(charts::W, charts::H);
    f(&mut c, s);
    c.png()
}

/// A self-contained page: summary, the ranked table, both charts inline (SVG) with the
/// PNGs beside it, and every failed cell with its error and output.
pub fn html(s: &Scores) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>herd sweep {id}</title>\n<style>\
         body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;font-size:13px}}\
         td,th{{border:1px solid #ccc;padding:3px 7px;text-align:right}} td:nth-child(2){{text-align:left}}\
         tr.front td{{background:#fdecec}} pre{{background:#f4f4f4;padding:8px;overflow:auto}}</style></head><body>\n\
         <h1>Sweep {name}</h1>\n<p>id <code>{id}</code>, started {at}; metric: {metric} ({better} is better); \
         {reps} repetitions a cell; {n} cells, {dropped} dropped in planning; billed in total: <b>{total}</b> \
         (each cloud's billing rule, prices frozen at launch).</p>\n",
        id = escape(&s.sweep_id),
        name = escape(&s.name),
        at = s.created_at.format("%Y-%m-%d %H:%M UTC"),
        metric = escape(&s.metric.name),
        better = if s.metric.better == crate::spec::Better::Higher { "higher" } else { "lower" },
        reps = s.repetitions,
        n = s.cells.len(),
        dropped = s.dropped,
        total = s.billed_total,
    );
    h.push_str("<h2>Ranked by work per dollar</h2>\n<table><tr>");
    for head in HEADERS {
        let _ = write!(h, "<th>{}</th>", escape(head));
    }
    h.push_str("</tr>\n");
    for (row, cell) in table(s).iter().zip(s.by_work()) {
        let _ = write!(h, "<tr{}>", if cell.pareto { " class=\"front\"" } else { "" });
        for v in row {
            let _ = write!(h, "<td>{}</td>", escape(v));
        }
        h.push_str("</tr>\n");
    }
    h.push_str(
        "</table>\n<p>*front: on the Pareto front of cost per result vs time to result. t#: rank by time to result \
         (boot + setup + the median run).</p>\n<h2>Cost vs time to result</h2>\n",
    );
    h.push_str(&scatter_svg(s));
    h.push_str("<p><a href=\"scatter.png\">PNG</a> · <a href=\"scatter.svg\">SVG</a></p>\n<h2>Work per dollar</h2>\n");
    h.push_str(&bars_svg(s));
    h.push_str(
        "<p><a href=\"work-per-dollar.png\">PNG</a> · <a href=\"work-per-dollar.svg\">SVG</a> · \
                <a href=\"report.csv\">CSV</a> · <a href=\"report.json\">JSON</a></p>\n",
    );
    let failed = failures(s);
    if !failed.is_empty() {
        h.push_str("<h2>Cells that did not finish</h2>\n");
        for c in failed {
            let _ = write!(
                h,
                "<h3>{} ({})</h3>\n<p>{}</p>\n",
                escape(&label(c)),
                escape(&c.status),
                escape(c.error.as_deref().unwrap_or("no error recorded"))
            );
            if let Some(t) = &c.output_tail {
                let _ = writeln!(h, "<pre>{}</pre>", escape(t));
            }
        }
    }
    h.push_str("</body></html>\n");
    h
}

/// Writes every format into `dir` (created if needed); returns the files written.
pub fn write_all(s: &Scores, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let files: [(&str, Vec<u8>); 7] = [
        ("report.csv", csv(s).into_bytes()),
        ("report.json", json(s).into_bytes()),
        ("scatter.svg", scatter_svg(s).into_bytes()),
        ("work-per-dollar.svg", bars_svg(s).into_bytes()),
        ("scatter.png", scatter_png(s)),
        ("work-per-dollar.png", bars_png(s)),
        ("index.html", html(s).into_bytes()),
    ];
    let mut out = Vec::new();
    for (name, bytes) in files {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| io(&p, e))?;
        out.push(p);
    }
    Ok(out)
}

fn io(p: &Path, e: std::io::Error) -> Error {
    Error::config(format!("cannot write the report to {}", p.display()))
        .with_hint("pass another directory with --out")
        .with_source(e)
}
