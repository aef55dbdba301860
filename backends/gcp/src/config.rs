//! What the GCP backend is told by the user: project, region and zones, image overrides,
//! where SSH may come from, and (for tests) another API base URL. Credentials are never
//! here: they come from Application Default Credentials ([`crate::auth`]).
//!
//! [`GcpSection`] is what a user writes (`[gcp]`, `HERD_GCP_*`, typos refused), owned
//! here so the CLI registers it; [`GcpConfig`] is what the backend runs with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Compute Engine's public endpoint (the discovery document's `rootUrl`).
pub const DEFAULT_API_BASE: &str = "https://compute.googleapis.com";
/// The region used when nothing names one.
pub const FALLBACK_REGION: &str = "us-central1";

/// `[gcp]` in herd's config files and the `HERD_GCP_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpSection {
    /// The project VMs are launched in; unset: `GOOGLE_CLOUD_PROJECT`, then the
    /// credentials' own project.
    pub project: Option<String>,
    /// The default region on GCP; unset: herd's own `region`, then `us-central1`.
    pub region: Option<String>,
    /// Zones to try, in order (unset: the catalog's zones of the region).
    #[serde(default, deserialize_with = "de_list")]
    pub zones: Option<Vec<String>>,
    /// Regions `ls`, `down` and `reap` show; unset: every region (one aggregated call).
    #[serde(default, deserialize_with = "de_list")]
    pub regions: Option<Vec<String>>,
    /// Another API base (a fake on 127.0.0.1); unset: Compute Engine's.
    pub api_base: Option<String>,
    /// A service-account or user credentials JSON file; unset: ADC's search order.
    pub credentials: Option<PathBuf>,
    /// Who may SSH in; unset: this machine's public address.
    pub ssh_cidr: Option<String>,
    pub image_x86_64: Option<String>,
    pub image_arm64: Option<String>,
    /// Where per-owner keys live; unset: `keys` in herd's data directory.
    pub key_dir: Option<PathBuf>,
    /// Who herd logs in as over SSH; unset: `herd`, the user the `ssh-keys` metadata makes.
    pub ssh_user: Option<String>,
}

impl GcpSection {
    pub const NAME: &'static str = "gcp";
    pub const ENV: &'static [(&'static str, &'static str)] = &[
        ("HERD_GCP_PROJECT", "project"),
        ("HERD_GCP_REGION", "region"),
        ("HERD_GCP_ZONES", "zones"),
        ("HERD_GCP_REGIONS", "regions"),
        ("HERD_GCP_API_BASE", "api_base"),
        ("HERD_GCP_CREDENTIALS", "credentials"),
        ("HERD_GCP_SSH_CIDR", "ssh_cidr"),
        ("HERD_GCP_IMAGE_X86_64", "image_x86_64"),
        ("HERD_GCP_IMAGE_ARM64", "image_arm64"),
        ("HERD_GCP_KEY_DIR", "key_dir"),
        ("HERD_GCP_SSH_USER", "ssh_user"),
    ];
    pub const PATHS: &'static [&'static str] = &["credentials", "key_dir"];
    pub const HOW_TO_CONFIGURE: &'static str = "configure GCP first: run `gcloud auth application-default login`, \
         or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, and set [gcp] project (or HERD_GCP_PROJECT)";

    pub fn into_config(self, owner: &str, region: Option<&str>, data_dir: &Path) -> GcpConfig {
        let mut c = GcpConfig::new(owner, self.key_dir.unwrap_or_else(|| data_dir.join("keys")));
        c.project = self.project;
        c.region = self.region.or_else(|| region.map(str::to_string));
        c.zones = self.zones.unwrap_or_default();
        c.regions = self.regions.unwrap_or_default();
        if let Some(b) = self.api_base {
            c.api_base = b.trim_end_matches('/').to_string();
        }
        c.credentials = self.credentials;
        c.ssh_cidr = self.ssh_cidr;
        c.image_x86_64 = self.image_x86_64;
        c.image_arm64 = self.image_arm64;
        if let Some(u) = self.ssh_user {
            c.ssh_user = u;
        }
        c
    }

    /// Why GCP counts as configured beyond herd's generic reasons (variables and file
    /// existence only: no token is fetched for a cloud that is not configured).
    pub fn configured_by(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        if self.project.is_some() || self.api_base.is_some() || self.credentials.is_some() {
            return Some("herd's GCP settings (HERD_GCP_*)".into());
        }
        for var in [
            "GOOGLE_APPLICATION_CREDENTIALS",
            "GOOGLE_CLOUD_PROJECT",
            "CLOUDSDK_CONFIG",
        ] {
            if env(var).is_some() {
                return Some(format!("{var} is set"));
            }
        }
        crate::auth::user_credentials_file(env)
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

/// Settings of the GCP backend.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GcpConfig {
    pub project: Option<String>,
    pub region: Option<String>,
    pub zones: Vec<String>,
    pub regions: Vec<String>,
    /// Without a trailing `/`; paths are `{api_base}/compute/v1/projects/...`.
    pub api_base: String,
    pub credentials: Option<PathBuf>,
    pub ssh_cidr: Option<String>,
    pub image_x86_64: Option<String>,
    pub image_arm64: Option<String>,
    pub key_dir: PathBuf,
    pub owner: String,
    /// The SSH login (`exec`, `ssh`).
    pub ssh_user: String,
    /// Longest wait for one HTTP attempt before it is a (temporary) `Timeout`.
    pub attempt_timeout: Duration,
    /// Longest wait for one launch's operation to finish.
    pub operation_budget: Duration,
}

/// The login `ssh-keys` metadata creates (`herd:<key>`), so `exec` works on stock images.
pub const DEFAULT_SSH_USER: &str = "herd";

/// 30 s per attempt: GCE answers in well under a second; `zoneOperations.wait` itself
/// returns within about two minutes, so herd asks it for less (see `client.rs`).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Ten minutes for a bulk insert's operation: bulk creation of a thousand VMs takes
/// minutes, not tens of them.
pub const DEFAULT_OPERATION_BUDGET: Duration = Duration::from_secs(600);

impl GcpConfig {
    pub fn new(owner: impl Into<String>, key_dir: impl Into<PathBuf>) -> Self {
        GcpConfig {
            project: None,
            region: None,
            zones: Vec::new(),
            regions: Vec::new(),
            api_base: DEFAULT_API_BASE.into(),
            credentials: None,
            ssh_cidr: None,
            image_x86_64: None,
            image_arm64: None,
            key_dir: key_dir.into(),
            owner: owner.into(),
            ssh_user: DEFAULT_SSH_USER.into(),
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            operation_budget: DEFAULT_OPERATION_BUDGET,
        }
    }
    pub fn project(mut self, p: impl Into<String>) -> Self {
        self.project = Some(p.into());
        self
    }
    pub fn region(mut self, r: impl Into<String>) -> Self {
        self.region = Some(r.into());
        self
    }
    pub fn ssh_user(mut self, u: impl Into<String>) -> Self {
        self.ssh_user = u.into();
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
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }
    pub fn operation_budget(mut self, d: Duration) -> Self {
        self.operation_budget = d;
        self
    }
    /// The default region.
    pub fn home_region(&self) -> String {
        self.region.clone().unwrap_or_else(|| FALLBACK_REGION.into())
    }
    /// Whether calls go somewhere other than Google's endpoint.
    pub fn is_fake(&self) -> bool {
        self.api_base != DEFAULT_API_BASE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_refuses_typos_and_fills_defaults() {
        let s: GcpSection = toml::from_str("project = \"p\"\nzones = \"us-central1-b, us-central1-a\"\n").unwrap();
        let c = s.into_config("ann", None, Path::new("/d"));
        assert_eq!(c.project.as_deref(), Some("p"));
        assert_eq!(c.zones, ["us-central1-b", "us-central1-a"]);
        assert_eq!(c.home_region(), "us-central1");
        assert_eq!(c.key_dir, Path::new("/d/keys"));
        assert!(!c.is_fake());
        let e = toml::from_str::<GcpSection>("projet = \"p\"").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn every_variable_names_a_key() {
        for (var, key) in GcpSection::ENV {
            assert!(var.starts_with("HERD_GCP_"));
            let text = if ["zones", "regions"].contains(key) {
                format!("{key} = \"a\"")
            } else {
                format!("{key} = \"x\"")
            };
            toml::from_str::<GcpSection>(&text).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }
}
