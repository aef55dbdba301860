//! `herd sweep` end to end: the real binary, the simulator with real agent processes, a
//! ledger and state dir in a temp dir. Bad input fails clearly and leaves nothing running;
//! a sweep resumes; Ctrl-C terminates every instance before the command exits.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herd_testkit::cli::Herd as Sandbox;

const HERD: &str = env!("CARGO_BIN_EXE_herd");

/// A sandbox (herd-testkit's CLI harness) with quick boots and the workload script.
fn sandbox() -> Sandbox {
    let sb = Sandbox::with_config(HERD, "[simulator.faults]\nboot_delay = [\"100ms\", \"200ms\"]\n");
    sb.write("work.sh", WORK);
    sb
}

/// A small CPU-bound shell workload that prints its own metric.
const WORK: &str = "i=0\nwhile [ $i -lt 20000 ]; do i=$((i+1)); done\necho \"score: $i\"\n";

fn spec_text(extra_workload: &str, matrix: &str, budget: &str) -> String {
    format!(
        "name = \"e2e\"\nrepetitions = 2\ntimeout = \"3m\"\nconcurrency = 2\nbudget = \"{budget}\"\n\n\
         [workload]\nfiles = [\"work.sh\"]\nsetup = \"test -x work.sh\"\nrun = \"sh work.sh\"\n{extra_workload}\n\n\
         [matrix]\n{matrix}\n"
    )
}

#[test]
fn plan_lists_cells_and_worst_case_and_refuses_over_budget() {
    let sb = sandbox();
    let p = sb.write(
        "s.toml",
        &spec_text("", "types = [\"l1.small\", \"c1.large\"]\nregions = [\"local-*\"]", "1"),
    );
    let r = sb.run(&["sweep", "plan", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("6 cells x 2 repetitions"), "{}", r.stdout);
    assert!(
        r.stdout.contains("l1.small") && r.stdout.contains("local-eu-1"),
        "{}",
        r.stdout
    );

    let p = sb.write(
        "tight.toml",
        &spec_text("", "types = [\"c1.2xlarge\"]\nregions = [\"local-*\"]", "0.001"),
    );
    let r = sb.run(&["sweep", "run", p.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("over its budget"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: raise `budget`"), "{}", r.stderr);
    assert_eq!(sb.live().len(), 0);
}

#[test]
fn bad_specs_say_what_and_where() {
    let sb = sandbox();
    let text = spec_text("", "types = [\"l1.small\"]", "1").replace("concurrency", "concurency");
    let p = sb.write("typo.toml", &text);
    let r = sb.run(&["sweep", "plan", p.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("typo.toml:4:"), "{}", r.stderr);
    assert!(r.stderr.contains("unknown key `concurency`"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `concurrency`?"), "{}", r.stderr);

    let p = sb.write("empty.toml", &spec_text("", "regions = [\"local-east-1\"]", "1"));
    let r = sb.run(&["sweep", "plan", p.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no instance types"), "{}", r.stderr);

    let p = sb.write("name.toml", &spec_text("", "types = [\"l1.smal\"]", "1"));
    let r = sb.run(&["sweep", "plan", p.to_str().unwrap()]);
    assert!(r.stderr.contains("l1.small"), "suggests the nearest type: {}", r.stderr);
}

#[test]
fn a_sweep_runs_reports_and_resumes() {
    let sb = sandbox();
    let metric = "[workload.metric]\nregex = 'score: ([0-9]+)'\nbetter = \"higher\"";
    let p = sb.write(
        "s.toml",
        &spec_text(metric, "types = [\"l1.large\", \"c1.large\"]", "1"),
    );
    let out = sb.path().join("report");
    let r = sb.run(&["sweep", "run", p.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("l1.large@local-east-1") && r.stdout.contains("2/2"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("*front"), "{}", r.stdout);
    for f in [
        "index.html",
        "report.csv",
        "report.json",
        "scatter.svg",
        "scatter.png",
        "work-per-dollar.png",
        "repetitions.svg",
        "cost-split.png",
    ] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    assert_eq!(sb.live().len(), 0, "every instance was terminated");

    // Again: nothing left to run.
    let r = sb.run(&["sweep", "run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("resumed: 4 repetition(s)"), "{}", r.stderr);

    let r = sb.run(&["sweep", "report", "e2e", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    assert!(cells.iter().all(|c| c["metric"]["median"] == 20000.0), "{cells:?}");
    let r = sb.run(&["sweep", "ls"]);
    assert!(r.stdout.contains("e2e-"), "{}", r.stdout);

    // The terminal table has the page's units: the metric's, and work per dollar in
    // "<unit> per $" (the metric here has no unit: "units per $"), money in dollars.
    let r = sb.run(&["sweep", "report", "e2e"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("units per $") && r.stdout.contains("to result"),
        "{}",
        r.stdout
    );
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    for line in r.stdout.lines().skip(1) {
        let cells: Vec<&str> = line.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
        if let Some(to_result) = cells
            .iter()
            .find(|c| c.ends_with(" s") && !c.contains('±') && !c.contains('+'))
        {
            assert!(
                page.contains(&format!(">{to_result}<")),
                "`{to_result}` reads the same on the page"
            );
        }
    }

    // --open: the page is written and handed to $BROWSER (here a script that records
    // its arguments).
    let log = sb.path().join("browser.log");
    let browser = sb.write("browser.sh", &format!("#!/bin/sh\necho \"$@\" > {}\n", log.display()));
    std::fs::set_permissions(&browser, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let opened = sb.path().join("opened");
    let r = sb.run_env(
        &["sweep", "report", "e2e", "--out", opened.to_str().unwrap(), "--open"],
        &[("BROWSER", browser.to_str().unwrap())],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let page = opened.join("index.html");
    assert!(page.is_file());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.is_file() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().trim(),
        page.display().to_string(),
        "the browser was given the page"
    );

    // No browser: the command still succeeds, with the path and a hint.
    let r = sb.run_env(
        &["sweep", "report", "e2e", "--open"],
        &[("BROWSER", "/nonexistent/browser")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("could not open a browser") && r.stderr.contains("index.html"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint: set BROWSER"), "{}", r.stderr);
}

#[test]
fn a_crashing_workload_fails_its_cell_with_the_output_and_leaves_nothing() {
    let sb = sandbox();
    let text = spec_text("", "types = [\"l1.large\"]", "1").replace("sh work.sh", "echo about to fail; exit 3");
    let p = sb.write("crash.toml", &text);
    let r = sb.run(&["sweep", "run", p.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("the run failed with exit code 3"), "{}", r.stderr);
    assert!(r.stderr.contains("about to fail"), "the output is kept: {}", r.stderr);
    assert!(r.stderr.contains("1 of 1 cells failed"), "{}", r.stderr);
    assert_eq!(sb.live().len(), 0);

    let text = spec_text(
        "[workload.metric]\nregex = 'nope: ([0-9]+)'\nbetter = \"lower\"",
        "types = [\"l1.large\"]",
        "1",
    );
    let p = sb.write("nomatch.toml", &text);
    let r = sb.run(&["sweep", "run", p.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("matched nothing"), "{}", r.stderr);
    assert!(r.stderr.contains("score: 20000"), "the last output lines: {}", r.stderr);
    assert_eq!(sb.live().len(), 0);
}

#[test]
fn a_hanging_workload_times_out_and_is_terminated() {
    let sb = sandbox();
    let text = spec_text("", "types = [\"l1.large\"]", "1")
        .replace("timeout = \"3m\"", "timeout = \"4s\"")
        .replace("sh work.sh", "echo started; sleep 600");
    let p = sb.write("hang.toml", &text);
    let r = sb.run(&["sweep", "run", p.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("timeout"), "{}", r.stderr);
    assert!(r.stderr.contains("started"), "the output is kept: {}", r.stderr);
    assert_eq!(sb.live().len(), 0);
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(t0.elapsed() < limit, "herd did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctrl_c_terminates_every_instance_before_exiting() {
    let sb = sandbox();
    let text = spec_text("", "types = [\"l1.large\", \"c1.large\"]", "1").replace("sh work.sh", "sleep 600");
    let p = sb.write("long.toml", &text);
    let mut child = sb
        .cmd(&["sweep", "run", p.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until both cells have a running instance (polled, bounded).
    let t0 = Instant::now();
    while sb.live().len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the cells never launched");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("resumes"), "{stderr}");
    assert_eq!(sb.live().len(), 0, "nothing is left running after Ctrl-C");
}

#[test]
fn a_sweep_whose_workload_writes_5_mb_a_minute_is_warned_about_once() {
    let sb = sandbox();
    // About 5 MB a minute for 6 s (41,667 bytes every half second), then the metric.
    let chatty = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do head -c 41667 /dev/zero | tr '\\\\0' x; echo; sleep 0.5; done; sh work.sh";
    let text = spec_text(
        "",
        "types = [\"l1.large\", \"c1.large\"]\nregions = [\"local-east-1\"]",
        "1",
    )
    .replace("repetitions = 2", "repetitions = 1")
    .replace("run = \"sh work.sh\"", &format!("run = \"{chatty}\""));
    let p = sb.write("chatty.toml", &text);
    let r = sb.run(&["sweep", "run", p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.contains("MB/min")).collect();
    assert_eq!(warnings.len(), 1, "once per sweep, not per command: {}", r.stderr);
    let (w, rate) = herd_testkit::cli::chatty_warning(&r.stderr);
    assert!((3.0..8.0).contains(&rate), "about 5 MB/min: {w}");
    // Projected over the two cells running at once, to the instance's deadline, priced.
    assert!(w.contains("2 instances like it write"), "{w}");
    assert!(w.contains("by the deadline") && w.contains("$0.50/GB"), "{w}");
    assert!(r.stderr.contains("warn_mb_per_min"), "{}", r.stderr);
    // The sweep itself is unharmed: both cells ran.
    assert!(r.stdout.contains("l1.large@local-east-1"), "{}", r.stdout);
    assert_eq!(r.stdout.matches(" done").count(), 2, "{}", r.stdout);
    assert_eq!(sb.live().len(), 0);
}
