//! The report's charts, checked structurally on the fixed sweep (herd_sweep::fixture) of
//! 2 and 200 cells: the SVG text is parsed back, and its tick labels must be round
//! (integer multiples of a step of 1, 2, 2.5 or 5 x 10^k), no two labels' boxes (font
//! size x characters) may intersect, and nothing may lie outside the viewBox.

use herd_sweep::fixture;
use herd_sweep::report::{self, charts};

#[derive(Debug, Clone)]
struct Text {
    x: f64,
    y: f64,
    px: f64,
    anchor: String,
    s: String,
}

impl Text {
    /// The box the layout promises: `font size x 0.62` a character, centred on `y`.
    fn bbox(&self) -> [f64; 4] {
        let w = charts::text_width(&self.s, self.px);
        let x0 = match self.anchor.as_str() {
            "start" => self.x,
            "middle" => self.x - w / 2.0,
            _ => self.x - w,
        };
        [x0, self.y - self.px / 2.0, x0 + w, self.y + self.px / 2.0]
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let j = tag[i..].find('"')? + i;
    Some(tag[i..j].to_string())
}

fn num(tag: &str, name: &str) -> f64 {
    attr(tag, name)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} of {tag} is not a number"))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Every `<tag ...>` of a kind, as the text of its opening tag.
fn tags<'a>(svg: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name} ");
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find(&open) {
        let tail = &rest[i..];
        let end = tail.find('>').expect("a closed tag");
        out.push(&tail[..=end]);
        rest = &tail[end..];
    }
    out
}

fn texts(svg: &str) -> Vec<Text> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find("<text ") {
        let tail = &rest[i..];
        let open_end = tail.find('>').unwrap();
        let close = tail.find("</text>").unwrap();
        let tag = &tail[..=open_end];
        let body = unescape(tail[open_end + 1..close].trim());
        assert_eq!(
            attr(tag, "dy").as_deref(),
            Some("0.5ex"),
            "every label is centred: {tag}"
        );
        out.push(Text {
            x: num(tag, "x"),
            y: num(tag, "y"),
            px: num(tag, "font-size"),
            anchor: attr(tag, "text-anchor").unwrap(),
            s: body,
        });
        rest = &tail[close..];
    }
    out
}

fn view_box(svg: &str) -> (f64, f64) {
    let tag = tags(svg, "svg")[0];
    let v: Vec<f64> = attr(tag, "viewBox")
        .unwrap()
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!((v[0], v[1]), (0.0, 0.0));
    (v[2], v[3])
}

/// A tick label's value: `$0.0005`, `250 k`, `12.5`.
fn tick_value(s: &str) -> f64 {
    let t = s.trim_start_matches('$');
    let (n, mul) = match t.rsplit_once(' ') {
        Some((n, "k")) => (n, 1e3),
        Some((n, "M")) => (n, 1e6),
        Some((n, "G")) => (n, 1e9),
        None => (t, 1.0),
        Some(_) => panic!("tick label `{s}` has an unknown suffix"),
    };
    n.parse::<f64>()
        .unwrap_or_else(|_| panic!("tick label `{s}` is not a number"))
        * mul
}

fn is_round_step(step: f64) -> bool {
    let mag = 10f64.powf(step.log10().floor());
    let m = step / mag;
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().any(|r| (m - r).abs() < 1e-6)
}

/// The checks of the module doc on one SVG; returns the number of labels checked.
fn check_svg(name: &str, svg: &str) -> usize {
    let (w, h) = view_box(svg);
    let all = texts(svg);
    assert!(!all.is_empty(), "{name}: no text");
    // Nothing outside the viewBox: labels, rectangles, circles, lines.
    for t in &all {
        let b = t.bbox();
        assert!(
            b[0] >= -0.5 && b[1] >= -0.5 && b[2] <= w + 0.5 && b[3] <= h + 0.5,
            "{name}: label `{}` at {b:?} is outside the {w}x{h} viewBox",
            t.s
        );
    }
    for r in tags(svg, "rect") {
        let (x, y) = (num(r, "x"), num(r, "y"));
        let (rw, rh) = (num(r, "width"), num(r, "height"));
        assert!(
            x >= 0.0 && y >= 0.0 && x + rw <= w && y + rh <= h,
            "{name}: {r} outside {w}x{h}"
        );
    }
    for c in tags(svg, "circle") {
        let (x, y, r) = (num(c, "cx"), num(c, "cy"), num(c, "r"));
        assert!(
            x - r >= 0.0 && y - r >= 0.0 && x + r <= w && y + r <= h,
            "{name}: {c} outside"
        );
    }
    for p in tags(svg, "polyline").into_iter().chain(tags(svg, "polygon")) {
        for xy in attr(p, "points").unwrap().split_whitespace() {
            let (x, y) = xy.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((0.0..=w).contains(&x) && (0.0..=h).contains(&y), "{name}: {p} outside");
        }
    }
    // No two labels intersect.
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            let (p, q) = (a.bbox(), b.bbox());
            let hit = p[0] < q[2] - 0.5 && q[0] < p[2] - 0.5 && p[1] < q[3] - 0.5 && q[1] < p[3] - 0.5;
            assert!(!hit, "{name}: labels `{}` {p:?} and `{}` {q:?} overlap", a.s, b.s);
        }
    }
    // Tick labels (and only they are at TICK_PX) are round: the labels of one axis share
    // a row (x) or a column (y), step evenly by 1, 2, 2.5 or 5 x 10^k, and are multiples
    // of that step.
    let ticks: Vec<&Text> = all.iter().filter(|t| (t.px - charts::TICK_PX).abs() < 1e-6).collect();
    assert!(ticks.len() >= 2, "{name}: no axis");
    let mut axes: Vec<Vec<&Text>> = Vec::new();
    for t in &ticks {
        let same_row: Vec<&Text> = ticks.iter().copied().filter(|u| u.y == t.y).collect();
        let group = if same_row.len() >= 2 {
            same_row
        } else {
            ticks
                .iter()
                .copied()
                .filter(|u| u.x == t.x && u.anchor == t.anchor)
                .collect()
        };
        if !axes.iter().any(|g| g.iter().any(|u| std::ptr::eq(*u, *t))) {
            axes.push(group);
        }
    }
    for axis in &axes {
        assert!(axis.len() >= 2, "{name}: a lone tick {:?}", axis[0].s);
        let mut v: Vec<f64> = axis.iter().map(|t| tick_value(&t.s)).collect();
        v.sort_by(f64::total_cmp);
        let step = v[1] - v[0];
        assert!(step > 0.0 && is_round_step(step), "{name}: step {step} of {v:?}");
        for (k, x) in v.iter().enumerate() {
            let m = x / step;
            assert!(
                (m - m.round()).abs() < 1e-6,
                "{name}: tick {x} is not a multiple of {step}"
            );
            if k > 0 {
                assert!(
                    ((x - v[k - 1]) - step).abs() < step * 1e-6,
                    "{name}: uneven ticks {v:?}"
                );
            }
        }
    }
    all.len()
}

fn check_report(n: usize) {
    let s = fixture::scores(n);
    let charts = report::charts(&s);
    assert_eq!(charts.len(), 4);
    for c in &charts {
        let svg = charts::svg(c, false);
        let labels = check_svg(&format!("{} ({n} cells)", c.name), &svg);
        assert!(labels >= 5, "{}: {labels} labels", c.name);
        // One hit area with a <title> for each cell drawn.
        assert_eq!(svg.matches("<title>").count(), c.hits.len(), "{}", c.name);
        assert!(!c.hits.is_empty(), "{}: no cell drawn", c.name);
        // Canvases sized to their content: nothing below the last shape but a margin.
        let lowest = c
            .shapes
            .iter()
            .map(|s| match s {
                charts::Shape::Rect { y1, .. } => *y1,
                charts::Shape::Line { pts, .. } => pts.iter().map(|p| p.1).max().unwrap_or(0),
                charts::Shape::Marker { y, r, .. } => y + r,
                charts::Shape::Text { y, px, .. } => y + (*px / 2.0) as i32,
            })
            .max()
            .unwrap();
        assert!(
            (c.h as i32) - lowest <= 40,
            "{}: {} px canvas, content ends at {lowest}",
            c.name,
            c.h
        );
    }
}

#[test]
fn two_cells_chart_cleanly() {
    check_report(2);
    let s = fixture::scores(2);
    let sc = charts::scatter(&s);
    // Few points: every one is labelled, in the metric's units.
    let svg = charts::svg(&sc, false);
    for c in &s.cells {
        assert!(svg.contains(&report::label(c)), "{} labelled", report::label(c));
    }
    let bars = charts::svg(&charts::bars(&s), false);
    assert!(bars.contains("MB per $"), "work per dollar in the metric's unit");
}

#[test]
fn two_hundred_cells_stay_legible() {
    check_report(200);
    let s = fixture::scores(200);
    let sc = charts::scatter(&s);
    let svg = charts::svg(&sc, false);
    // Crowded: only the front is labelled, and the chart says so.
    assert!(svg.contains("points labelled"), "the thinning is said");
    let bars = charts::bars(&s);
    assert_eq!(bars.hits.len(), charts::MAX_ROWS);
    assert!(charts::svg(&bars, false).contains(&format!("the best {} of 199 cells", charts::MAX_ROWS)));
}

#[test]
fn the_fixture_has_what_the_report_must_show() {
    let s = fixture::scores(12);
    let clouds: std::collections::BTreeSet<_> = s.cells.iter().map(|c| c.cell.cloud).collect();
    assert_eq!(clouds.len(), 4);
    assert!(s.cells.iter().any(|c| c.cell.arch == herd_core::Arch::Arm64));
    assert!(s.cells.iter().any(|c| c.status == "failed"));
    assert_eq!(s.dropped, 1);
    // The billed split adds up to what was billed, and the short runs show the minimum.
    for c in &s.cells {
        let sp = c.billed_split.expect("every cell had an instance");
        assert_eq!(sp.total(), c.billed, "{}", c.cell.id);
        assert_eq!(c.metric_values.len(), c.repetitions);
    }
    assert!(s.cells.iter().any(|c| !c.billed_split.unwrap().minimum.is_zero()));
}

#[test]
fn the_table_uses_the_sweeps_units_everywhere() {
    let s = fixture::scores(12);
    let head = report::headers(&s);
    assert_eq!(head[12], "MB per $");
    assert_eq!(head[6], "throughput (MB/s)");
    let rows = report::rows(&s);
    let first = &rows[0].text;
    assert_eq!(first[0], "1");
    assert!(first[12].ends_with(" k") || first[12].ends_with(" M"), "{first:?}");
    assert!(first[6].ends_with(" MB/s"), "{first:?}");
    assert!(first[8].ends_with(" s") && first[10].starts_with('$'), "{first:?}");
    // The page shows the same text as the terminal.
    let html = report::html(&s);
    for r in &rows {
        for t in &r.text {
            assert!(html.contains(&format!(">{}<", report::escape(t))), "`{t}` on the page");
        }
    }
}

#[test]
fn every_format_is_written() {
    let s = fixture::scores(12);
    let dir = tempfile::tempdir().unwrap();
    let files = report::write_all(&s, dir.path()).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for f in [
        "index.html",
        "report.csv",
        "report.json",
        "scatter.svg",
        "scatter.png",
        "work-per-dollar.svg",
        "work-per-dollar.png",
        "repetitions.svg",
        "repetitions.png",
        "cost-split.svg",
        "cost-split.png",
    ] {
        assert!(names.iter().any(|n| n == f), "{f} in {names:?}");
    }
    let png = std::fs::read(dir.path().join("scatter.png")).unwrap();
    let dec = png::Decoder::new(std::io::Cursor::new(png));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    let px = &buf[..info.buffer_size()];
    let dark = px.chunks(3).filter(|p| p.iter().all(|v| *v < 80)).count();
    assert!(dark > 500, "the PNG has text drawn in it ({dark} dark pixels)");
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(
        !html.contains("http://")
            || html.matches("http://").count() == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "the page loads nothing from the network"
    );
    assert!(
        !html.contains("src=\"http") && !html.contains("<link"),
        "self-contained"
    );
    let csv = std::fs::read_to_string(dir.path().join("report.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 12);
    assert!(csv.lines().next().unwrap().ends_with("billed_minimum_usd"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert!(
        json["cells"][0]["billed_split"]["boot"]["amount"].is_string(),
        "{}",
        json["cells"][0]["billed_split"]
    );
}
