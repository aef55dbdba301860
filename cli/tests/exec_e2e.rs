//! `herd exec`, `herd cp` and `herd logs` on "AWS" for real: moto is EC2's control plane
//! and each instance's address is sent (by `HERD_AWS_TEST_ADDRESS_MAP`, honoured only in
//! test builds) to a real OpenSSH sshd on 127.0.0.1. The sshd stands in for the VM the
//! way the boot script would set it up: it serves the host key herd generated for the
//! launch (read back from herd's store, as the user data carries it) and admits the
//! owner's public key. herd connects pinning that key, through the CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use herd_aws::testing::Moto;
use herd_guest::ssh::testing::Sshd;
use herd_guest::ssh::HostKeyPair;
use herd_testkit::cli::Herd;
use serde_json::Value;

const HERD: &str = env!("CARGO_BIN_EXE_herd");

/// The shared CLI sandbox pointed at moto, logging in as this machine's user (the sshd
/// runs as it).
fn sandbox(endpoint: &str) -> Herd {
    Herd::new(HERD)
        .aws(endpoint, "us-east-1")
        .env("HERD_AWS_SSH_USER", herd_guest::ssh::testing::current_user().unwrap())
}

/// Where herd keeps the owner key and the launches' host keys in the sandbox.
fn keys(h: &Herd) -> PathBuf {
    h.home().join(".local/share/herd/keys")
}

fn moto() -> Moto {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(Moto::start()).unwrap_or_else(|e| panic!("{e}"))
}

/// The one launch's host key pair herd stored (the user data's key).
fn launch_host_key(keys: &Path) -> HostKeyPair {
    let dir = keys.join("host-keys");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .collect();
    assert_eq!(files.len(), 1, "one launch, one host key: {files:?}");
    HostKeyPair::from_private_openssh(&std::fs::read_to_string(&files[0]).unwrap()).unwrap()
}

#[test]
fn exec_cp_logs_on_aws_over_ssh_with_the_pinned_key() {
    let moto = moto();
    let mut sb = sandbox(&moto.endpoint());
    sb.ok(&[
        "launch",
        "--cloud",
        "aws",
        "t3.micro",
        "-n",
        "2",
        "--deadline",
        "30m",
        "--cluster",
        "ex",
    ]);
    let ids: Vec<String> = sb
        .live()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);

    // The "VM": serving the launch's host key and admitting the owner's key.
    let owner = std::fs::read_to_string(keys(&sb).join("herd-tester-ed25519.pub")).unwrap();
    let sshd = Sshd::start_as(Some(launch_host_key(&keys(&sb))), std::slice::from_ref(&owner))
        .unwrap_or_else(|e| panic!("{e}"));
    sb.set_env("HERD_AWS_TEST_ADDRESS_MAP", format!("*={}", sshd.addr()));

    // On both instances at once, output prefixed by id, stderr kept apart.
    let (code, out, err) = sb
        .run(&["exec", "--cluster", "ex", "--", "echo hello; echo oops >&2"])
        .triple();
    assert_eq!(code, 0, "{out}{err}");
    for id in &ids {
        assert!(out.contains(&format!("[{id}] hello\n")), "{out}");
        assert!(err.contains(&format!("[{id}] oops\n")), "{err}");
    }
    assert!(err.contains("EXIT"), "a summary: {err}");

    // A failure anywhere is a non-zero exit with each code in the summary.
    let (code, out, err) = sb.run(&["exec", "--cluster", "ex", "--", "exit 3"]).triple();
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("failed on 2 of 2"), "{err}");
    let (code, _, err) = sb.run(&["exec", &ids[0], "--", "no-such-command-herd"]).triple();
    assert_ne!(code, 0);
    assert!(err.contains("127"), "{err}");

    // A timeout ends the command, and says so.
    let t0 = std::time::Instant::now();
    let (code, _, err) = sb.run(&["exec", &ids[0], "--timeout", "2s", "--", "sleep 60"]).triple();
    assert_ne!(code, 0);
    assert!(err.contains("timed out"), "{err}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(30));

    // JSON for machines.
    let v: Value = sb.json(&["exec", &ids[0], "--json", "--", "echo hi"]);
    assert_eq!(v[0]["exit_code"], 0);
    assert_eq!(v[0]["stdout"], "hi\n");

    // cp, then the file is there for the next command (both in herd's command folder).
    let local = sb.path().join("payload.txt");
    let marker = format!("payload-{}", std::process::id());
    std::fs::write(&local, &marker).unwrap();
    sb.ok(&["cp", local.to_str().unwrap(), &format!("{}:cp-test", ids[0])]);
    let out = sb
        .ok(&["exec", &ids[0], "--", "cat cp-test/payload.txt; rm -rf cp-test"])
        .stdout;
    assert!(out.contains(&marker), "{out}");
    // exec --files ships first.
    let out = sb
        .ok(&[
            "exec",
            &ids[1],
            "--files",
            local.to_str().unwrap(),
            "--",
            "cat payload.txt; rm payload.txt",
        ])
        .stdout;
    assert!(out.contains(&marker), "{out}");

    // herd ssh: the system ssh, the owner's key, the launch's host key pinned.
    let r = sb.run(&["ssh", &ids[0], "--", "echo via-ssh; pwd"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("via-ssh\n"), "{}", r.all());
    assert!(
        r.stdout.trim_end().ends_with("/herd-work"),
        "in herd's work folder: {}",
        r.stdout
    );
    let printed = sb.ok(&["ssh", &ids[0], "--print"]).stdout;
    assert!(printed.contains("StrictHostKeyChecking=yes"), "{printed}");
    // The remote command's exit code is herd's.
    assert_eq!(sb.run(&["ssh", &ids[0], "--", "exit 7"]).code, 7);
    // Another machine at that address (a host key of its own) is refused, never learnt.
    let impostor = Sshd::start_as(Some(HostKeyPair::generate().unwrap()), std::slice::from_ref(&owner))
        .unwrap_or_else(|e| panic!("{e}"));
    sb.set_env("HERD_AWS_TEST_ADDRESS_MAP", format!("*={}", impostor.addr()));
    let r = sb.run(&["ssh", &ids[0], "--", "echo should-not-run"]);
    assert_eq!(r.code, 255, "{}", r.all());
    assert!(!r.stdout.contains("should-not-run"), "{}", r.all());
    assert!(r.stderr.contains("Host key verification failed"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: ssh could not log in"), "{}", r.stderr);
    // herd's own transport refuses it too, at once: this launch's VMs have shown herd's
    // key before, so a different one is no boot script still running.
    let t0 = std::time::Instant::now();
    let r = sb.run(&["exec", &ids[0], "--", "echo should-not-run"]);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(!r.stdout.contains("should-not-run"), "{}", r.all());
    assert!(r.stderr.contains("refused"), "{}", r.stderr);
    assert!(t0.elapsed() < std::time::Duration::from_secs(30), "{:?}", t0.elapsed());
    sb.set_env("HERD_AWS_TEST_ADDRESS_MAP", format!("*={}", sshd.addr()));

    // logs reads what the boot script captured (none here: the sshd's machine never ran it).
    sb.ok(&["logs", &ids[0]]);
}

/// The sweep's workload: CPU-bound shell that prints its own metric.
const WORK: &str = "i=0\nwhile [ $i -lt 20000 ]; do i=$((i+1)); done\necho \"score: $i\"\n";

#[test]
fn a_sweep_runs_cells_on_aws_over_ssh_beside_the_simulator() {
    let moto = moto();
    let mut sb = Herd::with_config(HERD, "[simulator.faults]\nboot_delay = [\"100ms\", \"200ms\"]\n")
        .aws(&moto.endpoint(), "us-east-1")
        .env("HERD_AWS_SSH_USER", herd_guest::ssh::testing::current_user().unwrap());
    // The owner key comes with the first launch; the "VM" admits it.
    sb.ok(&[
        "launch",
        "--cloud",
        "aws",
        "t3.micro",
        "--deadline",
        "5m",
        "--cluster",
        "warm",
    ]);
    sb.ok(&["down", "--cluster", "warm", "--yes"]);
    let owner = std::fs::read_to_string(keys(&sb).join("herd-tester-ed25519.pub")).unwrap();
    // A sweep launches and connects in one run: every launch gets this host key, which
    // the sshd serves from the start.
    let host = HostKeyPair::generate().unwrap();
    let host_file = sb.write("host-key", host.private_openssh());
    let sshd = Sshd::start_as(Some(host), &[owner]).unwrap_or_else(|e| panic!("{e}"));
    sb.set_env("HERD_AWS_TEST_HOST_KEY", host_file.as_os_str());
    sb.set_env("HERD_AWS_TEST_ADDRESS_MAP", format!("*={}", sshd.addr()));

    sb.write("work.sh", WORK);
    let spec = sb.write(
        "s.toml",
        "name = \"mixed\"\nrepetitions = 2\ntimeout = \"5m\"\nconcurrency = 2\nbudget = \"1\"\n\n\
         [workload]\nfiles = [\"work.sh\"]\nsetup = \"test -f work.sh\"\nrun = \"sh work.sh\"\n\n\
         [workload.metric]\nregex = 'score: ([0-9]+)'\nbetter = \"higher\"\n\n\
         [matrix]\nclouds = [\"local\", \"aws\"]\nregions = [\"local-east-1\", \"us-east-1\"]\n\
         types = [\"l1.large\", \"t3.micro\"]\n",
    );
    let out = sb.path().join("report");
    let r = sb.run(&["sweep", "run", spec.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("t3.micro@us-east-1"), "{}", r.stdout);
    assert!(r.stdout.contains("l1.large@local-east-1"), "{}", r.stdout);
    let v = sb.json(&["sweep", "report", "mixed", "--json"]);
    let cells = v["cells"].as_array().unwrap_or_else(|| panic!("{v}"));
    let clouds: Vec<&str> = cells.iter().filter_map(|c| c["cell"]["cloud"].as_str()).collect();
    assert!(clouds.contains(&"aws") && clouds.contains(&"local"), "{v}");
    // Both really ran the workload (over SSH on "AWS") and were measured.
    assert!(cells.iter().all(|c| c["metric"]["median"] == 20000.0), "{v}");
    assert!(out.join("index.html").is_file());
    assert!(sb.live().is_empty(), "every instance was terminated: {:?}", sb.live());
}

/// Processes whose command line has `needle` (the remote commands, on this machine).
fn running(needle: &str) -> usize {
    let out = Command::new("pgrep").args(["-f", "-c", needle]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

#[test]
fn ctrl_c_during_exec_on_50_instances_stops_every_remote_command() {
    let moto = moto();
    let mut sb = sandbox(&moto.endpoint());
    sb.ok(&[
        "launch",
        "--cloud",
        "aws",
        "t3.micro",
        "-n",
        "50",
        "--deadline",
        "30m",
        "--cluster",
        "fifty",
    ]);
    assert_eq!(sb.live().len(), 50);
    let owner = std::fs::read_to_string(keys(&sb).join("herd-tester-ed25519.pub")).unwrap();
    let sshd = Sshd::start_as(Some(launch_host_key(&keys(&sb))), &[owner]).unwrap_or_else(|e| panic!("{e}"));
    sb.set_env("HERD_AWS_TEST_ADDRESS_MAP", format!("*={}", sshd.addr()));

    // A sleep no other process on this machine runs.
    let secs = 600 + std::process::id() % 300;
    let needle = format!("sleep {secs}");
    let mut child = sb.spawn(&["exec", "--cluster", "fifty", "--", &format!("{needle}; echo never")]);
    let t0 = std::time::Instant::now();
    while running(&needle) < 50 {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(120),
            "only {} of 50 remote commands started",
            running(&needle)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let r = herd_testkit::cli::wait_with_timeout(&mut child, std::time::Duration::from_secs(60), "herd exec");
    assert_eq!(r.code, 130, "{}", r.all());
    assert!(
        r.stderr.contains("stopping the command on 50 instance(s)"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("never"), "{}", r.stdout);
    // Every remote command is gone, not left running on the "VMs".
    let t0 = std::time::Instant::now();
    while running(&needle) > 0 {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "{} remote commands outlived Ctrl-C",
            running(&needle)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
