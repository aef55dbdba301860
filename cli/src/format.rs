//! Small human renderings shared by the commands: ages, time left, prices, states.

use std::time::Duration;

use chrono::{DateTime, Utc};
use herd_core::{Instance, InstanceState, Money};

use crate::printer::{styled, Cell, Style};

/// `45s`, `12m`, `2h05m`, `3d04h`: two units at most, for table columns.
pub fn compact(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn since(earlier: DateTime<Utc>, later: DateTime<Utc>) -> Duration {
    (later - earlier).to_std().unwrap_or(Duration::ZERO)
}

pub fn age(i: &Instance, now: DateTime<Utc>) -> String {
    compact(since(i.launched_at, i.ended_at.unwrap_or(now)))
}

/// Time left before the deadline for live instances; `-` once ended.
pub fn time_left(i: &Instance, now: DateTime<Utc>) -> Cell {
    if !i.state.is_live() {
        return styled("-", Style::Dim);
    }
    if i.deadline <= now {
        return styled("overdue", Style::Red);
    }
    let left = since(now, i.deadline);
    let text = format!("{} left", compact(left));
    if left < Duration::from_secs(600) {
        styled(text, Style::Yellow)
    } else {
        text.into()
    }
}

pub fn state(i: &Instance) -> Cell {
    let text = match &i.state_reason {
        Some(r) if !r.is_empty() && r != i.state.as_str() => format!("{} ({r})", i.state),
        _ => i.state.to_string(),
    };
    let style = match i.state {
        InstanceState::Running => Style::Green,
        InstanceState::Pending => Style::Yellow,
        InstanceState::ShuttingDown => Style::Yellow,
        InstanceState::Terminated => Style::Dim,
    };
    styled(text, style)
}

/// `local-east-1a` stays as is; a zone that does not repeat the region gets it prefixed.
pub fn place(i: &Instance) -> String {
    if i.zone.is_empty() {
        i.region.clone()
    } else if i.zone.starts_with(&i.region) {
        i.zone.clone()
    } else {
        format!("{}/{}", i.region, i.zone)
    }
}

pub fn cluster(i: &Instance) -> String {
    i.tag(herd_core::tags::CLUSTER).unwrap_or("-").to_string()
}

/// `2026-01-31 14:05 UTC`.
pub fn instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `2026-01-31 14:05:09 UTC`, for events where seconds matter.
pub fn instant_secs(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The instance table `ls`, `launch` and `down` share.
pub fn instance_table(instances: &[Instance], now: DateTime<Utc>) -> crate::printer::Table {
    let mut t = crate::printer::Table::new(&[
        "ID", "CLOUD", "TYPE", "ZONE", "STATE", "PURCHASE", ">$/H", ">AGE", "DEADLINE", "CLUSTER",
    ]);
    for i in instances {
        t.row(vec![
            i.id.clone().into(),
            i.cloud.to_string().into(),
            i.instance_type.clone().into(),
            place(i).into(),
            state(i),
            i.purchase.to_string().into(),
            i.hourly_price.to_string().into(),
            age(i, now).into(),
            time_left(i, now),
            cluster(i).into(),
        ]);
    }
    t
}

/// Summed hourly price.
pub fn total_hourly<'a>(instances: impl IntoIterator<Item = &'a Instance>) -> Money {
    instances.into_iter().map(|i| i.hourly_price).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_durations() {
        assert_eq!(compact(Duration::from_secs(45)), "45s");
        assert_eq!(compact(Duration::from_secs(125)), "2m");
        assert_eq!(compact(Duration::from_secs(7500)), "2h05m");
        assert_eq!(compact(Duration::from_secs(3 * 86_400 + 4 * 3600 + 59)), "3d04h");
    }
}
