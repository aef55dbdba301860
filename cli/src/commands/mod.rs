//! One file per subcommand. [`run`] turns flags into settings overrides, loads the
//! settings once, and dispatches.

mod catalog;
mod chatty;
mod completions;
mod cost;
mod cp;
mod down;
pub(crate) mod env;
mod exec;
mod launch;
mod logs;
mod ls;
mod plan;
mod reap;
mod ssh;
mod sweep;
mod target;

use crate::args::{Cli, Command, CostCommand};
use crate::context::Context;
use crate::printer::Printer;
use crate::settings::{Overrides, Settings};

pub fn run(cli: Cli, printer: &Printer) -> anyhow::Result<()> {
    let Cli { global, command } = cli;
    // Completions need nothing else, not even a valid config.
    if let Command::Completions(a) = &command {
        return completions::run(a);
    }
    let mut overrides = overrides(global.config.clone(), &command);
    overrides.sections = crate::registry::section_flags(&global, printer);
    let settings = Settings::load(&overrides)?;
    let ctx = Context::new(settings, printer.clone(), global.verbose);
    if ctx.verbose {
        for f in &ctx.settings.files {
            ctx.printer.note(format!("config: {}", f.display()));
        }
    }
    let result = match &command {
        Command::Launch(a) => launch::run(&ctx, a),
        Command::Ls(a) => ls::run(&ctx, a),
        Command::Down(a) => down::run(&ctx, a),
        Command::Cost(a) => cost::run(&ctx, a),
        Command::Catalog(a) => catalog::run(&ctx, a),
        Command::Plan(a) => plan::run(&ctx, a),
        Command::Reap(a) => reap::run(&ctx, a),
        Command::Sweep(a) => sweep::run(&ctx, a),
        Command::Exec(a) => exec::run(&ctx, a),
        Command::Logs(a) => logs::run(&ctx, a),
        Command::Ssh(a) => ssh::run(&ctx, a),
        Command::Cp(a) => cp::run(&ctx, a),
        Command::Completions(a) => completions::run(a),
        Command::Env(a) => env::run(&ctx, a),
    };
    if ctx.verbose {
        report_api_calls(&ctx);
    }
    result
}

/// `--verbose`: what the command asked of each cloud, and how the retry loop fared --
/// every launcher the command built (one per cloud), launch calls included.
fn report_api_calls(ctx: &Context) {
    let launchers = ctx.built_launchers();
    let mut total = (0, 0);
    for l in &launchers {
        let (calls, throttled, transient, retries) = l.stats().snapshot();
        let (lcalls, lthrottled, ltransient, lretries) = l.launch_stats().snapshot();
        total.0 += calls + lcalls;
        total.1 += 1;
        // The retry loop counts operations; a backend that counts its HTTP requests says
        // how many went on the wire (regions, pages and lookups included).
        let wire = l
            .provider()
            .wire_requests()
            .map(|n| format!(", {n} HTTP request(s)"))
            .unwrap_or_default();
        ctx.printer.note(format!(
            "api: {} call(s) to {} ({} launch){wire}, {} throttled, {} transient failure(s), {} retried",
            calls + lcalls,
            l.info().cloud,
            lcalls,
            throttled + lthrottled,
            transient + ltransient,
            retries + lretries
        ));
    }
    if launchers.len() > 1 {
        ctx.printer
            .note(format!("api: {} call(s) to {} clouds in all", total.0, total.1));
    }
}

/// The command was interrupted (Ctrl-C): printed like any error, exit code 130.
#[derive(Debug)]
pub struct Interrupted(pub herd_core::Error);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Interrupted {}

/// A command whose own exit code is herd's (`herd ssh -- CMD`): nothing more is printed.
#[derive(Debug)]
pub struct ExitWith(pub u8);

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for ExitWith {}

/// The flags that are settings (the top layer of the merge).
fn overrides(config: Option<std::path::PathBuf>, command: &Command) -> Overrides {
    let mut o = Overrides {
        config,
        ..Overrides::default()
    };
    match command {
        Command::Launch(a) => {
            o.cloud = a.cloud.clone();
            o.region = a.region.clone();
            o.deadline = a.deadline.clone();
            o.keepalive = a.keepalive.clone();
            o.budget_per_launch = a.budget.clone();
        }
        Command::Env(crate::args::EnvArgs {
            command: crate::args::EnvCommand::Check(c),
        }) => o.cloud = c.cloud.clone(),
        Command::Cost(c) => {
            if let Some(CostCommand::Quote(q)) = &c.quote {
                o.cloud = q.cloud.clone();
                o.region = q.region.clone();
            }
        }
        _ => {}
    }
    o
}

/// Asks before destroying anything unless `--yes`; `false` means the user said no.
fn confirmed(ctx: &Context, yes: bool, question: &str, what: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    ctx.printer.confirm(question, what)
}

/// The error for "the user said no".
fn aborted(what: &str) -> anyhow::Error {
    herd_core::Error::new(herd_core::ErrorKind::Conflict, format!("aborted: {what}")).into()
}
