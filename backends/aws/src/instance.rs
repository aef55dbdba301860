//! An EC2 instance as a herd [`Instance`]: EC2's fields mapped here, herd's own (price,
//! deadline, launch id, idle timeout) read back from its tags by core's
//! [`tags::read_instance`], so any machine can list and price what another one launched.

use aws_sdk_ec2::types::{Instance as Ec2Instance, InstanceLifecycleType, InstanceStateName};
use chrono::{DateTime, Utc};
use herd_core::{tags, Cloud, Instance, InstanceState, PurchaseOption, Tags};

/// Tag on every launched resource: the launch's fingerprint (core's protocol).
pub use herd_core::tags::SPEC as SPEC_TAG;

pub fn state(s: Option<&InstanceStateName>) -> InstanceState {
    match s {
        Some(InstanceStateName::Pending) => InstanceState::Pending,
        Some(InstanceStateName::Running) => InstanceState::Running,
        // A stopped instance (only possible by hand) still holds its volumes: live, so
        // `down` terminates it and `reap` leaves its volumes alone. Its state reason says
        // "stopped" ([`convert`]), never the shutdown code's "terminated".
        Some(InstanceStateName::Stopping) | Some(InstanceStateName::Stopped) => InstanceState::Running,
        Some(InstanceStateName::ShuttingDown) => InstanceState::ShuttingDown,
        Some(InstanceStateName::Terminated) => InstanceState::Terminated,
        _ => InstanceState::Pending,
    }
}

/// EC2 states that match herd's, for DescribeInstances' `instance-state-name` filter.
pub fn ec2_states(s: InstanceState) -> &'static [&'static str] {
    match s {
        InstanceState::Pending => &["pending"],
        InstanceState::Running => &["running", "stopping", "stopped"],
        InstanceState::ShuttingDown => &["shutting-down"],
        InstanceState::Terminated => &["terminated"],
    }
}

fn ts(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// Converts one instance; `fallback_tags` fill in when the response carries none
/// (RunInstances may omit tags it was given).
pub fn convert(i: &Ec2Instance, region: &str, fallback_tags: Option<&Tags>, now: DateTime<Utc>) -> Instance {
    let mut t: Tags = i
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect();
    if let Some(f) = fallback_tags {
        for (k, v) in f {
            t.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let launched = ts(i.launch_time()).unwrap_or(now);
    let zone = i.placement().and_then(|p| p.availability_zone()).unwrap_or_default();
    let itype = i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default();
    let id = i.instance_id().unwrap_or_default();
    let mut out = tags::read_instance(Cloud::Aws, id, region, zone, itype, launched, t);
    let deadline = out.deadline;
    let ec2_state = i.state().and_then(|s| s.name());
    out.state = state(ec2_state);
    out.state_reason = match ec2_state {
        // EC2 gives a stop the same reason code as a termination: say what it is.
        Some(InstanceStateName::Stopped) => Some("stopped".into()),
        Some(InstanceStateName::Stopping) => Some("stopping".into()),
        _ => i.state_reason().and_then(|r| r.code()).map(reason).or_else(|| {
            i.state_transition_reason()
                .filter(|r| !r.is_empty())
                .map(str::to_string)
        }),
    };
    if out.state == InstanceState::Terminated {
        out.ended_at = transition_time(i.state_transition_reason()).or(Some(now.min(deadline.max(launched))));
    }
    out.purchase = if i.instance_lifecycle() == Some(&InstanceLifecycleType::Spot) {
        PurchaseOption::Spot
    } else {
        PurchaseOption::OnDemand
    };
    out.addresses = [i.public_ip_address(), i.private_ip_address()]
        .into_iter()
        .flatten()
        .map(str::to_string)
        .collect();
    out
}

/// herd's words for EC2's state reason codes.
fn reason(code: &str) -> String {
    match code {
        "Client.InstanceInitiatedShutdown" => "deadline".into(),
        "Client.UserInitiatedShutdown" => "terminated".into(),
        "Server.SpotInstanceTermination" => "spot-interruption".into(),
        "Server.InsufficientInstanceCapacity" => "insufficient-capacity".into(),
        other => other.to_string(),
    }
}

/// The instant in a transition reason like "User initiated (2026-01-02 03:04:05 GMT)".
fn transition_time(reason: Option<&str>) -> Option<DateTime<Utc>> {
    let r = reason?;
    let open = r.find('(')?;
    let close = r[open..].find(')')? + open;
    let inner = r[open + 1..close].trim_end_matches(" GMT");
    chrono::NaiveDateTime::parse_from_str(inner, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_reason_gives_the_end() {
        let t = transition_time(Some("User initiated (2026-01-02 03:04:05 GMT)")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        assert!(transition_time(Some("")).is_none());
    }

    #[test]
    fn state_names_map_in_order() {
        assert_eq!(
            state(Some(&InstanceStateName::ShuttingDown)),
            InstanceState::ShuttingDown
        );
        assert_eq!(state(Some(&InstanceStateName::Terminated)), InstanceState::Terminated);
        assert_eq!(reason("Client.InstanceInitiatedShutdown"), "deadline");
    }

    #[test]
    fn a_stopped_instance_is_live_and_says_stopped_not_terminated() {
        use aws_sdk_ec2::types::{InstanceState as Ec2State, StateReason};
        for (name, word) in [
            (InstanceStateName::Stopped, "stopped"),
            (InstanceStateName::Stopping, "stopping"),
        ] {
            let i = Ec2Instance::builder()
                .instance_id("i-1")
                .state(Ec2State::builder().name(name).build())
                .state_reason(StateReason::builder().code("Client.UserInitiatedShutdown").build())
                .build();
            let got = convert(&i, "us-east-1", None, Utc::now());
            assert_eq!(got.state, InstanceState::Running);
            assert_eq!(got.state_reason.as_deref(), Some(word));
            assert!(got.ended_at.is_none());
        }
    }
}
