//! Which clouds this build of herd can talk to: one [`Backend`] entry per backend crate,
//! in [`BACKENDS`]. An entry names the section of herd's config files the backend owns
//! (its struct, variables and path keys are declared in the backend's own `config.rs`),
//! and says how the backend counts as configured, how its provider is built from that
//! section plus the common settings, where its calls go, and whether it publishes spot
//! prices. Settings, the choice of clouds for `ls`/`down`/`cost`/`reap`, the wait lines
//! and `catalog refresh` all go through here, so adding a backend adds an entry (see
//! docs/adding-a-backend.md), not code in each of them. Commands never see a backend's
//! types, only the [`Launcher`](herd_core::Launcher) that [`crate::context::Context`]
//! wraps around the provider built here.

use std::path::PathBuf;
use std::sync::Arc;

use herd_aws::config::{AwsConfig, AwsSection};
use herd_azure::config::{AzureConfig, AzureSection};
use herd_catalog::refresh::SpotPrices;
use herd_core::{Cloud, Error, Provider, Result};
use herd_gcp::config::{GcpConfig, GcpSection};
use herd_local::{AgentCommand, LocalProvider, SimulatorSection};

use crate::args::GlobalArgs;
use crate::printer::Printer;
use crate::settings::{SectionFlag, Settings, Shape};

/// The hidden subcommand under which this binary runs the simulator's per-VM agent.
pub const VM_AGENT: &str = "__vm-agent";

/// One backend, as the CLI knows it.
#[derive(Debug)]
pub struct Backend {
    pub cloud: Cloud,
    /// How messages name it: "AWS", "the simulator".
    pub label: &'static str,
    /// The section of herd's config files it owns: `[aws]`.
    pub section: &'static str,
    /// `HERD_*` variable -> key of the section.
    pub env: &'static [(&'static str, &'static str)],
    /// Keys of the section that hold paths (a file's are relative to that file).
    pub paths: &'static [&'static str],
    /// The section's struct, for the check pass over files, variables and flags.
    pub shape: Shape,
    /// The hint when a command names the cloud and it is not configured; `None`: always
    /// configured (the simulator).
    pub how_to_configure: Option<&'static str>,
    /// Reads and checks the merged section (at load, so a bad value fails every command).
    pub validate: fn(&Settings) -> Result<()>,
    /// Backend-specific reasons to count as configured (herd's own reasons, the default
    /// cloud and a section in a file, are [`configured_by`]'s). Variables and file
    /// existence only: no SDK is built for a cloud that is not configured.
    pub configured_by: ConfiguredBy,
    pub provider: fn(&Settings) -> Result<Arc<dyn Provider>>,
    /// Who the calls go to and where, for the lines that say what herd waits for.
    pub service: fn(&Settings) -> (String, Option<String>),
    /// Live spot prices for `herd catalog refresh`; `Err`: why not (no credentials).
    pub spot_prices: Option<SpotPricesFor>,
}

/// Whether a backend counts as configured, and why ([`Backend::configured_by`]).
pub type ConfiguredBy = fn(&Settings, &dyn Fn(&str) -> Option<String>) -> Result<Option<String>>;
/// Live spot prices of a backend, or why not ([`Backend::spot_prices`]).
pub type SpotPricesFor = fn(&Settings) -> std::result::Result<Box<dyn SpotPrices>, String>;

/// Every backend built in. Adding one is one entry here (docs/adding-a-backend.md).
pub static BACKENDS: &[Backend] = &[
    Backend {
        cloud: Cloud::Local,
        label: "the simulator",
        section: SimulatorSection::NAME,
        env: SimulatorSection::ENV,
        paths: SimulatorSection::PATHS,
        shape: Shape::of::<SimulatorSection>(),
        how_to_configure: None,
        validate: |s| s.section::<SimulatorSection>(SimulatorSection::NAME)?.validate(),
        configured_by: |_, _| Ok(Some("the simulator is built in".into())),
        provider: |s| Ok(Arc::new(local(s)?)),
        service: |s| {
            let dir = s
                .section::<SimulatorSection>(SimulatorSection::NAME)
                .map(|sim| sim.state_dir().display().to_string());
            ("the simulator".into(), dir.ok())
        },
        spot_prices: None,
    },
    Backend {
        cloud: Cloud::Aws,
        label: "AWS",
        section: AwsSection::NAME,
        env: AwsSection::ENV,
        paths: AwsSection::PATHS,
        shape: Shape::of::<AwsSection>(),
        how_to_configure: Some(AwsSection::HOW_TO_CONFIGURE),
        validate: |s| aws_config(s).map(drop),
        configured_by: |s, env| Ok(s.section::<AwsSection>(AwsSection::NAME)?.configured_by(env)),
        provider: |s| Ok(Arc::new(aws(s)?)),
        service: |s| {
            let endpoint = aws_config(s).ok().and_then(|c| c.described_endpoint(&process_env));
            ("EC2".into(), endpoint)
        },
        spot_prices: Some(|s| {
            let cfg = aws_config(s).map_err(|e| e.to_string())?;
            if !cfg.credentials_configured(&process_env) {
                return Err("no AWS credentials are configured".into());
            }
            Ok(Box::new(herd_aws::spot::LiveSpotPrices::new(cfg)))
        }),
    },
    Backend {
        cloud: Cloud::Gcp,
        label: "GCP",
        section: GcpSection::NAME,
        env: GcpSection::ENV,
        paths: GcpSection::PATHS,
        shape: Shape::of::<GcpSection>(),
        how_to_configure: Some(GcpSection::HOW_TO_CONFIGURE),
        validate: |s| gcp_config(s).map(drop),
        configured_by: |s, env| Ok(s.section::<GcpSection>(GcpSection::NAME)?.configured_by(env)),
        provider: |s| {
            Ok(Arc::new(
                herd_gcp::GcpProvider::builder(gcp_config(s)?)
                    .catalog(crate::catalogs::all().clone())
                    .build(),
            ))
        },
        service: |s| {
            let base = gcp_config(s).ok().filter(GcpConfig::is_fake).map(|c| c.api_base);
            ("Compute Engine".into(), base)
        },
        spot_prices: None,
    },
    Backend {
        cloud: Cloud::Azure,
        label: "Azure",
        section: AzureSection::NAME,
        env: AzureSection::ENV,
        paths: AzureSection::PATHS,
        shape: Shape::of::<AzureSection>(),
        how_to_configure: Some(AzureSection::HOW_TO_CONFIGURE),
        validate: |s| azure_config(s).map(drop),
        configured_by: |s, env| Ok(s.section::<AzureSection>(AzureSection::NAME)?.configured_by(env)),
        provider: |s| {
            Ok(Arc::new(
                herd_azure::AzureProvider::builder(azure_config(s)?)
                    .catalog(crate::catalogs::all().clone())
                    .build(),
            ))
        },
        service: |s| {
            let base = azure_config(s).ok().filter(AzureConfig::is_fake).map(|c| c.api_base);
            ("Azure Resource Manager".into(), base)
        },
        spot_prices: None,
    },
];

/// The entry for `cloud`, if this herd was built with it.
pub fn backend(cloud: Cloud) -> Option<&'static Backend> {
    BACKENDS.iter().find(|b| b.cloud == cloud)
}

/// The error for a cloud this herd has no backend for; `what` prefixes the message
/// (`--cloud gcp: `).
pub fn not_built(cloud: Cloud, what: &str) -> Error {
    let built: Vec<String> = BACKENDS.iter().map(|b| b.cloud.to_string()).collect();
    Error::unsupported(format!("{what}this herd was built without the {cloud} backend"))
        .with_hint(format!("built in: {}", built.join(", ")))
}

pub fn provider(cloud: Cloud, settings: &Settings) -> Result<Arc<dyn Provider>> {
    let b = backend(cloud).ok_or_else(|| not_built(cloud, ""))?;
    (b.provider)(settings)
}

/// Who a cloud's calls go to and where: an emulator's or AWS's regional endpoint, the
/// simulator's state directory.
pub fn service(cloud: Cloud, settings: &Settings) -> (String, Option<String>) {
    match backend(cloud) {
        Some(b) => (b.service)(settings),
        None => (cloud.to_string(), None),
    }
}

/// Live spot prices of `cloud` for `herd catalog refresh`: `None` when the backend
/// publishes none (or is not built in), `Some(Err(why))` when it could but cannot now.
pub fn spot_prices(cloud: Cloud, settings: &Settings) -> Option<std::result::Result<Box<dyn SpotPrices>, String>> {
    backend(cloud).and_then(|b| b.spot_prices).map(|f| f(settings))
}

/// Why `b` counts as configured: always for the simulator; else it is the default
/// cloud, a config file has its section, or the backend's own reasons.
pub fn configured_by(b: &Backend, settings: &Settings, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>> {
    if b.how_to_configure.is_some() {
        if settings.cloud == b.cloud {
            return Ok(Some(format!("the default cloud is {}", b.cloud)));
        }
        if let Some(file) = settings.section_file(b.section) {
            return Ok(Some(format!("an [{}] section in {}", b.section, file.display())));
        }
    }
    (b.configured_by)(settings, env)
}

/// The global flags that set a key of a backend's section. `--profile`, from before
/// flags said which cloud they are for, still works for AWS, with a warning.
pub fn section_flags(global: &GlobalArgs, printer: &Printer) -> Vec<SectionFlag> {
    let mut out = Vec::new();
    if let Some(p) = &global.profile {
        printer.warn("--profile is deprecated: it only ever meant AWS's profile; use --aws-profile");
        out.push(SectionFlag {
            flag: "--profile",
            key: "aws.profile",
            value: p.clone(),
        });
    }
    if let Some(p) = &global.aws_profile {
        out.push(SectionFlag {
            flag: "--aws-profile",
            key: "aws.profile",
            value: p.clone(),
        });
    }
    out
}

fn local(settings: &Settings) -> Result<LocalProvider> {
    settings
        .section::<SimulatorSection>(SimulatorSection::NAME)?
        .builder()?
        .agent(this_binary_as_agent()?)
        // terminate then refuses, on the simulator's own record, what is not the caller's.
        .owner(settings.owner.clone())
        .build()
}

/// The `[aws]` section with its defaults: herd's owner, region and data directory.
fn aws_config(settings: &Settings) -> Result<AwsConfig> {
    Ok(settings.section::<AwsSection>(AwsSection::NAME)?.into_config(
        &settings.owner,
        settings.region.as_deref(),
        &settings.data_dir,
    ))
}

/// The `[gcp]` section with its defaults: herd's owner, region and data directory.
fn gcp_config(settings: &Settings) -> Result<GcpConfig> {
    Ok(settings.section::<GcpSection>(GcpSection::NAME)?.into_config(
        &settings.owner,
        settings.region.as_deref(),
        &settings.data_dir,
    ))
}

/// The `[azure]` section with its defaults: herd's owner, region and data directory.
fn azure_config(settings: &Settings) -> Result<AzureConfig> {
    Ok(settings.section::<AzureSection>(AzureSection::NAME)?.into_config(
        &settings.owner,
        settings.region.as_deref(),
        &settings.data_dir,
    ))
}

/// EC2 with the bundled catalog plus any refreshed prices (`herd catalog refresh`), so
/// live spot prices become launchable. Builds no SDK client until a command calls EC2.
fn aws(settings: &Settings) -> Result<herd_aws::AwsProvider> {
    Ok(herd_aws::AwsProvider::builder(aws_config(settings)?)
        .catalog(crate::catalogs::all().clone())
        .build())
}

/// The process's environment for what backends read at run time (empty counts as unset).
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// One binary serves both roles: the simulator starts `herd __vm-agent ...` per VM.
fn this_binary_as_agent() -> Result<AgentCommand> {
    let program: PathBuf = std::env::current_exe()
        .map_err(|e| Error::config("cannot locate the herd executable to run the VM agent").with_source(e))?;
    Ok(AgentCommand {
        program,
        args: vec![VM_AGENT.to_string()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_is_registered_once_with_its_own_section_and_variables() {
        let mut sections = std::collections::BTreeSet::new();
        let mut vars = std::collections::BTreeSet::new();
        for b in BACKENDS {
            assert!(sections.insert(b.section), "section [{}] registered twice", b.section);
            assert_eq!(backend(b.cloud).unwrap().section, b.section);
            for (var, _) in b.env {
                assert!(var.starts_with("HERD_"), "{var}");
                assert!(vars.insert(*var), "{var} claimed twice");
            }
        }
        assert!(backend(Cloud::Gcp).is_some());
        assert!(backend(Cloud::Azure).is_some());
        let e = not_built(Cloud::Azure, "");
        assert!(e.message().contains("built without the azure backend"), "{e}");
        assert!(e.hint().unwrap().contains("local, aws, gcp, azure"), "{e:?}");
    }
}
