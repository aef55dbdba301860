//! The CLI's credentials never reach a simulated VM: its agent and the user's commands
//! start from a cleared environment plus an allowlist. Its own test binary, because it
//! sets canary variables in this process's environment before any thread could read it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use herd_core::{ExecRequest, Provider};
use herd_local::{AgentCommand, Faults, LocalProvider};

const CANARY: &str = "canary-7d1f0c2e";

const SECRETS: [&str; 8] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_CLIENT_SECRET",
    "HERD_GCP_API_KEY",
    "GITHUB_TOKEN",
    "DEPLOY_SECRET_VALUE",
];

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn agents_and_workloads_do_not_inherit_the_clis_secrets() {
    // Before any runtime or agent thread exists.
    for k in SECRETS {
        std::env::set_var(k, format!("{CANARY}-{k}"));
    }
    std::env::set_var("TZ", "UTC");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let p = LocalProvider::builder()
            .state_dir(dir)
            .agent(AgentCommand::new(env!("CARGO_BIN_EXE_herd-vm")))
            .faults(Faults {
                boot_delay: Some((Duration::from_millis(100), Duration::from_millis(100))),
                ..Faults::default()
            })
            .build()
            .unwrap();
        let mut req = common::request("l-env", "l1.small", 1, Utc::now(), Duration::from_secs(60));
        req.command = Some("env".into());
        let id = p.launch(&req).await.unwrap().remove(0).id;
        let vm = dir.join("vms").join(&id);
        wait_for("the command", || vm.join("command.result.json").exists());
        let env = std::fs::read_to_string(vm.join("var/log/herd-command.log")).unwrap();
        check(&env, &vm.join("disk"), "the command");

        let out = p.exec(&id, &ExecRequest::new("env")).await.unwrap();
        check(&out.stdout, &vm.join("disk"), "an exec");

        // The agent process itself.
        let pid: i32 = std::fs::read_to_string(vm.join("agent.pid"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ).replace('\0', "\n");
        check(&environ, &vm, "the agent");

        p.terminate(&[id]).await.unwrap();
    });
}

fn check(env: &str, home: &Path, who: &str) {
    assert!(!env.contains(CANARY), "{who} inherited a secret:\n{env}");
    for k in SECRETS {
        assert!(!env.lines().any(|l| l.starts_with(&format!("{k}="))), "{who} has {k}");
    }
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{who} has no PATH:\n{env}");
    assert!(env.lines().any(|l| l == "TZ=UTC"), "{who} lost TZ:\n{env}");
    let want = format!("HOME={}", home.display());
    assert!(env.lines().any(|l| l == want), "{who}: want {want}:\n{env}");
    assert!(!env.contains("CARGO_"), "{who} inherited cargo's environment:\n{env}");
}
