//! The two charts of a report, drawn on any [`Canvas`]: cost per result against
//! time-to-result with the Pareto front joined up, and work per dollar as bars.

use rust_decimal::prelude::ToPrimitive;

use super::canvas::{text_width, Anchor, Canvas, Rgb};
use super::label;
use crate::score::{CellScore, Scores};

pub const W: u32 = 860;
pub const H: u32 = 520;

/// Plot area margins: left, right, top, bottom.
const M: (f64, f64, f64, f64) = (90.0, 30.0, 60.0, 70.0);

pub fn scatter(c: &mut dyn Canvas, s: &Scores) {
    let pts: Vec<(&CellScore, f64, f64)> = s
        .cells
        .iter()
        .filter_map(|c| Some((c, c.cost_per_result?.amount.to_f64()?, c.time_to_result_s?)))
        .collect();
    title(
        c,
        &format!("{}: cost vs time to result", s.name),
        "red: Pareto front (nothing is both cheaper and faster)",
    );
    if pts.is_empty() {
        c.text(
            f64::from(W) / 2.0,
            f64::from(H) / 2.0,
            "no finished cells",
            Anchor::Middle,
            2,
            Rgb::GREY,
        );
        return;
    }
    let (x0, x1) = span(pts.iter().map(|p| p.1));
    let (y0, y1) = span(pts.iter().map(|p| p.2));
    let (px0, px1, py0, py1) = (M.0, f64::from(W) - M.1, f64::from(H) - M.3, M.2);
    let fx = |x: f64| px0 + (x - x0) / (x1 - x0) * (px1 - px0);
    let fy = |y: f64| py0 - (y - y0) / (y1 - y0) * (py0 - py1);
    axes(
        c,
        (x0, x1),
        (y0, y1),
        "cost per result (USD)",
        "time to result (s)",
        &|v| money_tick(v),
        &|v| num(v),
    );
    let mut front: Vec<&(&CellScore, f64, f64)> = pts.iter().filter(|p| p.0.pareto).collect();
    front.sort_by(|a, b| a.1.total_cmp(&b.1));
    for w in front.windows(2) {
        c.line(fx(w[0].1), fy(w[0].2), fx(w[1].1), fy(w[1].2), Rgb::RED, 2.0);
    }
    // Labels go where they overlap no earlier label: right or left, above or below.
    let mut placed: Vec<(f64, f64, f64)> = Vec::new();
    for (cell, x, y) in &pts {
        let color = if cell.pareto { Rgb::RED } else { Rgb::BLUE };
        let (cx, cy) = (fx(*x), fy(*y));
        c.circle(cx, cy, 5.0, color);
        let l = label(cell);
        let w = text_width(&l, 1);
        let spots = [
            (cx + 8.0, cy - 9.0),
            (cx + 8.0, cy + 10.0),
            (cx - 8.0 - w, cy - 9.0),
            (cx - 8.0 - w, cy + 10.0),
        ];
        let fits = |&(lx, ly): &(f64, f64)| {
            lx >= px0
                && lx + w <= px1
                && !placed
                    .iter()
                    .any(|&(ax, ay, aw)| lx < ax + aw && ax < lx + w && (ly - ay).abs() < 10.0)
        };
        let (lx, ly) = spots.iter().copied().find(|s| fits(s)).unwrap_or(spots[0]);
        placed.push((lx, ly, w));
        c.text(lx, ly, &l, Anchor::Start, 1, Rgb::BLACK);
    }
}

pub fn bars(c: &mut dyn Canvas, s: &Scores) {
    let mut rows: Vec<(&CellScore, f64)> = s.cells.iter().filter_map(|c| Some((c, c.work_per_dollar?))).collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let unit = if s.metric.source == crate::spec::MetricSource::WallTime {
        "runs"
    } else {
        "units of work"
    };
    title(
        c,
        &format!("{}: work per dollar", s.name),
        &format!("{unit} per USD at the price frozen at launch; longer is better; red: on the Pareto front"),
    );
    if rows.is_empty() {
        c.text(
            f64::from(W) / 2.0,
            f64::from(H) / 2.0,
            "no finished cells",
            Anchor::Middle,
            2,
            Rgb::GREY,
        );
        return;
    }
    let left = rows.iter().map(|r| text_width(&label(r.0), 1)).fold(0.0, f64::max) + 20.0;
    let (px0, px1, top) = (left, f64::from(W) - 110.0, M.2 + 10.0);
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let step = ((f64::from(H) - top - 30.0) / rows.len() as f64).min(36.0);
    let bar = (step * 0.7).max(2.0);
    for (i, (cell, v)) in rows.iter().enumerate() {
        let y = top + i as f64 * step;
        let w = (v / max * (px1 - px0)).max(1.0);
        let color = if cell.pareto { Rgb::RED } else { Rgb::GREEN };
        c.rect(px0, y, w, bar, color);
        if step >= 10.0 {
            c.text(px0 - 8.0, y + bar / 2.0, &label(cell), Anchor::End, 1, Rgb::BLACK);
            c.text(px0 + w + 6.0, y + bar / 2.0, &num(*v), Anchor::Start, 1, Rgb::BLACK);
        }
    }
    c.line(px0, top - 4.0, px0, top + rows.len() as f64 * step, Rgb::BLACK, 1.0);
}

fn title(c: &mut dyn Canvas, t: &str, sub: &str) {
    c.text(f64::from(W) / 2.0, 20.0, t, Anchor::Middle, 2, Rgb::BLACK);
    c.text(f64::from(W) / 2.0, 42.0, sub, Anchor::Middle, 1, Rgb::GREY);
}

#[allow(clippy::too_many_arguments)]
fn axes(
    c: &mut dyn Canvas,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    xl: &str,
    yl: &str,
    xf: &dyn Fn(f64) -> String,
    yf: &dyn Fn(f64) -> String,
) {
    let (px0, px1, py0, py1) = (M.0, f64::from(W) - M.1, f64::from(H) - M.3, M.2);
    for i in 0..=4 {
        let t = f64::from(i) / 4.0;
        let x = px0 + t * (px1 - px0);
        let y = py0 - t * (py0 - py1);
        c.line(x, py1, x, py0, Rgb::LIGHT, 1.0);
        c.line(px0, y, px1, y, Rgb::LIGHT, 1.0);
        c.text(x, py0 + 14.0, &xf(x0 + t * (x1 - x0)), Anchor::Middle, 1, Rgb::BLACK);
        c.text(px0 - 6.0, y, &yf(y0 + t * (y1 - y0)), Anchor::End, 1, Rgb::BLACK);
    }
    c.line(px0, py0, px1, py0, Rgb::BLACK, 1.0);
    c.line(px0, py0, px0, py1, Rgb::BLACK, 1.0);
    c.text((px0 + px1) / 2.0, py0 + 40.0, xl, Anchor::Middle, 1, Rgb::BLACK);
    c.text(px0 - 6.0, py1 - 14.0, yl, Anchor::Middle, 1, Rgb::BLACK);
}

/// A range with 8 % air on each side (and some width when all values are equal).
fn span(v: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let lo = v.clone().fold(f64::INFINITY, f64::min);
    let hi = v.fold(f64::NEG_INFINITY, f64::max);
    let pad = if hi > lo {
        (hi - lo) * 0.08
    } else {
        lo.abs().max(1e-9) * 0.1
    };
    ((lo - pad).max(0.0), hi + pad)
}

/// Three significant digits, no exponent for everyday magnitudes.
pub fn num(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    if mag >= 6 {
        return format!("{:.2e}", v);
    }
    let decimals = (2 - mag).max(0) as usize;
    format!("{v:.decimals$}")
}

fn money_tick(v: f64) -> String {
    format!("${}", num(v))
}
