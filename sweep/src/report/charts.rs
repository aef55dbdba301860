//! The report's four charts, laid out here and drawn by plotters (SVG and bitmap
//! backends, DejaVu Sans embedded): cost per result against time to result with the
//! Pareto front as a step, work per dollar as bars, each cell's repetitions, and what each
//! cell was billed split into boot, setup, run and the billing minimum.
//!
//! A chart is first laid out as a list of [`Shape`]s in pixels (herd's own placement:
//! round ticks, labels that never overlap, a canvas as tall as its rows), then painted
//! on either backend, so the SVG and the PNG are the same picture. Each chart also lists
//! its hit areas (a point, a bar) so the SVG can carry a `<title>` and a link per cell.

use std::sync::Once;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontDesc, FontFamily, FontStyle};
use rust_decimal::prelude::ToPrimitive;

use super::label;
use super::units::{nice_ticks, si, suffix_for, tick, usd_f, work_unit};
use crate::score::{CellScore, Scores};
use crate::spec::MetricSource;
use herd_core::{Arch, Cloud};

/// Every chart is this wide; heights follow the content.
pub const W: u32 = 860;
/// Font sizes in pixels (the SVG's `font-size`).
pub const TITLE_PX: f64 = 16.0;
pub const NOTE_PX: f64 = 12.0;
/// Tick labels, and only them, use this size (the structural tests find them by it).
pub const TICK_PX: f64 = 11.0;
pub const LABEL_PX: f64 = 11.5;
pub const AXIS_PX: f64 = 12.5;
/// Rows drawn in the bar charts; the table lists every cell.
pub const MAX_ROWS: usize = 40;
/// Above this many points the scatter labels only the Pareto front (hover shows the rest).
pub const MAX_LABELLED: usize = 24;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are DejaVu Sans, checked by the tests; a failure would only mean
        // plotters falls back to drawing no text in the PNG.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// A box a label of `chars` characters at `px` takes, estimated from the font size (DejaVu
/// Sans averages about 0.6 em a character; 0.62 errs wide). The layout and the tests
/// share it.
pub fn text_width(s: &str, px: f64) -> f64 {
    s.chars().count() as f64 * px * 0.62
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub const BLACK: Rgb = Rgb(0x22, 0x22, 0x22);
    pub const GREY: Rgb = Rgb(0x66, 0x66, 0x66);
    pub const GRID: Rgb = Rgb(0xe3, 0xe3, 0xe3);
    pub const FRONT: Rgb = Rgb(0xd6, 0x27, 0x28);
    pub const RANGE: Rgb = Rgb(0xb0, 0xb0, 0xb0);
}

/// One colour per cloud (colour-blind-safe hues, after the Okabe-Ito palette).
pub fn cloud_color(c: Cloud) -> Rgb {
    match c {
        Cloud::Local => Rgb(0x55, 0x55, 0x55),
        Cloud::Aws => Rgb(0xe6, 0x9f, 0x00),
        Cloud::Gcp => Rgb(0x00, 0x9e, 0x73),
        Cloud::Azure => Rgb(0x00, 0x72, 0xb2),
    }
}

/// The marker of each CPU architecture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    Circle,
    Triangle,
}

pub fn arch_mark(a: Arch) -> Mark {
    match a {
        Arch::X86_64 => Mark::Circle,
        Arch::Arm64 => Mark::Triangle,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Rect {
        x0: i32,
        y0: i32,
        x1: i32,
        y1: i32,
        fill: Rgb,
    },
    Line {
        pts: Vec<(i32, i32)>,
        color: Rgb,
        width: u32,
    },
    Marker {
        x: i32,
        y: i32,
        mark: Mark,
        color: Rgb,
        r: i32,
        ring: bool,
    },
    /// Vertically centred on `y`.
    Text {
        x: i32,
        y: i32,
        s: String,
        px: f64,
        anchor: Anchor,
        color: Rgb,
    },
}

/// A cell's place on a chart: a rectangle in pixels, with what hovering it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub cell_id: String,
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
    pub round: bool,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// `scatter`, `work-per-dollar`, `repetitions`, `cost-split`: the file names and the
    /// prefix of the hit areas' ids.
    pub name: &'static str,
    pub w: u32,
    pub h: u32,
    pub shapes: Vec<Shape>,
    pub hits: Vec<Hit>,
}

impl Chart {
    fn new(name: &'static str) -> Chart {
        Chart {
            name,
            w: W,
            h: 0,
            shapes: Vec::new(),
            hits: Vec::new(),
        }
    }

    fn text(&mut self, x: f64, y: f64, s: impl Into<String>, px: f64, anchor: Anchor, color: Rgb) {
        self.shapes.push(Shape::Text {
            x: x.round() as i32,
            y: y.round() as i32,
            s: s.into(),
            px,
            anchor,
            color,
        });
    }

    fn line(&mut self, pts: &[(f64, f64)], color: Rgb, width: u32) {
        self.shapes.push(Shape::Line {
            pts: pts.iter().map(|(x, y)| (x.round() as i32, y.round() as i32)).collect(),
            color,
            width,
        });
    }

    fn rect(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, fill: Rgb) {
        self.shapes.push(Shape::Rect {
            x0: x0.round() as i32,
            y0: y0.round() as i32,
            x1: x1.round().max(x0.round() + 1.0) as i32,
            y1: y1.round() as i32,
            fill,
        });
    }

    fn marker(&mut self, x: f64, y: f64, mark: Mark, color: Rgb, r: i32, ring: bool) {
        self.shapes.push(Shape::Marker {
            x: x.round() as i32,
            y: y.round() as i32,
            mark,
            color,
            r,
            ring,
        });
    }

    /// Title and subtitle, left-aligned and cut to the width; returns where content starts.
    fn heading(&mut self, title: &str, sub: &str) -> f64 {
        let fit = |s: &str, px: f64| fit_text(s, px, f64::from(W) - 32.0);
        self.text(16.0, 18.0, fit(title, TITLE_PX), TITLE_PX, Anchor::Start, Rgb::BLACK);
        self.text(16.0, 38.0, fit(sub, NOTE_PX), NOTE_PX, Anchor::Start, Rgb::GREY);
        56.0
    }

    /// A wrapped line of legend items (swatch or marker, then text) from `y`; returns the
    /// height used.
    fn legend(&mut self, items: &[(LegendKey, String)], y: f64) -> f64 {
        let (mut x, mut y) = (16.0, y);
        let right = f64::from(W) - 16.0;
        for (key, text) in items {
            let w = 22.0 + text_width(text, NOTE_PX) + 18.0;
            if x + w > right && x > 16.0 {
                x = 16.0;
                y += 20.0;
            }
            match *key {
                LegendKey::Swatch(c) => self.rect(x, y - 5.0, x + 14.0, y + 5.0, c),
                LegendKey::Mark(m) => self.marker(x + 7.0, y, m, Rgb::GREY, 5, false),
                LegendKey::Line(c) => self.line(&[(x, y), (x + 16.0, y)], c, 2),
            }
            self.text(x + 22.0, y, text.clone(), NOTE_PX, Anchor::Start, Rgb::BLACK);
            x += w;
        }
        y + 20.0
    }
}

#[derive(Debug, Clone, Copy)]
enum LegendKey {
    Swatch(Rgb),
    Mark(Mark),
    Line(Rgb),
}

/// `s`, cut with an ellipsis to fit `max` pixels at `px`.
pub fn fit_text(s: &str, px: f64, max: f64) -> String {
    if text_width(s, px) <= max {
        return s.to_string();
    }
    let keep = ((max / (px * 0.62)).floor() as usize).saturating_sub(1);
    let mut out: String = s.chars().take(keep).collect();
    out.push('…');
    out
}

/// A linear axis: ticks at round steps, labelled with one formatter.
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
    ticks: Vec<f64>,
    div: f64,
    suffix: &'static str,
    prefix: &'static str,
}

impl Axis {
    /// Ticks over `[lo, hi]` (zero included when `from_zero`), as many as fit `len` pixels
    /// with labels `min_gap` apart (`horizontal`: labels side by side).
    fn new(
        lo: f64,
        hi: f64,
        from_zero: bool,
        len: f64,
        horizontal: bool,
        si_suffix: bool,
        prefix: &'static str,
    ) -> Axis {
        let lo = if from_zero { lo.min(0.0) } else { lo };
        let pad = if from_zero { 0.0 } else { (hi - lo) * 0.06 };
        let (lo, hi) = ((lo - pad).max(if lo >= 0.0 { 0.0 } else { f64::MIN }), hi + pad);
        let mut max_ticks = 10;
        loop {
            let (step, ticks) = nice_ticks(lo, hi, max_ticks);
            let top = ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
            // A suffix once the numbers get long (10 k and up): `200 k`, not `200000`.
            let (div, suffix) = if si_suffix && top >= 1e4 {
                suffix_for(top)
            } else {
                (1.0, "")
            };
            let a = Axis {
                lo: ticks[0],
                hi: *ticks.last().expect("at least two ticks"),
                step,
                ticks,
                div,
                suffix,
                prefix,
            };
            let room = len / (a.ticks.len() - 1) as f64;
            let need = if horizontal {
                a.ticks
                    .iter()
                    .map(|t| text_width(&a.label(*t), TICK_PX))
                    .fold(0.0, f64::max)
                    + 14.0
            } else {
                TICK_PX + 10.0
            };
            if room >= need || max_ticks <= 2 {
                return a;
            }
            max_ticks -= 1;
        }
    }

    fn label(&self, v: f64) -> String {
        let n = tick(v, self.step, self.div);
        match (self.prefix, self.suffix) {
            ("", "") => n,
            (p, "") => format!("{p}{n}"),
            (p, s) => format!("{p}{n} {s}"),
        }
    }

    fn at(&self, v: f64, p0: f64, p1: f64) -> f64 {
        p0 + (v - self.lo) / (self.hi - self.lo) * (p1 - p0)
    }
}

/// An x axis over `[lo, hi]` from `px0` to at most `px1`, pulled in so that its last
/// label stays on the canvas; returns the axis and the right end it got.
#[allow(clippy::too_many_arguments)]
fn fitted_x(
    lo: f64,
    hi: f64,
    from_zero: bool,
    px0: f64,
    px1: f64,
    si_suffix: bool,
    prefix: &'static str,
) -> (Axis, f64) {
    let mut right = px1;
    for _ in 0..3 {
        let a = Axis::new(lo, hi, from_zero, right - px0, true, si_suffix, prefix);
        let half = text_width(&a.label(a.hi), TICK_PX) / 2.0;
        if right + half <= f64::from(W) - 4.0 {
            return (a, right);
        }
        right = f64::from(W) - 4.0 - half;
    }
    (
        Axis::new(lo, hi, from_zero, right - px0, true, si_suffix, prefix),
        right,
    )
}

/// Grid, tick labels and the x axis title below a horizontal axis at `y`; returns the
/// y below what it drew.
fn x_axis(c: &mut Chart, a: &Axis, px0: f64, px1: f64, top: f64, y: f64, title: &str) -> f64 {
    for t in &a.ticks {
        let x = a.at(*t, px0, px1);
        c.line(&[(x, top), (x, y)], Rgb::GRID, 1);
        c.text(x, y + 12.0, a.label(*t), TICK_PX, Anchor::Middle, Rgb::BLACK);
    }
    c.line(&[(px0, y), (px1, y)], Rgb::BLACK, 1);
    c.text((px0 + px1) / 2.0, y + 32.0, title, AXIS_PX, Anchor::Middle, Rgb::BLACK);
    y + 46.0
}

fn f(m: herd_core::Money) -> f64 {
    m.amount.to_f64().unwrap_or(0.0)
}

fn no_data(c: &mut Chart, top: f64) {
    c.text(
        f64::from(W) / 2.0,
        top + 40.0,
        "no finished cells yet",
        AXIS_PX,
        Anchor::Middle,
        Rgb::GREY,
    );
    c.h = (top + 80.0) as u32;
}

fn legend_items(cells: &[&CellScore], front: bool) -> Vec<(LegendKey, String)> {
    let mut items = Vec::new();
    for cloud in Cloud::ALL {
        if cells.iter().any(|c| c.cell.cloud == cloud) {
            items.push((LegendKey::Swatch(cloud_color(cloud)), cloud.to_string()));
        }
    }
    for arch in [Arch::X86_64, Arch::Arm64] {
        if cells.iter().any(|c| c.cell.arch == arch) {
            items.push((LegendKey::Mark(arch_mark(arch)), arch.as_str().to_string()));
        }
    }
    if front {
        items.push((
            LegendKey::Line(Rgb::FRONT),
            "Pareto front (nothing is both cheaper and faster)".into(),
        ));
    }
    items
}

/// Cost per result against time to result, coloured by cloud, marked by architecture,
/// with the Pareto front as a step and labels that never overlap.
pub fn scatter(s: &Scores) -> Chart {
    let mut c = Chart::new("scatter");
    let top = c.heading(
        &format!("{}: cost per result vs time to result", s.name),
        "lower left is better: cheaper and sooner; hover a point for its cell",
    );
    let pts: Vec<(&CellScore, f64, f64)> = s
        .cells
        .iter()
        .filter_map(|c| Some((c, f(c.cost_per_result?), c.time_to_result_s?)))
        .collect();
    if pts.is_empty() {
        no_data(&mut c, top);
        return c;
    }
    let (xmin, xmax) = min_max(pts.iter().map(|p| p.1));
    let (ymin, ymax) = min_max(pts.iter().map(|p| p.2));
    let ph = 340.0;
    let py1 = top + 22.0;
    let py0 = py1 + ph;
    let y = Axis::new(ymin, ymax, false, ph, false, false, "");
    let ylab_w = y
        .ticks
        .iter()
        .map(|t| text_width(&y.label(*t), TICK_PX))
        .fold(0.0, f64::max);
    let px0 = 16.0 + ylab_w + 10.0;
    let (x, px1) = fitted_x(xmin, xmax, false, px0, f64::from(W) - 24.0, false, "$");
    c.text(
        px0 - 6.0,
        top + 6.0,
        "time to result (s)",
        AXIS_PX,
        Anchor::Start,
        Rgb::BLACK,
    );
    for t in &y.ticks {
        let yy = y.at(*t, py0, py1);
        c.line(&[(px0, yy), (px1, yy)], Rgb::GRID, 1);
        c.text(px0 - 6.0, yy, y.label(*t), TICK_PX, Anchor::End, Rgb::BLACK);
    }
    c.line(&[(px0, py0), (px0, py1)], Rgb::BLACK, 1);
    let bottom = x_axis(
        &mut c,
        &x,
        px0,
        px1,
        py1,
        py0,
        "cost per result ($, the billing rule applied to time to result)",
    );
    let at = |p: &(&CellScore, f64, f64)| (x.at(p.1, px0, px1), y.at(p.2, py0, py1));

    // The front as the step it is: from each point, across to the next one's cost, then
    // down to its time.
    let mut front: Vec<&(&CellScore, f64, f64)> = pts.iter().filter(|p| p.0.pareto).collect();
    front.sort_by(|a, b| a.1.total_cmp(&b.1).then(b.2.total_cmp(&a.2)));
    if front.len() > 1 {
        let mut path = Vec::new();
        for (i, p) in front.iter().enumerate() {
            let (px, py) = at(p);
            if i > 0 {
                path.push((px, path.last().map_or(py, |l: &(f64, f64)| l.1)));
            }
            path.push((px, py));
        }
        c.line(&path, Rgb::FRONT, 2);
    }
    let mut obstacles: Vec<[f64; 4]> = Vec::new();
    for p in &pts {
        let (px, py) = at(p);
        let mark = arch_mark(p.0.cell.arch);
        c.marker(px, py, mark, cloud_color(p.0.cell.cloud), 5, p.0.pareto);
        let m = if p.0.pareto { 10.0 } else { 6.0 };
        obstacles.push([px - m, py - m, px + m, py + m]);
        c.hits.push(Hit {
            cell_id: p.0.cell.id.clone(),
            x0: (px - 7.0) as i32,
            y0: (py - 7.0) as i32,
            x1: (px + 7.0) as i32,
            y1: (py + 7.0) as i32,
            round: true,
            title: format!(
                "{} ({}, {}): {} per result, {} to result",
                label(p.0),
                p.0.cell.cloud,
                p.0.cell.arch.as_str(),
                usd_f(p.1),
                super::units::secs(p.2)
            ),
        });
    }
    // Labels: every point when few, else the front only; each in the first of eight
    // spots around its point that stays in the plot and clear of every marker and label.
    let crowded = pts.len() > MAX_LABELLED;
    let mut labelled = 0;
    let mut order: Vec<&(&CellScore, f64, f64)> = pts.iter().collect();
    order.sort_by_key(|p| !p.0.pareto);
    for p in order {
        if crowded && !p.0.pareto {
            continue;
        }
        let (px, py) = at(p);
        let l = label(p.0);
        let w = text_width(&l, LABEL_PX);
        let h = LABEL_PX;
        let spots = [
            (px + 12.0, py, Anchor::Start),
            (px - 12.0, py, Anchor::End),
            (px + 6.0, py - 13.0, Anchor::Start),
            (px + 6.0, py + 13.0, Anchor::Start),
            (px - 6.0, py - 13.0, Anchor::End),
            (px - 6.0, py + 13.0, Anchor::End),
            (px, py - 18.0, Anchor::Middle),
            (px, py + 18.0, Anchor::Middle),
        ];
        let bx = |(lx, ly, a): (f64, f64, Anchor)| {
            let x0 = match a {
                Anchor::Start => lx,
                Anchor::Middle => lx - w / 2.0,
                Anchor::End => lx - w,
            };
            [x0, ly - h / 2.0, x0 + w, ly + h / 2.0]
        };
        let free = |b: &[f64; 4]| {
            b[0] >= px0 + 2.0
                && b[2] <= px1
                && b[1] >= py1
                && b[3] <= py0 - 2.0
                && !obstacles.iter().any(|o| overlaps(o, b))
        };
        if let Some(spot) = spots.iter().copied().find(|s| free(&bx(*s))) {
            obstacles.push(bx(spot));
            c.text(spot.0, spot.1, l, LABEL_PX, spot.2, Rgb::BLACK);
            labelled += 1;
        }
    }
    let cells: Vec<&CellScore> = pts.iter().map(|p| p.0).collect();
    let mut end = c.legend(&legend_items(&cells, true), bottom);
    if labelled < pts.len() {
        c.text(
            16.0,
            end,
            format!(
                "{labelled} of {} points labelled (a ringed point is on the front); hover a point, or see the table, for the others",
                pts.len()
            ),
            NOTE_PX,
            Anchor::Start,
            Rgb::GREY,
        );
        end += 20.0;
    }
    c.h = (end + 4.0) as u32;
    c
}

fn overlaps(a: &[f64; 4], b: &[f64; 4]) -> bool {
    a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]
}

fn min_max(v: impl Iterator<Item = f64>) -> (f64, f64) {
    v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)))
}

/// Rows of a horizontal chart: label column, plot, value column; `rows` cells best first.
struct Rows {
    top: f64,
    px0: f64,
    px1: f64,
    step: f64,
    labels: Vec<String>,
}

const ROW: f64 = 20.0;

fn rows_layout(c: &mut Chart, cells: &[&CellScore], top: f64, value_w: f64) -> Rows {
    let max_label = 260.0;
    let labels: Vec<String> = cells
        .iter()
        .map(|x| {
            let mut l = label(x);
            if x.pareto {
                l.push_str(" *");
            }
            fit_text(&l, LABEL_PX, max_label)
        })
        .collect();
    let lw = labels.iter().map(|l| text_width(l, LABEL_PX)).fold(0.0, f64::max);
    let px0 = 16.0 + lw + 10.0;
    let px1 = f64::from(W) - 16.0 - value_w;
    for (i, l) in labels.iter().enumerate() {
        let y = top + (i as f64 + 0.5) * ROW;
        c.text(px0 - 8.0, y, l.clone(), LABEL_PX, Anchor::End, Rgb::BLACK);
    }
    Rows {
        top,
        px0,
        px1,
        step: ROW,
        labels,
    }
}

fn shown_note(c: &mut Chart, shown: usize, all: usize, y: f64) -> f64 {
    if shown < all {
        c.text(
            16.0,
            y,
            format!("the best {shown} of {all} cells; the table lists every cell"),
            NOTE_PX,
            Anchor::Start,
            Rgb::GREY,
        );
        y + 20.0
    } else {
        y
    }
}

/// Work per dollar, one bar per cell, best first, in "<unit> per $".
pub fn bars(s: &Scores) -> Chart {
    let mut c = Chart::new("work-per-dollar");
    let unit = work_unit(&s.metric);
    let top = c.heading(
        &format!("{}: work per dollar ({unit} per $)", s.name),
        "what one dollar buys at the hourly price frozen at launch; longer is better; * on the Pareto front",
    );
    let all: Vec<&CellScore> = s
        .by_work()
        .into_iter()
        .filter(|c| c.work_per_dollar.is_some())
        .collect();
    if all.is_empty() {
        no_data(&mut c, top);
        return c;
    }
    let cells: Vec<&CellScore> = all.iter().copied().take(MAX_ROWS).collect();
    let vals: Vec<f64> = cells.iter().map(|c| c.work_per_dollar.unwrap_or(0.0)).collect();
    let value_w = vals.iter().map(|v| text_width(&si(*v), LABEL_PX)).fold(0.0, f64::max) + 26.0;
    let r = rows_layout(&mut c, &cells, top + 4.0, value_w);
    let bottom_y = r.top + r.step * cells.len() as f64;
    let (x, px1) = fitted_x(
        0.0,
        vals.iter().fold(0.0, |m: f64, v| m.max(*v)),
        true,
        r.px0,
        r.px1,
        true,
        "",
    );
    let r = Rows { px1, ..r };
    // The grid first, so the bars lie on it.
    let bottom = x_axis(&mut c, &x, r.px0, r.px1, r.top, bottom_y, &format!("{unit} per $"));
    for (i, (cell, v)) in cells.iter().zip(&vals).enumerate() {
        let y = r.top + i as f64 * r.step;
        let x1 = x.at(*v, r.px0, r.px1);
        c.rect(r.px0, y + 3.0, x1, y + r.step - 3.0, cloud_color(cell.cell.cloud));
        c.marker(
            x1 + 8.0,
            y + r.step / 2.0,
            arch_mark(cell.cell.arch),
            Rgb::GREY,
            4,
            false,
        );
        c.text(x1 + 16.0, y + r.step / 2.0, si(*v), LABEL_PX, Anchor::Start, Rgb::BLACK);
        c.hits.push(Hit {
            cell_id: cell.cell.id.clone(),
            x0: r.px0 as i32,
            y0: (y + 2.0) as i32,
            x1: x1.max(r.px0 + 2.0) as i32,
            y1: (y + r.step - 2.0) as i32,
            round: false,
            title: format!("{}: {}", r.labels[i], super::units::work_per_dollar(*v, &s.metric)),
        });
    }
    let end = c.legend(&legend_items(&cells, false), bottom);
    let end = shown_note(&mut c, cells.len(), all.len(), end);
    c.h = (end + 4.0) as u32;
    c
}

/// Each cell's repetitions: every run a dot, the range a line, the median a bar.
pub fn repetitions(s: &Scores) -> Chart {
    let mut c = Chart::new("repetitions");
    let what = if s.metric.source == MetricSource::WallTime {
        "run time (s)".to_string()
    } else if s.metric.unit.is_empty() {
        s.metric.name.clone()
    } else {
        format!("{} ({})", s.metric.name, s.metric.unit)
    };
    let top = c.heading(
        &format!("{}: the repetitions behind each median", s.name),
        &format!("{what}: each dot a run, the line their range, the bar the median"),
    );
    let all: Vec<&CellScore> = s
        .by_work()
        .into_iter()
        .filter(|c| !c.metric_values.is_empty())
        .collect();
    if all.is_empty() {
        no_data(&mut c, top);
        return c;
    }
    let cells: Vec<&CellScore> = all.iter().copied().take(MAX_ROWS).collect();
    let (lo, hi) = min_max(cells.iter().flat_map(|c| c.metric_values.iter().copied()));
    let r = rows_layout(&mut c, &cells, top + 4.0, 80.0);
    let (x, px1) = fitted_x(lo, hi, false, r.px0, r.px1, true, "");
    let r = Rows { px1, ..r };
    let bottom_y = r.top + r.step * cells.len() as f64;
    let bottom = x_axis(&mut c, &x, r.px0, r.px1, r.top, bottom_y, &what);
    for (i, cell) in cells.iter().enumerate() {
        let ym = r.top + (i as f64 + 0.5) * r.step;
        let (a, b) = min_max(cell.metric_values.iter().copied());
        let (xa, xb) = (x.at(a, r.px0, r.px1), x.at(b, r.px0, r.px1));
        c.line(&[(xa, ym), (xb, ym)], Rgb::RANGE, 2);
        let color = cloud_color(cell.cell.cloud);
        for v in &cell.metric_values {
            c.marker(x.at(*v, r.px0, r.px1), ym, arch_mark(cell.cell.arch), color, 3, false);
        }
        let med = cell.metric.map_or(a, |m| m.median);
        let xm = x.at(med, r.px0, r.px1);
        c.rect(xm - 1.0, ym - 7.0, xm + 1.0, ym + 7.0, Rgb::BLACK);
        let spread = cell.metric.map_or(0.0, |m| m.spread_percent());
        c.text(
            r.px1 + 10.0,
            ym,
            format!("±{spread:.1}%"),
            LABEL_PX,
            Anchor::Start,
            Rgb::GREY,
        );
        c.hits.push(Hit {
            cell_id: cell.cell.id.clone(),
            x0: (xa - 4.0) as i32,
            y0: (ym - 8.0) as i32,
            x1: (xb + 4.0) as i32,
            y1: (ym + 8.0) as i32,
            round: false,
            title: format!(
                "{}: {} runs, median {}, {}–{}, ±{spread:.1}%",
                r.labels[i],
                cell.metric_values.len(),
                super::units::metric(med, &s.metric),
                si(a),
                si(b)
            ),
        });
    }
    let end = c.legend(&legend_items(&cells, false), bottom);
    let end = shown_note(&mut c, cells.len(), all.len(), end);
    c.h = (end + 4.0) as u32;
    c
}

pub const SPLIT_COLORS: [(Rgb, &str); 4] = [
    (Rgb(0xa6, 0xce, 0xe3), "boot"),
    (Rgb(0x1f, 0x78, 0xb4), "setup"),
    (Rgb(0x33, 0xa0, 0x2c), "run"),
    (Rgb(0xfb, 0x9a, 0x99), "billing minimum and rounding"),
];

/// What each cell was billed, split into boot, setup, run and what the billing rule added.
pub fn cost_split(s: &Scores) -> Chart {
    let mut c = Chart::new("cost-split");
    let top = c.heading(
        &format!("{}: what each cell was billed, by phase", s.name),
        "boot, setup and the runs at the price frozen at launch, plus what the billing minimum added",
    );
    let all: Vec<&CellScore> = s
        .by_work()
        .into_iter()
        .filter(|c| c.billed_split.is_some() && !c.billed.is_zero())
        .collect();
    if all.is_empty() {
        no_data(&mut c, top);
        return c;
    }
    let items: Vec<(LegendKey, String)> = SPLIT_COLORS
        .iter()
        .map(|(c, l)| (LegendKey::Swatch(*c), (*l).to_string()))
        .collect();
    let top = c.legend(&items, top + 4.0);
    let cells: Vec<&CellScore> = all.iter().copied().take(MAX_ROWS).collect();
    let totals: Vec<f64> = cells.iter().map(|c| f(c.billed)).collect();
    let value_w = totals
        .iter()
        .map(|v| text_width(&usd_f(*v), LABEL_PX))
        .fold(0.0, f64::max)
        + 14.0;
    let r = rows_layout(&mut c, &cells, top, value_w);
    let (x, px1) = fitted_x(
        0.0,
        totals.iter().fold(0.0, |m: f64, v| m.max(*v)),
        true,
        r.px0,
        r.px1,
        false,
        "$",
    );
    let r = Rows { px1, ..r };
    let bottom_y = r.top + r.step * cells.len() as f64;
    let bottom = x_axis(&mut c, &x, r.px0, r.px1, r.top, bottom_y, "billed ($)");
    for (i, cell) in cells.iter().enumerate() {
        let y = r.top + i as f64 * r.step;
        let sp = cell.billed_split.unwrap_or_default();
        let parts = [f(sp.boot), f(sp.setup), f(sp.run), f(sp.minimum)];
        let mut acc = 0.0;
        for (v, (color, _)) in parts.iter().zip(SPLIT_COLORS) {
            if *v > 0.0 {
                let (a, b) = (x.at(acc, r.px0, r.px1), x.at(acc + v, r.px0, r.px1));
                c.rect(a, y + 3.0, b, y + r.step - 3.0, color);
            }
            acc += v;
        }
        let x1 = x.at(totals[i], r.px0, r.px1);
        c.text(
            x1 + 6.0,
            y + r.step / 2.0,
            usd_f(totals[i]),
            LABEL_PX,
            Anchor::Start,
            Rgb::BLACK,
        );
        let share = |v: f64| if totals[i] > 0.0 { 100.0 * v / totals[i] } else { 0.0 };
        c.hits.push(Hit {
            cell_id: cell.cell.id.clone(),
            x0: r.px0 as i32,
            y0: (y + 2.0) as i32,
            x1: x1.max(r.px0 + 2.0) as i32,
            y1: (y + r.step - 2.0) as i32,
            round: false,
            title: format!(
                "{}: billed {} = boot {} + setup {} + run {} + minimum {} ({:.0}% minimum)",
                r.labels[i],
                usd_f(totals[i]),
                usd_f(parts[0]),
                usd_f(parts[1]),
                usd_f(parts[2]),
                usd_f(parts[3]),
                share(parts[3])
            ),
        });
    }
    let end = shown_note(&mut c, cells.len(), all.len(), bottom);
    c.h = (end + 4.0) as u32;
    c
}

/// Every chart of a report, in the page's order.
pub fn all(s: &Scores) -> Vec<Chart> {
    vec![scatter(s), bars(s), repetitions(s), cost_split(s)]
}

fn color(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

fn paint<DB: DrawingBackend>(root: DrawingArea<DB, plotters::coord::Shift>, chart: &Chart) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    for s in &chart.shapes {
        match s {
            Shape::Rect { x0, y0, x1, y1, fill } => {
                root.draw(&Rectangle::new([(*x0, *y0), (*x1, *y1)], color(*fill).filled()))
                    .map_err(e)?;
            }
            Shape::Line { pts, color: c, width } => {
                root.draw(&PathElement::new(pts.clone(), color(*c).stroke_width(*width)))
                    .map_err(e)?;
            }
            Shape::Marker {
                x,
                y,
                mark,
                color: c,
                r,
                ring,
            } => {
                let style = color(*c).filled();
                match mark {
                    Mark::Circle => root.draw(&Circle::new((*x, *y), *r, style)).map_err(e)?,
                    Mark::Triangle => {
                        let r1 = *r + 1;
                        let pts = vec![(*x, *y - r1), (*x + r1, *y + r1 - 1), (*x - r1, *y + r1 - 1)];
                        root.draw(&Polygon::new(pts, style)).map_err(e)?;
                    }
                }
                if *ring {
                    root.draw(&Circle::new((*x, *y), *r + 3, color(Rgb::FRONT).stroke_width(2)))
                        .map_err(e)?;
                }
            }
            Shape::Text {
                x,
                y,
                s,
                px,
                anchor,
                color: c,
            } => {
                let h = match anchor {
                    Anchor::Start => HPos::Left,
                    Anchor::Middle => HPos::Center,
                    Anchor::End => HPos::Right,
                };
                // plotters writes font-size = size / 1.24 into the SVG.
                let font = FontDesc::new(FontFamily::SansSerif, px * 1.24, FontStyle::Normal);
                let rgb = color(*c);
                let style = TextStyle::from(font).color(&rgb).pos(Pos::new(h, VPos::Center));
                root.draw(&Text::new(s.as_str(), (*x, *y), style)).map_err(e)?;
            }
        }
    }
    root.present().map_err(e)?;
    Ok(())
}

/// The chart as an SVG document: plotters' drawing, then a layer of hit areas, one per
/// cell, each with a `<title>` (shown on hover) and, when `linked`, a link to the cell's
/// table row (`#cell-ID`) on the page.
pub fn svg(chart: &Chart, linked: bool) -> String {
    register_font();
    let mut out = String::new();
    {
        let backend = SVGBackend::with_string(&mut out, (chart.w, chart.h.max(1)));
        paint(backend.into_drawing_area(), chart).expect("drawing into a string cannot fail");
    }
    let mut layer = String::from("<g class=\"hits\" fill=\"#000\" fill-opacity=\"0\">\n");
    for h in &chart.hits {
        let id = format!("{}-{}", chart.name, super::escape(&h.cell_id));
        let shape = if h.round {
            format!(
                "<circle id=\"{id}\" cx=\"{}\" cy=\"{}\" r=\"{}\">",
                (h.x0 + h.x1) / 2,
                (h.y0 + h.y1) / 2,
                (h.x1 - h.x0) / 2
            )
        } else {
            format!(
                "<rect id=\"{id}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\">",
                h.x0,
                h.y0,
                (h.x1 - h.x0).max(1),
                (h.y1 - h.y0).max(1)
            )
        };
        let close = if h.round { "</circle>" } else { "</rect>" };
        let title = format!("<title>{}</title>", super::escape(&h.title));
        if linked {
            layer.push_str(&format!(
                "<a href=\"#cell-{}\">{shape}{title}{close}</a>\n",
                super::escape(&h.cell_id)
            ));
        } else {
            layer.push_str(&format!("{shape}{title}{close}\n"));
        }
    }
    layer.push_str("</g>\n");
    match out.rfind("</svg>") {
        Some(i) => out.insert_str(i, &layer),
        None => out.push_str(&layer),
    }
    out
}

/// The chart as a PNG (RGB, DejaVu Sans).
pub fn png(chart: &Chart) -> Vec<u8> {
    register_font();
    let (w, h) = (chart.w, chart.h.max(1));
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    {
        let backend = BitMapBackend::with_buffer(&mut buf, (w, h));
        paint(backend.into_drawing_area(), chart).expect("drawing into a buffer cannot fail");
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut wr = enc.write_header().expect("a PNG header into memory");
        wr.write_image_data(&buf).expect("PNG data into memory");
    }
    out
}
