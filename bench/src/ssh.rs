//! The SSH transport (issue 13) against a real OpenSSH sshd on 127.0.0.1:
//! - one exec round trip on an open connection, against the system `ssh` multiplexed
//!   through a ControlMaster on the same sshd (the fastest a shell user gets); target
//!   ratio <= 1.0;
//! - fan-out: the same command on 200 sessions at once on one connection, against one
//!   session's time (connect + exec + close), target <= 5x on these 2 cores, with this
//!   process's peak memory; and on 200 separate connections against 200 system `ssh`
//!   processes and sshd's own CPU time for them.

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

/// One session's connect + exec + close; then 200 sessions at once, two ways:
/// as 200 SSH sessions (channels) on one connection, each with its own shell on the
/// server -- the target line -- and as 200 separate connections, against 200
/// system `ssh` processes and against the server's own CPU time for them (each new
/// connection costs sshd a fork and a key exchange, which no client can avoid).
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
            said(i, &out)
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

    // 200 sessions on one connection (sshd's MaxSessions is 1000 in the test config),
    // then the same 200 spread over one connection per core: one connection's sshd is
    // one process that sets up its channels one after another.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for conns in [1, cores] {
        let (wall, cpu) = channels(s, &t, &key, conns).await?;
        let cores = cores as u32;
        let ratio = wall.as_secs_f64() / single.as_secs_f64();
        let how = if conns == 1 {
            "on one connection".to_string()
        } else {
            format!("over {conns} connections")
        };
        println!(
            "ssh fan-out: {FAN_OUT} sessions at once {how} in {} vs one session (connect + exec + close) {}: {ratio:.1}x (target <= 5x) {}; \
             sshd and its shells used {} of CPU for them ({} on {cores} cores: herd's wall is {:.2}x that floor); peak RSS {} MiB (before: {} MiB)",
            ms(wall),
            ms(single),
            verdict(ratio <= 5.0),
            ms(cpu),
            ms(cpu / cores),
            wall.as_secs_f64() / (cpu / cores).as_secs_f64().max(1e-9),
            peak_rss_kib() / 1024,
            before / 1024
        );
        if conns == cores as usize {
            break;
        }
    }
    let cores = cores as u32;

    // 200 separate connections: herd, then the system ssh, each against sshd's CPU.
    let cpu0 = sshd_cpu(s);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..FAN_OUT).map(|i| tokio::spawn(one(i))).collect();
    for task in tasks {
        task.await??;
    }
    let herd = t0.elapsed();
    let herd_cpu = sshd_cpu(s).saturating_sub(cpu0);
    let known = s.known_hosts()?;
    let cpu0 = sshd_cpu(s);
    let t0 = Instant::now();
    let kids: Vec<_> = (0..FAN_OUT)
        .map(|i| {
            Command::new("ssh")
                .arg("-i")
                .arg(s.client_key_path())
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", known.display()))
                .args([
                    "-o",
                    "StrictHostKeyChecking=yes",
                    "-o",
                    "BatchMode=yes",
                    "-p",
                    &s.port().to_string(),
                ])
                .arg(format!("{}@127.0.0.1", s.user()))
                .arg(format!("echo {i}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    for mut k in kids {
        if !k.wait()?.success() {
            bail!("a system ssh of the fan-out failed");
        }
    }
    let system = t0.elapsed();
    let system_cpu = sshd_cpu(s).saturating_sub(cpu0);
    let floor = herd_cpu / cores;
    println!(
        "ssh fan-out: {FAN_OUT} separate connections at once: herd {} vs {FAN_OUT} system ssh {}: {:.2}x (target <= 1.0) {}; \
         sshd's own CPU for herd's {} ({} on {cores} cores = {:.2}x of herd's wall), for ssh's {}",
        ms(herd),
        ms(system),
        herd.as_secs_f64() / system.as_secs_f64(),
        verdict(herd <= system),
        ms(herd_cpu),
        ms(floor),
        herd.as_secs_f64() / floor.as_secs_f64().max(1e-9),
        ms(system_cpu),
    );
    Ok(())
}

/// The fan-out's channels, `FAN_OUT` of them dealt round-robin over `conns` connections
/// (opened inside the timing): the median wall of 3 rounds and sshd's CPU for one.
async fn channels(s: &Sshd, t: &Transport, key: &ClientKey, conns: usize) -> Result<(Duration, Duration)> {
    let mut walls = Vec::new();
    let cpu0 = sshd_cpu(s);
    for _ in 0..3 {
        let t0 = Instant::now();
        let opening: Vec<_> = (0..conns)
            .map(|_| {
                let (t, key, pin, addr, user) = (t.clone(), key.clone(), s.pinned(), s.addr(), s.user().to_string());
                tokio::spawn(async move { t.connect(addr, &user, &key, &pin, &opts()).await })
            })
            .collect();
        let mut sessions = Vec::new();
        for o in opening {
            sessions.push(std::sync::Arc::new(o.await??));
        }
        let tasks: Vec<_> = (0..FAN_OUT)
            .map(|i| {
                let sess = sessions[i % conns].clone();
                tokio::spawn(async move {
                    let out = sess.run(&format!("echo {i}"), &exec_opts()).await?;
                    said(i, &out)
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        for sess in sessions {
            std::sync::Arc::try_unwrap(sess)
                .map_err(|_| anyhow::anyhow!("a session outlived its task"))?
                .close()
                .await?;
        }
        walls.push(t0.elapsed());
    }
    Ok((median(walls), sshd_cpu(s).saturating_sub(cpu0) / 3))
}

fn said(i: usize, out: &herd_guest::ssh::ExecOutcome) -> herd_core::Result<()> {
    if out.stdout.text() != format!("{i}\n") {
        return Err(herd_core::Error::unexpected(format!(
            "session {i} said {:?}",
            out.stdout.text()
        )));
    }
    Ok(())
}

/// CPU time sshd and every process it has reaped used so far (`/proc/PID/stat` utime,
/// stime, cutime and cstime, in clock ticks of 10 ms).
fn sshd_cpu(s: &Sshd) -> Duration {
    let ticks = s
        .pid()
        .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .and_then(|st| {
            // After `(comm)`: state, ppid, ..., utime (11), stime, cutime, cstime (14).
            let all: Vec<&str> = st.rsplit_once(')')?.1.split_whitespace().collect();
            let n = |i: usize| all.get(i).and_then(|x| x.parse::<u64>().ok());
            Some(n(11)? + n(12)? + n(13)? + n(14)?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
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
