//! Shipping files (a sweep's workload) over an open session: each file streams through
//! `cat` on its own channel of the same connection, into a temporary name that is
//! checked for size and renamed only when whole, keeping the local permission bits.
//! `cat` rather than SFTP: it needs nothing on the VM beyond a POSIX shell (no sftp
//! subsystem, which some images disable) and no second SSH library; flow control is
//! SSH's own channel window, so memory stays at one read buffer per file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use herd_core::{Error, ErrorKind, Result};
use russh::ChannelMsg;

use super::client::{lost, Session};
use super::exec::Tail;

/// What was shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Remote paths written, in the order given.
    pub paths: Vec<String>,
    pub bytes: u64,
}

/// Quotes `s` for a POSIX shell: `'...'`, with each `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Session {
    /// Copies each local file into `remote_dir` (created if missing; relative to the
    /// remote user's home unless absolute) under its own file name. Each file has
    /// `timeout` to arrive. A file that fails stops the upload with an error naming it;
    /// the files before it stay.
    pub async fn upload(&self, files: &[PathBuf], remote_dir: &str, timeout: Duration) -> Result<Uploaded> {
        if remote_dir.is_empty() || remote_dir.contains('\0') {
            return Err(Error::invalid_spec(format!("`{remote_dir}` is not a remote folder"))
                .with_hint("give a folder such as `herd-work` or `/opt/work`"));
        }
        let mut done = Uploaded {
            paths: Vec::new(),
            bytes: 0,
        };
        for f in files {
            let (path, size) = self.upload_one(f, remote_dir, timeout).await?;
            done.paths.push(path);
            done.bytes += size;
        }
        Ok(done)
    }

    async fn upload_one(&self, local: &Path, remote_dir: &str, timeout: Duration) -> Result<(String, u64)> {
        let io = |e: std::io::Error| {
            Error::invalid_spec(format!("cannot read {}: {e}", local.display()))
                .with_hint("check the path; herd uploads regular files, not folders")
        };
        let meta = std::fs::metadata(local).map_err(io)?;
        if !meta.is_file() {
            return Err(
                Error::invalid_spec(format!("{} is not a regular file", local.display()))
                    .with_hint("pass the files themselves (a folder's files: `dir/*`)"),
            );
        }
        let name = local
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && !n.contains('\0'))
            .ok_or_else(|| Error::invalid_spec(format!("{} has no usable file name", local.display())))?;
        #[cfg(unix)]
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
        #[cfg(not(unix))]
        let mode = 0o644;
        let size = meta.len();
        let (d, n) = (shell_quote(remote_dir), shell_quote(name));
        let remote = format!("{}/{name}", remote_dir.trim_end_matches('/'));
        // Written under a hidden name, checked for size, then renamed: a reader never
        // sees half a file, and a cut transfer leaves no file of the right name.
        let script = format!(
            "d={d}; t=\"$d\"/.{n}.herd-part.$$; mkdir -p -- \"$d\" && cat > \"$t\" && got=$(wc -c < \"$t\") && [ \"$got\" -eq {size} ] && chmod {mode:o} \"$t\" && mv -f -- \"$t\" \"$d\"/{n} || {{ rm -f -- \"$t\"; echo \"herd: received ${{got:-0}} of {size} bytes\" >&2; exit 3; }}"
        );
        let file = tokio::fs::File::open(local).await.map_err(io)?;
        let work = async {
            let mut ch = self
                .handle
                .channel_open_session()
                .await
                .map_err(|e| lost(self.addr, "opening a channel", e))?;
            ch.exec(true, script.as_str())
                .await
                .map_err(|e| lost(self.addr, "starting the upload", e))?;
            ch.data(file)
                .await
                .map_err(|e| lost(self.addr, &format!("sending {}", local.display()), e))?;
            ch.eof().await.map_err(|e| lost(self.addr, "finishing the upload", e))?;
            let mut stderr = Tail::new(2048);
            let mut status = None;
            while let Some(msg) = ch.wait().await {
                match msg {
                    ChannelMsg::ExtendedData { data, .. } => stderr.push(&data),
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    _ => {}
                }
            }
            Ok::<_, Error>((status, stderr))
        };
        let (status, stderr) = tokio::time::timeout(timeout, work).await.map_err(|_| {
            self.error(
                ErrorKind::Timeout,
                format!(
                    "uploading {} to {} took longer than {}",
                    local.display(),
                    self.addr,
                    herd_core::guardrails::human(timeout)
                ),
            )
            .with_hint("the link to the VM may be slow: allow more time, or ship fewer or smaller files")
        })??;
        match status {
            Some(0) => Ok((remote, size)),
            other => Err(self
                .error(
                    ErrorKind::Unavailable,
                    format!(
                        "uploading {} to {remote} on {} failed ({}): {}",
                        local.display(),
                        self.addr,
                        other.map_or("no exit status".to_string(), |c| format!("exit {c}")),
                        stderr.text().trim()
                    ),
                )
                .with_hint("check that the remote folder is writable by the SSH user and the VM's disk has room")
                .temporary(false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
