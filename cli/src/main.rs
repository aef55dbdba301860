//! `herd`: start cloud VMs with a price, a deadline and a budget, and find them again.
//! This binary is thin: clap parses ([`args`]), one step merges settings ([`settings`]),
//! each subcommand lives in its own file under [`commands`], and [`printer`] owns output.

mod args;
mod catalogs;
mod clouds;
mod commands;
mod context;
mod format;
mod printer;
mod registry;
mod reporter;
mod settings;
#[cfg(test)]
mod settings_fuzz;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The simulator starts this same binary as each VM's supervisor: hand over before
    // anything else is parsed or built.
    let mut argv = std::env::args_os();
    if argv.nth(1).is_some_and(|a| a == registry::VM_AGENT) {
        let rest = argv.map(|a| a.to_string_lossy().into_owned()).collect();
        std::process::exit(herd_local::agent::main(rest));
    }

    // Usage errors exit 2 (clap), `--help` and `--version` exit 0.
    let cli = args::Cli::parse();
    let printer = printer::Printer::new(cli.global.color).verbose(cli.global.verbose);
    match commands::run(cli, &printer) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<commands::ExitWith>() => {
            ExitCode::from(e.downcast_ref::<commands::ExitWith>().map_or(1, |c| c.0))
        }
        Err(e) => match e.downcast::<commands::Interrupted>() {
            // 128 + SIGINT, as a shell reports a process Ctrl-C ended.
            Ok(i) => {
                printer.error(&anyhow::Error::new(i.0));
                ExitCode::from(130)
            }
            Err(e) => {
                printer.error(&e);
                ExitCode::FAILURE
            }
        },
    }
}
