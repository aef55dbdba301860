//! The ledger file itself, before SQLite sees it. A ledger is never silently replaced:
//! an existing file that is empty, not SQLite, or unreadable is an error (SQLite would
//! take a 0-byte file as a new database, resetting the day's spend and budget). A new
//! ledger is built under a temporary name and linked into place, so no herd ever sees a
//! half-made one, and two herds creating it at once end with one. It holds what every
//! instance cost and who launched it: the file is 0600 and a directory herd creates for
//! it 0700 (Unix).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herd_core::Result;
use rusqlite::{Connection, OpenFlags};

use super::{errors, migrations};

/// The first 16 bytes of every SQLite database file (sqlite.org/fileformat.html, "The
/// Database Header").
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Flags for every open of a ledger file: never create (creation is [`create`]'s job),
/// no URI interpretation of the path.
pub(super) fn flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// Makes sure `path` holds a ledger SQLite can open: checks an existing file, creates a
/// missing one (and its directory), and tightens the permissions of what is there.
pub(super) fn prepare(path: &Path, label: &str, busy_timeout: Duration) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        ensure_dir(dir, label)?;
    }
    if !check_existing(path, label)? {
        create(path, label, busy_timeout)?;
    }
    tighten(path);
    Ok(())
}

/// `Ok(false)` when there is no file; an error for one that cannot be a ledger.
fn check_existing(path: &Path, label: &str) -> Result<bool> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(errors::unreadable(label, e)),
    };
    if !meta.is_file() {
        return Err(errors::not_a_file(label));
    }
    if meta.len() == 0 {
        // SQLite in WAL mode may keep everything in `-wal` until a checkpoint (a herd
        // killed right after creating its ledger): that is a ledger, not an empty file.
        if sibling(path, "-wal").metadata().is_ok_and(|m| m.len() > 0) {
            return Ok(true);
        }
        return Err(errors::empty(label));
    }
    let mut head = [0u8; 16];
    let read = fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    match read {
        Ok(()) if &head == SQLITE_HEADER => Ok(true),
        Ok(()) => Err(errors::corrupted(label)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(errors::corrupted(label)),
        Err(e) => Err(errors::unreadable(label, e)),
    }
}

/// Builds a migrated, WAL-mode ledger under a temporary name in the same directory and
/// hard-links it into place: the link fails if a ledger appeared meanwhile (another herd
/// won the race), and then that one is used.
fn create(path: &Path, label: &str, busy_timeout: Duration) -> Result<()> {
    let tmp = temp_name(path);
    let made = build(&tmp, label, busy_timeout).and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        // Another herd made it first: that one is the ledger.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(_) if path.exists() => Ok(()),
        // No hard links on this file system (some network or FAT ones): rename, which
        // may replace a ledger made in the same instant by another herd, never an older one.
        Err(_) => fs::rename(&tmp, path).map_err(|e| errors::io(label, "create the file", e)),
    });
    let _ = fs::remove_file(&tmp);
    made
}

fn build(tmp: &Path, label: &str, busy_timeout: Duration) -> Result<()> {
    let mut new = fs::OpenOptions::new();
    new.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut new, 0o600);
    new.open(tmp).map_err(|e| errors::io(label, "create the file", e))?;
    let map = |e| errors::map(e, label, busy_timeout);
    let mut conn = Connection::open_with_flags(tmp, flags()).map_err(map)?;
    conn.busy_timeout(busy_timeout).map_err(map)?;
    // WAL is recorded in the file's header, so the ledger starts in it and no two herds
    // race to switch it later.
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .map_err(map)?;
    migrations::migrate(&mut conn, migrations::MIGRATIONS).map_err(map)?;
    // Closing the last connection checkpoints the WAL into the file and removes it.
    conn.close().map_err(|(_, e)| map(e))?;
    Ok(())
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or("ledger".into(), |n| n.to_string_lossy().into_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // Threads of one process share the pid and may share the instant: a counter too.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    path.with_file_name(format!(".{name}.new-{}-{nanos}-{seq}", std::process::id()))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Creates a missing directory 0700. An existing one is tightened only when it is herd's
/// own (named `herd`, as `~/.local/share/herd` is): a directory the user chose for the
/// ledger (a project directory) may be meant for others, and the file itself is 0600.
fn ensure_dir(dir: &Path, label: &str) -> Result<()> {
    if dir.is_dir() {
        #[cfg(unix)]
        if dir.file_name().is_some_and(|n| n == "herd") {
            restrict(dir, 0o700);
        }
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| errors::io(label, "create the directory", e))
}

/// The ledger and the files SQLite keeps beside it, 0600 if they were wider. A file
/// this user does not own (a ledger shared on purpose) is left as it is.
fn tighten(path: &Path) {
    #[cfg(unix)]
    for p in [path.to_path_buf(), sibling(path, "-wal"), sibling(path, "-shm")] {
        restrict(&p, 0o600);
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(unix)]
fn restrict(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = fs::metadata(p) {
        if m.permissions().mode() & 0o077 != 0 {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(mode));
        }
    }
}
