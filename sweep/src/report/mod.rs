//! A scored sweep as a terminal table, CSV, JSON, four charts (SVG and PNG) and an HTML
//! page that embeds them. Everything here is a pure function of [`Scores`], so a report
//! written months later from the ledger is the same report.
//!
//! The table's cells are written once, here ([`rows`]), and the terminal and the page
//! both show them, so a value reads the same in both (the units of [`units`]).

pub mod charts;
pub mod units;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use herd_core::{Error, Market, Result};

use crate::score::{CellScore, Scores, Stats};

/// `&`, `<`, `>` and `"` as entities, for HTML and SVG text and attributes.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

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

/// The table's columns that hold text (left-aligned, sorted as text); the others are
/// numbers.
pub const TEXT_COLUMNS: [usize; 4] = [1, 2, 3, 13];

/// The table's headers; the metric's and work per dollar's carry the sweep's units.
pub fn headers(s: &Scores) -> Vec<String> {
    let metric = if s.metric.unit.is_empty() {
        s.metric.name.clone()
    } else {
        format!("{} ({})", s.metric.name, s.metric.unit)
    };
    vec![
        "#".into(),
        "cell".into(),
        "cloud".into(),
        "arch".into(),
        "reps".into(),
        "run (median ±spread)".into(),
        metric,
        "boot+setup".into(),
        "to result".into(),
        "$/h".into(),
        "billed".into(),
        "$/result".into(),
        format!("{} per $", units::work_unit(&s.metric)),
        "status".into(),
    ]
}

/// One row of the table: the text of each column, and for number columns the value it
/// sorts by (`None`: no value, sorted last).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub cell_id: String,
    pub text: Vec<String>,
    pub sort: Vec<Option<f64>>,
}

/// The ranked table (by work per dollar), one row per cell; the CLI styles it, the page
/// makes it sortable.
pub fn rows(s: &Scores) -> Vec<Row> {
    use rust_decimal::prelude::ToPrimitive;
    let f = |m: herd_core::Money| m.amount.to_f64();
    s.by_work()
        .into_iter()
        .map(|c| {
            let metric = if s.metric.source == crate::spec::MetricSource::WallTime {
                None
            } else {
                c.metric.map(|m| m.median)
            };
            let mut status = c.status.clone();
            if c.pareto {
                status.push_str(" *front");
            }
            if let Some(r) = c.rank_time {
                status.push_str(&format!(" t#{r}"));
            }
            let dash = || "-".to_string();
            let text = vec![
                c.rank_work.map_or_else(dash, |r| r.to_string()),
                label(c),
                c.cell.cloud.to_string(),
                c.cell.arch.as_str().to_string(),
                format!("{}/{}", c.repetitions, s.repetitions),
                c.wall.map_or_else(dash, spread),
                metric.map_or_else(dash, |m| units::metric(m, &s.metric)),
                match (c.boot_s, c.setup_s) {
                    (Some(b), Some(st)) => format!("{}+{}", units::num(b), units::secs(st)),
                    _ => dash(),
                },
                c.time_to_result_s.map_or_else(dash, units::secs),
                format!("${}", c.hourly.display_amount()),
                units::usd(c.billed),
                c.cost_per_result.map_or_else(dash, units::usd),
                c.work_per_dollar.map_or_else(dash, units::si),
                status,
            ];
            let sort = vec![
                c.rank_work.map(|r| r as f64),
                None,
                None,
                None,
                Some(c.repetitions as f64),
                c.wall.map(|w| w.median),
                metric,
                match (c.boot_s, c.setup_s) {
                    (Some(b), Some(st)) => Some(b + st),
                    _ => None,
                },
                c.time_to_result_s,
                f(c.hourly),
                f(c.billed),
                c.cost_per_result.and_then(f),
                c.work_per_dollar,
                None,
            ];
            Row {
                cell_id: c.cell.id.clone(),
                text,
                sort,
            }
        })
        .collect()
}

/// The table's text, one row per cell (what the terminal prints).
pub fn table(s: &Scores) -> Vec<Vec<String>> {
    rows(s).into_iter().map(|r| r.text).collect()
}

fn spread(w: Stats) -> String {
    format!("{} ±{:.1}%", units::secs(w.median), w.spread_percent())
}

/// The failed cells, each with its error and the workload's last output lines.
pub fn failures(s: &Scores) -> Vec<&CellScore> {
    s.cells.iter().filter(|c| c.status != "done").collect()
}

pub fn csv(s: &Scores) -> String {
    let mut out = String::from(
        "rank_work,rank_time,pareto,cloud,region,instance_type,market,vcpus,status,repetitions,wall_median_s,wall_min_s,\
         wall_max_s,wall_spread_pct,metric_median,metric_spread_pct,boot_s,setup_s,time_to_result_s,hourly_usd,\
         billed_usd,cost_per_result_usd,work_per_dollar,error,arch,billed_boot_usd,billed_setup_usd,\
         billed_run_usd,billed_minimum_usd\n",
    );
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for c in s.by_work() {
        let split = c.billed_split;
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
            c.cell.arch.as_str().to_string(),
            split.map_or(String::new(), |p| p.boot.amount.to_string()),
            split.map_or(String::new(), |p| p.setup.amount.to_string()),
            split.map_or(String::new(), |p| p.run.amount.to_string()),
            split.map_or(String::new(), |p| p.minimum.amount.to_string()),
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

/// The charts of a report, laid out once.
pub fn charts(s: &Scores) -> Vec<charts::Chart> {
    charts::all(s)
}

const STYLE: &str = "*{box-sizing:border-box}\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;padding:12px;max-width:1100px;color:#222;line-height:1.45;overflow-wrap:anywhere}\
h1{font-size:1.6em;margin:.3em 0}h2{font-size:1.25em;margin:1.4em 0 .4em}\
.scroll{overflow-x:auto;max-width:100%;border:1px solid #ddd}\
table{border-collapse:collapse;font-size:13px;white-space:nowrap;overflow-wrap:normal}\
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}td.t,th.t{text-align:left}\
th{background:#f3f3f3;cursor:pointer;user-select:none}th:hover{background:#e6e6e6}\
th[aria-sort=ascending]::after{content:' \\25B2'}th[aria-sort=descending]::after{content:' \\25BC'}\
tr.front td{background:#fdecec}tr:target td{background:#fff3b0}\
figure{margin:1em 0}svg{display:block;max-width:100%;height:auto}\
.hits a:hover *,.hits :hover{fill-opacity:.15}\
pre{background:#f4f4f4;padding:8px;overflow:auto;white-space:pre-wrap}code{overflow-wrap:anywhere}";

/// Sorting by any column (numbers by `data-v`, text as text; no value sorts last), and,
/// when the page is opened with `?check`, the checks the browser test reads back: every
/// cell's row, sorting by each column, nothing outside the viewport. The result goes into
/// `<pre id="check-result">` as JSON.
const SCRIPT: &str = r#"(function(){
var t=document.getElementById('cells'),ths=t.tHead.rows[0].cells;
function key(td){var v=td.getAttribute('data-v');if(v===null)return td.textContent;return v===''?null:parseFloat(v);}
function cmp(x,y){if(x===null||y===null)return 0;return typeof x==='number'?x-y:String(x).localeCompare(String(y));}
function sortBy(i){var th=ths[i],asc=th.getAttribute('aria-sort')!=='ascending',tb=t.tBodies[0];
for(var j=0;j<ths.length;j++)ths[j].removeAttribute('aria-sort');th.setAttribute('aria-sort',asc?'ascending':'descending');
var rows=Array.prototype.slice.call(tb.rows);
rows.sort(function(a,b){var x=key(a.cells[i]),y=key(b.cells[i]);if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;var c=cmp(x,y);return asc?c:-c;});
rows.forEach(function(r){tb.appendChild(r);});}
for(var i=0;i<ths.length;i++)(function(i){ths[i].addEventListener('click',function(){sortBy(i);});})(i);
var m=/[?&]check(?:=(\d+))?/.exec(location.search);if(!m)return;
if(m[1]&&window.parent===window){window.addEventListener('message',function(e){var pre=document.createElement('pre');pre.id='check-result';pre.textContent=String(e.data);document.body.appendChild(pre);});
var f=document.createElement('iframe');f.style.cssText='display:block;border:0;height:900px;width:'+m[1]+'px';f.src=location.href.split('?')[0]+'?check';document.body.appendChild(f);return;}
var out={width:document.documentElement.clientWidth,rows:[],sorted:[],outside:[],links:0,broken_links:[]};
Array.prototype.forEach.call(t.tBodies[0].rows,function(r){out.rows.push(r.getAttribute('data-cell'));});
function ordered(i,asc){var prev;var ok=true;var seenNull=false;Array.prototype.forEach.call(t.tBodies[0].rows,function(r){var k=key(r.cells[i]);
if(k===null){seenNull=true;return;}if(seenNull)ok=false;if(prev!==undefined&&prev!==null){var c=cmp(prev,k);if(asc?c>0:c<0)ok=false;}prev=k;});return ok;}
for(var i=0;i<ths.length;i++){ths[i].click();var a=ordered(i,true)&&ths[i].getAttribute('aria-sort')==='ascending';ths[i].click();var d=ordered(i,false)&&ths[i].getAttribute('aria-sort')==='descending';out.sorted.push(a&&d);}
var w=out.width;
Array.prototype.forEach.call(document.body.querySelectorAll('*'),function(el){
var s=el.parentElement&&el.parentElement.closest('.scroll');if(s)return;
var r=el.getBoundingClientRect();if(r.width===0&&r.height===0)return;
if(r.left<-0.5||r.right>w+0.5)out.outside.push((el.id||el.tagName)+' '+Math.round(r.left)+'..'+Math.round(r.right));});
if(document.documentElement.scrollWidth>w+0.5)out.outside.push('page scrolls sideways: '+document.documentElement.scrollWidth);
Array.prototype.forEach.call(document.querySelectorAll('a[href^=\'#\']'),function(a){out.links++;var id=decodeURIComponent(a.getAttribute('href').slice(1));if(!document.getElementById(id))out.broken_links.push(id);});
var json=JSON.stringify(out);if(window.parent!==window){window.parent.postMessage(json,'*');return;}
var pre=document.createElement('pre');pre.id='check-result';pre.textContent=json;document.body.appendChild(pre);
})();"#;

/// A self-contained page (no network): summary, the ranked table (sortable; each row
/// links to its point, each point to its row), the four charts inline (SVG) with links to
/// the files, and every failed cell with its error and output.
pub fn html(s: &Scores) -> String {
    html_with(s, &charts(s))
}

fn html_with(s: &Scores, charts: &[charts::Chart]) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>herd sweep {id}</title>\n<style>{STYLE}</style></head><body>\n\
         <h1>Sweep {name}</h1>\n<p>id <code>{id}</code>, started {at}; metric: {metric} ({better} is better); \
         {reps} repetitions a cell; {n} cells, {dropped} dropped in planning; billed in total: <b>{total}</b> \
         (each cloud's billing rule, prices frozen at launch).</p>\n",
        id = escape(&s.sweep_id),
        name = escape(&s.name),
        at = s.created_at.format("%Y-%m-%d %H:%M UTC"),
        metric = escape(&s.metric.name),
        better = if s.metric.better == crate::spec::Better::Higher {
            "higher"
        } else {
            "lower"
        },
        reps = s.repetitions,
        n = s.cells.len(),
        dropped = s.dropped,
        total = units::usd(s.billed_total),
    );
    h.push_str(
        "<h2>Ranked by work per dollar</h2>\n<p>Click a header to sort; a cell's name leads to its point on the \
         chart below, a point back to its row.</p>\n<div class=\"scroll\"><table id=\"cells\"><thead><tr>",
    );
    for (i, head) in headers(s).iter().enumerate() {
        let class = if TEXT_COLUMNS.contains(&i) { " class=\"t\"" } else { "" };
        let _ = write!(h, "<th{class} scope=\"col\">{}</th>", escape(head));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    let on_scatter: std::collections::HashSet<&str> = charts
        .iter()
        .filter(|c| c.name == "scatter")
        .flat_map(|c| c.hits.iter().map(|h| h.cell_id.as_str()))
        .collect();
    for (row, cell) in rows(s).iter().zip(s.by_work()) {
        let id = escape(&row.cell_id);
        let _ = write!(
            h,
            "<tr id=\"cell-{id}\" data-cell=\"{id}\"{}>",
            if cell.pareto { " class=\"front\"" } else { "" }
        );
        for (i, (text, key)) in row.text.iter().zip(&row.sort).enumerate() {
            if TEXT_COLUMNS.contains(&i) {
                if i == 1 && on_scatter.contains(row.cell_id.as_str()) {
                    let _ = write!(h, "<td class=\"t\"><a href=\"#scatter-{id}\">{}</a></td>", escape(text));
                } else {
                    let _ = write!(h, "<td class=\"t\">{}</td>", escape(text));
                }
            } else {
                let v = key.filter(|v| v.is_finite()).map_or(String::new(), |v| format!("{v}"));
                let _ = write!(h, "<td data-v=\"{v}\">{}</td>", escape(text));
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str(
        "</tbody></table></div>\n<p>*front: on the Pareto front of cost per result vs time to result. t#: rank by \
         time to result (boot + setup + the median run).</p>\n",
    );
    for c in charts {
        let title = match c.name {
            "scatter" => "Cost vs time to result",
            "work-per-dollar" => "Work per dollar",
            "repetitions" => "Repetitions",
            _ => "Billed cost by phase",
        };
        let _ = write!(h, "<h2>{title}</h2>\n<figure id=\"chart-{}\">", c.name);
        h.push_str(&charts::svg(c, true));
        let _ = writeln!(
            h,
            "<figcaption><a href=\"{n}.png\">PNG</a> · <a href=\"{n}.svg\">SVG</a></figcaption></figure>",
            n = c.name
        );
    }
    h.push_str("<p>Data: <a href=\"report.csv\">CSV</a> · <a href=\"report.json\">JSON</a></p>\n");
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
    let _ = write!(h, "<script>{SCRIPT}</script>\n</body></html>\n");
    h
}

/// Writes every format into `dir` (created if needed): the page, the CSV and JSON, and
/// each chart as SVG and PNG. Returns the files written, the page first.
pub fn write_all(s: &Scores, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let charts = charts(s);
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("index.html".into(), html_with(s, &charts).into_bytes()),
        ("report.csv".into(), csv(s).into_bytes()),
        ("report.json".into(), json(s).into_bytes()),
    ];
    for c in &charts {
        files.push((format!("{}.svg", c.name), charts::svg(c, false).into_bytes()));
        files.push((format!("{}.png", c.name), charts::png(c)));
    }
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
