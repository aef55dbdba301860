//! `herd env` and `herd launch --env` end to end, on loopback only: the tests make their
//! own wheels (written by hand, `env_fixtures/mkwheel.py`), serve them as a PEP 503 index
//! from a small http.server (`env_fixtures/serve.py`) on 127.0.0.1, install them into a real venv (plus an
//! editable package with a tiny in-tree build backend), then capture that venv, check
//! the lock for both architectures, and bootstrap it on simulated instances.
//! Needs `python3` (with venv) and `uv` on PATH: scripts/test.sh installs uv into .venv
//! (scripts/requirements-test.txt).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herd_testkit::cli::Herd;
use serde_json::Value;

const HERD: &str = env!("CARGO_BIN_EXE_herd");
const MKWHEEL: &str = include_str!("env_fixtures/mkwheel.py");
const INDEX: &str = include_str!("env_fixtures/index.py");
const SERVE: &str = include_str!("env_fixtures/serve.py");
const BACKEND: &str = include_str!("env_fixtures/backend.py");

fn host_machine() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else {
        "x86_64"
    }
}
fn other_machine() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "x86_64"
    } else {
        "aarch64"
    }
}
fn arch_name(machine: &str) -> &'static str {
    if machine == "aarch64" {
        "arm64"
    } else {
        "x86_64"
    }
}

fn need(tool: &str, install: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{tool} is needed on PATH for these tests: {install}");
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A local index on 127.0.0.1 and a venv installed from it.
struct Py {
    dir: tempfile::TempDir,
    server: Child,
    port: u16,
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Py {
    fn new() -> Py {
        need("python3", "apt-get install -y python3 python3-venv");
        need(
            "uv",
            "python3 -m pip install uv (scripts/test.sh installs it into .venv)",
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("mkwheel.py"), MKWHEEL).unwrap();
        std::fs::write(d.join("index.py"), INDEX).unwrap();
        std::fs::write(d.join("serve.py"), SERVE).unwrap();
        let files = d.join("index/files");
        let wheel = |name: &str, version: &str, tag: &str| {
            sh(Command::new("python3")
                .arg(d.join("mkwheel.py"))
                .arg(&files)
                .args([name, version, tag]));
        };
        wheel("alpha", "1.0", "any");
        wheel("alpha", "1.1", "any");
        wheel("beta_pkg", "2.5", "any");
        wheel("hostonly", "0.9", &format!("manylinux_2_17_{}", host_machine()));
        wheel("otheronly", "3.0", &format!("manylinux_2_17_{}", other_machine()));
        sh(Command::new("python3").arg(d.join("index.py")).arg(d.join("index")));
        // The index on an ephemeral port of 127.0.0.1; it says which on its first line.
        let mut server = Command::new("python3")
            .arg(d.join("serve.py"))
            .arg(d.join("index"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .split("port ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the index server said: {line}"));
        // The editable package, with its own build backend (no setuptools needed).
        let lib = d.join("mylib");
        std::fs::create_dir_all(lib.join("mylib")).unwrap();
        std::fs::write(lib.join("backend.py"), BACKEND).unwrap();
        std::fs::write(lib.join("mylib/__init__.py"), "__version__ = '0.3'\n").unwrap();
        std::fs::write(
            lib.join("pyproject.toml"),
            "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n\n[project]\nname = \"mylib\"\nversion = \"0.3\"\n",
        )
        .unwrap();
        sh(Command::new("python3").args(["-m", "venv"]).arg(d.join("venv")));
        let py = Py { dir, server, port };
        sh(Command::new(py.python())
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-index",
                "--find-links",
            ])
            .arg(&files)
            .args(["alpha==1.0", "beta-pkg==2.5", "hostonly==0.9"])
            .env_remove("PIP_FIND_LINKS")
            .env_remove("PIP_INDEX_URL"));
        sh(Command::new(py.python())
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-index",
                "-e",
            ])
            .arg(&lib));
        py
    }

    fn venv(&self) -> PathBuf {
        self.dir.path().join("venv")
    }
    fn python(&self) -> PathBuf {
        self.venv().join("bin/python")
    }
    /// The index URL, with credentials that must never print.
    fn index(&self) -> String {
        format!("http://herduser:s3cretpw@127.0.0.1:{}/simple", self.port)
    }

    /// A sandbox whose shell has the venv active and the index set.
    fn herd(&self) -> Herd {
        Herd::new(HERD)
            .timeout(Duration::from_secs(120))
            .env("VIRTUAL_ENV", self.venv())
            .env("UV_INDEX_URL", self.index())
            // uv's own cache in the sandbox too.
            .env("UV_CACHE_DIR", self.dir.path().join("uv-cache"))
    }

    /// What the venv itself says is installed (pip's view), tooling left out.
    fn local_versions(&self) -> Vec<(String, String)> {
        let out = sh(Command::new(self.python()).args([
            "-m",
            "pip",
            "list",
            "--format",
            "json",
            "--disable-pip-version-check",
        ]));
        let v: Value = serde_json::from_str(&out).unwrap();
        let mut got: Vec<(String, String)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_lowercase().replace('_', "-"),
                    p["version"].as_str().unwrap().to_string(),
                )
            })
            .filter(|(n, _)| !["pip", "setuptools", "wheel"].contains(&n.as_str()))
            .collect();
        got.sort();
        got
    }
}

fn packages(shown: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = shown["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn no_secret(text: &str) {
    assert!(!text.contains("s3cretpw"), "a credential printed:\n{text}");
}

#[test]
fn capture_reads_the_venv_and_show_lists_it() {
    let py = Py::new();
    let h = py.herd();
    let r = h.ok(&["env", "capture", "-o", "env.lock"]);
    no_secret(&r.all());
    assert!(
        r.stderr.contains("4 package(s) (1 local, shipped as wheels)"),
        "{}",
        r.stderr
    );
    let shown = h.json(&["env", "show", "env.lock", "--json"]);
    assert_eq!(packages(&shown), py.local_versions());
    assert_eq!(
        packages(&shown),
        vec![
            ("alpha".to_string(), "1.0".to_string()),
            ("beta-pkg".into(), "2.5".into()),
            ("hostonly".into(), "0.9".into()),
            ("mylib".into(), "0.3".into())
        ]
    );
    let mylib = shown["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "mylib")
        .unwrap();
    assert_eq!(
        mylib["source"], "wheel",
        "the editable package is built into a wheel: {mylib}"
    );
    assert!(h.path().join("env.lock.wheels/mylib-0.3-py3-none-any.whl").is_file());
    // The id is the lock's hash: the same environment gives the same id.
    let again = h.json(&["env", "show", "--json"]);
    assert_eq!(again["id"], shown["id"]);
    let text = h.ok(&["env", "show", "env.lock"]);
    no_secret(&text.all());
    assert!(
        text.stderr.contains("installs from: index http://***@127.0.0.1"),
        "{}",
        text.stderr
    );

    // Narrowing: --only / --ignore / a requirements file.
    let only = h.ok(&["env", "capture", "--only", "alpha"]);
    assert!(
        only.stdout.contains("name = \"alpha\"") && !only.stdout.contains("beta-pkg"),
        "{}",
        only.stdout
    );
    let ign = h.ok(&["env", "capture", "--ignore", "mylib", "--ignore", "hostonly"]);
    assert!(ign.stderr.contains("2 package(s)"), "{}", ign.stderr);
    h.write("requirements.txt", "# ours\nalpha==1.0\nbeta_pkg  # any\n");
    let req = h.ok(&["env", "capture", "--requirements", "requirements.txt"]);
    assert!(req.stderr.contains("2 package(s)"), "{}", req.stderr);
    // Strict: a pin that differs from what is installed is refused; lenient drops it.
    h.write("pinned.txt", "alpha==1.1\nbeta-pkg\n");
    let e = h.fails(&["env", "capture", "--requirements", "pinned.txt"]);
    assert!(
        e.stderr.contains("alpha: the file pins 1.1 but 1.0 is installed"),
        "{}",
        e.stderr
    );
    assert!(
        e.stderr.contains("hint: ") && e.stderr.contains("--lenient"),
        "{}",
        e.stderr
    );
    let l = h.ok(&["env", "capture", "--requirements", "pinned.txt", "--lenient"]);
    assert!(
        l.stderr.contains("left out (--lenient)") && l.stderr.contains("1 package(s)"),
        "{}",
        l.stderr
    );
    // Bad input: error + hint, non-zero.
    let e = h.fails(&["env", "capture", "--python", "/nonexistent/python3"]);
    assert!(e.stderr.contains("hint: "), "{}", e.stderr);
    let e = h.fails(&["env", "capture", "--only", "nosuch"]);
    assert!(e.stderr.contains("nosuch"), "{}", e.stderr);
    h.write("bad.lock", "format = 1\n");
    let e = h.fails(&["env", "show", "bad.lock"]);
    assert!(
        e.stderr.contains("not a herd environment lock") && e.stderr.contains("hint: "),
        "{}",
        e.stderr
    );
}

#[test]
fn a_package_without_a_wheel_for_the_target_is_refused_by_name() {
    let py = Py::new();
    let h = py.herd();
    h.ok(&["env", "capture", "-o", "env.lock"]);
    // The host's architecture: every package installs.
    let ok = h.ok(&["env", "check", "env.lock", "--arch", arch_name(host_machine())]);
    assert!(ok.stderr.contains("every package installs"), "{}", ok.stderr);
    // The other one: `hostonly` has a wheel for this machine only.
    let other = arch_name(other_machine());
    let e = h.fails(&["env", "check", "env.lock", "--arch", other]);
    no_secret(&e.all());
    assert!(
        e.stderr.contains(&format!("no wheel or sdist for linux/{other}")) && e.stderr.contains("hostonly==0.9"),
        "{}",
        e.stderr
    );
    assert!(
        !e.stderr.contains("alpha==1.0:"),
        "only the culprit is blamed: {}",
        e.stderr
    );
    let host = arch_name(host_machine());
    assert!(
        e.stderr.contains(&format!(
            "hint: hostonly==0.9 installs on {host}: the nearest {host} type is"
        )),
        "{}",
        e.stderr
    );

    // A launch on the simulator (the host's architecture) whose lock holds a package
    // built only for the other one: refused before anything is launched.
    h.ok(&["env", "capture", "--ignore", "hostonly", "-o", "other.lock"]);
    let mut lock = std::fs::read_to_string(h.path().join("other.lock")).unwrap();
    lock.push_str("\n[[package]]\nname = \"otheronly\"\nversion = \"3.0\"\nsource = \"index\"\n");
    std::fs::write(h.path().join("other.lock"), lock).unwrap();
    let e = h.fails(&["launch", "l1.small", "--env", "other.lock", "--command", "true"]);
    assert!(
        e.stderr.contains("otheronly==3.0") && e.stderr.contains(&format!("installs on {other}")),
        "{}",
        e.stderr
    );
    assert!(h.live().is_empty(), "nothing may run after a refusal");
    // Bad --env values.
    let e = h.fails(&["launch", "l1.small", "--env", "missing.lock"]);
    assert!(
        e.stderr.contains("cannot read environment lock") && e.stderr.contains("hint: "),
        "{}",
        e.stderr
    );
}

/// Waits until every instance's command has a result; returns (setup log, command log).
fn outputs(h: &Herd, ids: &[String]) -> Vec<(String, String)> {
    let start = Instant::now();
    ids.iter()
        .map(|id| {
            let vm = h.sim_dir().join("vms").join(id);
            loop {
                if vm.join("command.result.json").exists() {
                    break;
                }
                if vm.join("setup.result.json").exists() && !vm.join("command.result.json").exists() {
                    let r = std::fs::read_to_string(vm.join("setup.result.json")).unwrap_or_default();
                    assert!(
                        !r.contains("\"exit_code\":1"),
                        "setup failed: {}",
                        read(&vm.join("var/log/herd-setup.log"))
                    );
                }
                assert!(
                    start.elapsed() < Duration::from_secs(90),
                    "no command result for {id}: {}",
                    read(&vm.join("var/log/herd-setup.log"))
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            (
                read(&vm.join("var/log/herd-setup.log")),
                read(&vm.join("var/log/herd-command.log")),
            )
        })
        .collect()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn launched_ids(stdout: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// "herd-env: bootstrap took 1.234 s (built env ...)" -> (1.234, "built").
fn bootstrap_time(setup_log: &str) -> (f64, String) {
    let line = setup_log
        .lines()
        .find(|l| l.starts_with("herd-env: bootstrap took "))
        .unwrap_or_else(|| panic!("no bootstrap marker in:\n{setup_log}"));
    let rest = line.trim_start_matches("herd-env: bootstrap took ");
    let secs: f64 = rest.split_whitespace().next().unwrap().parse().unwrap();
    let how = rest
        .split('(')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    (secs, how)
}

#[test]
fn launch_env_auto_bootstraps_every_instance_and_a_second_launch_reuses_it() {
    let py = Py::new();
    let h = py.herd();
    let workload = "python -c \"import alpha, beta_pkg, hostonly, mylib; print('versions', alpha.__version__, beta_pkg.__version__, hostonly.__version__, mylib.__version__)\"";
    let first = h.ok(&[
        "launch",
        "l1.small",
        "-n",
        "2",
        "--env",
        "auto",
        "--json",
        "--command",
        workload,
    ]);
    no_secret(&first.all());
    let ids = launched_ids(&first.stdout);
    assert_eq!(ids.len(), 2);
    let local: Vec<String> = py.local_versions().into_iter().map(|(_, v)| v).collect();
    let want = format!("versions {}", local.join(" "));
    let mut built = Vec::new();
    for (setup, command) in outputs(&h, &ids) {
        no_secret(&setup);
        assert_eq!(command.trim(), want, "setup log:\n{setup}");
        built.push(bootstrap_time(&setup));
    }
    assert!(built.iter().any(|(_, how)| how == "built"), "{built:?}");

    let second = h.ok(&["launch", "l1.small", "--env", "auto", "--json", "--command", workload]);
    let ids2 = launched_ids(&second.stdout);
    let (setup, command) = outputs(&h, &ids2).remove(0);
    assert_eq!(command.trim(), want);
    let (reused, how) = bootstrap_time(&setup);
    assert_eq!(how, "reused", "{setup}");
    let build = built
        .iter()
        .filter(|(_, h)| h == "built")
        .map(|(t, _)| *t)
        .fold(0.0, f64::max);
    eprintln!(
        "bootstrap: built {build:.3} s, reused {reused:.3} s ({:.1} % of the first)",
        100.0 * reused / build
    );
    assert!(
        reused <= build * 0.10,
        "a cached bootstrap ({reused} s) must cost at most 10 % of a build ({build} s)"
    );

    // A dry run's JSON shows the request (and so the bootstrap): credentials redacted.
    let dry = h.ok(&[
        "launch",
        "l1.small",
        "--env",
        "auto",
        "--dry-run",
        "--json",
        "--command",
        workload,
    ]);
    no_secret(&dry.all());
    assert!(
        dry.stdout.contains("herd-env"),
        "the dry run shows the bootstrap: {}",
        dry.stdout
    );

    // --env none: nothing is wrapped.
    let plain = h.ok(&[
        "launch",
        "l1.small",
        "--env",
        "none",
        "--json",
        "--command",
        "echo plain",
    ]);
    let (setup, command) = outputs(&h, &launched_ids(&plain.stdout)).remove(0);
    assert_eq!(command.trim(), "plain");
    assert!(!setup.contains("herd-env"), "{setup}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "__pycache__" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
fn the_example_sweep_runs_in_the_captured_environment() {
    let py = Py::new();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/compress");
    // The example's local package, installed editable from a copy (the repo stays clean).
    let lib = py.dir.path().join("zlibmeter");
    copy_dir(&examples.join("zlibmeter"), &lib);
    sh(Command::new(py.python())
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-index",
            "-e",
        ])
        .arg(&lib));
    // The instance's own Python does not have it: only the captured environment does.
    let plain = Command::new("python3")
        .args(["-c", "import zlibmeter"])
        .output()
        .unwrap();
    assert!(
        !plain.status.success(),
        "zlibmeter must not be importable outside the venv"
    );

    let h = py.herd();
    for f in ["sweep-env.toml", "compress_env.py"] {
        std::fs::copy(examples.join(f), h.path().join(f)).unwrap();
    }
    let plan = h.ok(&["sweep", "plan", "sweep-env.toml"]);
    no_secret(&plan.all());
    let r = h.ok(&["sweep", "run", "sweep-env.toml"]);
    no_secret(&r.all());
    assert!(r.stdout.contains("MB/s"), "{}\n{}", r.stdout, r.stderr);
    // The setups built the environment once, in the simulator's shared cache.
    let envs: Vec<PathBuf> = std::fs::read_dir(h.sim_dir().join("envs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join(".herd-env-ok").is_file())
        .collect();
    assert_eq!(envs.len(), 1, "{envs:?}");
    eprintln!("{}", r.stdout);
    // A spec whose lock cannot install here is refused at plan time, by name.
    h.ok(&["env", "capture", "-o", "bad.lock"]);
    let mut lock = std::fs::read_to_string(h.path().join("bad.lock")).unwrap();
    lock.push_str("\n[[package]]\nname = \"otheronly\"\nversion = \"3.0\"\nsource = \"index\"\n");
    std::fs::write(h.path().join("bad.lock"), lock).unwrap();
    let spec = std::fs::read_to_string(h.path().join("sweep-env.toml"))
        .unwrap()
        .replace("env = \"auto\"", "env = \"bad.lock\"");
    std::fs::write(h.path().join("bad.toml"), spec).unwrap();
    let e = h.fails(&["sweep", "plan", "bad.toml"]);
    assert!(e.stderr.contains("otheronly==3.0"), "{}", e.stderr);
}

/// On "AWS" (moto as EC2's control plane, a real sshd on 127.0.0.1 as every instance):
/// a sweep with `env = "auto"` builds the captured environment over SSH on the mapped
/// instance, and the workload runs inside it. The "VM" has `uv` already (this machine
/// has no network to fetch it): the test puts it in the sessions' home, where the
/// bootstrap looks after PATH. Without network, a lock whose exact Python the "VM" lacks
/// falls back to the same minor version, as the setup's log says.
#[test]
fn on_aws_the_bootstrap_runs_over_ssh_on_the_instance() {
    use herd_guest::ssh::testing::Sshd;
    use herd_guest::ssh::HostKeyPair;
    let py = Py::new();
    let moto = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(herd_aws::testing::Moto::start())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let mut h = py
        .herd()
        .aws(&moto.endpoint(), "us-east-1")
        .env("HERD_AWS_SSH_USER", herd_guest::ssh::testing::current_user().unwrap());
    // The owner key comes with the first launch; the "VM" admits it.
    h.ok(&[
        "launch",
        "--cloud",
        "aws",
        "t3.micro",
        "--deadline",
        "5m",
        "--cluster",
        "warm",
    ]);
    h.ok(&["down", "--cluster", "warm", "--yes"]);
    let owner = std::fs::read_to_string(h.home().join(".local/share/herd/keys/herd-tester-ed25519.pub")).unwrap();
    let host = HostKeyPair::generate().unwrap();
    let host_file = h.write("host-key", host.private_openssh());
    let sshd = Sshd::start_as(Some(host), &[owner]).unwrap_or_else(|e| panic!("{e}"));
    let home = sshd.dir().join("home");
    std::fs::create_dir_all(home.join(".local/bin")).unwrap();
    let uv = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v uv"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::os::unix::fs::symlink(uv.trim(), home.join(".local/bin/uv")).unwrap();
    h.set_env("HERD_AWS_TEST_HOST_KEY", host_file.as_os_str());
    h.set_env("HERD_AWS_TEST_ADDRESS_MAP", format!("*={}", sshd.addr()));

    h.write(
        "work.py",
        "import alpha, beta_pkg, mylib\nprint('versions', alpha.__version__, beta_pkg.__version__, mylib.__version__)\nprint('score: 7')\n",
    );
    let spec = h.write(
        "s.toml",
        "name = \"awsenv\"\nrepetitions = 1\ntimeout = \"5m\"\nconcurrency = 1\nbudget = \"1\"\nenv = \"auto\"\n\n\
         [workload]\nfiles = [\"work.py\"]\nrun = \"python work.py\"\n\n\
         [workload.metric]\nregex = 'score: ([0-9]+)'\nbetter = \"higher\"\n\n\
         [matrix]\nclouds = [\"aws\"]\nregions = [\"us-east-1\"]\ntypes = [\"t3.micro\"]\n",
    );
    let r = h.run(&["sweep", "run", spec.to_str().unwrap()]);
    no_secret(&r.all());
    assert_eq!(r.code, 0, "{}", r.all());
    let v = h.json(&["sweep", "report", "awsenv", "--json"]);
    let cells = v["cells"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(cells.len(), 1, "{v}");
    assert_eq!(cells[0]["cell"]["cloud"], "aws", "{v}");
    assert_eq!(cells[0]["metric"]["median"], 7.0, "{v}");
    // Built over SSH, in the "VM"'s own cache (its home), not the simulator's.
    let envs: Vec<PathBuf> = std::fs::read_dir(home.join(".cache/herd/envs"))
        .unwrap_or_else(|e| panic!("no env cache in the instance's home: {e}\n{}", r.all()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join(".herd-env-ok").is_file())
        .collect();
    assert_eq!(envs.len(), 1, "{envs:?}");
    let out = Command::new(envs[0].join("bin/python"))
        .args([
            "-c",
            "import alpha, beta_pkg, mylib; print(alpha.__version__, beta_pkg.__version__, mylib.__version__)",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.0 2.5 0.3");
    assert!(h.live().is_empty(), "{:?}", h.live());
}
