//! The command line as plain data: clap derives the parser, nothing here does work.
//! Values that need herd's own parsing (durations, money, tags, clouds) stay strings so
//! their errors come out in herd's `error:` / `hint:` form, not clap's.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Settings, lowest to highest precedence: defaults, ~/.config/herd/config.toml ($HERD_CONFIG),
the nearest herd.toml, --config FILE, HERD_* environment variables, flags.

Exit codes: 0 success, 1 error (including a refused budget or dry run), 2 usage error.";

#[derive(Debug, Parser)]
#[command(
    name = "herd",
    version,
    about = "Start cloud VMs with a price, a deadline and a budget; find and stop them again.",
    after_help = AFTER_HELP,
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Also read this config file (above herd.toml, below HERD_* variables).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// When to colour output; NO_COLOR in the environment means `never` for `auto`.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Say more: config files read, state changes in `ls --history`, where an error
    /// happened, and the API calls a command made.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// AWS only: the profile to use (from ~/.aws/config; SSO profiles work too). Same as
    /// `[aws] profile` in herd.toml or HERD_AWS_PROFILE.
    #[arg(long, global = true, value_name = "NAME")]
    pub aws_profile: Option<String>,
    /// Deprecated spelling of --aws-profile (it never applied to any other cloud).
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        hide = true,
        conflicts_with = "aws_profile"
    )]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch instances (priced, tagged, with a deadline the cloud enforces).
    Launch(LaunchArgs),
    /// List your instances, live from the cloud (or from the ledger with --history).
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Terminate instances.
    #[command(visible_alias = "terminate")]
    Down(DownArgs),
    /// What your instances cost, from the ledger; `herd cost quote TYPE` prices a type.
    Cost(CostArgs),
    /// List instance types and their prices.
    Catalog(CatalogArgs),
    /// Find the cheapest offers that meet your constraints.
    Plan(PlanArgs),
    /// Find and delete what herd left behind (volumes, overdue instances).
    Reap(ReapArgs),
    /// Benchmark one workload across instance types, regions and markets; rank by work
    /// per dollar and time to result.
    Sweep(SweepArgs),
    /// Run a command on instances over SSH (the simulator: its agent), all at once.
    #[command(after_help = "Example: herd exec --cluster train -- nproc")]
    Exec(ExecArgs),
    /// Read the output of --setup and --command, captured on the instance.
    Logs(LogsArgs),
    /// An interactive shell on an instance (the system `ssh`, with herd's key and the
    /// instance's pinned host key); after `--`, one command instead.
    #[command(
        after_help = "Examples:\n  herd ssh i-0abc\n  herd ssh i-0abc -- nvidia-smi\n  herd ssh i-0abc --print   # the ssh command line, to reuse"
    )]
    Ssh(SshArgs),
    /// Copy local files to instances (into the folder commands run in, or DEST).
    #[command(after_help = "Example: herd cp run.sh data.csv --cluster train:inputs")]
    Cp(CpArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Capture, show and check the local Python environment that `--env` copies to VMs.
    #[command(
        after_help = "Example: herd env capture -o env.lock && herd launch l1.small --env env.lock --command 'python train.py'"
    )]
    Env(EnvArgs),
}

/// `herd launch --help`: the fleet rule, where a user looks for it.
const LAUNCH_AFTER_HELP: &str = "\
Fleets: several types and/or regions (comma-separated) make one fleet on one cloud:
  herd launch m7g.large,m7i.large --region us-east-1,us-west-2 -n 2000
splits 2000 exactly over the 4 type × region parts (500 each; a remainder goes one each
to the first parts, types outer, regions inner), or --fleet FILE lists the parts:
  [[part]]
  type = \"m7g.large\"
  region = \"us-east-1\"
  count = 500          # or weight = 1, with -n (or `count = N` at the top) as the total
A fleet is one launch: one cluster, one launch id (`herd down --launch ID` stops it all),
one budget reservation for its whole worst case; its parts launch at the same time.
If a part fails, it is all or nothing: the other parts are stopped and everything the
fleet started is terminated; the error names the failed part. --partial keeps the
parts that started instead (the failed ones are ended; the exit code is still 1).";

#[derive(Debug, Args)]
#[command(after_help = LAUNCH_AFTER_HELP)]
pub struct LaunchArgs {
    /// Instance type, e.g. l1.small (`herd catalog` lists them); several,
    /// comma-separated, make a fleet.
    #[arg(value_name = "TYPE[,TYPE...]", required_unless_present = "fleet")]
    pub instance_type: Option<String>,
    /// How many instances (default 1); for a fleet, the total split over its parts.
    #[arg(short = 'n', long, value_name = "N", value_parser = parse_count)]
    pub count: Option<u32>,
    /// Region; several, comma-separated, make a fleet.
    #[arg(long, value_name = "REGION[,REGION...]")]
    pub region: Option<String>,
    /// A fleet file: its parts' types, regions and counts or weights (see below).
    #[arg(long, value_name = "FILE", conflicts_with = "instance_type")]
    pub fleet: Option<PathBuf>,
    /// Fleets: when a part fails, keep the parts that started (default: all or nothing).
    #[arg(long)]
    pub partial: bool,
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<String>,
    /// Buy spot capacity (cheaper, may be interrupted).
    #[arg(long, conflicts_with = "spot_fallback")]
    pub spot: bool,
    /// Try spot, fall back to on-demand when there is no spot capacity.
    #[arg(long)]
    pub spot_fallback: bool,
    /// The cloud ends the instances after this long (e.g. 90m, 2h).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub deadline: Option<String>,
    /// Idle timeout (e.g. 20m); 0 turns it off.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub keepalive: Option<String>,
    /// A tag to add, key=value (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// Cluster name (default: derived from the launch id).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Run once when an instance is up.
    #[arg(long, value_name = "CMD")]
    pub setup: Option<String>,
    /// Run after setup; the instance stays up afterwards until idle or its deadline.
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Idempotency key: launching again with the same id starts nothing new.
    #[arg(long, value_name = "ID")]
    pub launch_id: Option<String>,
    /// Per-launch budget for this launch, e.g. 25 or $25.
    #[arg(long, value_name = "USD")]
    pub budget: Option<String>,
    /// Print the plan and its worst-case cost; launch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait until the instances are running (the default).
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// Return as soon as the cloud accepted the launch.
    #[arg(long, overrides_with = "wait")]
    pub no_wait: bool,
    #[arg(long, value_name = "CLOUD")]
    pub cloud: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// The Python environment to build on every instance before --command runs in it:
    /// `auto` (capture the local one now), a lock from `herd env capture -o`, or `none`.
    #[arg(long, value_name = "auto|none|FILE")]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    #[command(subcommand)]
    pub command: EnvCommand,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Read the local interpreter and its packages into a lock (stdout, or -o FILE).
    Capture(EnvCaptureArgs),
    /// Show a lock (or, without FILE, what `capture` would write now).
    Show(EnvShowArgs),
    /// Check a lock for a target's platform before launching (what `launch --env` does).
    Check(EnvCheckArgs),
}

#[derive(Debug, Args, Clone, Default)]
pub struct EnvCaptureArgs {
    /// The interpreter (default: $VIRTUAL_ENV, $CONDA_PREFIX, else python3 on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Only the packages this requirements file names (versions from the environment).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["lock", "pyproject"])]
    pub requirements: Option<PathBuf>,
    /// The packages and versions of this uv.lock.
    #[arg(long, value_name = "uv.lock", conflicts_with = "pyproject")]
    pub lock: Option<PathBuf>,
    /// The [project] dependencies of this pyproject.toml (versions from the environment).
    #[arg(long, value_name = "FILE")]
    pub pyproject: Option<PathBuf>,
    /// Leave a package out (repeatable).
    #[arg(long, value_name = "PKG")]
    pub ignore: Vec<String>,
    /// Only these packages (repeatable).
    #[arg(long, value_name = "PKG")]
    pub only: Vec<String>,
    /// Refuse anything that cannot be reproduced on a VM (the default).
    #[arg(long, conflicts_with = "lenient")]
    pub strict: bool,
    /// Drop what cannot be reproduced (local-only packages) with a warning.
    #[arg(long)]
    pub lenient: bool,
    /// Write the lock here (its local wheels beside it, in FILE.wheels/).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EnvShowArgs {
    /// A lock written by `herd env capture -o`.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EnvCheckArgs {
    /// A lock (default: capture the local environment now).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The target architecture (x86_64 or arm64).
    #[arg(long, value_name = "ARCH", conflicts_with = "instance_type")]
    pub arch: Option<String>,
    /// The target instance type (its architecture, from the catalog).
    #[arg(long = "type", value_name = "TYPE")]
    pub instance_type: Option<String>,
    #[arg(long, value_name = "CLOUD")]
    pub cloud: Option<String>,
}

/// Counts are whole numbers; say so instead of clap's "invalid digit".
fn parse_count(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .map_err(|_| format!("`{s}` is not a whole number of instances (1 to 4294967295)"))
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Include terminated instances.
    #[arg(long)]
    pub all_states: bool,
    /// Read the ledger instead of the cloud (ended instances included).
    #[arg(long)]
    pub history: bool,
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    #[arg(long = "launch", value_name = "LAUNCH_ID")]
    pub launch_id: Option<String>,
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// pending, running, shutting-down or terminated.
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    /// Only this cloud (repeatable); default: every configured cloud.
    #[arg(long, value_name = "CLOUD")]
    pub cloud: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Instance ids.
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// All your live instances of this cluster.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// All your live instances of this launch.
    #[arg(long = "launch", value_name = "LAUNCH_ID")]
    pub launch_id: Option<String>,
    /// All your live instances, on every configured cloud. Works without the ledger
    /// (missing or corrupt): the clouds' own tags say what is yours.
    #[arg(long, conflicts_with_all = ["ids", "cluster", "launch_id"])]
    pub all: bool,
    /// Only this cloud (repeatable); default: every configured cloud.
    #[arg(long, value_name = "CLOUD")]
    pub cloud: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CostArgs {
    #[command(subcommand)]
    pub quote: Option<CostCommand>,
    /// How to group the report.
    #[arg(long, value_enum, default_value_t = CostBy::Cluster)]
    pub by: CostBy,
    /// Start of the period: a duration ago (7d, 12h) or a date (2026-01-31).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only this cloud (repeatable); default: every configured cloud.
    #[arg(long, value_name = "CLOUD")]
    pub cloud: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CostBy {
    Cluster,
    Launch,
    Day,
    Type,
    Cloud,
}

#[derive(Debug, Subcommand)]
pub enum CostCommand {
    /// What a type costs per hour and for a duration.
    Quote(QuoteArgs),
}

#[derive(Debug, Args)]
pub struct QuoteArgs {
    #[arg(value_name = "TYPE")]
    pub instance_type: String,
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    #[arg(long)]
    pub spot: bool,
    /// Hours to price (decimals allowed, e.g. 1.5).
    #[arg(long, default_value = "1", value_name = "H")]
    pub hours: String,
    #[arg(short = 'n', long, default_value = "1", value_name = "N", value_parser = parse_count)]
    pub count: u32,
    #[arg(long, value_name = "CLOUD")]
    pub cloud: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CatalogArgs {
    #[command(subcommand)]
    pub command: Option<CatalogCommand>,
    /// Only this cloud (repeatable).
    #[arg(long, value_name = "CLOUD")]
    pub cloud: Vec<String>,
    /// Region glob, e.g. 'us-*', 'europe-*' (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub region: Vec<String>,
    /// Family, e.g. c7g, n2d, Dsv5 (repeatable).
    #[arg(long, value_name = "FAMILY")]
    pub family: Vec<String>,
    /// Exactly this many vCPUs.
    #[arg(long, value_name = "N", conflicts_with_all = ["min_vcpus", "max_vcpus"])]
    pub vcpus: Option<u32>,
    /// CPU family substring, e.g. graviton3, epyc, xeon.
    #[arg(long, value_name = "NAME")]
    pub cpu_family: Option<String>,
    /// Also list offers whose price the sources do not know.
    #[arg(long)]
    pub unpriced: bool,
    /// List the families (type count, vCPU range) instead of offers.
    #[arg(long)]
    pub families: bool,
    /// Type glob, e.g. 'c1.*' (repeatable).
    #[arg(long = "type", value_name = "GLOB")]
    pub types: Vec<String>,
    /// x86_64 or arm64.
    #[arg(long)]
    pub arch: Option<String>,
    /// CPU vendor.
    #[arg(long)]
    pub vendor: Option<String>,
    #[arg(long, value_name = "N")]
    pub min_vcpus: Option<u32>,
    #[arg(long, value_name = "N")]
    pub max_vcpus: Option<u32>,
    /// At least this much memory, GiB.
    #[arg(long, value_name = "GIB", visible_alias = "memory")]
    pub min_memory: Option<String>,
    /// GPU model (substring match), e.g. A100, L4.
    #[arg(long, value_name = "MODEL")]
    pub gpu: Option<String>,
    /// At least this many GPUs.
    #[arg(long, value_name = "N", visible_alias = "gpus")]
    pub min_gpus: Option<u32>,
    /// Spot offers only.
    #[arg(long, conflicts_with = "on_demand")]
    pub spot: bool,
    /// On-demand offers only.
    #[arg(long)]
    pub on_demand: bool,
    /// Most dollars per hour, e.g. 0.10.
    #[arg(long, value_name = "USD")]
    pub max_price: Option<String>,
    #[arg(long, value_enum, default_value_t = SortBy::Price)]
    pub sort: SortBy,
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Fetch today's prices from the clouds' public price sources into your price
    /// overlay (AWS bulk price list, Azure Retail Prices API, GCP Cloud Billing Catalog).
    Refresh(RefreshArgs),
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Only this cloud (repeatable): aws, gcp, azure. Default: all three.
    #[arg(long, value_name = "CLOUD")]
    pub cloud: Vec<String>,
    /// Only regions matching this glob (repeatable), e.g. 'us-*'.
    #[arg(long, value_name = "GLOB")]
    pub region: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    Price,
    PricePerVcpu,
    PricePerGib,
    Vcpus,
    Memory,
    Name,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// At least this many vCPUs.
    #[arg(long, value_name = "N", visible_alias = "min-vcpus")]
    pub vcpus: Option<u32>,
    /// Family, e.g. c7g, n2d, Dsv5 (repeatable).
    #[arg(long, value_name = "FAMILY")]
    pub family: Vec<String>,
    /// Type glob, e.g. 'c7g.*' (repeatable).
    #[arg(long = "type", value_name = "GLOB")]
    pub types: Vec<String>,
    /// CPU family substring, e.g. graviton3, epyc.
    #[arg(long, value_name = "NAME")]
    pub cpu_family: Option<String>,
    /// Rank by this instead of the hourly price.
    #[arg(long, value_enum, default_value_t = SortBy::Price)]
    pub sort: SortBy,
    /// At least this much memory, GiB.
    #[arg(long, value_name = "GIB")]
    pub memory: Option<String>,
    #[arg(long)]
    pub arch: Option<String>,
    #[arg(long)]
    pub vendor: Option<String>,
    #[arg(long, value_name = "MODEL")]
    pub gpu: Option<String>,
    /// At least this many GPUs.
    #[arg(long, value_name = "N")]
    pub gpus: Option<u32>,
    /// Most dollars per hour.
    #[arg(long, value_name = "USD")]
    pub max_price: Option<String>,
    /// Spot offers only.
    #[arg(long)]
    pub spot: bool,
    /// Region glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub region: Vec<String>,
    /// Only this cloud (repeatable).
    #[arg(long, value_name = "CLOUD")]
    pub cloud: Vec<String>,
    /// How many offers to show.
    #[arg(long, default_value_t = 10, value_name = "N", visible_alias = "limit")]
    pub top: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReapArgs {
    /// Only this cloud (repeatable); default: every configured cloud.
    #[arg(long, value_name = "CLOUD")]
    pub cloud: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn negative_durations_reach_herd_not_clap() {
        let cli = Cli::try_parse_from(["herd", "launch", "l1.small", "--deadline", "-5m"]).unwrap();
        let Command::Launch(a) = cli.command else { panic!() };
        assert_eq!(a.deadline.as_deref(), Some("-5m"));
    }

    #[test]
    fn a_launch_needs_a_type_or_a_fleet_file_not_both() {
        let e = Cli::try_parse_from(["herd", "launch"]).unwrap_err();
        assert!(e.to_string().contains("TYPE"), "{e}");
        let cli = Cli::try_parse_from(["herd", "launch", "--fleet", "f.toml", "-n", "10"]).unwrap();
        let Command::Launch(a) = cli.command else { panic!() };
        assert_eq!((a.instance_type, a.count), (None, Some(10)));
        assert!(Cli::try_parse_from(["herd", "launch", "l1.small", "--fleet", "f.toml"]).is_err());
    }

    #[test]
    fn count_must_be_whole() {
        let e = Cli::try_parse_from(["herd", "launch", "l1.small", "-n", "1e9"]).unwrap_err();
        assert!(e.to_string().contains("not a whole number"), "{e}");
    }
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub command: SweepCommand,
}

#[derive(Debug, Subcommand)]
pub enum SweepCommand {
    /// Expand a spec's matrix: every cell, dropped combinations with the reason, and the
    /// worst-case cost against the sweep's budget. Launches nothing.
    Plan(SweepPlanArgs),
    /// Run a sweep (resuming it: repetitions already in the ledger are not run again).
    Run(SweepRunArgs),
    /// Rank a sweep's cells and write the report (table, CSV, JSON, charts, HTML).
    Report(SweepReportArgs),
    /// List the sweeps in the ledger.
    Ls(SweepLsArgs),
}

#[derive(Debug, Args)]
pub struct SweepPlanArgs {
    /// The sweep spec (TOML), e.g. examples/compress/sweep.toml.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SweepRunArgs {
    /// The sweep spec (TOML).
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// Also write the report into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Cells at once (overrides the spec's `concurrency`).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Print the plan and its worst case; launch nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct SweepReportArgs {
    /// A sweep id or name (`herd sweep ls`), or the spec file.
    #[arg(value_name = "SWEEP")]
    pub sweep: String,
    /// Write the report (index.html, report.csv, report.json, SVG and PNG charts) here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The scores as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the report (into --out, else a directory under herd's data dir) and open
    /// its page in the browser (`$BROWSER`, else xdg-open / open).
    #[arg(long)]
    pub open: bool,
}

#[derive(Debug, Args)]
pub struct SweepLsArgs {
    #[arg(long)]
    pub json: bool,
}

/// Which instances a command runs on: ids, or every live instance of a cluster or launch.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Every live instance of this cluster.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Every live instance of this launch.
    #[arg(long = "launch", value_name = "LAUNCH_ID")]
    pub launch_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// An instance id (or use --cluster / --launch).
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Longest the command may run on each instance (e.g. 90s, 10m); then it is ended.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Files to copy into the command's folder first.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Exit codes and output tails as JSON instead of streamed lines.
    #[arg(long)]
    pub json: bool,
    /// The command, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Keep printing as the logs grow (Ctrl-C ends).
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    /// The instance id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Print the `ssh` command line (and write its known-hosts file) instead of running it.
    #[arg(long)]
    pub print: bool,
    /// A command to run instead of a shell.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Local files, then the target last: ID[:DEST] (or only files, with --cluster/--launch).
    #[arg(value_name = "LOCAL... TARGET", required = true)]
    pub paths: Vec<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Where on the instance with --cluster/--launch (default: the command folder).
    #[arg(long, value_name = "DIR")]
    pub dest: Option<String>,
}
