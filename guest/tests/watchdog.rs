//! The generated watchdog and boot script, run for real under bash in a temp dir: fake
//! `date`/`sleep` share a clock file (sleep returns at once and advances it), fake
//! `pgrep`/`who` answer from files the test sets, and fake `shutdown`/`poweroff`/`curl`
//! record their calls with the clock. Every path of the script lives under
//! `HERD_GUEST_ROOT`. What is asserted is what the script did and at which (fake) time.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use chrono::DateTime;
use herd_guest::boot::{Boot, TICK};
use herd_guest::expiry::{gce_metadata_headers, DeleteRequest, Expiry, MetadataValue, TokenSource};

/// The fake clock's start: any epoch second works, the script only ever subtracts.
const S: i64 = 1_700_000_000;
const SECRET: &str = "ya29.SECRET-token-never-printed";
const NAME_URL: &str = "http://metadata.google.internal/computeMetadata/v1/instance/name";
const DELETE_BASE: &str = "https://compute.googleapis.com/compute/v1/projects/p1/zones/z1/instances/";

const FAKE_DATE: &str = r#"#!/bin/bash
[ "$1" = "+%s" ] || { echo "fake date: only +%s is supported, got: $*" >&2; exit 3; }
cat "$HERD_TEST_STATE/clock"
"#;

const FAKE_SLEEP: &str = r#"#!/bin/bash
t=$(cat "$HERD_TEST_STATE/clock")
case "$1" in ''|*[!0-9]*) echo "fake sleep: whole seconds only, got: $*" >&2; exit 3;; esac
echo "$t sleep $1" >> "$HERD_TEST_STATE/calls"
echo $(( t + $1 )) > "$HERD_TEST_STATE/clock"
# A workload writing `grow_bps` bytes a second to the command log while time passes.
if [ -f "$HERD_TEST_STATE/grow_bps" ]; then
  head -c $(( $(cat "$HERD_TEST_STATE/grow_bps") * $1 )) /dev/zero >> "$HERD_GUEST_ROOT/var/log/herd-command.log"
fi
"#;

/// Succeeds while the clock is before the time in `pgrep_until`.
const FAKE_PGREP: &str = r#"#!/bin/bash
if [ "$1" != "-f" ] || [ "$2" != "$HERD_GUEST_ROOT/run/herd/command" ]; then
  echo "$(cat "$HERD_TEST_STATE/clock") pgrep-bad-args $*" >> "$HERD_TEST_STATE/calls"; exit 2
fi
now=$(cat "$HERD_TEST_STATE/clock"); until=$(cat "$HERD_TEST_STATE/pgrep_until" 2>/dev/null || echo 0)
[ "$now" -lt "$until" ]
"#;

const FAKE_WHO: &str = r#"#!/bin/bash
now=$(cat "$HERD_TEST_STATE/clock"); until=$(cat "$HERD_TEST_STATE/who_until" 2>/dev/null || echo 0)
if [ "$now" -lt "$until" ]; then echo "alice    pts/0        2024-01-01 00:00 (203.0.113.7)"; fi
exit 0
"#;

const FAKE_POWER: &str = r#"#!/bin/bash
echo "$(cat "$HERD_TEST_STATE/clock") $(basename "$0") $*" >> "$HERD_TEST_STATE/calls"
exit "$(cat "$HERD_TEST_STATE/$(basename "$0")_exit" 2>/dev/null || echo 0)"
"#;

/// Answers URLs listed in `responses` (`URL<TAB>body`); any other URL is the cloud's
/// API: its headers from stdin (`-H @-`) go to `curl_stdin`, and it fails with 22 while
/// `delete_failures` counts down.
const FAKE_CURL: &str = r#"#!/bin/bash
S="$HERD_TEST_STATE"
echo "$(cat "$S/clock") curl $*" >> "$S/calls"
url=""; stdin=0; prev=""
for a in "$@"; do
  case "$a" in http://*|https://*) url="$a";; esac
  if [ "$prev" = "-H" ] && [ "$a" = "@-" ]; then stdin=1; fi
  prev="$a"
done
if [ "$stdin" = 1 ]; then cat >> "$S/curl_stdin"; fi
body=$(awk -F'\t' -v u="$url" '$1 == u { print $2; found = 1 } END { exit !found }' "$S/responses" 2>/dev/null) && { printf '%s\n' "$body"; exit 0; }
n=$(cat "$S/delete_failures" 2>/dev/null || echo 0)
if [ "$n" -gt 0 ]; then echo $(( n - 1 )) > "$S/delete_failures"; echo "curl: (22) The requested URL returned error: 503" >&2; exit 22; fi
exit 0
"#;

struct Guest {
    _dir: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    bin: PathBuf,
    work: PathBuf,
}

/// What one run left behind.
struct Run {
    stdout: String,
    stderr: String,
    calls: Vec<(i64, String)>,
}

impl Run {
    /// Calls other than `sleep`, i.e. what the script did, with the clock at the time.
    fn actions(&self) -> Vec<(i64, String)> {
        self.calls
            .iter()
            .filter(|(_, c)| !c.starts_with("sleep "))
            .cloned()
            .collect()
    }
    /// The clock at each `sleep`: the moments the watchdog looked.
    fn looks(&self) -> Vec<i64> {
        self.calls
            .iter()
            .filter(|(_, c)| c.starts_with("sleep "))
            .map(|(t, _)| *t)
            .collect()
    }
    fn printed(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl Guest {
    fn new() -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let state = dir.path().join("state");
        let bin = dir.path().join("bin");
        let work = dir.path().join("work");
        for d in [&root, &state, &bin, &work] {
            fs::create_dir_all(d).unwrap();
        }
        for (name, text) in [
            ("date", FAKE_DATE),
            ("sleep", FAKE_SLEEP),
            ("pgrep", FAKE_PGREP),
            ("who", FAKE_WHO),
            ("shutdown", FAKE_POWER),
            ("poweroff", FAKE_POWER),
            ("curl", FAKE_CURL),
        ] {
            let p = bin.join(name);
            fs::write(&p, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::write(state.join("clock"), S.to_string()).unwrap();
        fs::write(state.join("calls"), "").unwrap();
        Guest {
            _dir: dir,
            root,
            state,
            bin,
            work,
        }
    }

    fn set(&self, file: &str, value: impl ToString) {
        fs::write(self.state.join(file), value.to_string()).unwrap();
    }

    fn busy_dir(&self) -> PathBuf {
        let d = self.root.join("run/herd/busy.d");
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn command(&self, script: &Path) -> Command {
        let mut c = Command::new("bash");
        c.arg(script)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", self.bin.display()))
            .env("HERD_GUEST_ROOT", &self.root)
            .env("HERD_TEST_STATE", &self.state)
            .current_dir(&self.work)
            .stdin(Stdio::null());
        c
    }

    /// Runs `script` to its end (a stuck script fails the test after 30 s of real time).
    fn run(&self, name: &str, script: &str) -> Run {
        let path = self.work.join(name);
        fs::write(&path, script).unwrap();
        let out = self.work.join(format!("{name}.out"));
        let err = self.work.join(format!("{name}.err"));
        let mut child = self
            .command(&path)
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .expect("bash must be installed to run the guest scripts");
        let t0 = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let run = self.collect(&out, &err);
                assert!(status.success(), "{name} exited {status}:\n{}", run.printed());
                return run;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                let run = self.collect(&out, &err);
                panic!("{name} never ended:\n{}\ncalls: {:?}", run.printed(), run.actions());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn collect(&self, out: &Path, err: &Path) -> Run {
        let calls = fs::read_to_string(self.state.join("calls"))
            .unwrap()
            .lines()
            .map(|l| {
                let (t, c) = l.split_once(' ').unwrap();
                (t.parse().unwrap(), c.to_string())
            })
            .collect();
        Run {
            stdout: fs::read_to_string(out).unwrap_or_default(),
            stderr: fs::read_to_string(err).unwrap_or_default(),
            calls,
        }
    }

    fn watchdog(&self, deadline: i64, keepalive: u64, expiry: &Expiry) -> Run {
        let boot = Boot {
            deadline: DateTime::from_timestamp(deadline, 0).unwrap(),
            keepalive: Some(Duration::from_secs(keepalive)),
            expiry,
            host_key: None,
            login: None,
            setup: None,
            command: None,
        };
        self.run("watchdog.sh", &boot.watchdog())
    }

    fn mark(&self, name: &str, content: &str, mtime: i64) {
        let p = self.busy_dir().join(name);
        fs::write(&p, content).unwrap();
        touch(&p, mtime);
    }
}

fn touch(p: &Path, at: i64) {
    let f = fs::File::options().write(true).open(p).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(at as u64)).unwrap();
}

fn power_offs(r: &Run) -> Vec<(i64, String)> {
    r.actions()
        .into_iter()
        .filter(|(_, c)| c.starts_with("shutdown") || c.starts_with("poweroff"))
        .collect()
}

fn gce_delete() -> Expiry {
    Expiry::Delete(
        DeleteRequest::new(
            "DELETE",
            &format!("{DELETE_BASE}{{name}}"),
            vec![MetadataValue {
                name: "name".into(),
                url: NAME_URL.into(),
            }],
            TokenSource::gce_default_service_account(),
            gce_metadata_headers(),
        )
        .unwrap(),
    )
}

fn serve_metadata(g: &Guest) {
    let token = TokenSource::gce_default_service_account().url;
    g.set(
        "responses",
        format!(
            "{NAME_URL}\tvm-7\n{token}\t{{\"access_token\": \"{SECRET}\", \"expires_in\": 3599, \"token_type\": \"Bearer\"}}\n"
        ),
    );
}

#[test]
fn fires_exactly_at_the_deadline_and_not_a_tick_before() {
    let g = Guest::new();
    // Not a multiple of the tick: the watchdog must wake at the deadline itself.
    let deadline = S + 1000;
    let r = g.watchdog(deadline, 0, &Expiry::PowerOff);
    assert_eq!(
        power_offs(&r),
        [(deadline, "shutdown -h now herd deadline".to_string())],
        "{}",
        r.printed()
    );
    let looks = r.looks();
    assert!(looks.len() >= (1000 / TICK.as_secs()) as usize, "{looks:?}");
    assert!(
        looks.iter().all(|t| *t < deadline),
        "looked past the deadline without acting: {looks:?}"
    );
    assert!(
        r.stdout.contains("deadline reached at 1700001000: powering off"),
        "{}",
        r.printed()
    );
}

#[test]
fn a_refused_shutdown_falls_back_to_poweroff() {
    let g = Guest::new();
    g.set("shutdown_exit", 1);
    let r = g.watchdog(S + 60, 0, &Expiry::PowerOff);
    let calls: Vec<String> = power_offs(&r).into_iter().map(|(_, c)| c).collect();
    assert_eq!(calls, ["shutdown -h now herd deadline", "poweroff "]);
}

#[test]
fn idle_fires_a_keepalive_after_the_last_activity_not_before() {
    let g = Guest::new();
    // The command runs until S+300: the watchdog sees it at every tick up to S+270.
    g.set("pgrep_until", S + 300);
    let r = g.watchdog(S + 100_000, 900, &Expiry::PowerOff);
    let last_busy = S + 270;
    assert_eq!(
        power_offs(&r),
        [(last_busy + 900, "shutdown -h now herd keepalive".to_string())]
    );
    assert!(r.looks().iter().all(|t| *t < last_busy + 900));

    // Nothing at all: idle from the watchdog's start.
    let g = Guest::new();
    let r = g.watchdog(S + 100_000, 900, &Expiry::PowerOff);
    assert_eq!(
        power_offs(&r),
        [(S + 900, "shutdown -h now herd keepalive".to_string())]
    );
}

#[test]
fn a_command_a_user_or_a_live_marker_keeps_it_alive_until_the_deadline() {
    let deadline = S + 3600;
    let keepalive = 600;
    let expect = [(deadline, "shutdown -h now herd deadline".to_string())];

    let g = Guest::new();
    g.set("pgrep_until", i64::MAX / 2);
    assert_eq!(
        power_offs(&g.watchdog(deadline, keepalive, &Expiry::PowerOff)),
        expect,
        "command"
    );

    let g = Guest::new();
    g.set("who_until", i64::MAX / 2);
    assert_eq!(
        power_offs(&g.watchdog(deadline, keepalive, &Expiry::PowerOff)),
        expect,
        "logged in"
    );

    // A marker naming a live process (this test), however old its mtime.
    let g = Guest::new();
    g.mark("exec-1", &format!("{}\n", std::process::id()), S - 100_000);
    assert_eq!(
        power_offs(&g.watchdog(deadline, keepalive, &Expiry::PowerOff)),
        expect,
        "pid marker"
    );
}

#[test]
fn a_marker_counts_from_its_mtime_and_a_dead_one_does_not_count() {
    // Touched at S+2000 (the future when the watchdog starts): busy until then, and
    // idle from then on.
    let g = Guest::new();
    g.mark("job", "", S + 2000);
    let r = g.watchdog(S + 100_000, 600, &Expiry::PowerOff);
    assert_eq!(
        power_offs(&r),
        [(S + 2600, "shutdown -h now herd keepalive".to_string())]
    );

    // The heartbeat file is read the same way.
    let g = Guest::new();
    g.busy_dir();
    let hb = g.root.join("run/herd/heartbeat");
    fs::write(&hb, "").unwrap();
    touch(&hb, S + 1000);
    let r = g.watchdog(S + 100_000, 600, &Expiry::PowerOff);
    assert_eq!(
        power_offs(&r),
        [(S + 1600, "shutdown -h now herd keepalive".to_string())]
    );

    // A holder that died long ago (no such pid, old mtime), and pid 0 (which `kill -0`
    // would take as "my process group"): idle from the start.
    let g = Guest::new();
    g.mark("crashed", "99999999\n", S - 100_000);
    g.mark("zero", "0\n", S - 100_000);
    let r = g.watchdog(S + 100_000, 600, &Expiry::PowerOff);
    assert_eq!(
        power_offs(&r),
        [(S + 600, "shutdown -h now herd keepalive".to_string())]
    );
}

#[test]
fn delete_calls_the_api_with_a_metadata_token_that_is_never_printed() {
    let g = Guest::new();
    serve_metadata(&g);
    let deadline = S + 300;
    let r = g.watchdog(deadline, 0, &gce_delete());
    assert!(
        power_offs(&r).is_empty(),
        "stopping keeps billing on GCE: {:?}",
        r.actions()
    );
    let curls: Vec<(i64, String)> = r.actions();
    assert_eq!(curls.len(), 3, "{curls:?}");
    assert!(curls.iter().all(|(t, _)| *t == deadline), "{curls:?}");
    assert_eq!(
        curls[0].1,
        format!("curl -sS -f --max-time 10 -H Metadata-Flavor: Google {NAME_URL}")
    );
    let token_url = TokenSource::gce_default_service_account().url;
    assert_eq!(
        curls[1].1,
        format!("curl -sS -f --max-time 10 -H Metadata-Flavor: Google {token_url}")
    );
    assert_eq!(
        curls[2].1,
        format!("curl -sS -f --max-time 30 -o /dev/null -X DELETE -H @- {DELETE_BASE}vm-7")
    );
    // The token reached the API as a header on stdin, and nowhere else.
    let sent = fs::read_to_string(g.state.join("curl_stdin")).unwrap();
    assert_eq!(sent, format!("Authorization: Bearer {SECRET}\n"));
    assert!(
        !curls.iter().any(|(_, c)| c.contains(SECRET)),
        "the token is in curl's arguments"
    );
    assert!(!r.printed().contains(SECRET), "the token was printed:\n{}", r.printed());
    assert!(r.stdout.contains("the cloud accepted the delete"), "{}", r.printed());
}

#[test]
fn a_failed_delete_is_tried_again_a_tick_later_and_idle_deletes_too() {
    let g = Guest::new();
    serve_metadata(&g);
    g.set("delete_failures", 1);
    let r = g.watchdog(S + 100_000, 600, &gce_delete());
    let deletes: Vec<i64> = r
        .actions()
        .into_iter()
        .filter(|(_, c)| c.contains("-X DELETE"))
        .map(|(t, _)| t)
        .collect();
    let first = S + 600;
    assert_eq!(deletes, [first, first + TICK.as_secs() as i64], "{}", r.printed());
    assert!(r.stdout.contains("keepalive reached"), "{}", r.printed());
    assert!(
        r.stdout.contains("the delete request failed; trying again in 30s"),
        "{}",
        r.printed()
    );
    assert!(
        r.printed().contains("returned error: 503"),
        "curl's own error is logged"
    );
    assert!(!r.printed().contains(SECRET));
    assert!(power_offs(&r).is_empty());
}

#[test]
fn a_metadata_server_without_a_token_means_no_request_and_another_try() {
    let g = Guest::new();
    let token = TokenSource::gce_default_service_account().url;
    g.set(
        "responses",
        format!("{NAME_URL}\tvm-7\n{token}\t{{\"error\": \"no service account\"}}\n"),
    );
    // The script retries forever; stop it after its second try by letting the clock
    // run into a test-only limit: the fake `sleep` is replaced for this test.
    fs::write(
        g.bin.join("sleep"),
        format!(
            "{FAKE_SLEEP}[ $(cat \"$HERD_TEST_STATE/clock\") -gt {} ] && kill -TERM $PPID\nexit 0\n",
            S + 60 + TICK.as_secs() as i64
        ),
    )
    .unwrap();
    let path = g.work.join("w.sh");
    let boot = Boot {
        deadline: DateTime::from_timestamp(S + 60, 0).unwrap(),
        keepalive: None,
        expiry: &gce_delete(),
        host_key: None,
        login: None,
        setup: None,
        command: None,
    };
    fs::write(&path, boot.watchdog()).unwrap();
    let out = g.command(&path).output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        printed.matches("the token answer has no access_token").count(),
        2,
        "{printed}"
    );
    let calls = fs::read_to_string(g.state.join("calls")).unwrap();
    assert!(!calls.contains("-X DELETE"), "no request without a token: {calls}");
}

#[test]
fn the_boot_script_backstops_powers_off_and_captures_output() {
    let g = Guest::new();
    let deadline = S + 150;
    let boot = Boot {
        deadline: DateTime::from_timestamp(deadline, 0).unwrap(),
        keepalive: None,
        expiry: &Expiry::PowerOff,
        host_key: None,
        login: None,
        setup: Some("echo set-up-ran"),
        command: Some("echo from-command; echo to-stderr >&2"),
    };
    let r = g.run("boot.sh", &boot.script());
    // The backstop, in whole minutes rounded down: never after the deadline.
    assert_eq!(
        r.actions().first(),
        Some(&(S, "shutdown -h +2 herd deadline".to_string()))
    );
    let logs = g.root.join("var/log");
    let watchdog_log = logs.join("herd-watchdog.log");
    let t0 = Instant::now();
    while !fs::read_to_string(g.state.join("calls"))
        .unwrap()
        .contains("shutdown -h now")
    {
        assert!(t0.elapsed() < Duration::from_secs(30), "the watchdog never fired");
        std::thread::sleep(Duration::from_millis(10));
    }
    let calls = fs::read_to_string(g.state.join("calls")).unwrap();
    assert!(
        calls.contains(&format!("{deadline} shutdown -h now herd deadline")),
        "{calls}"
    );
    assert!(fs::read_to_string(&watchdog_log).unwrap().contains("deadline reached"));
    assert!(g.root.join("usr/local/sbin/herd-watchdog").exists());
    assert!(g.root.join("run/herd/busy.d").is_dir());
    assert_eq!(fs::read_to_string(logs.join("herd-setup.log")).unwrap(), "set-up-ran\n");
    let command_log = logs.join("herd-command.log");
    while fs::read_to_string(&command_log).unwrap_or_default().lines().count() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the command never wrote its output"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = fs::read_to_string(&command_log).unwrap();
    assert!(out.contains("from-command\n") && out.contains("to-stderr\n"), "{out}");
}

#[test]
fn a_deleting_boot_script_never_shuts_down() {
    let g = Guest::new();
    serve_metadata(&g);
    let e = gce_delete();
    let boot = Boot {
        deadline: DateTime::from_timestamp(S + 90, 0).unwrap(),
        keepalive: Some(Duration::from_secs(3600)),
        expiry: &e,
        host_key: None,
        login: None,
        setup: None,
        command: Some("true"),
    };
    g.run("boot.sh", &boot.script());
    let t0 = Instant::now();
    while !fs::read_to_string(g.state.join("calls")).unwrap().contains("-X DELETE") {
        assert!(t0.elapsed() < Duration::from_secs(30), "the watchdog never deleted");
        std::thread::sleep(Duration::from_millis(10));
    }
    let calls = fs::read_to_string(g.state.join("calls")).unwrap();
    assert!(!calls.contains("shutdown") && !calls.contains("poweroff"), "{calls}");
    let log = fs::read_to_string(g.root.join("var/log/herd-watchdog.log")).unwrap_or_default();
    assert!(!log.contains(SECRET));
}

#[test]
fn a_held_marker_names_its_shell_while_the_command_runs_and_goes_with_it() {
    let g = Guest::new();
    let marker = g.root.join("run/herd/busy.d/exec-42");
    let probe = g.work.join("probe");
    let cmd = format!("cat {m} > {p}; exit 7", m = marker.display(), p = probe.display());
    let path = g.work.join("hold.sh");
    fs::write(&path, herd_guest::busy::hold("exec-42", &cmd)).unwrap();
    let status = g.command(&path).status().unwrap();
    assert_eq!(status.code(), Some(7), "the command's exit status is kept");
    let pid: u32 = fs::read_to_string(&probe).unwrap().trim().parse().unwrap();
    assert!(pid > 0);
    assert!(!marker.exists(), "the marker is removed when the command ends");
}

/// Work run the way `herd exec` runs it (wrapped in `busy::hold`) keeps the VM alive
/// past its keepalive, however long it runs: the real watchdog, with a 60 s keepalive
/// on the fake clock, looks many times while the work runs (its sleeps advance the clock
/// by up to a tick each) and powers off only a keepalive after the work ended.
#[test]
fn work_held_by_a_marker_outlives_the_keepalive_and_the_vm_ends_after_it() {
    let g = Guest::new();
    let keepalive = 60u64;
    let release = g.work.join("release");
    let held = g.work.join("work.sh");
    let cmd = format!(
        "while [ ! -f {r} ]; do /bin/sleep 0.02; done; echo done",
        r = release.display()
    );
    fs::write(&held, herd_guest::busy::hold("exec-7", &cmd)).unwrap();
    let mut work = g.command(&held).stdout(Stdio::null()).spawn().unwrap();
    let marker = g.root.join("run/herd/busy.d/exec-7");
    let t0 = Instant::now();
    while !marker.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the marker never appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    let boot = Boot {
        deadline: DateTime::from_timestamp(S + 10_000_000, 0).unwrap(),
        keepalive: Some(Duration::from_secs(keepalive)),
        expiry: &Expiry::PowerOff,
        host_key: None,
        login: None,
        setup: None,
        command: None,
    };
    let wd_path = g.work.join("watchdog.sh");
    fs::write(&wd_path, boot.watchdog()).unwrap();
    let mut wd = g
        .command(&wd_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let clock = || -> i64 {
        fs::read_to_string(g.state.join("clock"))
            .unwrap()
            .trim()
            .parse()
            .unwrap_or(S)
    };
    // Let the watchdog's clock run well past the keepalive while the work holds.
    while clock() < S + 20 * keepalive as i64 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the watchdog's clock stalled");
        assert!(wd.try_wait().unwrap().is_none(), "the watchdog ended while work ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    let calls = fs::read_to_string(g.state.join("calls")).unwrap();
    assert!(!calls.contains("shutdown"), "powered off mid-work:\n{calls}");
    let released_at = clock();
    fs::write(&release, "").unwrap();
    assert!(work.wait().unwrap().success());
    assert!(!marker.exists(), "the marker goes with the work");
    let status = loop {
        if let Some(s) = wd.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(90), "the watchdog never powered off");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success());
    let calls = fs::read_to_string(g.state.join("calls")).unwrap();
    let off: i64 = calls
        .lines()
        .find(|l| l.contains(" shutdown "))
        .and_then(|l| l.split(' ').next())
        .and_then(|t| t.parse().ok())
        .expect("a power-off");
    assert!(
        off >= released_at,
        "powered off at {off}, before the work ended at {released_at}"
    );
    assert!(
        off > S + 20 * keepalive as i64,
        "the work outlived the keepalive many times over"
    );
}

/// TERM (herd's timeout, Ctrl-C) and INT end the held shell through its traps, so the
/// marker goes then too; a KILLed holder leaves a file naming a dead pid, which the
/// watchdog does not count (`a_marker_counts_from_its_mtime_and_a_dead_one_does_not_count`).
#[test]
fn a_signalled_holder_removes_its_marker() {
    for sig in ["TERM", "INT", "HUP"] {
        let g = Guest::new();
        let held = g.work.join("work.sh");
        fs::write(
            &held,
            herd_guest::busy::hold("exec-s", "while :; do /bin/sleep 0.02; done"),
        )
        .unwrap();
        let mut work = g.command(&held).spawn().unwrap();
        let marker = g.root.join("run/herd/busy.d/exec-s");
        let t0 = Instant::now();
        while !marker.exists() {
            assert!(t0.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(5));
        }
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(work.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        let status = work.wait().unwrap();
        assert!(!status.success());
        assert!(!marker.exists(), "SIG{sig} left the marker");
    }
}

#[test]
fn the_watchdog_measures_how_fast_the_workload_writes_its_log() {
    use herd_guest::lograte::{Rate, FILE};
    let g = Guest::new();
    fs::create_dir_all(g.root.join("var/log")).unwrap();
    // 2 MB a minute.
    g.set("grow_bps", 33_334);
    let r = g.watchdog(S + 300, 0, &Expiry::PowerOff);
    let text = fs::read_to_string(g.root.join(FILE)).unwrap_or_else(|e| panic!("{e}: {}", r.printed()));
    let rate = Rate::parse(&text).unwrap_or_else(|| panic!("{text:?}"));
    assert!(rate.window >= Duration::from_secs(5), "{rate:?}");
    assert!(rate.at <= S + 300 && rate.at > S, "{rate:?}");
    assert_eq!(rate.bytes, 33_334 * rate.window.as_secs(), "{text}");
    assert!((rate.mb_per_min() - 2.0).abs() < 0.01, "{}", rate.mb_per_min());
}
