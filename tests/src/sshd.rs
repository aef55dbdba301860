//! A real sshd standing in for every VM of a conformance run (the `exec` cases on a
//! cloud backend): it takes on each new launch's host key as it appears in herd's store
//! and admits the owner's key, as the boot script would on a VM.

use std::time::Duration;

/// Every instance's address goes to one real sshd on 127.0.0.1, which takes on each new
/// launch's host key as it appears in herd's store (and admits the owner's key), as the
/// boot script would on a VM. Until then it shows another key, which herd refuses and
/// retries: the boot script's window, for real.
pub fn follow_launches(keys: std::path::PathBuf, owner: &str, map_env: &str) -> Result<(), String> {
    let owner_name = owner.to_string();
    // sshd is started and restarted on this thread, which lives as long as the process
    // (sshd dies with it: PR_SET_PDEATHSIG in the helper).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sshd = match herd_guest::ssh::testing::Sshd::start() {
            Ok(s) => {
                let _ = tx.send(Ok(s.addr()));
                s
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let mut seen = std::collections::HashSet::new();
        loop {
            let dir = herd_guest::ssh::HostKeyStore::under(&keys);
            for e in std::fs::read_dir(dir.dir()).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.contains('.') || !seen.insert(name.clone()) {
                    continue;
                }
                let owner = std::fs::read_to_string(herd_guest::key::public_key_path(&keys, &owner_name));
                if let (Ok(Some(pair)), Ok(owner)) = (dir.load(&name), owner) {
                    if let Err(e) = sshd.restart_as(pair, &[owner]) {
                        eprintln!("sshd: {e}");
                    }
                } else {
                    seen.remove(&name);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let addr = rx.recv().map_err(|e| e.to_string())??;
    // Test builds only (the backend's test-support feature); one value for the process.
    std::env::set_var(map_env, format!("*={addr}"));
    Ok(())
}
