//! Running one command on an open session: its output streamed to the caller as it
//! arrives and only the last bytes of each stream kept (so 100 MB of output costs the
//! tail, never the whole), its exit code as the shell reports it (127: not found), and
//! on timeout the command's process group signalled (TERM, then KILL) through sshd.

use std::time::{Duration, Instant};

use herd_core::{ErrorKind, Result};
use russh::{ChannelMsg, Sig};

use super::client::{lost, Session};

/// Which output stream bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Limits for one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    /// Longest the command may run; then it is signalled.
    pub timeout: Duration,
    /// Bytes of each stream kept in the outcome (the tail); the rest only streams by.
    pub keep: usize,
    /// After TERM, how long before KILL; after KILL, how long before herd closes the
    /// channel and stops waiting.
    pub kill_grace: Duration,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            timeout: Duration::from_secs(3600),
            keep: 64 * 1024,
            kill_grace: Duration::from_secs(5),
        }
    }
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status (127: the shell found no such command).
    Code(u32),
    /// A signal ended it (by its name: `KILL`, `SEGV`), not herd's timeout.
    Signal(String),
    /// It outlived its timeout and herd ended it.
    TimedOut,
}

/// The last bytes of a stream (herd-core's, which the simulator keeps too).
pub use herd_core::OutputTail as Tail;

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    pub exit: Exit,
    pub stdout: Tail,
    pub stderr: Tail,
    pub elapsed: Duration,
}

impl ExecOutcome {
    /// The code a shell would report: the status, 128 + the signal's number, or 124
    /// for a timeout (as coreutils `timeout` does).
    pub fn code(&self) -> i32 {
        match &self.exit {
            Exit::Code(c) => i32::try_from(*c).unwrap_or(i32::MAX),
            Exit::Signal(name) => 128 + signal_number(name),
            Exit::TimedOut => 124,
        }
    }

    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }
}

fn signal_number(name: &str) -> i32 {
    match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 0,
    }
}

fn sig_name(s: &Sig) -> String {
    match s {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(c) => c.as_str(),
    }
    .to_string()
}

/// Marks the line the wrapper writes first on stderr: the remote shell's pid, which is
/// also its process group (sshd starts each command in a session of its own).
const PID_MARK: &[u8] = b"\x1eherd-pid:";

/// How far into stderr the pid line is looked for (a login script may write first).
const PID_SCAN: usize = 4096;

/// Takes the pid line out of stderr before anyone sees it.
#[derive(Debug, Default)]
struct PidLine {
    pending: Vec<u8>,
    done: bool,
    pid: Option<u32>,
}

impl PidLine {
    /// Feeds a stderr chunk; returns what may be passed on now.
    fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        if self.done {
            return data.to_vec();
        }
        self.pending.extend_from_slice(data);
        if let Some(at) = find(&self.pending, PID_MARK) {
            let rest = &self.pending[at + PID_MARK.len()..];
            if let Some(nl) = rest.iter().position(|b| *b == b'\n') {
                self.pid = std::str::from_utf8(&rest[..nl])
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                let mut out = self.pending[..at].to_vec();
                out.extend_from_slice(&rest[nl + 1..]);
                self.pending = Vec::new();
                self.done = true;
                return out;
            }
        }
        if self.pending.len() > PID_SCAN {
            self.done = true;
            return std::mem::take(&mut self.pending);
        }
        Vec::new()
    }

    fn flush(&mut self) -> Vec<u8> {
        self.done = true;
        std::mem::take(&mut self.pending)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Session {
    /// Runs `command` through the remote user's shell, stdin empty (as `ssh host cmd
    /// </dev/null`). Every chunk of output goes to `sink` as it arrives; the outcome
    /// keeps the last [`ExecOptions::keep`] bytes of each stream. On timeout the
    /// command's process group (sshd gives each command a session of its own) gets
    /// TERM, then KILL after [`ExecOptions::kill_grace`], both by the SSH `signal`
    /// request and by `kill` on a second channel (sshd ignores `signal` for root
    /// logins and before OpenSSH 7.8); the outcome says [`Exit::TimedOut`]. A process
    /// that leaves the group (`setsid`, a daemon) is out of reach.
    pub async fn exec(
        &self,
        command: &str,
        opts: &ExecOptions,
        sink: &mut (dyn FnMut(Stream, &[u8]) + Send),
    ) -> Result<ExecOutcome> {
        let started = Instant::now();
        let mut ch = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| lost(self.addr, "opening a channel", e))?;
        // The shell says its pid (= the group to kill on timeout), then runs the
        // command itself: same shell, same exit code, 127 when not found.
        let wrapped = format!("printf '\\036herd-pid:%s\\n' \"$$\" >&2\n{command}");
        ch.exec(true, wrapped)
            .await
            .map_err(|e| lost(self.addr, "starting the command", e))?;
        ch.eof()
            .await
            .map_err(|e| lost(self.addr, "closing the command's stdin", e))?;
        let mut stdout = Tail::new(opts.keep);
        let mut stderr = Tail::new(opts.keep);
        let mut pid = PidLine::default();
        let mut exit = None;
        // The next step of the timeout: TERM at the deadline, KILL, then give up.
        let mut step = 0u8;
        let mut next = tokio::time::Instant::now() + opts.timeout;
        loop {
            tokio::select! {
                msg = ch.wait() => match msg {
                    Some(ChannelMsg::Data { data }) => {
                        sink(Stream::Stdout, &data);
                        stdout.push(&data);
                    }
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        let data = pid.feed(&data);
                        if !data.is_empty() {
                            sink(Stream::Stderr, &data);
                            stderr.push(&data);
                        }
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => exit = Some(Exit::Code(exit_status)),
                    Some(ChannelMsg::ExitSignal { signal_name, .. }) => exit = Some(Exit::Signal(sig_name(&signal_name))),
                    Some(ChannelMsg::Failure) => {
                        return Err(self.error(
                            ErrorKind::PermissionDenied,
                            format!("sshd on {} refused to run the command", self.addr),
                        )
                        .with_hint("the server may allow only a forced command or limit sessions (MaxSessions)"))
                    }
                    Some(_) => {}
                    None => break,
                },
                _ = tokio::time::sleep_until(next) => {
                    step += 1;
                    let (sig, name) = match step {
                        1 => (Sig::TERM, "TERM"),
                        2 => (Sig::KILL, "KILL"),
                        _ => {
                            let _ = ch.close().await;
                            break;
                        }
                    };
                    // Best effort both ways: the command may be ending on its own.
                    let _ = ch.signal(sig).await;
                    if let Some(p) = pid.pid.filter(|p| *p > 1) {
                        self.kill_group(p, name).await;
                    }
                    next = tokio::time::Instant::now() + opts.kill_grace;
                }
            }
        }
        let rest = pid.flush();
        if !rest.is_empty() {
            sink(Stream::Stderr, &rest);
            stderr.push(&rest);
        }
        let exit = match (step, exit) {
            (0, Some(e)) => e,
            (0, None) => {
                return Err(self
                    .error(
                        ErrorKind::Unavailable,
                        format!("the command on {} ended without an exit status", self.addr),
                    )
                    .with_hint("the connection or sshd dropped mid-command; the VM may have stopped (`herd ls`)"))
            }
            _ => Exit::TimedOut,
        };
        Ok(ExecOutcome {
            exit,
            stdout,
            stderr,
            elapsed: started.elapsed(),
        })
    }

    /// `kill -SIG -- -PGID` on a channel of its own, waited for a few seconds at most.
    /// The group still has a member (our channel is open), so its id is not reused.
    async fn kill_group(&self, pgid: u32, sig: &str) {
        let work = async {
            let mut ch = self.handle.channel_open_session().await.ok()?;
            ch.exec(false, format!("kill -{sig} -- -{pgid} 2>/dev/null"))
                .await
                .ok()?;
            ch.eof().await.ok()?;
            while ch.wait().await.is_some() {}
            Some(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), work).await;
    }

    /// [`Session::exec`] without a sink: only the tails are kept.
    pub async fn run(&self, command: &str, opts: &ExecOptions) -> Result<ExecOutcome> {
        self.exec(command, opts, &mut |_, _| {}).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes_only() {
        let mut t = Tail::new(4);
        t.push(b"ab");
        assert_eq!(t.bytes(), b"ab");
        t.push(b"cde");
        assert_eq!(t.bytes(), b"bcde");
        t.push(b"0123456789");
        assert_eq!(t.bytes(), b"6789");
        assert_eq!(t.total(), 15);
        assert!(t.truncated());
        assert_eq!(t.retained(), 4);
        let mut z = Tail::new(0);
        z.push(b"xyz");
        assert_eq!((z.retained(), z.total()), (0, 3));
    }

    #[test]
    fn the_pid_line_is_taken_out_of_stderr_wherever_it_splits() {
        let mut p = PidLine::default();
        assert_eq!(p.feed(b"motd\n\x1eherd-p"), b"");
        assert_eq!(p.feed(b"id:4242\nreal err"), b"motd\nreal err");
        assert_eq!(p.pid, Some(4242));
        assert_eq!(p.feed(b" more"), b" more");
        let mut q = PidLine::default();
        let junk = vec![b'x'; PID_SCAN + 1];
        assert_eq!(q.feed(&junk), junk, "gives up and passes everything on");
        assert_eq!(q.pid, None);
        let mut r = PidLine::default();
        assert_eq!(r.feed(b"partial"), b"");
        assert_eq!(r.flush(), b"partial");
    }

    #[test]
    fn codes_follow_the_shell() {
        let o = |exit| ExecOutcome {
            exit,
            stdout: Tail::new(0),
            stderr: Tail::new(0),
            elapsed: Duration::ZERO,
        };
        assert_eq!(o(Exit::Code(127)).code(), 127);
        assert_eq!(o(Exit::Signal("KILL".into())).code(), 137);
        assert_eq!(o(Exit::TimedOut).code(), 124);
        assert!(o(Exit::Code(0)).success());
        assert!(!o(Exit::TimedOut).success());
    }
}
