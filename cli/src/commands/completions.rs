//! `herd completions SHELL`: a completion script on stdout.

use clap::CommandFactory;

use crate::args::{Cli, CompletionsArgs};

pub fn run(a: &CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "herd", &mut std::io::stdout().lock());
    Ok(())
}
