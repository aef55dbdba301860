//! What the Azure backend is told by the user: subscription, region and zones, image
//! overrides, where SSH may come from, which credential, and (for tests) another ARM
//! endpoint. Secrets are never here: they come from the credential chain ([`crate::auth`]).
//!
//! [`AzureSection`] is what a user writes (`[azure]`, `HERD_AZURE_*`, typos refused),
//! owned here so the CLI registers it; [`AzureConfig`] is what the backend runs with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use herd_core::{Error, Result};
use serde::{Deserialize, Deserializer};

/// Azure Resource Manager's public endpoint (the SDK's `AZURE_PUBLIC_CLOUD`).
pub const DEFAULT_API_BASE: &str = "https://management.azure.com";
/// The VM's admin user (`osProfile.adminUsername`), whom the owner's key admits.
pub const ADMIN_USER: &str = "herd";
/// The region used when nothing names one.
pub const FALLBACK_REGION: &str = "eastus";

/// `[azure]` in herd's config files and the `HERD_AZURE_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSection {
    /// The subscription VMs are launched in; unset: `AZURE_SUBSCRIPTION_ID`, then the
    /// Azure CLI's default (`~/.azure/azureProfile.json`).
    pub subscription: Option<String>,
    /// The default region ("location"); unset: herd's own `region`, then `eastus`.
    pub region: Option<String>,
    /// Availability zones to try, in order (`1`, `2`, `3`); unset: the catalog's.
    #[serde(default, deserialize_with = "de_list")]
    pub zones: Option<Vec<String>>,
    /// Regions `ls`, `down` and `reap` show; unset: every region of the subscription.
    #[serde(default, deserialize_with = "de_list")]
    pub regions: Option<Vec<String>>,
    /// Another ARM endpoint (a fake on 127.0.0.1); unset: `management.azure.com`.
    pub api_base: Option<String>,
    /// `auto` (default), `environment`, `cli` or `managed-identity`.
    pub credential: Option<String>,
    /// Who may SSH in; unset: this machine's public address with /32.
    pub ssh_cidr: Option<String>,
    /// `publisher:offer:sku:version` per architecture.
    pub image_x86_64: Option<String>,
    pub image_arm64: Option<String>,
    /// Where per-owner keys live; unset: `keys` in herd's data directory.
    pub key_dir: Option<PathBuf>,
    /// The user `herd exec`/`ssh` log in as; unset: `herd` (the VM's admin user).
    pub ssh_user: Option<String>,
}

impl AzureSection {
    pub const NAME: &'static str = "azure";
    pub const ENV: &'static [(&'static str, &'static str)] = &[
        ("HERD_AZURE_SUBSCRIPTION", "subscription"),
        ("HERD_AZURE_REGION", "region"),
        ("HERD_AZURE_ZONES", "zones"),
        ("HERD_AZURE_REGIONS", "regions"),
        ("HERD_AZURE_API_BASE", "api_base"),
        ("HERD_AZURE_CREDENTIAL", "credential"),
        ("HERD_AZURE_SSH_CIDR", "ssh_cidr"),
        ("HERD_AZURE_IMAGE_X86_64", "image_x86_64"),
        ("HERD_AZURE_IMAGE_ARM64", "image_arm64"),
        ("HERD_AZURE_KEY_DIR", "key_dir"),
        ("HERD_AZURE_SSH_USER", "ssh_user"),
    ];
    pub const PATHS: &'static [&'static str] = &["key_dir"];
    pub const HOW_TO_CONFIGURE: &'static str = "configure Azure first: run `az login` (and `az account set --subscription ID`), \
         or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal and AZURE_SUBSCRIPTION_ID";

    pub fn into_config(self, owner: &str, region: Option<&str>, data_dir: &Path) -> AzureConfig {
        let mut c = AzureConfig::new(owner, self.key_dir.unwrap_or_else(|| data_dir.join("keys")));
        c.subscription = self.subscription;
        c.region = self.region.or_else(|| region.map(str::to_string));
        c.zones = self.zones.unwrap_or_default();
        c.regions = self.regions.unwrap_or_default();
        if let Some(b) = self.api_base {
            c.api_base = b.trim_end_matches('/').to_string();
        }
        c.credential = self.credential;
        c.ssh_cidr = self.ssh_cidr;
        c.image_x86_64 = self.image_x86_64;
        c.image_arm64 = self.image_arm64;
        if let Some(u) = self.ssh_user {
            c.ssh_user = u;
        }
        c
    }

    /// Why Azure counts as configured beyond herd's generic reasons (variables and file
    /// existence only: no token is fetched for a cloud that is not configured).
    pub fn configured_by(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        if self.subscription.is_some() || self.api_base.is_some() || self.credential.is_some() {
            return Some("herd's Azure settings (HERD_AZURE_*)".into());
        }
        for var in ["AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID", crate::auth::TOKEN_VAR] {
            if env(var).is_some() {
                return Some(format!("{var} is set"));
            }
        }
        crate::auth::cli_profile(env)
            .filter(|p| p.is_file())
            .map(|p| format!("{} exists", p.display()))
    }
}

fn de_list<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Many(Vec<String>),
        Text(String),
    }
    Ok(Option::<List>::deserialize(d)?.map(|l| match l {
        List::Many(v) => v,
        List::Text(t) => t
            .split(',')
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect(),
    }))
}

/// Settings of the Azure backend.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AzureConfig {
    pub subscription: Option<String>,
    pub region: Option<String>,
    pub zones: Vec<String>,
    pub regions: Vec<String>,
    /// Without a trailing `/`.
    pub api_base: String,
    pub credential: Option<String>,
    pub ssh_cidr: Option<String>,
    pub image_x86_64: Option<String>,
    pub image_arm64: Option<String>,
    pub key_dir: PathBuf,
    pub owner: String,
    /// Who `herd exec` and `herd ssh` log in as.
    pub ssh_user: String,
    /// Longest wait for one HTTP attempt before it is a (temporary) `Timeout`.
    pub attempt_timeout: Duration,
    /// Longest wait for one long-running operation (a VM's creation, a deletion).
    pub operation_budget: Duration,
    /// Longest pause between two polls of an async operation, whatever `Retry-After` says.
    pub max_poll: Duration,
}

/// 30 s per attempt: ARM answers writes with 201/202 at once and does the work behind
/// an async operation.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Ten minutes for one VM: ARM's own default for a VM's provisioning is well under it.
pub const DEFAULT_OPERATION_BUDGET: Duration = Duration::from_secs(600);

impl AzureConfig {
    pub fn new(owner: impl Into<String>, key_dir: impl Into<PathBuf>) -> Self {
        AzureConfig {
            subscription: None,
            region: None,
            zones: Vec::new(),
            regions: Vec::new(),
            api_base: DEFAULT_API_BASE.into(),
            credential: None,
            ssh_cidr: None,
            image_x86_64: None,
            image_arm64: None,
            key_dir: key_dir.into(),
            owner: owner.into(),
            ssh_user: ADMIN_USER.into(),
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            operation_budget: DEFAULT_OPERATION_BUDGET,
            max_poll: Duration::from_secs(15),
        }
    }
    pub fn subscription(mut self, s: impl Into<String>) -> Self {
        self.subscription = Some(s.into());
        self
    }
    pub fn region(mut self, r: impl Into<String>) -> Self {
        self.region = Some(r.into());
        self
    }
    pub fn api_base(mut self, b: impl Into<String>) -> Self {
        self.api_base = b.into().trim_end_matches('/').to_string();
        self
    }
    pub fn ssh_cidr(mut self, c: impl Into<String>) -> Self {
        self.ssh_cidr = Some(c.into());
        self
    }
    pub fn ssh_user(mut self, u: impl Into<String>) -> Self {
        self.ssh_user = u.into();
        self
    }
    pub fn zones(mut self, z: Vec<String>) -> Self {
        self.zones = z;
        self
    }
    pub fn max_poll(mut self, d: Duration) -> Self {
        self.max_poll = d;
        self
    }
    pub fn home_region(&self) -> String {
        self.region.clone().unwrap_or_else(|| FALLBACK_REGION.into())
    }
    /// Whether calls go somewhere other than Azure's endpoint.
    pub fn is_fake(&self) -> bool {
        self.api_base != DEFAULT_API_BASE
    }

    /// The subscription: `[azure] subscription`, `AZURE_SUBSCRIPTION_ID`, then the Azure
    /// CLI's default one. None of these: a config error before any call.
    pub fn resolve_subscription(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
        let s = self
            .subscription
            .clone()
            .or_else(|| env("AZURE_SUBSCRIPTION_ID"))
            .or_else(|| crate::auth::cli_default_subscription(env));
        match s {
            Some(s) if is_subscription_id(&s) => Ok(s),
            Some(s) => Err(Error::config(format!("`{s}` is not an Azure subscription id"))
                .with_hint("a subscription id is a GUID: `az account list --query [].id`")),
            None => Err(Error::config("no Azure subscription: herd needs one to launch, list or delete anything")
                .with_hint("set [azure] subscription in herd.toml, AZURE_SUBSCRIPTION_ID, or `az account set --subscription ID`")),
        }
    }
}

/// A GUID: 8-4-4-4-12 hex digits.
pub fn is_subscription_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-0000-0000-0000-0000000000aa";

    #[test]
    fn section_refuses_typos_and_fills_defaults() {
        let s: AzureSection = toml::from_str("subscription = \"s\"\nzones = \"2, 1\"\n").unwrap();
        let c = s.into_config("ann", None, Path::new("/d"));
        assert_eq!(c.subscription.as_deref(), Some("s"));
        assert_eq!(c.zones, ["2", "1"]);
        assert_eq!(c.home_region(), "eastus");
        assert_eq!(c.key_dir, Path::new("/d/keys"));
        assert!(!c.is_fake());
        let e = toml::from_str::<AzureSection>("subscripton = \"s\"").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn every_variable_names_a_key() {
        for (var, key) in AzureSection::ENV {
            assert!(var.starts_with("HERD_AZURE_"));
            toml::from_str::<AzureSection>(&format!("{key} = \"x\"")).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }

    #[test]
    fn subscription_from_config_then_environment_then_refused() {
        let none = |_: &str| None;
        let c = AzureConfig::new("ann", "/k");
        let e = c.resolve_subscription(&none).unwrap_err();
        assert_eq!(e.kind(), herd_core::ErrorKind::ConfigInvalid);
        assert!(e.hint().unwrap().contains("AZURE_SUBSCRIPTION_ID"));
        let env = |k: &str| (k == "AZURE_SUBSCRIPTION_ID").then(|| SUB.to_string());
        assert_eq!(c.resolve_subscription(&env).unwrap(), SUB);
        let bad = AzureConfig::new("ann", "/k").subscription("prod");
        assert!(bad
            .resolve_subscription(&none)
            .unwrap_err()
            .message()
            .contains("not an Azure subscription id"));
    }
}
