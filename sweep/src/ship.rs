//! Shipping files into an instance through `exec` (the one channel every backend has:
//! the simulator's agent today, ssh on a real cloud later): each file travels as base64
//! inside a shell command, in chunks that stay well under the kernel's 128 KiB limit on
//! one argument, and is decoded with `base64 -d` (coreutils, on every stock image).

use crate::spec::ShippedFile;

/// Raw bytes per chunk: 48 KiB becomes 64 KiB of base64.
const CHUNK: usize = 48 * 1024;

/// The commands that recreate `files` in the instance's working directory, in order.
/// Small files share one command, so shipping usually costs one round trip.
pub fn commands(files: &[ShippedFile]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for f in files {
        let path = quote(&f.path);
        let mut parts = vec![format!("mkdir -p \"$(dirname {path})\" && : > {path}")];
        for chunk in f.bytes.chunks(CHUNK) {
            parts.push(format!("printf '%s' '{}' | base64 -d >> {path}", encode(chunk)));
        }
        if f.executable {
            parts.push(format!("chmod +x {path}"));
        }
        for p in parts {
            if !current.is_empty() && current.len() + p.len() > 2 * CHUNK {
                out.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push_str(" && ");
            }
            current.push_str(&p);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Single-quoted for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Standard base64 with padding (RFC 4648).
fn encode(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        s.push(A[(n >> 18) as usize & 63] as char);
        s.push(A[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 { A[n as usize & 63] as char } else { '=' });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn files_round_trip_through_sh() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let files = vec![
            ShippedFile {
                path: "it's/a.sh".into(),
                executable: true,
                bytes: b"echo hi\n".to_vec(),
            },
            ShippedFile {
                path: "big.bin".into(),
                executable: false,
                bytes: big.clone(),
            },
        ];
        let cmds = commands(&files);
        assert!(cmds.len() >= 2, "a 200 kB file needs more than one command");
        for c in &cmds {
            assert!(c.len() < 128 * 1024, "one argument stays under the kernel limit");
            let ok = std::process::Command::new("sh")
                .arg("-c")
                .arg(c)
                .current_dir(dir.path())
                .status()
                .unwrap();
            assert!(ok.success(), "{c:.200}");
        }
        assert_eq!(std::fs::read(dir.path().join("big.bin")).unwrap(), big);
        let sh = dir.path().join("it's/a.sh");
        assert_eq!(std::fs::read(&sh).unwrap(), b"echo hi\n");
        use std::os::unix::fs::PermissionsExt;
        assert!(std::fs::metadata(&sh).unwrap().permissions().mode() & 0o111 != 0);
    }
}
