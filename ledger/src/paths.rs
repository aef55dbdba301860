//! Where the ledger lives when the user does not say.

use std::ffi::OsString;
use std::path::PathBuf;

/// `$HERD_LEDGER`, else `$XDG_DATA_HOME/herd/ledger.db`, else
/// `$HOME/.local/share/herd/ledger.db` (`%USERPROFILE%` when there is no `$HOME`), else
/// `herd-ledger.db` in the current directory. Empty and relative XDG values are ignored,
/// as the XDG spec asks.
pub(crate) fn default_path(env: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(p) = set("HERD_LEDGER") {
        return PathBuf::from(p);
    }
    if let Some(d) = set("XDG_DATA_HOME").map(PathBuf::from).filter(|d| d.is_absolute()) {
        return d.join("herd").join("ledger.db");
    }
    match set("HOME").or_else(|| set("USERPROFILE")) {
        Some(h) => PathBuf::from(h).join(".local/share/herd/ledger.db"),
        None => PathBuf::from("herd-ledger.db"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn precedence() {
        let all = [
            ("HERD_LEDGER", "/x/l.db"),
            ("XDG_DATA_HOME", "/xdg"),
            ("HOME", "/home/a"),
        ];
        assert_eq!(default_path(env(&all)), PathBuf::from("/x/l.db"));
        assert_eq!(default_path(env(&all[1..])), PathBuf::from("/xdg/herd/ledger.db"));
        assert_eq!(
            default_path(env(&all[2..])),
            PathBuf::from("/home/a/.local/share/herd/ledger.db")
        );
        let relative_xdg = [("XDG_DATA_HOME", "rel"), ("HOME", "/home/a"), ("HERD_LEDGER", "")];
        assert_eq!(
            default_path(env(&relative_xdg)),
            PathBuf::from("/home/a/.local/share/herd/ledger.db")
        );
        assert_eq!(default_path(env(&[])), PathBuf::from("herd-ledger.db"));
    }
}
