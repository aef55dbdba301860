//! One harness for every test binary of the `herd` CLI: a scratch directory per test
//! (HOME, XDG dirs, simulator state and ledger inside it, the working directory), a clean
//! environment (nothing of the caller's `AWS_*`, `GOOGLE_*`, `AZURE_*`, `HERD_*` leaks in:
//! only `PATH` is passed on), `NO_COLOR`, and a runner with `run`/`ok`/`fails`/`json`,
//! a timeout on every run, a terminal for the confirmation question, and a clean-up that
//! ends whatever a test left running.
//!
//! `CARGO_BIN_EXE_herd` is set only for the CLI's own tests, so the binary is an argument:
//! `Herd::new(env!("CARGO_BIN_EXE_herd"))`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Variables a test run must never inherit, by prefix: the environment is cleared and
/// only `PATH` passed on (testkit/tests/cli_harness.rs proves none of these leak).
pub const SCRUBBED: [&str; 4] = ["AWS_", "GOOGLE_", "AZURE_", "HERD_"];

/// How long one run may take before it is killed and the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The end of one run.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_parts(status: ExitStatus, stdout: Vec<u8>, stderr: Vec<u8>) -> Self {
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// The end of a process run elsewhere (`child.wait_with_output()`).
    pub fn of(out: Output) -> Self {
        Run::from_parts(out.status, out.stdout, out.stderr)
    }

    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Stdout as JSON (panics with the text when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    /// (code, stdout, stderr), as some tests destructure it.
    pub fn triple(self) -> (i32, String, String) {
        (self.code, self.stdout, self.stderr)
    }
}

/// A scratch `herd` sandbox; dropping it ends what its tests launched (`down --all --yes`),
/// then deletes the directory.
#[derive(Debug)]
pub struct Herd {
    bin: PathBuf,
    dir: tempfile::TempDir,
    env: Vec<(String, OsString)>,
    timeout: Duration,
    cleanup: bool,
}

impl Herd {
    /// A sandbox for the binary at `bin`, with an empty `home/`.
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir_all(dir.path().join("home")).expect("a scratch HOME");
        Herd {
            bin: bin.into(),
            dir,
            env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            cleanup: true,
        }
    }

    /// The same, with this `herd.toml` in the working directory.
    pub fn with_config(bin: impl Into<PathBuf>, herd_toml: &str) -> Self {
        let h = Self::new(bin);
        h.write("herd.toml", herd_toml);
        h
    }

    /// A variable every command of this sandbox gets (after the scrub).
    pub fn env(mut self, k: &str, v: impl Into<OsString>) -> Self {
        self.set_env(k, v);
        self
    }

    pub fn set_env(&mut self, k: &str, v: impl Into<OsString>) {
        self.env.retain(|(x, _)| x != k);
        self.env.push((k.to_string(), v.into()));
    }

    /// Points the sandbox at an EC2 endpoint with fake credentials, as a user points herd
    /// at an emulator: AWS is the default cloud, one region is searched, instance metadata
    /// is off (nothing but 127.0.0.1 is ever asked).
    pub fn aws(self, endpoint: &str, region: &str) -> Self {
        let mut h = self.env("HERD_CLOUD", "aws").env("HERD_AWS_REGIONS", region);
        for (k, v) in aws_credentials(endpoint, region) {
            h.set_env(k, v);
        }
        h
    }

    /// How long each run may take.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// No `down --all` when dropped (for servers that would make it wait or fail).
    pub fn no_cleanup(mut self) -> Self {
        self.cleanup = false;
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }
    pub fn sim_dir(&self) -> PathBuf {
        self.path().join("sim")
    }
    pub fn ledger(&self) -> PathBuf {
        self.path().join("ledger.db")
    }
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Writes `text` to `name` in the working directory; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("a dir in the sandbox");
        }
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    }

    /// The command, scrubbed: only `PATH` of the caller's environment, a scratch HOME and
    /// XDG dirs, state and ledger in the sandbox, `USER=tester`, `NO_COLOR`, no stdin.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let home = self.home();
        let mut c = Command::new(&self.bin);
        c.args(args)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("HERD_SIM_DIR", self.sim_dir())
            .env("HERD_LEDGER", self.ledger())
            .env("USER", "tester")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs `args`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_cmd(&mut self.cmd(args))
    }

    /// Runs `args` with extra variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        self.run_cmd(&mut c)
    }

    /// Runs a command built from [`Herd::cmd`] (`h.run_cmd(h.cmd(args).env("USER", "bob"))`),
    /// killed (and the test failed) past the sandbox's timeout.
    pub fn run_cmd(&self, cmd: &mut Command) -> Run {
        run_with_timeout(cmd, self.timeout)
    }

    /// Runs and insists on success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "herd {args:?} failed:\n{}{}", r.stdout, r.stderr);
        r
    }

    /// Runs and insists on failure with exit code 1 and an `error: ` line.
    pub fn fails(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 1, "herd {args:?} should fail:\n{}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("error: "), "{}", r.stderr);
        r
    }

    /// Runs, insists on success, and reads stdout as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let r = self.ok(args);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("herd {args:?}: not JSON ({e}):\n{}", r.stdout))
    }

    /// Starts `args` with stdout and stderr piped (for concurrent runs and interrupts).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()))
    }

    /// Runs a command line exactly as herd printed it (`herd down --cluster x`), on a
    /// terminal that answers `y` to its question.
    pub fn run_printed(&self, line: &str) -> Run {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.first(), Some(&"herd"), "{line}");
        with_terminal(self.cmd(&words[1..]), "y\n")
    }

    /// The instances `herd ls --json` shows.
    pub fn live(&self) -> Vec<Value> {
        self.json(&["ls", "--json"]).as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Herd {
    fn drop(&mut self) {
        // Whatever a test launched ends with it: on the simulator when it has state, on the
        // configured cloud when one is set.
        let aws = self.env.iter().any(|(k, _)| k == "AWS_ENDPOINT_URL");
        if self.cleanup && (self.sim_dir().exists() || aws) {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_with_timeout(&mut self.cmd(&["down", "--all", "--yes"]), Duration::from_secs(60))
            }));
        }
    }
}

/// The fake credentials and endpoint of an emulated EC2.
pub fn aws_credentials(endpoint: &str, region: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", region.into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_ENDPOINT_URL", endpoint.into()),
    ]
}

/// Runs `cmd` to its end, reading both streams as it goes; kills it (by its handle) and
/// panics past `limit`, so a hung `herd` fails its test instead of the whole run.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Run {
    use std::os::unix::process::CommandExt;
    let what = format!("{cmd:?}");
    let mut child = cmd
        // Its own process group, so a timeout ends what it started too (and the pipes close).
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    wait_with_timeout(&mut child, limit, &what)
}

/// Waits for a started child (stdout and stderr piped), killing it past `limit`.
pub fn wait_with_timeout(child: &mut Child, limit: Duration, what: &str) -> Run {
    let read = |s: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut s) = s {
                let _ = s.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let err = read(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait on the child") {
            break s;
        }
        if start.elapsed() > limit {
            // SAFETY: kill(2) on the group of our own child, which we have not reaped (so
            // its id is not reused); a child in our own group is killed by its handle.
            if child_leads_group(child) {
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            }
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "{what} did not finish within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run::from_parts(status, out.join().unwrap_or_default(), err.join().unwrap_or_default())
}

/// Whether `child` leads a process group of its own (started by [`run_with_timeout`]).
fn child_leads_group(child: &Child) -> bool {
    let pid = child.id() as i32;
    // SAFETY: getpgid(2) only reads the group of a process we started and have not reaped.
    pid > 0 && unsafe { libc::getpgid(pid) } == pid
}

/// Runs `cmd` with a pseudo-terminal on stdin that has `answer` typed into it, so herd's
/// confirmation question is asked and answered as a person would.
pub fn with_terminal(mut cmd: Command, answer: &str) -> Run {
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into the pointers and reads nothing else.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut typing = std::fs::File::from(master);
    typing.write_all(answer.as_bytes()).expect("type into the terminal");
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    // Our end of the terminal stays open until the child is done.
    let r = wait_with_timeout(&mut child, DEFAULT_TIMEOUT, &what);
    drop(typing);
    r
}

/// The `herd ...` command a message prints between backticks, starting with `prefix`.
pub fn printed_command(text: &str, prefix: &str) -> String {
    let start = text
        .find(&format!("`{prefix}"))
        .unwrap_or_else(|| panic!("no `{prefix}...` in:\n{text}"));
    let rest = &text[start + 1..];
    rest[..rest.find('`').expect("a closing backtick")].to_string()
}

/// The chatty-log warning herd printed on stderr (`warning: ID writes R MB/min ...`) and
/// its rate, failing the test when there is none.
pub fn chatty_warning(stderr: &str) -> (&str, f64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("MB/min"))
        .unwrap_or_else(|| panic!("no chatty-log warning in:\n{stderr}"));
    assert!(line.starts_with("warning: "), "{line}");
    let rate = line
        .split(" writes ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no rate in: {line}"));
    (line, rate)
}
