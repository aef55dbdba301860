//! A command's output through `herd exec`, the CLI, not just the transport: 100 MB of it
//! reaches stdout whole, line by line with the instance's prefix, while herd's own
//! resident memory stays a few MB (the kept tails, never the whole), on the simulator
//! and over SSH on "AWS" (moto plus a real sshd). A command that writes 5 MB/min is
//! warned about from its own output. herd's peak memory is the kernel's figure for the
//! child (`wait4`'s `ru_maxrss`), so nothing else in this test muddies it.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herd_aws::testing::Moto;
use herd_guest::ssh::testing::Sshd;
use herd_guest::ssh::HostKeyPair;
use herd_testkit::cli::Herd;

const HERD: &str = env!("CARGO_BIN_EXE_herd");

/// 100 MiB in lines of 100 bytes (99 `x` and a newline).
const TOTAL: u64 = 100 * 1024 * 1024;
const LINE: u64 = 100;
const BIG: &str = "yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx | head -c 104857600";

/// What came out of one `herd exec`.
struct Streamed {
    code: i32,
    bytes: u64,
    lines: u64,
    unprefixed: u64,
    stderr: String,
    peak_rss_mb: u64,
}

/// Runs `cmd`, counting its stdout as it streams (never holding it) and reading its
/// peak resident memory from the kernel when it is reaped.
#[allow(clippy::zombie_processes, reason = "reaped by wait4, which also gives its rusage")]
fn stream(mut cmd: Command, prefix: &str, limit: Duration) -> Streamed {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herd");
    let pid = child.id() as libc::pid_t;
    let mut err = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut out = child.stdout.take().unwrap();
    let prefix = prefix.as_bytes().to_vec();
    let counting = std::thread::spawn(move || {
        let (mut bytes, mut lines, mut unprefixed) = (0u64, 0u64, 0u64);
        let mut at_line_start = true;
        let mut head: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = out.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            bytes += n as u64;
            for &b in &buf[..n] {
                if at_line_start {
                    head.push(b);
                    if head.len() == prefix.len() {
                        unprefixed += u64::from(head != prefix);
                        head.clear();
                        at_line_start = false;
                    }
                }
                if b == b'\n' {
                    lines += 1;
                    at_line_start = true;
                    head.clear();
                }
            }
        }
        (bytes, lines, unprefixed)
    });
    let started = Instant::now();
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: plain wait4 on our own child, with pointers to locals.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("herd exec did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (bytes, lines, unprefixed) = counting.join().unwrap();
    Streamed {
        code: std::process::ExitStatus::from_raw(status).code().unwrap_or(-1),
        bytes,
        lines,
        unprefixed,
        stderr: errs.join().unwrap(),
        // ru_maxrss is in KiB on Linux.
        peak_rss_mb: usage.ru_maxrss as u64 / 1024,
    }
}

/// `s` streamed 100 MiB whole, and herd's peak memory was within a few MB of `base`'s
/// (the same `herd exec` printing one line: the runtime, the SDK, the connection).
fn assert_whole_and_bounded(s: &Streamed, base: &Streamed, id: &str) {
    assert_eq!(s.code, 0, "{}", s.stderr);
    // 100 MiB is a whole number of 100-byte lines.
    assert!(TOTAL.is_multiple_of(LINE));
    let lines = TOTAL / LINE;
    let prefix = format!("[{id}] ").len() as u64;
    assert_eq!(s.lines, lines, "every line came through: {}", s.stderr);
    assert_eq!(s.unprefixed, 0, "each line carries the instance's prefix");
    assert_eq!(s.bytes, TOTAL + lines * prefix, "every byte came through");
    // Holding the output would take 100 MB and more; herd keeps 64 KiB of each stream
    // and what SSH's window and the pipe let be in flight.
    let grew = s.peak_rss_mb.saturating_sub(base.peak_rss_mb);
    assert!(
        grew < 24,
        "herd's peak resident memory was {} MB for 100 MB of output, {} MB for one line",
        s.peak_rss_mb,
        base.peak_rss_mb
    );
    eprintln!(
        "herd exec of 100 MiB: peak RSS {} MB (one line: {} MB)",
        s.peak_rss_mb, base.peak_rss_mb
    );
}

/// `herd exec` of one line (the baseline), then of [`BIG`], on instance `id`.
fn one_line_then_100_mib(sb: &Herd, id: &str) {
    let prefix = format!("[{id}] ");
    let base = stream(
        sb.cmd(&["exec", id, "--", "echo one"]),
        &prefix,
        Duration::from_secs(120),
    );
    assert_eq!((base.code, base.lines), (0, 1), "{}", base.stderr);
    let s = stream(sb.cmd(&["exec", id, "--", BIG]), &prefix, Duration::from_secs(300));
    assert_whole_and_bounded(&s, &base, id);
}

#[test]
fn a_hundred_megabytes_through_herd_exec_on_the_simulator_keep_memory_bounded() {
    let sb = Herd::with_config(HERD, "[simulator.faults]\nboot_delay = [\"100ms\", \"200ms\"]\n");
    let v = sb.json(&["launch", "c1.large", "--deadline", "30m", "--json"]);
    let id = v["instances"][0]["id"].as_str().unwrap().to_string();
    one_line_then_100_mib(&sb, &id);
    sb.ok(&["down", "--all", "--yes"]);
}

#[test]
fn a_hundred_megabytes_through_herd_exec_over_ssh_keep_memory_bounded() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let moto = rt.block_on(Moto::start()).unwrap_or_else(|e| panic!("{e}"));
    let mut sb = Herd::new(HERD)
        .aws(&moto.endpoint(), "us-east-1")
        .env("HERD_AWS_SSH_USER", herd_guest::ssh::testing::current_user().unwrap());
    sb.ok(&["launch", "--cloud", "aws", "t3.micro", "--deadline", "30m"]);
    let id = sb.live()[0]["id"].as_str().unwrap().to_string();
    // The "VM": the launch's host key (as its user data carries it) and the owner's key.
    let keys: PathBuf = sb.home().join(".local/share/herd/keys");
    let host_key = std::fs::read_dir(keys.join("host-keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_none())
        .expect("the launch's host key");
    let host_key = HostKeyPair::from_private_openssh(&std::fs::read_to_string(host_key).unwrap()).unwrap();
    let owner = std::fs::read_to_string(keys.join("herd-tester-ed25519.pub")).unwrap();
    let sshd = Sshd::start_as(Some(host_key), std::slice::from_ref(&owner)).unwrap_or_else(|e| panic!("{e}"));
    sb.set_env("HERD_AWS_TEST_ADDRESS_MAP", format!("*={}", sshd.addr()));
    one_line_then_100_mib(&sb, &id);
    sb.ok(&["down", "--all", "--yes"]);
}

#[test]
fn a_command_writing_5_mb_a_minute_is_warned_about_from_its_own_output() {
    let sb = Herd::with_config(HERD, "[simulator.faults]\nboot_delay = [\"100ms\", \"200ms\"]\n");
    sb.ok(&["launch", "c1.large", "-n", "3", "--deadline", "1h", "--cluster", "loud"]);
    // About 5 MB a minute for 6 s: 41,667 bytes every half second, printed by herd.
    let chatty = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do head -c 41667 /dev/zero | tr '\\0' x; echo; sleep 0.5; done";
    let r = sb.ok(&["exec", "--cluster", "loud", "--", chatty]);
    assert!(r.stdout.contains("xxxx"), "the output itself is printed");
    let (warning, rate) = herd_testkit::cli::chatty_warning(&r.stderr);
    assert!((3.0..8.0).contains(&rate), "about 5 MB/min: {warning}");
    assert!(warning.contains("3 instances like it write"), "{warning}");
    assert!(
        r.stderr.contains("2 more instance(s)"),
        "one line per fleet, not per VM: {}",
        r.stderr
    );
    assert!(r.stderr.contains("warn_mb_per_min"), "{}", r.stderr);
    // A quiet command is not warned about, nor a short burst (no rate from under 5 s).
    let r = sb.ok(&[
        "exec",
        "--cluster",
        "loud",
        "--",
        "head -c 2000000 /dev/zero | tr '\\0' x",
    ]);
    assert!(!r.stderr.contains("MB/min"), "{}", r.stderr);
    sb.ok(&["down", "--all", "--yes"]);
}
