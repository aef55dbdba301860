//! The sweep report's speed target (issue 15): writing every format (CSV, JSON, SVG and
//! PNG charts, the HTML page) for a 200-cell sweep in <= 300 ms. The sweep is herd-sweep's
//! fixed fixture (four clouds, two architectures, a failed and a dropped cell), scored
//! once; each run writes the whole report into a fresh directory.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::{median, ms, verdict, Args};

const TARGET: Duration = Duration::from_millis(300);

/// The hand-drawn charts (over `png` and `font8x8`) this report replaced, timed by this
/// same benchmark on main at 6387a5b (release build, this 2-core machine), so the ratio
/// below says how the plotters version compares.
const HAND_DRAWN: Duration = Duration::from_micros(BASELINE_US);
const BASELINE_US: u64 = 9_410;

pub fn bench(a: &Args) -> Result<()> {
    let scores = herd_sweep::fixture::scores(200);
    let runs = a.runs.clamp(3, 20);
    let mut v = Vec::with_capacity(runs);
    let mut files = 0;
    for _ in 0..runs {
        let dir = tempfile::tempdir()?;
        let t = Instant::now();
        files = herd_sweep::report::write_all(&scores, dir.path())?.len();
        v.push(t.elapsed());
    }
    let m = median(v);
    let vs_old = if HAND_DRAWN.is_zero() {
        String::new()
    } else {
        format!(
            " | hand-drawn version {} ({:.2}x)",
            ms(HAND_DRAWN),
            m.as_secs_f64() / HAND_DRAWN.as_secs_f64()
        )
    };
    println!(
        "report   200-cell sweep, all formats ({files} files), median of {runs}: {} | target {} ({:.3}x){vs_old}  {}",
        ms(m),
        ms(TARGET),
        m.as_secs_f64() / TARGET.as_secs_f64(),
        verdict(m <= TARGET)
    );
    Ok(())
}
