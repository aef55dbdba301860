//! End-to-end tests of the real `herd` binary against the local simulator: real agent
//! processes (started as `herd __vm-agent`), a ledger and a state dir in a temp dir, a
//! clean environment, no terminal on stdin.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use herd_testkit::cli::{printed_command, Herd as Sandbox, Run};
use serde_json::Value;

const HERD: &str = env!("CARGO_BIN_EXE_herd");

/// A sandbox (herd-testkit's CLI harness) whose herd.toml makes instances boot in 100-200 ms.
fn sandbox() -> Sandbox {
    sandbox_with("[simulator.faults]\nboot_delay = [\"100ms\", \"200ms\"]\n")
}

fn sandbox_with(herd_toml: &str) -> Sandbox {
    Sandbox::with_config(HERD, herd_toml)
}

fn states(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i["state"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn launch_ls_cost_down_round_trip() {
    let sb = sandbox();
    let launched = sb.ok(&[
        "launch",
        "l1.small",
        "-n",
        "2",
        "--deadline",
        "5m",
        "--cluster",
        "e2e",
        "--tag",
        "team=ml",
    ]);
    assert_eq!(launched.stdout.matches("running").count(), 2, "{}", launched.stdout);
    assert!(launched.stdout.starts_with("ID "), "{}", launched.stdout);
    assert!(
        launched.stderr.contains("herd down --cluster e2e"),
        "{}",
        launched.stderr
    );

    // Another process sees what the first launched.
    let table = sb.ok(&["ls"]);
    let header = table.stdout.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["ID", "CLOUD", "TYPE", "ZONE", "STATE", "PURCHASE", "$/H", "AGE", "DEADLINE", "CLUSTER"]
    );
    assert_eq!(table.stdout.lines().count(), 3, "{}", table.stdout);
    assert!(table.stdout.contains("l1.small"));
    assert!(table.stdout.contains(" left"), "time left shown: {}", table.stdout);

    let list = sb.json(&["ls", "--json"]);
    assert_eq!(states(&list), ["running", "running"]);
    for i in list.as_array().unwrap() {
        assert_eq!(i["tags"]["herd-cluster"], "e2e");
        assert_eq!(i["tags"]["herd-owner"], "tester");
        assert_eq!(i["tags"]["team"], "ml");
        assert_eq!(i["instance_type"], "l1.small");
    }
    assert_eq!(sb.json(&["ls", "--json", "--cluster", "other"]), Value::Array(vec![]));

    let cost = sb.json(&["cost", "--json"]);
    assert_eq!(cost["by"], "cluster");
    assert_eq!(cost["total"]["instances"], 2);
    assert_eq!(cost["total"]["live"], 2);
    assert_eq!(cost["rows"][0]["key"], "e2e");
    let table = sb.ok(&["cost", "--by", "type"]);
    assert!(table.stdout.contains("l1.small"), "{}", table.stdout);
    assert!(table.stdout.contains("total"), "{}", table.stdout);

    let down = sb.ok(&["down", "--cluster", "e2e", "--yes", "-v"]);
    assert_eq!(down.stdout.matches("terminated").count(), 2, "{}", down.stdout);
    // -v counts the calls: at least the list and the terminate.
    let calls: u64 = down
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("api: ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no api line: {}", down.stderr));
    assert!(calls >= 2, "{}", down.stderr);

    let empty = sb.ok(&["ls"]);
    assert_eq!(empty.stdout, "");
    assert!(empty
        .stderr
        .contains("no instances; start one with `herd launch l1.small`"));
    assert_eq!(sb.json(&["ls", "--json"]), Value::Array(vec![]));

    let history = sb.json(&["ls", "--history", "--json"]);
    assert_eq!(states(&history), ["terminated", "terminated"]);
    let verbose = sb.json(&["ls", "--history", "--json", "--verbose"]);
    assert!(verbose[0]["state_changes"].as_array().unwrap().len() >= 2);

    // Down again: idempotent.
    let again = sb.ok(&["down", "--cluster", "e2e", "--yes"]);
    assert!(again.stderr.contains("nothing to terminate"), "{}", again.stderr);
    let cost = sb.json(&["cost", "--json"]);
    assert_eq!(cost["total"]["live"], 0);
}

#[test]
fn dry_run_shows_the_worst_case_and_launches_nothing() {
    let sb = sandbox();
    let r = sb.ok(&[
        "launch",
        "l1.small",
        "-n",
        "2",
        "--deadline",
        "2h",
        "--region",
        "local-east-1",
        "--dry-run",
    ]);
    // 2 x $0.0104/h x 2h, from the simulator's price list.
    assert!(
        r.stdout.contains("worst case  $0.0416 = 2 × $0.0104/h on-demand × 2h"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("fits"), "{}", r.stdout);
    assert!(r.stderr.contains("dry run: nothing launched"));
    let plan = sb.json(&["launch", "l1.small", "--dry-run", "--json"]);
    assert_eq!(plan["fits"], true);
    assert_eq!(plan["plan"]["request"]["instance_type"], "l1.small");
    assert_eq!(sb.json(&["ls", "--json", "--all-states"]), Value::Array(vec![]));
}

#[test]
fn over_budget_is_refused_with_a_hint() {
    let sb = sandbox();
    // 10 x $0.116/h x 24h = $27.84, over the default $10 per launch.
    let r = sb.fails(&["launch", "m1.xlarge", "-n", "10", "--deadline", "24h", "--dry-run"]);
    assert!(r.stdout.contains("would be refused"), "{}", r.stdout);
    assert!(r.stderr.contains("per-launch budget"), "{}", r.stderr);
    assert!(r.stderr.contains("\nhint: "), "{}", r.stderr);

    let r = sb.fails(&["launch", "m1.xlarge", "-n", "10", "--deadline", "24h"]);
    assert!(r.stderr.contains("budget"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
    assert_eq!(sb.json(&["ls", "--json", "--all-states"]), Value::Array(vec![]));

    // Raised for this launch only, the plan fits.
    sb.ok(&[
        "launch",
        "m1.xlarge",
        "-n",
        "10",
        "--deadline",
        "24h",
        "--dry-run",
        "--budget",
        "$30",
    ]);
}

#[test]
fn bad_input_gets_clear_errors() {
    let sb = sandbox();
    let r = sb.fails(&["launch", "l1.smal"]);
    assert!(r.stderr.contains("did you mean `l1.small`"), "{}", r.stderr);
    let r = sb.fails(&["launch", "l1.small", "--region", "local-east1"]);
    assert!(r.stderr.contains("did you mean `local-east-1`"), "{}", r.stderr);
    let r = sb.fails(&["launch", "l1.small", "-n", "0"]);
    assert!(r.stderr.contains("count must be at least 1"), "{}", r.stderr);
    let r = sb.fails(&["launch", "l1.small", "-n", "1000000000"]);
    assert!(r.stderr.contains("more than the limit"), "{}", r.stderr);
    for (d, says) in [
        ("-5m", "`-5m` is not a duration"),
        ("abc", "`abc` is not a duration"),
        ("400d", "longer than"),
    ] {
        let r = sb.fails(&["launch", "l1.small", "--deadline", d]);
        assert!(r.stderr.contains(says), "{d}: {}", r.stderr);
        assert!(r.stderr.contains("hint: "), "{d}: {}", r.stderr);
    }
    let r = sb.fails(&["launch", "l1.small", "--tag", "Team=ML X"]);
    assert!(r.stderr.contains("tag key `Team` is not valid"), "{}", r.stderr);
    let r = sb.fails(&["launch", "l1.small", "--cloud", "awz"]);
    assert!(r.stderr.contains("did you mean `aws`"), "{}", r.stderr);
    // A simulator type on AWS: refused before any AWS call, with AWS's nearest types.
    let r = sb.fails(&["launch", "l1.small", "--cloud", "aws"]);
    assert!(
        r.stderr.contains("unknown instance type `l1.small` on aws"),
        "{}",
        r.stderr
    );

    // Usage errors are clap's, exit code 2.
    let r = sb.run(&["launch", "l1.small", "-n", "1e9"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not a whole number"), "{}", r.stderr);
    assert_eq!(sb.run(&["lunch"]).code, 2);
}

#[test]
fn malformed_config_names_file_line_and_key() {
    let sb = sandbox_with("owner = \"me\"\n\nbudgett = 3\n");
    let r = sb.fails(&["ls"]);
    let file = sb.path().join("herd.toml");
    assert_eq!(
        r.stderr,
        format!(
            "error: invalid config {}:3:1: unknown field `budgett`\nhint: did you mean `budget`?\n",
            file.display()
        )
    );
}

#[test]
fn down_without_yes_and_without_a_terminal_refuses() {
    let sb = sandbox();
    sb.ok(&["launch", "l1.small", "--deadline", "5m", "--no-wait"]);
    let r = sb.fails(&["down", "--all"]);
    assert!(r.stderr.contains("hint: pass --yes"), "{}", r.stderr);
    assert_eq!(sb.json(&["ls", "--json"]).as_array().unwrap().len(), 1);

    let r = sb.fails(&["down"]);
    assert!(r.stderr.contains("nothing selected"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);

    // An id nobody ever saw: a warning, reported as gone, exit 0.
    let r = sb.ok(&["down", "i-0123456789abcdef0", "--yes"]);
    assert!(
        r.stderr
            .contains("warning: i-0123456789abcdef0 is not an instance herd knows"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("already gone"), "{}", r.stdout);

    let id = sb.json(&["ls", "--json"])[0]["id"].as_str().unwrap().to_string();
    let r = sb.json(&["down", &id, "--yes", "--json"]);
    assert_eq!(r[0]["outcome"], "terminated");
    // Known to herd and gone: no warning.
    let r = sb.ok(&["down", &id, "--yes"]);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    assert!(r.stdout.contains("already gone"), "{}", r.stdout);
}

#[test]
fn read_only_commands_touch_no_state() {
    let sb = sandbox();
    let v = sb.ok(&["--version"]);
    assert_eq!(v.stdout, format!("herd {}\n", env!("CARGO_PKG_VERSION")));
    let comp = sb.ok(&["completions", "bash"]);
    assert!(
        comp.stdout.contains("_herd()"),
        "{}",
        &comp.stdout[..200.min(comp.stdout.len())]
    );
    sb.ok(&["catalog", "--limit", "3"]);
    sb.ok(&["plan", "--vcpus", "2"]);
    sb.ok(&["cost", "quote", "l1.small"]);
    assert!(!sb.ledger().exists(), "the ledger was opened");
    assert!(!sb.sim_dir().exists(), "the simulator was started");
}

#[test]
fn catalog_filters() {
    let sb = sandbox();
    let host = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    };
    let other = if host == "arm64" { "x86_64" } else { "arm64" };
    let rows = sb.json(&["catalog", "--arch", host, "--min-vcpus", "2", "--json"]);
    let rows = rows.as_array().unwrap();
    assert!(!rows.is_empty());
    for r in rows {
        assert!(r["vcpus"].as_u64().unwrap() >= 2, "{r}");
        assert_eq!(r["arch"], host);
    }
    assert_eq!(
        sb.json(&["catalog", "--cloud", "local", "--arch", other, "--json"]),
        Value::Array(vec![])
    );

    let spot = sb.json(&[
        "catalog",
        "--spot",
        "--family",
        "c1",
        "--region",
        "local-eu-*",
        "--json",
    ]);
    for r in spot.as_array().unwrap() {
        assert_eq!(r["purchase"], "spot");
        assert_eq!(r["family"], "c1");
        assert_eq!(r["region"], "local-eu-1");
    }
    let limited = sb.json(&["catalog", "--sort", "name", "--limit", "2", "--json"]);
    assert_eq!(limited.as_array().unwrap().len(), 2);

    let table = sb.ok(&[
        "catalog",
        "--type",
        "l1.small",
        "--on-demand",
        "--region",
        "local-east-1",
    ]);
    assert_eq!(table.stdout.lines().count(), 2, "{}", table.stdout);
    assert!(table.stdout.contains("$0.0104"), "{}", table.stdout);
    // The simulator's prices are herd's own and never go stale: no age warning.
    assert!(!table.stderr.contains("days old"), "{}", table.stderr);

    let r = sb.run(&["catalog", "--sort", "prize"]);
    assert_eq!(r.code, 2);
}

#[test]
fn plan_ranks_by_price_and_explains_no_match() {
    let sb = sandbox();
    let plan = sb.json(&["plan", "--cloud", "local", "--vcpus", "2", "--top", "5", "--json"]);
    let offers = plan["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 5);
    assert_eq!(
        plan["scanned"].as_u64().unwrap() as usize,
        sb.json(&["catalog", "--cloud", "local", "--json"])
            .as_array()
            .unwrap()
            .len()
    );
    let prices: Vec<f64> = offers
        .iter()
        .map(|o| o["hourly"]["amount"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    assert!(offers.iter().all(|o| o["vcpus"].as_u64().unwrap() >= 2));

    let r = sb.fails(&["plan", "--cloud", "local", "--vcpus", "2", "--max-price", "0.001"]);
    assert!(r.stderr.contains("no offer meets all the constraints"), "{}", r.stderr);
    assert!(
        r.stderr.contains("hint: --max-price rules out the most"),
        "{}",
        r.stderr
    );
    let r = sb.fails(&["plan", "--cloud", "local", "--gpu", "a100"]);
    assert!(r.stderr.contains("hint: --gpu"), "{}", r.stderr);
}

#[test]
fn cost_quote_prices_a_type() {
    let sb = sandbox();
    let q = sb.json(&[
        "cost",
        "quote",
        "l1.small",
        "--region",
        "local-east-1",
        "--hours",
        "2",
        "-n",
        "3",
        "--json",
    ]);
    assert_eq!(q["quote"]["hourly"]["amount"], "0.0104");
    assert_eq!(q["total"]["amount"].as_str().unwrap().parse::<f64>().unwrap(), 0.0624);
    assert_eq!(q["billed_seconds"], 7200);
    let r = sb.ok(&["cost", "quote", "l1.small", "--spot"]);
    assert!(r.stdout.contains("spot"), "{}", r.stdout);
    assert!(r.stdout.contains("billed per second"), "{}", r.stdout);
    let r = sb.fails(&["cost", "quote", "l1.smal"]);
    assert!(r.stderr.contains("did you mean `l1.small`"), "{}", r.stderr);
}

#[test]
fn reap_with_nothing_left_says_so() {
    let sb = sandbox();
    let r = sb.ok(&["reap"]);
    assert!(r.stderr.contains("nothing to reap"), "{}", r.stderr);
    assert_eq!(r.stdout, "");
}

#[test]
fn corrupted_ledger_is_a_clear_error() {
    let sb = sandbox();
    std::fs::write(sb.ledger(), vec![0x5a_u8; 8192]).unwrap();
    let r = sb.fails(&["ls", "--history"]);
    assert!(r.stderr.contains(&sb.ledger().display().to_string()), "{}", r.stderr);
    assert!(r.stderr.contains("\nhint: move it aside"), "{}", r.stderr);
    // Read-only commands that need no ledger still work.
    sb.ok(&["plan", "--vcpus", "1", "--top", "1"]);
}

#[test]
fn reap_finds_and_deletes_leftover_volumes() {
    // The simulator "forgets" every volume on terminate: something for reap to find.
    let sb = sandbox_with("[simulator.faults]\nboot_delay = \"100ms\"\norphan_volume_rate = 1.0\n");
    sb.ok(&["launch", "l1.small", "--deadline", "5m"]);
    sb.ok(&["down", "--all", "--yes"]);

    let r = sb.fails(&["reap"]);
    assert!(r.stdout.contains("volume"), "{}", r.stdout);
    assert!(r.stdout.contains("total"), "{}", r.stdout);
    assert!(r.stderr.contains("hint: pass --yes"), "{}", r.stderr);

    let done = sb.json(&["reap", "--yes", "--json"]);
    assert_eq!(done["found"]["leftovers"].as_array().unwrap().len(), 1);
    assert_eq!(done["found"]["leftovers"][0]["kind"], "volume");
    assert_eq!(done["reaped"][0]["outcome"], "terminated");
    assert!(sb.ok(&["reap"]).stderr.contains("nothing to reap"));
}

#[test]
fn same_launch_id_is_idempotent_and_spot_is_spot() {
    let sb = sandbox();
    let args = [
        "launch",
        "l1.small",
        "--spot",
        "--launch-id",
        "e2e-idem",
        "--deadline",
        "5m",
        "--json",
    ];
    let first = sb.json(&args);
    let again = sb.json(&args);
    assert_eq!(first["instances"][0]["id"], again["instances"][0]["id"]);
    assert_eq!(first["instances"][0]["purchase"], "spot");
    assert_eq!(sb.json(&["ls", "--json"]).as_array().unwrap().len(), 1);

    let r = sb.fails(&["launch", "l1.large", "--launch-id", "e2e-idem", "--deadline", "5m"]);
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
    let down = sb.json(&["down", "--launch", "e2e-idem", "--yes", "--json"]);
    assert_eq!(down.as_array().unwrap().len(), 1);
}

#[test]
fn daily_budget_from_the_environment() {
    let sb = sandbox();
    let r = sb.run_cmd(
        sb.cmd(&["launch", "l1.small", "--deadline", "2h"])
            .env("HERD_BUDGET_PER_DAY", "$0.01"),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("daily budget of $0.01"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
}

#[test]
fn colour_only_when_asked() {
    let sb = sandbox();
    let plain = sb.ok(&["catalog", "--limit", "1"]);
    assert!(!plain.stdout.contains('\x1b'), "NO_COLOR and a pipe: no colour");
    let forced = sb.ok(&["--color", "always", "catalog", "--limit", "1"]);
    assert!(forced.stdout.contains("\x1b[1mTYPE\x1b[0m"), "{:?}", forced.stdout);
}

#[test]
fn printed_commands_work_as_printed() {
    let sb = sandbox();
    // `ls` on nothing suggests a launch: it launches.
    let empty = sb.ok(&["ls"]);
    let suggested = printed_command(&empty.stderr, "herd launch");
    let r = sb.run_printed(&suggested);
    assert_eq!(r.code, 0, "{suggested}: {}{}", r.stdout, r.stderr);
    assert_eq!(sb.live().len(), 1);

    // The stop command a launch prints stops that launch's cluster, and only it.
    let launched = sb.ok(&[
        "launch",
        "l1.small",
        "-n",
        "2",
        "--deadline",
        "5m",
        "--cluster",
        "printed",
    ]);
    let stop = printed_command(&launched.stderr, "herd down");
    assert_eq!(stop, "herd down --cluster printed");
    let r = sb.run_printed(&stop);
    assert_eq!(r.code, 0, "{stop}: {}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("Terminate 2 instance(s)"), "{}", r.stderr);
    assert_eq!(r.stdout.matches("terminated").count(), 2, "{}", r.stdout);
    let left = sb.live();
    assert_eq!(left.len(), 1, "the first launch is not in that cluster: {left:?}");

    // A launch that returns at once prints the same kind of command.
    let launched = sb.ok(&[
        "launch",
        "l1.small",
        "--deadline",
        "5m",
        "--no-wait",
        "--cluster",
        "quick",
    ]);
    let r = sb.run_printed(&printed_command(&launched.stderr, "herd down"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(sb.live().len(), 1);
    sb.ok(&["down", "--all", "--yes"]);
    assert!(sb.live().is_empty());
}

#[test]
fn down_refuses_what_is_not_yours_and_says_whose() {
    let sb = sandbox();
    let as_bob = |args: &[&str]| sb.run_cmd(sb.cmd(args).env("USER", "bob"));
    let r = as_bob(&["launch", "l1.small", "--deadline", "5m", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bobs: Value = serde_json::from_str(&r.stdout).unwrap();
    let bobs = bobs["instances"][0]["id"].as_str().unwrap().to_string();
    sb.ok(&["launch", "l1.small", "--deadline", "5m"]);
    let mine = sb.live()[0]["id"].as_str().unwrap().to_string();

    // Named with one of mine: refused as a whole, before anything is terminated.
    let r = sb.fails(&["down", &mine, &bobs, "--yes"]);
    assert!(r.stderr.contains(&format!("{bobs} (owner bob)")), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was terminated"), "{}", r.stderr);
    assert_eq!(sb.live().len(), 1, "mine still runs");
    let theirs = as_bob(&["ls", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&theirs.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // --all is mine only.
    let r = sb.ok(&["down", "--all", "--yes", "--json"]);
    let ended: Vec<String> = serde_json::from_str::<Value>(&r.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ended, [mine]);
    assert_eq!(as_bob(&["down", "--all", "--yes"]).code, 0);
}

#[test]
fn unconfigured_clouds_say_how_to_configure_them() {
    let sb = sandbox();
    let r = sb.fails(&["ls", "--cloud", "aws"]);
    assert!(r.stderr.contains("AWS is not configured"), "{}", r.stderr);
    assert!(
        r.stderr.contains("hint: configure AWS first: set AWS_PROFILE"),
        "{}",
        r.stderr
    );
    let r = sb.fails(&["down", "--all", "--cloud", "gcp", "--yes"]);
    assert!(r.stderr.contains("GCP is not configured"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: configure GCP first"), "{}", r.stderr);
    let r = sb.fails(&["reap", "--cloud", "awz"]);
    assert!(r.stderr.contains("did you mean `aws`"), "{}", r.stderr);
    // Narrowed to the simulator, everything works as before.
    sb.ok(&["ls", "--cloud", "local"]);
    sb.ok(&["cost", "--cloud", "local"]);
}

#[test]
fn down_all_works_when_the_ledger_is_corrupt_or_empty() {
    for (what, bytes) in [("corrupt", vec![0x5a_u8; 8192]), ("empty", Vec::new())] {
        let sb = sandbox();
        sb.ok(&["launch", "l1.small", "-n", "2", "--deadline", "5m"]);
        std::fs::write(sb.ledger(), &bytes).unwrap();
        let r = sb.run(&["down", "--all", "--yes"]);
        assert_eq!(r.code, 0, "{what}: {}{}", r.stdout, r.stderr);
        assert_eq!(r.stdout.matches("terminated").count(), 2, "{what}: {}", r.stdout);
        assert!(
            r.stderr
                .contains(&format!("warning: the ledger {} cannot be used", sb.ledger().display())),
            "{what}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("move"), "{what}: says what to do: {}", r.stderr);
        // Commands that need the ledger refuse clearly and leave it alone.
        let r = sb.fails(&["ls"]);
        assert!(
            r.stderr.contains(&sb.ledger().display().to_string()),
            "{what}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("hint: "), "{what}: {}", r.stderr);
        assert_eq!(
            std::fs::read(sb.ledger()).unwrap(),
            bytes,
            "{what}: never silently replaced"
        );
        // Nothing runs any more: the simulator agrees once the ledger is moved aside.
        std::fs::remove_file(sb.ledger()).unwrap();
        assert!(sb.live().is_empty(), "{what}");
    }
}

#[test]
fn catalog_json_into_a_closed_pipe_exits_quietly() {
    let sb = sandbox();
    let mut child = sb
        .cmd(&["catalog", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -c 100`: read a little, then close the pipe (the catalog is megabytes).
    let mut head = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("Broken pipe") && !err.contains("error"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// Sends SIGINT to a running `herd launch` after `after`, and `again` later a second one.
fn interrupt(sb: &Sandbox, args: &[&str], after: impl Fn(&Sandbox), again: Option<Duration>) -> Run {
    let child = sb
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    after(sb);
    let pid = child.id() as i32;
    // SAFETY: kill(2) on the child we started and have not waited for yet.
    unsafe { libc::kill(pid, libc::SIGINT) };
    if let Some(d) = again {
        std::thread::sleep(d);
        unsafe { libc::kill(pid, libc::SIGINT) };
    }
    Run::of(child.wait_with_output().unwrap())
}

#[test]
fn ctrl_c_during_a_launch_ends_it_and_says_how_to_stop_it() {
    // Boots take a second: the interrupt lands in the boot wait.
    let sb = sandbox_with("[simulator.faults]\nboot_delay = \"1500ms\"\n");
    let args = [
        "launch",
        "l1.small",
        "-n",
        "3",
        "--deadline",
        "5m",
        "--cluster",
        "sigint",
    ];
    let wait_until_listed = |sb: &Sandbox| {
        let until = Instant::now() + Duration::from_secs(30);
        while sb.json(&["ls", "--json"]).as_array().unwrap().len() < 3 {
            assert!(Instant::now() < until, "the launch never showed up");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let r = interrupt(&sb, &args, wait_until_listed, None);
    assert_eq!(r.code, 130, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("interrupted: launch l-"),
        "the launch id: {}",
        r.stderr
    );
    assert!(r.stderr.contains("3 instance(s) terminated"), "{}", r.stderr);
    assert!(
        r.stderr.contains("`herd down --launch l-"),
        "the stop command: {}",
        r.stderr
    );
    assert!(sb.live().is_empty(), "nothing of it runs");
    let history = sb.json(&["ls", "--history", "--json"]);
    assert_eq!(states(&history), ["terminated"; 3], "{history}");

    // A second Ctrl-C skips the clean-up and prints the stop command, which works.
    let r = interrupt(&sb, &args, wait_until_listed, Some(Duration::from_millis(100)));
    assert_eq!(r.code, 130, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("interrupted twice"), "{}", r.stderr);
    let stop = printed_command(&r.stderr, "herd down");
    let done = sb.run_printed(&stop);
    assert_eq!(done.code, 0, "{stop}: {}{}", done.stdout, done.stderr);
    assert!(sb.live().is_empty(), "`{stop}` stopped what was left");
}

#[test]
fn ssh_on_the_simulator_is_a_shell_in_the_instance_volume() {
    let sb = sandbox();
    let launched = sb.json(&["launch", "l1.small", "--deadline", "5m", "--json"]);
    let id = launched["instances"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{launched}"))
        .to_string();
    let r = sb.run_env(
        &["ssh", &id, "--", "echo $HERD_INSTANCE_ID; pwd; exit 4"],
        &[("SHELL", "/bin/sh")],
    );
    assert_eq!(r.code, 4, "its exit code is herd's: {}", r.all());
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some(id.as_str()), "{}", r.stdout);
    let pwd = lines.next().unwrap_or_default();
    assert!(pwd.starts_with(&sb.sim_dir().to_string_lossy().to_string()), "{pwd}");
    // Unknown ids are refused like everywhere else.
    let r = sb.fails(&["ssh", "i-0000000000000dead", "--", "true"]);
    assert!(r.stderr.contains("i-0000000000000dead"), "{}", r.stderr);
}

#[test]
fn a_workload_writing_5_mb_a_minute_is_warned_about_with_its_projection() {
    let sb = sandbox();
    // About 5 MB a minute: 41,667 bytes every half second.
    let chatty = "while :; do head -c 41667 /dev/zero | tr '\\0' x; echo; sleep 0.5; done";
    let launched = sb.json(&[
        "launch",
        "l1.small",
        "-n",
        "2",
        "--deadline",
        "1h",
        "--command",
        chatty,
        "--cluster",
        "loud",
        "--json",
    ]);
    let quiet = sb.json(&[
        "launch",
        "l1.small",
        "--deadline",
        "1h",
        "--command",
        "sleep 600",
        "--json",
    ]);
    let id = launched["instances"][0]["id"].as_str().unwrap().to_string();
    let quiet_id = quiet["instances"][0]["id"].as_str().unwrap().to_string();
    // The agent samples the logs every 5 s; two samples make a rate.
    let deadline = Instant::now() + Duration::from_secs(60);
    let r = loop {
        let r = sb.ok(&["logs", &id]);
        if r.stderr.contains("MB/min") || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        r.stdout.contains("xxxx"),
        "the logs themselves: {}",
        &r.stdout[..r.stdout.len().min(200)]
    );
    let (warning, rate) = herd_testkit::cli::chatty_warning(&r.stderr);
    assert!((3.0..8.0).contains(&rate), "about 5 MB/min: {warning}");
    // The projection is over the cluster's 2 instances, to the deadline, priced.
    assert!(warning.contains("2 instances like it write"), "{warning}");
    assert!(
        warning.contains("by the deadline (1.0 h left)") || warning.contains("(0.9 h left)"),
        "{warning}"
    );
    assert!(
        warning.contains("CloudWatch Logs") && warning.contains("$0.50/GB"),
        "{warning}"
    );
    assert!(
        r.stderr.contains("hint: ") && r.stderr.contains("warn_mb_per_min"),
        "{}",
        r.stderr
    );

    // ls warns too: one instance stands for the loud cluster, projected over its 2.
    let r = sb.ok(&["ls"]);
    let w = r
        .stderr
        .lines()
        .find(|l| l.contains("MB/min"))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(
        w.starts_with("warning: ") && w.contains("2 instances like it write"),
        "{w}"
    );
    assert!(r.stdout.contains(&quiet_id), "the table is still there: {}", r.stdout);
    assert!(!r.stderr.contains(&quiet_id), "{}", r.stderr);

    // exec warns too, for the loud cluster; the quiet instance is not warned about.
    let r = sb.ok(&["exec", "--cluster", "loud", "--", "true"]);
    assert!(r.stderr.contains("MB/min"), "{}", r.stderr);
    assert!(
        r.stderr.contains("1 more instance(s) write more than 1 MB/min"),
        "{}",
        r.stderr
    );
    let r = sb.ok(&["exec", &quiet_id, "--", "true"]);
    assert!(!r.stderr.contains("MB/min"), "{}", r.stderr);
    // A threshold of 0 turns it off.
    let r = sb.run_env(&["exec", &id, "--", "true"], &[("HERD_LOGS_WARN_MB_PER_MIN", "0")]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.stderr.contains("MB/min"), "{}", r.stderr);
    let r = sb.run_env(&["exec", &id, "--", "true"], &[("HERD_LOGS_WARN_MB_PER_MIN", "lots")]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("HERD_LOGS_WARN_MB_PER_MIN"), "{}", r.stderr);
}

#[test]
fn logs_on_the_simulator_show_what_setup_and_command_printed() {
    let sb = sandbox();
    let launched = sb.json(&[
        "launch",
        "l1.small",
        "--deadline",
        "5m",
        "--setup",
        "echo set-up-ran",
        "--command",
        "echo command-ran; sleep 60",
        "--json",
    ]);
    let id = launched["instances"][0]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = sb.ok(&["logs", &id]);
        if r.stdout.contains("command-ran") {
            assert!(r.stdout.contains("set-up-ran"), "{}", r.stdout);
            assert!(r.stdout.contains("herd-setup.log"), "{}", r.stdout);
            break;
        }
        assert!(Instant::now() < deadline, "never printed: {}", r.all());
        std::thread::sleep(Duration::from_millis(200));
    }
}
