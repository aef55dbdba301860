//! Which clouds this build of herd can talk to, and how to build a [`Provider`] for one
//! from [`Settings`]. Commands never see a backend's types, only the [`Launcher`] that
//! [`crate::context::Context`] wraps around the provider built here.

use std::path::PathBuf;
use std::sync::Arc;

use herd_core::{Cloud, Error, Provider, Result};
use herd_local::{AgentCommand, LocalProvider};

use crate::settings::Settings;

/// The hidden subcommand under which this binary runs the simulator's per-VM agent.
pub const VM_AGENT: &str = "__vm-agent";

pub fn provider(cloud: Cloud, settings: &Settings) -> Result<Arc<dyn Provider>> {
    match cloud {
        Cloud::Local => Ok(Arc::new(local(settings)?)),
        Cloud::Aws => Ok(Arc::new(aws(settings))),
        other => Err(
            Error::unsupported(format!("this herd was built without the {other} backend"))
                .with_hint("use the simulator (`--cloud local`, the default) until that backend lands"),
        ),
    }
}

fn local(settings: &Settings) -> Result<LocalProvider> {
    let sim = &settings.simulator;
    let mut b = LocalProvider::builder()
        .state_dir(sim.state_dir.clone())
        .processes(sim.processes)
        .faults(sim.faults.clone())
        .agent(this_binary_as_agent()?)
        // terminate then refuses, on the simulator's own record, what is not the caller's.
        .owner(settings.owner.clone());
    if let Some(seed) = sim.seed {
        b = b.seed(seed);
    }
    b.build()
}

/// EC2 with the bundled catalog plus any refreshed prices (`herd catalog refresh`), so
/// live spot prices become launchable. Builds no SDK client until a command calls EC2.
pub(crate) fn aws(settings: &Settings) -> herd_aws::AwsProvider {
    let a = &settings.aws;
    let mut cfg = herd_aws::AwsConfig::new(&settings.owner, a.key_dir.clone());
    cfg.profile = a.profile.clone();
    cfg.region = a.region.clone().or_else(|| settings.region.clone());
    cfg.endpoint = a.endpoint.clone();
    cfg.ssh_cidr = a.ssh_cidr.clone();
    cfg.image_x86_64 = a.image_x86_64.clone();
    cfg.image_arm64 = a.image_arm64.clone();
    cfg.regions = a.regions.clone();
    herd_aws::AwsProvider::builder(cfg)
        .catalog(crate::catalogs::all().clone())
        .build()
}

/// Who a cloud's calls go to and where, for the lines that say what herd is waiting
/// for: an emulator's or AWS's regional endpoint, the simulator's state directory.
pub fn service(cloud: Cloud, settings: &Settings) -> (String, Option<String>) {
    match cloud {
        Cloud::Local => (
            "the simulator".into(),
            Some(settings.simulator.state_dir.display().to_string()),
        ),
        Cloud::Aws => {
            let a = &settings.aws;
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let endpoint = a
                .endpoint
                .clone()
                .or_else(|| env("AWS_ENDPOINT_URL_EC2"))
                .or_else(|| env("AWS_ENDPOINT_URL"))
                .or_else(|| {
                    a.region
                        .clone()
                        .or_else(|| settings.region.clone())
                        .or_else(|| env("AWS_REGION"))
                        .map(|r| format!("https://ec2.{r}.amazonaws.com"))
                });
            ("EC2".into(), endpoint)
        }
        other => (other.to_string(), None),
    }
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
