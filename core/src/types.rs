//! The nouns of the contract: clouds, instances, their states and purchase options.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::money::Money;
use crate::suggest::did_you_mean;

/// Tags (AWS, Azure) or labels (GCP): ordered so output and hashing are stable.
pub type Tags = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    Local,
    Aws,
    Gcp,
    Azure,
}

impl Cloud {
    pub const ALL: [Cloud; 4] = [Cloud::Local, Cloud::Aws, Cloud::Gcp, Cloud::Azure];

    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Local => "local",
            Cloud::Aws => "aws",
            Cloud::Gcp => "gcp",
            Cloud::Azure => "azure",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Cloud {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "local" | "sim" | "simulator" => Ok(Cloud::Local),
            "aws" | "ec2" => Ok(Cloud::Aws),
            "gcp" | "gce" | "google" => Ok(Cloud::Gcp),
            "azure" | "az" => Ok(Cloud::Azure),
            _ => Err(Error::invalid_spec(format!("unknown cloud `{s}`"))
                .with_suggestions(did_you_mean(s, Cloud::ALL.iter().map(|c| c.as_str()), 2))
                .with_hint("clouds are: local, aws, gcp, azure")),
        }
    }
}

/// The lifecycle of an instance. Ordered: a state never goes back to an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
}

impl InstanceState {
    pub const ALL: [InstanceState; 4] = [
        InstanceState::Pending,
        InstanceState::Running,
        InstanceState::ShuttingDown,
        InstanceState::Terminated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
        }
    }

    /// Whether the instance still bills (or may soon).
    pub fn is_live(self) -> bool {
        !matches!(self, InstanceState::Terminated)
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InstanceState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        InstanceState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                Error::invalid_spec(format!("unknown instance state `{s}`")).with_suggestions(did_you_mean(
                    s,
                    InstanceState::ALL.iter().map(|s| s.as_str()),
                    2,
                ))
            })
    }
}

/// How an instance is bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PurchaseOption {
    OnDemand,
    Spot,
}

impl PurchaseOption {
    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseOption::OnDemand => "on-demand",
            PurchaseOption::Spot => "spot",
        }
    }
}

impl fmt::Display for PurchaseOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PurchaseOption {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "on-demand" | "ondemand" | "on_demand" => Ok(PurchaseOption::OnDemand),
            "spot" | "preemptible" => Ok(PurchaseOption::Spot),
            _ => {
                Err(Error::invalid_spec(format!("unknown purchase option `{s}`"))
                    .with_hint("use `on-demand` or `spot`"))
            }
        }
    }
}

/// What the user asks for: spot, on-demand, or spot falling back to on-demand when no
/// spot capacity is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Market {
    #[default]
    OnDemand,
    Spot,
    SpotOrOnDemand,
}

impl Market {
    pub fn wants_spot(self) -> bool {
        !matches!(self, Market::OnDemand)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Market::OnDemand => "on-demand",
            Market::Spot => "spot",
            Market::SpotOrOnDemand => "spot-or-on-demand",
        }
    }
}

impl fmt::Display for Market {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Market {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "on-demand" | "ondemand" => Ok(Market::OnDemand),
            "spot" => Ok(Market::Spot),
            "spot-or-on-demand" | "spot-fallback" => Ok(Market::SpotOrOnDemand),
            _ => Err(Error::invalid_spec(format!("unknown market `{s}`"))
                .with_hint("use `on-demand`, `spot` or `spot-or-on-demand`")),
        }
    }
}

/// The idempotency key of a launch (EC2 `ClientToken`, GCE `requestId`, Azure's
/// deterministic names). At most 64 characters of `[A-Za-z0-9-]`, so it fits every cloud.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LaunchId(String);

impl LaunchId {
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::invalid_spec(format!(
                "launch id `{id}` must be 1-64 characters of letters, digits and `-`"
            )));
        }
        Ok(LaunchId(id.to_ascii_lowercase()))
    }

    /// A fresh id: `l-` + 16 hex digits from the time and a random word.
    pub fn generate(now: DateTime<Utc>, random: u64) -> Self {
        let t = now.timestamp_millis() as u64;
        LaunchId(format!(
            "l-{:08x}{:08x}",
            (t & 0xffff_ffff) as u32,
            (random & 0xffff_ffff) as u32
        ))
    }

    /// The id of the `i`th batch of a launch split across several calls.
    pub fn batch(&self, i: usize) -> LaunchId {
        let suffix = format!("-b{i}");
        let keep = 64usize.saturating_sub(suffix.len()).min(self.0.len());
        LaunchId(format!("{}{}", &self.0[..keep], suffix))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LaunchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One VM as the cloud reports it, with the hourly price frozen at launch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Instance {
    pub id: String,
    pub cloud: Cloud,
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub state: InstanceState,
    /// Why it is in that state, when the cloud says (`deadline`, `spot-interruption`, ...).
    pub state_reason: Option<String>,
    pub purchase: PurchaseOption,
    pub launch_id: LaunchId,
    pub launched_at: DateTime<Utc>,
    /// When the instance stopped billing, once terminated.
    pub ended_at: Option<DateTime<Utc>>,
    /// The cloud (or the guest) terminates the instance at this instant.
    pub deadline: DateTime<Utc>,
    /// Idle timeout, when set.
    #[serde(with = "opt_secs", default)]
    pub keepalive: Option<Duration>,
    pub addresses: Vec<String>,
    pub tags: Tags,
    /// The hourly price in force when it launched; never re-priced.
    pub hourly_price: Money,
}

impl Instance {
    /// A new record; backends fill the rest with the builder-style setters.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: impl Into<String>,
        cloud: Cloud,
        region: impl Into<String>,
        zone: impl Into<String>,
        instance_type: impl Into<String>,
        launch_id: LaunchId,
        launched_at: DateTime<Utc>,
        deadline: DateTime<Utc>,
        hourly_price: Money,
    ) -> Self {
        Instance {
            id: id.into(),
            cloud,
            region: region.into(),
            zone: zone.into(),
            instance_type: instance_type.into(),
            state: InstanceState::Pending,
            state_reason: None,
            purchase: PurchaseOption::OnDemand,
            launch_id,
            launched_at,
            ended_at: None,
            deadline,
            keepalive: None,
            addresses: Vec::new(),
            tags: Tags::new(),
            hourly_price,
        }
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_id_rules() {
        assert!(LaunchId::new("abc-123").is_ok());
        assert!(LaunchId::new("").is_err());
        assert!(LaunchId::new("a b").is_err());
        assert!(LaunchId::new("x".repeat(65)).is_err());
        let long = LaunchId::new("x".repeat(64)).unwrap();
        assert!(long.batch(12).as_str().len() <= 64);
        assert!(LaunchId::new(long.batch(12).as_str()).is_ok());
    }

    #[test]
    fn states_are_ordered() {
        assert!(InstanceState::Pending < InstanceState::Running);
        assert!(InstanceState::Running < InstanceState::Terminated);
    }

    #[test]
    fn cloud_suggests() {
        let e = "awz".parse::<Cloud>().unwrap_err();
        assert_eq!(e.suggestions(), &["aws".to_string()]);
    }
}
