//! The SSH transport against a real OpenSSH sshd on 127.0.0.1 (started per test by
//! `herd_guest::ssh::testing::Sshd`): commands and exit codes, pinned host keys, refused
//! keys, closed and silent ports, a VM that boots during the wait, timeouts that kill,
//! uploads (the fan-out is in ssh_fanout.rs). Without /usr/sbin/sshd every test fails
//! with the install command.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herd_core::ErrorKind;
use herd_guest::ssh::testing::Sshd;
use herd_guest::ssh::{
    ClientKey, ConnectOptions, ExecOptions, Exit, HostKeyPair, HostKeyPolicy, Session, Stream, Transport,
};

fn sshd() -> Sshd {
    Sshd::start().unwrap_or_else(|e| panic!("{e}"))
}

fn prepared() -> Sshd {
    Sshd::prepare().unwrap_or_else(|e| panic!("{e}"))
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

async fn session(t: &Transport, s: &Sshd) -> Session {
    t.connect(s.addr(), s.user(), &key(s), &s.pinned(), &quick())
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}\nsshd log: {}", e.hint(), s.log()))
}

fn opts(timeout: Duration) -> ExecOptions {
    ExecOptions {
        timeout,
        ..ExecOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_round_trip_streams_both_outputs_and_returns_the_code() {
    let s = sshd();
    let t = Transport::new(8);
    let sess = session(&t, &s).await;
    let seen = Mutex::new(Vec::new());
    let out = sess
        .exec(
            "echo hello; echo oops >&2; printf 'x%.0s' 1 2 3; exit 3",
            &opts(Duration::from_secs(30)),
            &mut |stream, data| seen.lock().unwrap().push((stream, data.to_vec())),
        )
        .await
        .unwrap();
    assert_eq!(out.exit, Exit::Code(3));
    assert_eq!(out.code(), 3);
    assert!(!out.success());
    assert_eq!(out.stdout.text(), "hello\nxxx");
    assert_eq!(out.stderr.text(), "oops\n", "herd's pid line never reaches the caller");
    let seen = seen.into_inner().unwrap();
    let streamed = |want: Stream| -> Vec<u8> {
        seen.iter()
            .filter(|(st, _)| *st == want)
            .flat_map(|(_, d)| d.clone())
            .collect()
    };
    assert_eq!(streamed(Stream::Stdout), b"hello\nxxx");
    assert_eq!(streamed(Stream::Stderr), b"oops\n");

    // Same connection, more commands: success, and stdin is empty (no hang on `cat`).
    let ok = sess
        .run("cat; echo done", &opts(Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(ok.success(), "{ok:?}");
    assert_eq!(ok.stdout.text(), "done\n");
    let sig = sess.run("kill -SEGV $$", &opts(Duration::from_secs(30))).await.unwrap();
    assert_eq!(sig.exit, Exit::Signal("SEGV".into()));
    assert_eq!(sig.code(), 139);
    sess.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_not_found_is_127_as_the_shell_says() {
    let s = sshd();
    let t = Transport::new(8);
    let sess = session(&t, &s).await;
    let out = sess
        .run("herd-no-such-command-xyz --flag", &opts(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(out.exit, Exit::Code(127));
    assert!(out.stderr.text().contains("not found"), "{}", out.stderr.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_host_key_is_refused_naming_both_keys() {
    let s = sshd();
    let t = Transport::new(8);
    let other = HostKeyPair::generate().unwrap();
    let pinned = HostKeyPolicy::pinned(other.public().clone());
    let e = t
        .connect(s.addr(), s.user(), &key(&s), &pinned, &quick())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(!e.is_temporary());
    assert!(e.message().contains(&s.host_key().fingerprint()), "{e}");
    assert!(e.message().contains(&other.public().fingerprint()), "{e}");
    assert!(e.hint().unwrap().contains("intercepting"), "{:?}", e.hint());
    assert_eq!(e.context_value("address"), Some(s.addr().to_string().as_str()));
    assert_eq!(t.stats().snapshot().3, 0, "refused at once, not retried");

    // While the key may still be settling it is retried, never accepted, then refused.
    let settle = ConnectOptions {
        host_key_settle: Duration::from_secs(1),
        ..quick()
    };
    let e = t
        .connect(s.addr(), s.user(), &key(&s), &pinned, &settle)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(
        t.stats().snapshot().3 >= 1,
        "the mismatch was retried during the settle time"
    );

    // Pinning several keys (a rotation) accepts the one the server has.
    let both = HostKeyPolicy::Pinned(vec![other.public().clone(), s.host_key().clone()]);
    let sess = t.connect(s.addr(), s.user(), &key(&s), &both, &quick()).await.unwrap();
    assert!(sess
        .run("true", &opts(Duration::from_secs(30)))
        .await
        .unwrap()
        .success());

    // And no pin at all is refused before any connection.
    let e = t
        .connect(s.addr(), s.user(), &key(&s), &HostKeyPolicy::Pinned(vec![]), &quick())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_server_does_not_know_is_refused() {
    let s = sshd();
    let stranger = prepared(); // another throwaway client key
    let t = Transport::new(8);
    let wrong = ClientKey::load(&stranger.client_key_path()).unwrap();
    let e = t
        .connect(s.addr(), s.user(), &wrong, &s.pinned(), &quick())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(!e.is_temporary());
    assert!(e.message().contains(&wrong.fingerprint()), "{e}");
    assert!(e.hint().unwrap().contains("user name"), "{:?}", e.hint());
    // The key's path may be named; its contents never are.
    let secret = std::fs::read_to_string(stranger.client_key_path()).unwrap();
    let body = secret.lines().nth(1).unwrap();
    assert!(!format!("{e} {:?} {wrong:?}", e.hint()).contains(body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_retried_then_named_with_what_to_check() {
    let s = prepared(); // keys made, nothing listening on its port
    let t = Transport::new(8);
    let patient = ConnectOptions {
        boot_patience: Duration::from_secs(2),
        ..quick()
    };
    let e = t
        .connect(s.addr(), s.user(), &key(&s), &s.pinned(), &patient)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains("refused"), "{e}");
    let hint = e.hint().unwrap();
    assert!(hint.contains("still booting"), "{hint}");
    assert!(hint.contains("gave up after 2s"), "{hint}");
    assert!(t.stats().snapshot().3 >= 1, "retried while the port was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_that_boots_during_the_wait_is_reached() {
    let mut s = prepared();
    let t = Transport::new(8);
    let (addr, user, k, pin) = (s.addr(), s.user().to_string(), key(&s), s.pinned());
    let t2 = t.clone();
    let connecting = tokio::spawn(async move {
        let sess = t2.connect(addr, &user, &k, &pin, &quick()).await?;
        sess.run("echo up", &opts(Duration::from_secs(30))).await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.run().unwrap();
    let out = connecting.await.unwrap().unwrap();
    assert_eq!(out.stdout.text(), "up\n");
    assert!(t.stats().snapshot().3 >= 1, "it waited for sshd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_port_times_out_pointing_at_boot() {
    // Accepts TCP and never speaks: what a VM whose sshd is not up yet can look like.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            h.lock().unwrap().push(sock);
        }
    });
    let s = prepared();
    let t = Transport::new(8);
    let o = ConnectOptions {
        connect_timeout: Duration::from_secs(1),
        boot_patience: Duration::from_secs(2),
        ..quick()
    };
    let e = t.connect(addr, s.user(), &key(&s), &s.pinned(), &o).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("no SSH greeting"), "{e}");
    assert!(e.hint().unwrap().contains("booting"), "{:?}", e.hint());
}

fn alive(marker: &str) -> bool {
    let out = std::process::Command::new("pgrep")
        .arg("-f")
        .arg(marker)
        .output()
        .unwrap();
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_outlives_its_timeout_is_killed_with_its_children() {
    let s = sshd();
    let t = Transport::new(8);
    let sess = session(&t, &s).await;
    // Ignores TERM, so only the KILL after the grace period ends it; its `sleep`
    // children share its process group and must go too.
    let marker = format!("herd-kill-me-{}", std::process::id());
    let cmd = format!("bash -c 'trap \"\" TERM; echo started; while :; do sleep 1; done' {marker}");
    let o = ExecOptions {
        timeout: Duration::from_secs(3),
        kill_grace: Duration::from_secs(1),
        ..ExecOptions::default()
    };
    let out = sess.run(&cmd, &o).await.unwrap();
    assert_eq!(out.exit, Exit::TimedOut);
    assert_eq!(out.code(), 124);
    assert_eq!(out.stdout.text(), "started\n", "output before the timeout is kept");
    let mut gone = false;
    for _ in 0..50 {
        if !alive(&marker) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "the remote command still runs after its timeout; sshd: {}",
        s.log()
    );
    // The connection stays usable.
    assert!(sess
        .run("true", &opts(Duration::from_secs(30)))
        .await
        .unwrap()
        .success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_ships_files_whole_with_their_modes() {
    use std::os::unix::fs::PermissionsExt;
    let s = sshd();
    let t = Transport::new(8);
    let sess = session(&t, &s).await;
    let local = tempfile::tempdir().unwrap();
    let run = local.path().join("run.sh");
    std::fs::write(&run, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o750)).unwrap();
    let spaced = local.path().join("it's data.txt");
    std::fs::write(&spaced, "quoted name\n").unwrap();
    let big = local.path().join("blob.bin");
    let blob: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&big, &blob).unwrap();
    let empty = local.path().join("empty");
    std::fs::write(&empty, "").unwrap();

    let remote = s.dir().join("work dir/sub");
    let files = vec![run.clone(), spaced.clone(), big.clone(), empty.clone()];
    let up = sess
        .upload(&files, remote.to_str().unwrap(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(up.bytes, blob.len() as u64 + 19 + 12);
    assert_eq!(up.paths.len(), 4);
    assert_eq!(std::fs::read(remote.join("blob.bin")).unwrap(), blob);
    assert_eq!(
        std::fs::read_to_string(remote.join("it's data.txt")).unwrap(),
        "quoted name\n"
    );
    assert_eq!(std::fs::read(remote.join("empty")).unwrap(), b"");
    let mode = std::fs::metadata(remote.join("run.sh")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o750);
    let ran = sess
        .run(
            &format!("'{}'/run.sh", remote.display()),
            &opts(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(ran.stdout.text(), "ran\n");
    let leftovers: Vec<_> = std::fs::read_dir(&remote)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("herd-part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A remote folder that cannot be made is an error naming the file.
    let blocked = s.dir().join("a-file");
    std::fs::write(&blocked, "").unwrap();
    let e = sess
        .upload(
            std::slice::from_ref(&run),
            &format!("{}/x", blocked.display()),
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert!(e.message().contains("run.sh"), "{e}");
    // A local folder is refused before anything is sent.
    let e = sess
        .upload(&[local.path().to_path_buf()], "x", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSpec);
}
