//! 100 MB of output through one command costs the kept tail, not 100 MB: the bytes
//! stream through the sink and the process's resident memory barely moves. In a file
//! of its own, so no other test's allocations muddy the measurement.

use std::time::Duration;

use herd_guest::ssh::testing::Sshd;
use herd_guest::ssh::{ClientKey, ConnectOptions, ExecOptions, Stream, Transport};

/// A field of /proc/self/status in kB (`VmRSS`, `VmHWM`).
fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_megabytes_of_output_keep_memory_bounded() {
    let s = Sshd::start().unwrap_or_else(|e| panic!("{e}"));
    let t = Transport::new(4);
    let o = ConnectOptions {
        host_key_settle: Duration::ZERO,
        ..ConnectOptions::default()
    };
    let key = ClientKey::load(&s.client_key_path()).unwrap();
    let sess = t.connect(s.addr(), s.user(), &key, &s.pinned(), &o).await.unwrap();
    // Warm up (connection buffers, the runtime) before the baseline.
    sess.run("head -c 1000000 /dev/zero", &ExecOptions::default())
        .await
        .unwrap();
    let before = status_kb("VmRSS:");

    const TOTAL: u64 = 100 * 1024 * 1024;
    const KEEP: usize = 64 * 1024;
    let mut streamed = 0u64;
    let mut marker_seen = false;
    let opts = ExecOptions {
        timeout: Duration::from_secs(600),
        keep: KEEP,
        ..ExecOptions::default()
    };
    let out = sess
        .exec(
            &format!("head -c {TOTAL} /dev/zero; echo tail-marker"),
            &opts,
            &mut |stream, data| {
                if stream == Stream::Stdout {
                    streamed += data.len() as u64;
                    marker_seen |= data.contains(&b'm');
                }
            },
        )
        .await
        .unwrap();
    assert!(out.success(), "{out:?}");
    let marker = b"tail-marker\n".len() as u64;
    assert_eq!(streamed, TOTAL + marker, "every byte reached the sink");
    assert!(marker_seen, "the marker streamed by too");
    assert_eq!(out.stdout.total(), TOTAL + marker);
    assert_eq!(out.stdout.retained(), KEEP, "only the tail is kept");
    assert!(out.stdout.truncated());
    assert!(out.stdout.text().ends_with("tail-marker\n"));

    let peak = status_kb("VmHWM:");
    let grew_mb = peak.saturating_sub(before) / 1024;
    // Buffering the output would need 100 MB; SSH's window and channel queue bound
    // what is in flight to a few MB.
    assert!(
        grew_mb < 32,
        "resident memory grew by {grew_mb} MB for 100 MB of output"
    );
}
