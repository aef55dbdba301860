//! The user's refreshed prices: one compact file per cloud in the user data directory,
//! written by `herd catalog refresh`, merged over the bundled catalog (equal keys: the
//! overlay wins). Each file carries its own sources and as-of dates.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use herd_core::{Catalog, Cloud, Error, Result};

use crate::codec;

/// `$HERD_CATALOG_DIR`, else `$XDG_DATA_HOME/herd/catalog`, else
/// `$HOME/.local/share/herd/catalog` (the ledger's base directory), else `None` (no
/// overlay). Empty and relative XDG values are ignored, as the XDG spec asks.
pub fn default_dir(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(p) = set("HERD_CATALOG_DIR") {
        return Some(PathBuf::from(p));
    }
    if let Some(d) = set("XDG_DATA_HOME").map(PathBuf::from).filter(|d| d.is_absolute()) {
        return Some(d.join("herd").join("catalog"));
    }
    set("HOME")
        .or_else(|| set("USERPROFILE"))
        .map(|h| PathBuf::from(h).join(".local/share/herd/catalog"))
}

/// The overlay file of a cloud in `dir`.
pub fn path(dir: &Path, cloud: Cloud) -> PathBuf {
    dir.join(format!("{cloud}.bin"))
}

/// The overlay of a cloud, if the user refreshed it.
pub fn read(dir: &Path, cloud: Cloud) -> Result<Option<(PathBuf, Catalog)>> {
    let p = path(dir, cloud);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(
                Error::config(format!("cannot read the price overlay {}: {e}", p.display()))
                    .with_hint("fix its permissions, or delete it to use the bundled catalog"),
            )
        }
    };
    let (found, catalog) = codec::decode(&bytes, &format!("the price overlay {}", p.display()))?;
    if found != cloud {
        return Err(Error::config(format!(
            "the price overlay {} holds {found} prices, not {cloud}",
            p.display()
        ))
        .with_hint(format!("delete it and run `herd catalog refresh --cloud {cloud}`")));
    }
    Ok(Some((p, catalog)))
}

/// Writes a cloud's overlay atomically (a reader never sees half a file).
pub fn write(dir: &Path, cloud: Cloud, catalog: &Catalog) -> Result<PathBuf> {
    let bytes = codec::encode(catalog, cloud)?;
    let fail = |what: &str, p: &Path, e: std::io::Error| {
        Error::config(format!("cannot {what} {}: {e}", p.display()))
            .with_hint("set [catalog] overlay_dir in your config, or HERD_CATALOG_DIR, to a writable directory")
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("create", dir, e))?;
    let p = path(dir, cloud);
    let tmp = dir.join(format!(".{cloud}.bin.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| fail("write", &tmp, e))?;
    std::fs::rename(&tmp, &p).map_err(|e| fail("replace", &p, e))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn dir_precedence() {
        let all = [
            ("HERD_CATALOG_DIR", "/c"),
            ("XDG_DATA_HOME", "/xdg"),
            ("HOME", "/home/a"),
        ];
        assert_eq!(default_dir(env(&all)), Some(PathBuf::from("/c")));
        assert_eq!(default_dir(env(&all[1..])), Some(PathBuf::from("/xdg/herd/catalog")));
        assert_eq!(
            default_dir(env(&all[2..])),
            Some(PathBuf::from("/home/a/.local/share/herd/catalog"))
        );
        assert_eq!(
            default_dir(env(&[("XDG_DATA_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.local/share/herd/catalog"))
        );
        assert_eq!(default_dir(env(&[])), None);
    }

    #[test]
    fn missing_is_none_and_wrong_cloud_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path(), Cloud::Aws).unwrap().is_none());
        let aws = crate::bundled(Cloud::Aws);
        write(dir.path(), Cloud::Aws, aws).unwrap();
        std::fs::copy(path(dir.path(), Cloud::Aws), path(dir.path(), Cloud::Gcp)).unwrap();
        let e = read(dir.path(), Cloud::Gcp).unwrap_err();
        assert!(e.to_string().contains("holds aws prices"), "{e}");
        let (_, back) = read(dir.path(), Cloud::Aws).unwrap().unwrap();
        assert_eq!(back.offers().len(), aws.offers().len());
    }
}
