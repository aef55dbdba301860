//! The CLI harness on a binary that shows what it was given: `env` and `sh`. Proves the
//! scrub (none of the caller's AWS_*, GOOGLE_*, AZURE_*, HERD_* reach a run), the scratch
//! dirs, the runner's verdicts, and that a run past its timeout is killed and fails.

use std::path::Path;
use std::time::Duration;

use herd_testkit::cli::{printed_command, with_terminal, Herd, SCRUBBED};

fn env_bin() -> &'static str {
    ["/usr/bin/env", "/bin/env"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("env(1)")
}

#[test]
fn nothing_of_the_callers_cloud_or_herd_settings_leaks_in() {
    // This test binary's own environment gets one of each; the run must see none.
    for p in SCRUBBED {
        std::env::set_var(format!("{p}LEAK_PROBE"), "leaked");
    }
    std::env::set_var("AWS_PROFILE", "leaked");
    let h = Herd::new(env_bin());
    let r = h.ok(&[]);
    assert!(!r.stdout.contains("leaked"), "{}", r.stdout);
    for line in r.stdout.lines() {
        let name = line.split('=').next().unwrap_or("");
        let allowed = ["HERD_SIM_DIR", "HERD_LEDGER"];
        if SCRUBBED.iter().any(|p| name.starts_with(p)) {
            assert!(allowed.contains(&name), "{name} leaked into a run");
        }
    }
    // Its own: a scratch HOME and XDG dirs, state in the sandbox, no colour.
    let home = h.home();
    for want in [
        format!("HOME={}", home.display()),
        format!("XDG_CONFIG_HOME={}", home.join(".config").display()),
        format!("XDG_DATA_HOME={}", home.join(".local/share").display()),
        format!("HERD_SIM_DIR={}", h.sim_dir().display()),
        format!("HERD_LEDGER={}", h.ledger().display()),
        "NO_COLOR=1".to_string(),
        "USER=tester".to_string(),
    ] {
        assert!(r.stdout.lines().any(|l| l == want), "no {want} in:\n{}", r.stdout);
    }
    assert!(home.is_dir());
    assert!(h.sim_dir().starts_with(h.path()));
}

#[test]
fn aws_points_at_the_endpoint_with_fake_credentials() {
    let h = Herd::new(env_bin()).aws("http://127.0.0.1:9", "us-east-1");
    let r = h.ok(&[]);
    for want in [
        "AWS_ENDPOINT_URL=http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID=testing",
        "AWS_EC2_METADATA_DISABLED=true",
        "AWS_REGION=us-east-1",
        "HERD_AWS_REGIONS=us-east-1",
        "HERD_CLOUD=aws",
    ] {
        assert!(r.stdout.lines().any(|l| l == want), "no {want} in:\n{}", r.stdout);
    }
    let r = h.run_env(&[], &[("AWS_REGION", "eu-west-1")]);
    assert!(r.stdout.contains("AWS_REGION=eu-west-1"), "{}", r.stdout);
}

#[test]
fn verdicts_files_and_json() {
    let h = Herd::new("/bin/sh");
    let p = h.write("conf/herd.toml", "x = 1\n");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "x = 1\n");
    assert!(p.starts_with(h.path()));
    // The working directory is the sandbox: the file is there by its relative name.
    let r = h.ok(&["-c", "cat conf/herd.toml; echo '[1,2]' >&2"]);
    assert_eq!(r.stdout, "x = 1\n");
    assert_eq!(r.stderr, "[1,2]\n");
    assert_eq!(h.json(&["-c", "echo '{\"a\": 3}'"])["a"], 3);
    let r = h.fails(&["-c", "echo 'error: no' >&2; exit 1"]);
    assert!(r.stderr.contains("error: no"));
    let failed = std::panic::catch_unwind(|| h.ok(&["-c", "exit 3"]));
    assert!(failed.is_err(), "ok() on exit 3 fails the test");
    let r = h.run(&["-c", "echo '`herd down --launch l-1` stops it'"]);
    assert_eq!(printed_command(&r.stdout, "herd down"), "herd down --launch l-1");
}

#[test]
fn a_run_past_its_timeout_is_killed_and_fails() {
    let h = Herd::new("/bin/sh").timeout(Duration::from_millis(300));
    let err = std::panic::catch_unwind(|| h.run(&["-c", "echo started >&2; sleep 30"])).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("did not finish within"), "{msg}");
    assert!(msg.contains("started"), "stderr so far is shown: {msg}");
}

#[test]
fn a_terminal_answers_the_question() {
    let h = Herd::new("/bin/sh");
    let script = "if [ -t 0 ]; then read a; echo \"got $a\"; else echo no-tty; fi";
    let r = with_terminal(h.cmd(&["-c", script]), "y\n");
    assert_eq!(r.stdout.trim(), "got y", "{}", r.all());
}
