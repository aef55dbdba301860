//! Builders shared by the ledger's integration tests.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use herd_core::tags;
use herd_core::{Cloud, Instance, InstanceState, LaunchId, LaunchIntent, Money};

/// 2026-01-01T00:00:00Z plus `h` hours and `m` minutes.
pub fn t(h: i64, m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600 + h * 3600 + m * 60, 0).unwrap()
}

pub fn usd(s: &str) -> Money {
    Money::parse_usd(s).unwrap()
}

/// A launch intent. `LaunchIntent` is non-exhaustive, so it is built the way a journal
/// replay would: from its serialized form.
pub fn intent(id: &str, owner: &str, cluster: &str, created: DateTime<Utc>, reservation: &str) -> LaunchIntent {
    serde_json::from_value(serde_json::json!({
        "launch_id": id,
        "cloud": "aws",
        "account": "123456789012",
        "owner": owner,
        "cluster": cluster,
        "fingerprint": format!("fp-{id}"),
        "instance_type": "m5.large",
        "region": "us-east-1",
        "count": 2,
        "market": "on-demand",
        "hourly_price": {"amount": "0.096", "currency": "USD"},
        "reservation": {"amount": reservation, "currency": "USD"},
        "deadline": created + chrono::Duration::hours(4),
        "created_at": created,
    }))
    .unwrap()
}

/// An instance of `launch` as the cloud reports it, tagged the way the Launcher tags.
pub fn inst(id: &str, launch: &str, state: InstanceState, launched: DateTime<Utc>, price: &str) -> Instance {
    let mut i = Instance::new(
        id,
        Cloud::Aws,
        "us-east-1",
        "us-east-1a",
        "m5.large",
        LaunchId::new(launch).unwrap(),
        launched,
        launched + chrono::Duration::hours(4),
        usd(price),
    );
    i.state = state;
    i
}

/// Adds herd's tags, as an instance listed from the cloud carries them.
pub fn tagged(mut i: Instance, owner: &str, cluster: &str, launch: &str) -> Instance {
    i.tags.insert(tags::OWNER.into(), tags::sanitize_value(owner));
    i.tags.insert(tags::CLUSTER.into(), tags::sanitize_value(cluster));
    i.tags.insert(tags::LAUNCH.into(), launch.into());
    i
}

pub fn ended(mut i: Instance, at: DateTime<Utc>) -> Instance {
    i.state = InstanceState::Terminated;
    i.ended_at = Some(at);
    i
}
