//! `herd logs ID [-f]`: what the boot script captured of `--setup` and `--command` on
//! the instance (herd-guest's `/var/log/herd-setup.log` and `herd-command.log`), read
//! through the cloud's `exec`; `-f` keeps following (`tail -F`) until Ctrl-C.

use std::io::Write;
use std::time::Duration;

use herd_core::{tags, ExecRequest, OutputStream};
use herd_guest::boot::{COMMAND_LOG, SETUP_LOG};

use super::{chatty, target};
use crate::args::{LogsArgs, TargetArgs};
use crate::clouds;
use crate::context::Context;

/// The shell that prints the logs (`follow`: and keeps printing them).
pub fn command(follow: bool) -> String {
    let files = format!("\"${{HERD_GUEST_ROOT:-}}/{SETUP_LOG}\" \"${{HERD_GUEST_ROOT:-}}/{COMMAND_LOG}\"");
    if follow {
        format!("tail -n +1 -F {files} 2>/dev/null")
    } else {
        format!("for f in {files}; do [ -r \"$f\" ] && {{ echo \"==> $f <==\"; cat \"$f\"; }}; done; true")
    }
}

pub fn run(ctx: &Context, a: &LogsArgs) -> anyhow::Result<()> {
    let clouds_ = ctx.clouds(&[])?;
    let (launchers, failures) = clouds::launchers(ctx, &clouds_);
    clouds::warn(ctx, &failures);
    let none = TargetArgs {
        cluster: None,
        launch_id: None,
    };
    ctx.block_on(async {
        let targets = target::select(ctx, &launchers, Some(&a.id), &none).await?;
        let (l, i) = &targets[0];
        let mut req = ExecRequest::new(command(a.follow));
        if a.follow {
            // Followed until Ctrl-C (or the VM's deadline): no timeout of its own.
            req = req.timeout(Duration::from_secs(366 * 86_400));
        }
        let mut sink = |s: OutputStream, d: &[u8]| {
            let _ = match s {
                OutputStream::Stdout => std::io::stdout().lock().write_all(d),
                OutputStream::Stderr => std::io::stderr().lock().write_all(d),
            };
        };
        tokio::select! {
            r = l.exec_streaming(&i.id, &req, &mut sink) => { r?; }
            _ = tokio::signal::ctrl_c(), if a.follow => {
                let stop = ExecRequest::new(super::exec::stop_command()).timeout(Duration::from_secs(15));
                let _ = tokio::time::timeout(Duration::from_secs(20), l.exec(&i.id, &stop)).await;
                return Ok(());
            }
        }
        // The projection is over the instance's whole cluster.
        let fleet = match i.tag(tags::CLUSTER) {
            Some(c) => l
                .list(&l.mine().live().tag(tags::CLUSTER, c))
                .await
                .map_or(1, |v| v.len().max(1)),
            None => 1,
        };
        chatty::print(ctx, &chatty::check(ctx, &targets[..1], fleet).await);
        Ok(())
    })?
}
