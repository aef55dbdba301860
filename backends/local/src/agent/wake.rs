//! How the agent sleeps between ticks without making commands wait for the next one.
//! The agent owns a FIFO in its VM directory (`VmDir::wake`) and blocks in `poll(2)` on
//! it for at most a tick. A byte from the control plane (a new exec request) or from a
//! workload's waiter thread (a workload ended) ends the wait at once; so does a signal
//! (`poll` is never restarted), which is how `terminate`'s SIGTERM is seen immediately.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The read end of the wake FIFO, opened read-write so it never reports end-of-file
/// and the agent can poke itself from its waiter threads.
#[derive(Debug, Clone)]
pub(super) struct Wake {
    fd: Option<Arc<OwnedFd>>,
}

impl Wake {
    /// Creates the FIFO if needed. Without one (an odd filesystem) the agent still
    /// works, on plain ticks.
    pub fn open(path: &Path) -> Wake {
        let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
            return Wake { fd: None };
        };
        // SAFETY: plain syscalls on a NUL-terminated path; the fd is owned right away.
        let fd = unsafe {
            if libc::mkfifo(c.as_ptr(), 0o600) != 0
                && std::io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
            {
                return Wake { fd: None };
            }
            let fd = libc::open(c.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC);
            if fd < 0 {
                return Wake { fd: None };
            }
            OwnedFd::from_raw_fd(fd)
        };
        Wake { fd: Some(Arc::new(fd)) }
    }

    /// Sleeps until poked, signalled, or `tick` has passed; then drains the FIFO.
    pub fn wait(&self, tick: Duration) {
        let Some(fd) = &self.fd else {
            std::thread::sleep(tick);
            return;
        };
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the fd stays open while `self` lives.
        let ready = unsafe { libc::poll(&mut p, 1, tick.as_millis() as libc::c_int) };
        if ready > 0 {
            let mut buf = [0u8; 64];
            // SAFETY: reads into a local buffer from a non-blocking fd we own.
            while unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        }
    }

    /// Ends the current or next [`Wake::wait`] early.
    pub fn poke(&self) {
        if let Some(fd) = &self.fd {
            // SAFETY: a one-byte write to a fd we own; a full pipe (EAGAIN) already
            // means a wake is pending.
            unsafe { libc::write(fd.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_poke_ends_the_wait_early_and_no_poke_waits_the_tick() {
        let dir = tempfile::tempdir().unwrap();
        let w = Wake::open(&dir.path().join("wake"));
        assert!(w.fd.is_some());
        let t = Instant::now();
        w.wait(Duration::from_millis(50));
        assert!(t.elapsed() >= Duration::from_millis(45), "an idle wait lasts the tick");

        let other = w.clone();
        let poker = std::thread::spawn(move || other.poke());
        poker.join().unwrap();
        let t = Instant::now();
        w.wait(Duration::from_secs(30));
        assert!(t.elapsed() < Duration::from_secs(10), "a pending poke ends the wait");
        // Drained: the next wait lasts its tick again.
        let t = Instant::now();
        w.wait(Duration::from_millis(50));
        assert!(t.elapsed() >= Duration::from_millis(45));
    }

    #[test]
    fn the_control_plane_pokes_through_the_fifo_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wake");
        let w = Wake::open(&path);
        let vm = crate::vm::VmDir {
            root: dir.path().to_path_buf(),
        };
        assert_eq!(vm.wake(), path);
        crate::vm::poke(&vm);
        let t = Instant::now();
        w.wait(Duration::from_secs(30));
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}
