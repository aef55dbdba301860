//! The chatty-log warning after `exec`, `logs` and `ls`: each instance's output rate, as the
//! guest measured it (herd-guest's `lograte`), read with one small `exec`, and a warning
//! with the projection over the fleet and the deadline when it is over `[logs]
//! warn_mb_per_min`. Never fails the command: a VM that cannot say is skipped. What herd
//! itself carried (an `exec`'s or a sweep command's own output) is measured here too.

use std::time::Duration;

use chrono::Utc;
use herd_core::{ExecRequest, Instance, Launcher};
use herd_guest::lograte::{Rate, Warning, MIN_WINDOW_SECS, PROBE};

use crate::clouds;
use crate::context::Context;

/// How long one probe may take (it only reads a small file).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Warnings for the `targets` over the threshold, loudest first. `fleet` is how many
/// instances share each one's cluster (the projection's multiplier).
pub async fn check(ctx: &Context, targets: &[(&Launcher, Instance)], fleet: usize) -> Vec<Warning> {
    let each: Vec<(&Launcher, Instance, usize)> = targets.iter().map(|(l, i)| (*l, i.clone(), fleet)).collect();
    check_each(ctx, &each).await
}

/// [`check`] with a fleet size per target (`herd ls`: one instance per cluster stands
/// for its cluster).
pub async fn check_each(ctx: &Context, targets: &[(&Launcher, Instance, usize)]) -> Vec<Warning> {
    let threshold = ctx.settings.log_warn_mb_per_min;
    if threshold <= 0.0 || targets.is_empty() {
        return Vec::new();
    }
    let req = ExecRequest::new(PROBE).timeout(PROBE_TIMEOUT);
    let probes = targets.iter().map(|(l, i, fleet)| {
        let req = &req;
        async move {
            let out = tokio::time::timeout(PROBE_TIMEOUT, l.exec(&i.id, req))
                .await
                .ok()?
                .ok()?;
            Some((i, *fleet, Rate::parse(&out.stdout)?))
        }
    });
    let now = Utc::now();
    let mut out: Vec<Warning> = clouds::join_all(probes.collect())
        .await
        .into_iter()
        .flatten()
        .filter_map(|(i, fleet, rate)| {
            let remaining = (i.deadline - now).to_std().unwrap_or_default();
            Warning::assess(&i.id, &rate, threshold, fleet, remaining, i.cloud)
        })
        .collect();
    out.sort_by(|a, b| b.mb_per_min.total_cmp(&a.mb_per_min));
    out
}

/// A warning from one command's own output: `bytes` over its `wall`, once that is long
/// enough to be a rate (the guest's shortest window), projected over `fleet` instances
/// writing as fast until `inst`'s deadline.
pub fn from_output(threshold: f64, inst: &Instance, bytes: u64, wall: Duration, fleet: usize) -> Option<Warning> {
    if wall < Duration::from_secs(MIN_WINDOW_SECS) {
        return None;
    }
    let now = Utc::now();
    let rate = Rate {
        bytes,
        window: wall,
        at: now.timestamp(),
    };
    let remaining = (inst.deadline - now).to_std().unwrap_or_default();
    Warning::assess(&inst.id, &rate, threshold, fleet, remaining, inst.cloud)
}

/// One warning per instance (the louder of two measurements), loudest first.
pub fn merge(mut warnings: Vec<Warning>) -> Vec<Warning> {
    warnings.sort_by(|a, b| b.mb_per_min.total_cmp(&a.mb_per_min));
    let mut seen = std::collections::BTreeSet::new();
    warnings.retain(|w| seen.insert(w.instance.clone()));
    warnings
}

/// Prints the loudest warning in full, and how many more are over the threshold.
pub fn print(ctx: &Context, warnings: &[Warning]) {
    let Some(first) = warnings.first() else { return };
    ctx.printer.warn(first.message());
    if warnings.len() > 1 {
        ctx.printer.warn(format!(
            "{} more instance(s) write more than {} MB/min",
            warnings.len() - 1,
            first.threshold_mb_per_min
        ));
    }
    ctx.printer.note(format!("hint: {}", Warning::HINT));
}
