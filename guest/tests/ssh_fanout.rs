//! Fan-out against a real OpenSSH sshd on 127.0.0.1: 200 sessions at once all succeed,
//! and a small session limit queues connections instead of opening more. In a file of
//! its own: 200 remote shells at once load two cores enough to starve the timing of
//! the other SSH tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herd_guest::ssh::testing::Sshd;
use herd_guest::ssh::{ClientKey, ConnectOptions, ExecOptions, Transport};

fn sshd() -> Sshd {
    Sshd::start().unwrap_or_else(|e| panic!("{e}"))
}

fn quick() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        boot_patience: Duration::from_secs(20),
        host_key_settle: Duration::ZERO,
        ..ConnectOptions::default()
    }
}

fn key(s: &Sshd) -> ClientKey {
    ClientKey::load(&s.client_key_path()).unwrap()
}

fn opts(timeout: Duration) -> ExecOptions {
    ExecOptions {
        timeout,
        ..ExecOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sessions_at_once_all_succeed() {
    let s = sshd();
    let t = Transport::new(256);
    assert!(t.max_sessions() >= 200, "fd budget too small: {}", t.max_sessions());
    let k = key(&s);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (t, k, pin, addr, user) = (t.clone(), k.clone(), s.pinned(), s.addr(), s.user().to_string());
        let o = ConnectOptions {
            // 200 handshakes at once on two shared cores: sshd answers slowly.
            connect_timeout: Duration::from_secs(60),
            boot_patience: Duration::from_secs(120),
            ..quick()
        };
        tasks.push(tokio::spawn(async move {
            let sess = t.connect(addr, &user, &k, &pin, &o).await?;
            let out = sess.run(&format!("echo {i}"), &opts(Duration::from_secs(120))).await?;
            sess.close().await?;
            Ok::<_, herd_core::Error>(out)
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let out = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("session {i}: {e} {:?}", e.hint()));
        assert_eq!(out.stdout.text(), format!("{i}\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_limit_queues_instead_of_opening_more() {
    let s = sshd();
    let t = Transport::new(4);
    assert_eq!(t.max_sessions(), 4);
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let k = key(&s);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (t, k, pin, addr, user) = (t.clone(), k.clone(), s.pinned(), s.addr(), s.user().to_string());
        let (open, peak) = (open.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let sess = t.connect(addr, &user, &k, &pin, &quick()).await.unwrap();
            let now = open.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            sess.run("sleep 0.2", &opts(Duration::from_secs(30))).await.unwrap();
            // Counted down before the slot is freed (when `sess` drops).
            open.fetch_sub(1, Ordering::SeqCst);
            drop(sess);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let p = peak.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&p),
        "never more than the limit, and the limit used: {p}"
    );
}
