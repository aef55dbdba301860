//! What the AWS backend is told by the user: profile, region, endpoint, SSH source,
//! image overrides and where keys live. Credentials are never here: they come from
//! aws-config's default chain (environment, profiles, SSO, instance roles).
//!
//! Two shapes: [`AwsSection`] is what a user writes (`[aws]` in herd's config files,
//! `HERD_AWS_*`, every key optional, typos refused), owned here so the CLI registers it
//! instead of re-declaring it; [`AwsConfig`] is what the backend runs with, defaults
//! filled in by [`AwsSection::into_config`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `[aws]` in herd's config files, and the `HERD_AWS_*` variables ([`AwsSection::ENV`]).
/// Every key is optional; the CLI merges the layers (files, environment, flags) and hands
/// the result to [`AwsSection::into_config`]. Unknown keys are errors, so `profil = ".."`
/// is caught with its line instead of silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSection {
    /// A profile of ~/.aws/config (`--aws-profile`, `HERD_AWS_PROFILE`).
    pub profile: Option<String>,
    /// The default region on AWS; unset: herd's own `region`, then the profile's or
    /// `AWS_REGION`.
    pub region: Option<String>,
    /// Another EC2 endpoint (an emulator); `AWS_ENDPOINT_URL` also works.
    pub endpoint: Option<String>,
    /// Who may SSH in; unset: this machine's public address.
    pub ssh_cidr: Option<String>,
    pub image_x86_64: Option<String>,
    pub image_arm64: Option<String>,
    /// Where per-owner private keys are kept; unset: `keys` in herd's data directory.
    pub key_dir: Option<PathBuf>,
    /// Regions `ls`, `down` and `reap` search; unset or empty: every enabled region. In
    /// the environment a comma-separated list.
    #[serde(default, deserialize_with = "de_list")]
    pub regions: Option<Vec<String>>,
    /// The user herd logs in as over SSH; unset: `ec2-user` (Amazon Linux, the image
    /// herd resolves; Ubuntu images use `ubuntu`).
    pub ssh_user: Option<String>,
}

impl AwsSection {
    /// The table this backend owns in herd's config files.
    pub const NAME: &'static str = "aws";
    /// Environment variable -> key of this section. Values are text; `regions` takes a
    /// comma-separated list.
    pub const ENV: &'static [(&'static str, &'static str)] = &[
        ("HERD_AWS_PROFILE", "profile"),
        ("HERD_AWS_REGION", "region"),
        ("HERD_AWS_ENDPOINT", "endpoint"),
        ("HERD_AWS_SSH_CIDR", "ssh_cidr"),
        ("HERD_AWS_IMAGE_X86_64", "image_x86_64"),
        ("HERD_AWS_IMAGE_ARM64", "image_arm64"),
        ("HERD_AWS_KEY_DIR", "key_dir"),
        ("HERD_AWS_REGIONS", "regions"),
        ("HERD_AWS_SSH_USER", "ssh_user"),
    ];
    /// Keys that hold paths: in a config file they are relative to that file.
    pub const PATHS: &'static [&'static str] = &["key_dir"];
    /// What to do when a command names AWS but nothing says it is configured.
    pub const HOW_TO_CONFIGURE: &'static str = "configure AWS first: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY), run `aws configure` (writes ~/.aws/credentials), or add an [aws] section to herd.toml";

    /// The backend's settings: this section with its defaults filled in. `region` is
    /// herd's cloud-neutral default region (used when `[aws] region` is unset);
    /// `data_dir` is herd's data directory, under which keys live by default.
    pub fn into_config(self, owner: &str, region: Option<&str>, data_dir: &Path) -> AwsConfig {
        let mut cfg = AwsConfig::new(owner, self.key_dir.unwrap_or_else(|| data_dir.join("keys")));
        cfg.profile = self.profile;
        cfg.region = self.region.or_else(|| region.map(str::to_string));
        cfg.endpoint = self.endpoint;
        cfg.ssh_cidr = self.ssh_cidr;
        cfg.image_x86_64 = self.image_x86_64;
        cfg.image_arm64 = self.image_arm64;
        cfg.regions = self.regions.unwrap_or_default();
        if let Some(u) = self.ssh_user {
            cfg.ssh_user = u;
        }
        cfg
    }

    /// Why AWS counts as configured, beyond herd's generic reasons (the default cloud, an
    /// `[aws]` section in a file): herd's own AWS settings, or something AWS's default
    /// chain can go on. Variables and file existence only, so no SDK client is built for
    /// a cloud that is not configured. `env` treats empty values as unset.
    pub fn configured_by(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        if self.profile.is_some() || self.endpoint.is_some() || self.region.is_some() {
            return Some("herd's AWS settings (HERD_AWS_* or --aws-profile)".into());
        }
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_EC2",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ] {
            if env(var).is_some() {
                return Some(format!("{var} is set"));
            }
        }
        let home = env("HOME").map(PathBuf::from);
        for (var, name) in [
            ("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            ("AWS_CONFIG_FILE", "config"),
        ] {
            let path = env(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)));
            if let Some(p) = path.filter(|p| p.is_file()) {
                return Some(format!("{} exists", p.display()));
            }
        }
        None
    }
}

/// A list as TOML writes it (`["a", "b"]`) or as a variable does (`a,b`; blanks dropped).
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

/// Settings of the AWS backend (the CLI fills it from `[aws]`, `HERD_AWS_*` and flags).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AwsConfig {
    /// A named profile from ~/.aws/config; `None`: the default chain picks.
    pub profile: Option<String>,
    /// The default region; `None`: the profile's or `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Another EC2 endpoint (an emulator); `None`: AWS's, or `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Who may reach instances by SSH; `None`: this machine's public address (/32).
    pub ssh_cidr: Option<String>,
    /// AMI ids used instead of the resolved Amazon Linux image, per architecture.
    pub image_x86_64: Option<String>,
    pub image_arm64: Option<String>,
    /// Where the per-owner private keys are kept (0600).
    pub key_dir: PathBuf,
    /// The owner whose key pair and security group launches use.
    pub owner: String,
    /// Regions that listing, terminating and reaping search when none is named; empty:
    /// every region enabled on the account (DescribeRegions).
    pub regions: Vec<String>,
    /// Longest wait for one HTTP attempt (connect, send, whole answer) before it counts
    /// as a `Timeout` (temporary: herd's retry loop decides whether to try again).
    /// Default [`DEFAULT_ATTEMPT_TIMEOUT`].
    pub attempt_timeout: Duration,
    /// Longest wait for a TCP and TLS connection to the endpoint. Default
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// The SSH login herd uses on its instances (see [`DEFAULT_SSH_USER`]).
    pub ssh_user: String,
}

/// Amazon Linux's login, the image herd resolves by default (AL2023 user guide,
/// "Connect to your instance": `ec2-user`).
pub const DEFAULT_SSH_USER: &str = "ec2-user";

/// 30 s per attempt: EC2 answers its calls in well under a second and RunInstances of a
/// thousand in a few seconds; an attempt past 30 s is a hang, and herd's retry loop
/// (with its total patience) takes it from there.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// 5 s to connect: a TCP and TLS handshake to a regional endpoint takes tens of
/// milliseconds; five seconds covers a slow network without hiding a dead one.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl AwsConfig {
    pub fn new(owner: impl Into<String>, key_dir: impl Into<PathBuf>) -> Self {
        AwsConfig {
            profile: None,
            region: None,
            endpoint: None,
            ssh_cidr: None,
            image_x86_64: None,
            image_arm64: None,
            key_dir: key_dir.into(),
            owner: owner.into(),
            regions: Vec::new(),
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            ssh_user: DEFAULT_SSH_USER.to_string(),
        }
    }
    pub fn profile(mut self, p: impl Into<String>) -> Self {
        self.profile = Some(p.into());
        self
    }
    pub fn region(mut self, r: impl Into<String>) -> Self {
        self.region = Some(r.into());
        self
    }
    pub fn endpoint(mut self, e: impl Into<String>) -> Self {
        self.endpoint = Some(e.into());
        self
    }
    /// The SSH login herd uses on instances.
    pub fn ssh_user(mut self, u: impl Into<String>) -> Self {
        self.ssh_user = u.into();
        self
    }
    pub fn ssh_cidr(mut self, c: impl Into<String>) -> Self {
        self.ssh_cidr = Some(c.into());
        self
    }
    pub fn regions(mut self, r: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.regions = r.into_iter().map(Into::into).collect();
        self
    }
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Where this config's calls go, for the lines that say what herd waits for: the
    /// configured endpoint, `AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL`, else EC2's regional
    /// endpoint (`ec2.<region>.amazonaws.com`, AWS General Reference, "Amazon EC2
    /// endpoints"); `None` when not even the region is known yet.
    pub fn described_endpoint(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        self.endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_EC2"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| {
                self.region
                    .clone()
                    .or_else(|| env("AWS_REGION"))
                    .map(|r| format!("https://ec2.{r}.amazonaws.com"))
            })
    }

    /// Whether signed calls are worth a try: an emulator, a profile, or credentials in
    /// the environment or in ~/.aws. Without any, the SDK would spend seconds probing
    /// for instance metadata before failing (`herd catalog refresh` then skips spot prices).
    pub fn credentials_configured(&self, env: &dyn Fn(&str) -> Option<String>) -> bool {
        self.endpoint.is_some()
            || self.profile.is_some()
            || [
                "AWS_ACCESS_KEY_ID",
                "AWS_PROFILE",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_ENDPOINT_URL",
            ]
            .iter()
            .any(|k| env(k).is_some())
            || env("HOME")
                .map(PathBuf::from)
                .is_some_and(|h| h.join(".aws/credentials").is_file() || h.join(".aws/config").is_file())
    }
}

/// The region used when neither herd's settings nor the AWS profile name one.
pub const FALLBACK_REGION: &str = "us-east-1";

#[cfg(test)]
mod tests {
    use super::*;

    /// The section from `key = "text"` pairs, as a variable or a flag gives them.
    fn section(pairs: &[(&str, &str)]) -> Result<AwsSection, toml::de::Error> {
        let text: String = pairs.iter().map(|(k, v)| format!("{k} = {v:?}\n")).collect();
        toml::from_str(&text)
    }

    #[test]
    fn section_refuses_typos_and_fills_defaults() {
        let s = section(&[("profile", "ml"), ("regions", "us-east-1,eu-west-1")]).unwrap();
        assert_eq!(s.profile.as_deref(), Some("ml"));
        let e = section(&[("profil", "ml")]).unwrap_err().message().to_string();
        assert!(e.contains("unknown field `profil`"), "{e}");
        assert!(e.contains("`profile`"), "the known keys are listed: {e}");
        let cfg = s.into_config("alice", Some("us-west-2"), Path::new("/d/herd"));
        assert_eq!(
            cfg.region.as_deref(),
            Some("us-west-2"),
            "herd's region when [aws] has none"
        );
        assert_eq!(cfg.key_dir, Path::new("/d/herd/keys"));
        assert_eq!(cfg.regions, ["us-east-1", "eu-west-1"]);
        assert_eq!(cfg.owner, "alice");
        let own = section(&[("region", "eu-west-1"), ("key_dir", "/k")]).unwrap();
        let cfg = own.into_config("alice", Some("us-west-2"), Path::new("/d/herd"));
        assert_eq!(cfg.region.as_deref(), Some("eu-west-1"), "[aws] region wins");
        assert_eq!(cfg.key_dir, Path::new("/k"));
    }

    #[test]
    fn every_variable_names_a_key_and_regions_are_a_comma_list() {
        let s = section(&[("regions", " us-east-1, ,eu-west-1 ")]).unwrap();
        assert_eq!(s.regions.unwrap(), ["us-east-1", "eu-west-1"]);
        let listed: AwsSection = toml::from_str("regions = [\"us-east-1\"]").unwrap();
        assert_eq!(listed.regions.unwrap(), ["us-east-1"], "as TOML writes a list");
        for (var, key) in AwsSection::ENV {
            assert!(var.starts_with("HERD_AWS_"), "{var}");
            section(&[(key, "x")]).unwrap_or_else(|e| panic!("{var} -> {key}: {e}"));
        }
    }

    #[test]
    fn configured_only_when_something_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().display().to_string();
        let none = AwsSection::default();
        let env_of = |pairs: Vec<(&'static str, String)>| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        assert_eq!(none.configured_by(&env_of(vec![("HOME", home.clone())])), None);
        let e = env_of(vec![("HOME", home.clone()), ("AWS_PROFILE", "ml".into())]);
        assert_eq!(none.configured_by(&e).as_deref(), Some("AWS_PROFILE is set"));
        let profile = section(&[("profile", "ml")]).unwrap();
        assert!(profile
            .configured_by(&env_of(vec![]))
            .unwrap()
            .starts_with("herd's AWS settings"));
        let regions_only = section(&[("regions", "us-east-1")]).unwrap();
        assert_eq!(
            regions_only.configured_by(&env_of(vec![])),
            None,
            "a region list alone is not a setup"
        );
        std::fs::create_dir_all(tmp.path().join(".aws")).unwrap();
        std::fs::write(tmp.path().join(".aws/credentials"), "[default]\n").unwrap();
        let found = none.configured_by(&env_of(vec![("HOME", home)])).unwrap();
        assert!(found.ends_with(".aws/credentials exists"), "{found}");
    }

    #[test]
    fn described_endpoint_prefers_the_configured_one() {
        let mut cfg = AwsConfig::new("a", "/k");
        assert_eq!(cfg.described_endpoint(&|_| None), None);
        assert!(!cfg.credentials_configured(&|_| None));
        cfg.region = Some("eu-west-1".into());
        assert_eq!(
            cfg.described_endpoint(&|_| None).as_deref(),
            Some("https://ec2.eu-west-1.amazonaws.com")
        );
        let emulator = |k: &str| (k == "AWS_ENDPOINT_URL").then(|| "http://127.0.0.1:5000".to_string());
        assert_eq!(
            cfg.described_endpoint(&emulator).as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert!(cfg.credentials_configured(&emulator));
        cfg.endpoint = Some("http://127.0.0.1:9".into());
        assert_eq!(cfg.described_endpoint(&emulator).as_deref(), Some("http://127.0.0.1:9"));
        assert!(
            cfg.credentials_configured(&|_| None),
            "an emulator needs no credentials"
        );
    }
}
