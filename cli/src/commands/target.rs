//! Which instances `exec`, `logs` and `cp` act on: one id, or every running instance of
//! a cluster or launch, found on every configured cloud at once, this owner's only.

use herd_core::{tags, Cloud, Error, Instance, InstanceState, Launcher, ListRequest};

use crate::args::TargetArgs;
use crate::clouds;
use crate::context::Context;

/// The running instances selected, each with its cloud's launcher.
pub async fn select<'a>(
    ctx: &'a Context,
    launchers: &[(Cloud, &'a Launcher)],
    id: Option<&str>,
    t: &TargetArgs,
) -> anyhow::Result<Vec<(&'a Launcher, Instance)>> {
    let picked = [id.is_some(), t.cluster.is_some(), t.launch_id.is_some()];
    if picked.iter().filter(|p| **p).count() != 1 {
        return Err(
            Error::invalid_spec("name one instance id, or --cluster NAME, or --launch ID")
                .with_hint("`herd ls` shows ids, clusters and launches")
                .into(),
        );
    }
    let (found, failures) = clouds::each(launchers, |cloud, l| async move {
        let req = match id {
            Some(id) => ListRequest::new().ids([id.to_string()]),
            None => {
                let mut r = l.mine().live();
                if let Some(c) = &t.cluster {
                    r = r.tag(tags::CLUSTER, tags::sanitize_value(c));
                }
                if let Some(lid) = &t.launch_id {
                    r = r.tag(tags::LAUNCH, tags::sanitize_value(lid));
                }
                r
            }
        };
        // The answer must match what was asked: filters are not trusted.
        let got: Vec<Instance> = l.list(&req).await?.into_iter().filter(|i| req.matches(i)).collect();
        Ok(clouds::keep_mine(ctx, cloud, got))
    })
    .await;
    clouds::warn(ctx, &failures);
    let mut out = Vec::new();
    for (cloud, instances) in found {
        let l = launchers
            .iter()
            .find(|(c, _)| *c == cloud)
            .map(|(_, l)| *l)
            .expect("launcher");
        for i in instances {
            if i.state == InstanceState::Running {
                out.push((l, i));
            } else {
                ctx.printer
                    .warn(format!("{} is {}, not running: skipped", i.id, i.state));
            }
        }
    }
    out.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    if out.is_empty() {
        let what = id.map(|i| format!("instance {i}")).unwrap_or_else(|| {
            t.cluster
                .as_ref()
                .map(|c| format!("cluster {c}"))
                .unwrap_or_else(|| format!("launch {}", t.launch_id.as_deref().unwrap_or_default()))
        });
        if let Some(e) = clouds::incomplete(&failures, "the selection") {
            return Err(e);
        }
        return Err(Error::new(
            herd_core::ErrorKind::NotFound,
            format!("no running instance of yours matches {what}"),
        )
        .with_hint("`herd ls` shows what runs")
        .into());
    }
    Ok(out)
}
