//! The SSH transport (issue 13) against a real OpenSSH sshd on 127.0.0.1:
//! - one exec round trip on an open connection, against the system `ssh` multiplexed
//!   through a ControlMaster on the same sshd (the fastest a shell user gets); target
//!   ratio <= 1.0;
//! - fan-out: the same command on 200 new sessions at once, against one session's time
//!   (connect + exec + close), target <= 5x on these 2 cores, with this process's peak
//!   memory.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use herd_guest::ssh::testing::Sshd;
use herd_guest::ssh::{ClientKey, ConnectOptions, ExecOptions, Transport};

use super::{median, ms, verdict, Args};

const FAN_OUT: usize = 200;

fn opts() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(60),
        boot_patience: Duration::from_secs(120),
        host_key_settle: Duration::ZERO,
        ..ConnectOptions::default()
    }
}

fn exec_opts() -> ExecOptions {
    ExecOptions {
        timeout: Duration::from_secs(120),
        ..ExecOptions::default()
    }
}

pub fn bench(a: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let sshd = Sshd::start().map_err(anyhow::Error::msg)?;
    let runs = a.runs.max(10);
    rt.block_on(round_trip(&sshd, runs))?;
    rt.block_on(fan_out(&sshd))
}

/// herd's exec on one open session vs `ssh` through an open ControlMaster.
async fn round_trip(s: &Sshd, runs: usize) -> Result<()> {
    let t = Transport::new(8);
    let key = ClientKey::load(&s.client_key_path())?;
    let sess = t.connect(s.addr(), s.user(), &key, &s.pinned(), &opts()).await?;
    sess.run("true", &exec_opts()).await?;
    let mut herd = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let out = sess.run("true", &exec_opts()).await?;
        herd.push(t0.elapsed());
        if !out.success() {
            bail!("`true` failed over herd's session");
        }
    }
    sess.close().await?;

    let control = s.dir().join("cm-%C");
    let known = s.known_hosts()?;
    let ssh = |extra: &[&str]| {
        let mut c = Command::new("ssh");
        c.arg("-i")
            .arg(s.client_key_path())
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ControlMaster=auto",
            ])
            .arg("-o")
            .arg(format!("ControlPath={}", control.display()))
            .args(["-o", "ControlPersist=60", "-p", &s.port().to_string()])
            .args(extra)
            .arg(format!("{}@127.0.0.1", s.user()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    // The master opens on the first call; the measured ones reuse it.
    let first = ssh(&[]).arg("true").output().context("running the system ssh")?;
    if !first.status.success() {
        bail!(
            "ssh with a ControlMaster failed: {}",
            String::from_utf8_lossy(&first.stderr)
        );
    }
    let mut system = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let out = ssh(&[]).arg("true").output()?;
        system.push(t0.elapsed());
        if !out.status.success() {
            bail!("ssh: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let _ = ssh(&["-O", "exit"]).output();
    let (h, sys) = (median(herd), median(system));
    let ratio = h.as_secs_f64() / sys.as_secs_f64();
    println!(
        "ssh exec round trip (open connection, median of {runs}): herd {} vs ssh+ControlMaster {}: {ratio:.2}x (target <= 1.0) {}",
        ms(h),
        ms(sys),
        verdict(ratio <= 1.0)
    );
    Ok(())
}

/// One session's connect + exec + close, then 200 of them at once.
async fn fan_out(s: &Sshd) -> Result<()> {
    let t = Transport::new(256);
    if t.max_sessions() < FAN_OUT {
        bail!("the fd budget allows only {} sessions", t.max_sessions());
    }
    let key = ClientKey::load(&s.client_key_path())?;
    let one = |i: usize| {
        let (t, key, pin, addr, user) = (t.clone(), key.clone(), s.pinned(), s.addr(), s.user().to_string());
        async move {
            let sess = t.connect(addr, &user, &key, &pin, &opts()).await?;
            let out = sess.run(&format!("echo {i}"), &exec_opts()).await?;
            sess.close().await?;
            if out.stdout.text() != format!("{i}\n") {
                return Err(herd_core::Error::unexpected(format!(
                    "session {i} said {:?}",
                    out.stdout.text()
                )));
            }
            Ok::<_, herd_core::Error>(())
        }
    };
    let mut singles = Vec::new();
    for i in 0..5 {
        let t0 = Instant::now();
        one(i).await?;
        singles.push(t0.elapsed());
    }
    let single = median(singles);
    let before = peak_rss_kib();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..FAN_OUT).map(|i| tokio::spawn(one(i))).collect();
    for task in tasks {
        task.await??;
    }
    let wall = t0.elapsed();
    let ratio = wall.as_secs_f64() / single.as_secs_f64();
    println!(
        "ssh fan-out: {FAN_OUT} sessions at once in {} vs one session {}: {ratio:.1}x (target <= 5x) {}; peak RSS {} MiB (before: {} MiB)",
        ms(wall),
        ms(single),
        verdict(ratio <= 5.0),
        peak_rss_kib() / 1024,
        before / 1024
    );
    Ok(())
}

/// This process's peak resident memory (`VmHWM`), KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
