//! What a sighting or an end does to the record, independent of storage: states only
//! move forward, the first price is kept, and batch launch ids fold into their launch.

use chrono::{DateTime, Utc};
use herd_core::{Instance, InstanceState};

/// How a sighting relates to what the ledger already holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Never seen: insert, with a first state change.
    First,
    /// A later state: update and record the transition from the old state.
    Forward(InstanceState),
    /// The state we have: refresh what may change (addresses, tags), keep the rest.
    Same,
    /// An earlier state than recorded (a stale list page): ignore entirely.
    Stale,
}

pub(crate) fn step(known: Option<InstanceState>, seen: InstanceState) -> Step {
    match known {
        None => Step::First,
        Some(k) if seen > k => Step::Forward(k),
        Some(k) if seen == k => Step::Same,
        Some(_) => Step::Stale,
    }
}

/// When a terminated sighting stopped billing: what the cloud says, else now -- but not
/// past the deadline the cloud enforces, and never before the launch.
pub(crate) fn ended_at(seen: &Instance, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (seen.state == InstanceState::Terminated).then(|| {
        seen.ended_at
            .unwrap_or_else(|| now.min(seen.deadline))
            .max(seen.launched_at)
    })
}

/// The earlier of two end instants (an instance ends once).
pub(crate) fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// When to date a transition the cloud gives no instant for: the launch for a first
/// sighting, the end for a termination, otherwise now.
pub(crate) fn change_at(
    step: Step,
    seen: &Instance,
    ended: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match (seen.state, ended) {
        (InstanceState::Terminated, Some(e)) => e,
        _ if step == Step::First => seen.launched_at,
        _ => now.max(seen.launched_at),
    }
}

/// Launch ids an instance's reported launch id may belong to, most specific first: the
/// id itself, then without the Launcher's `-od` (on-demand fallback) and `-b<N>` (batch)
/// suffixes.
pub(crate) fn launch_candidates(id: &str) -> Vec<&str> {
    let mut out = vec![id];
    let mut cur = id;
    if let Some(s) = cur.strip_suffix("-od") {
        out.push(s);
        cur = s;
    }
    if let Some((root, n)) = cur.rsplit_once("-b") {
        if !root.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            out.push(root);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceState::*;

    #[test]
    fn states_only_move_forward() {
        assert_eq!(step(None, Running), Step::First);
        assert_eq!(step(Some(Pending), Running), Step::Forward(Pending));
        assert_eq!(step(Some(Running), Running), Step::Same);
        assert_eq!(step(Some(Terminated), Running), Step::Stale);
        assert_eq!(step(Some(ShuttingDown), Pending), Step::Stale);
    }

    #[test]
    fn batch_ids_fold_into_their_launch() {
        assert_eq!(launch_candidates("l-1"), vec!["l-1"]);
        assert_eq!(launch_candidates("l-1-b3"), vec!["l-1-b3", "l-1"]);
        assert_eq!(launch_candidates("l-1-b3-od"), vec!["l-1-b3-od", "l-1-b3", "l-1"]);
        assert_eq!(launch_candidates("l-1-od"), vec!["l-1-od", "l-1"]);
        assert_eq!(launch_candidates("job-big"), vec!["job-big"]);
        assert_eq!(launch_candidates("-b1"), vec!["-b1"]);
    }

    #[test]
    fn earliest_end_wins() {
        let t = DateTime::from_timestamp(100, 0).unwrap();
        let u = DateTime::from_timestamp(50, 0).unwrap();
        assert_eq!(earliest(Some(t), Some(u)), Some(u));
        assert_eq!(earliest(None, Some(t)), Some(t));
        assert_eq!(earliest(None, None), None);
    }
}
