//! The package index a launch installs from, carried over from the launching shell:
//! `UV_INDEX_URL` / `PIP_INDEX_URL`, the extra indexes and find-links of either tool.
//! URLs may hold credentials (`https://user:token@host/simple`): they reach the VM (it
//! must authenticate too) but never a message, a `Debug` or `herd env show`: every
//! rendering goes through [`redact`].

use std::fmt;

/// Where packages come from; empty means uv's default (PyPI).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IndexConfig {
    pub index_url: Option<String>,
    pub extra_index_urls: Vec<String>,
    pub find_links: Vec<String>,
}

impl IndexConfig {
    /// From the launching environment (`lookup` is `std::env::var` outside tests). uv's
    /// own variables win over pip's, as uv itself reads them.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> IndexConfig {
        let get = |a: &str, b: &str| lookup(a).or_else(|| lookup(b)).filter(|s| !s.trim().is_empty());
        let list = |a: &str, b: &str| -> Vec<String> {
            get(a, b)
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        IndexConfig {
            index_url: get("UV_INDEX_URL", "PIP_INDEX_URL").map(|s| s.trim().to_string()),
            extra_index_urls: list("UV_EXTRA_INDEX_URL", "PIP_EXTRA_INDEX_URL"),
            find_links: list("UV_FIND_LINKS", "PIP_FIND_LINKS"),
        }
    }

    /// The same settings as `uv` flags.
    pub fn uv_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(u) = &self.index_url {
            a.push("--index-url".into());
            a.push(u.clone());
        }
        for u in &self.extra_index_urls {
            a.push("--extra-index-url".into());
            a.push(u.clone());
        }
        for u in &self.find_links {
            a.push("--find-links".into());
            a.push(u.clone());
        }
        a
    }

    /// `export` lines for a shell script (single-quoted).
    pub fn exports(&self) -> String {
        let mut s = String::new();
        if let Some(u) = &self.index_url {
            s.push_str(&format!("export UV_INDEX_URL={}\n", sq(u)));
        }
        if !self.extra_index_urls.is_empty() {
            s.push_str(&format!(
                "export UV_EXTRA_INDEX_URL={}\n",
                sq(&self.extra_index_urls.join(" "))
            ));
        }
        if !self.find_links.is_empty() {
            s.push_str(&format!("export UV_FIND_LINKS={}\n", sq(&self.find_links.join(" "))));
        }
        s
    }

    /// One line for people: where packages come from, credentials hidden.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match &self.index_url {
            Some(u) => parts.push(format!("index {}", redact(u))),
            None => parts.push("index: uv's default (PyPI)".to_string()),
        }
        for u in &self.extra_index_urls {
            parts.push(format!("extra index {}", redact(u)));
        }
        for u in &self.find_links {
            parts.push(format!("find-links {}", redact(u)));
        }
        parts.join(", ")
    }
}

impl fmt::Debug for IndexConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexConfig")
            .field("index_url", &self.index_url.as_deref().map(redact))
            .field(
                "extra_index_urls",
                &self.extra_index_urls.iter().map(|u| redact(u)).collect::<Vec<_>>(),
            )
            .field(
                "find_links",
                &self.find_links.iter().map(|u| redact(u)).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// `scheme://user:pass@host/...` becomes `scheme://***@host/...`, in every URL found in
/// `text` (uv's and pip's messages quote the URLs they tried).
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first `/`, whitespace or quote; userinfo before its last `@`.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || matches!(c, '\'' | '"' | '`' | '>' | ')'))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Single-quoted for sh.
pub(crate) fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_survive_redaction() {
        assert_eq!(
            redact("https://alice:s3cret@pypi.example/simple"),
            "https://***@pypi.example/simple"
        );
        assert_eq!(
            redact("see `http://tok@h:8080/x` and https://h/y"),
            "see `http://***@h:8080/x` and https://h/y"
        );
        assert_eq!(redact("no url here"), "no url here");
        assert_eq!(
            redact("git+https://u:p@github.com/o/r@abc"),
            "git+https://***@github.com/o/r@abc"
        );
    }

    #[test]
    fn uv_variables_win_and_debug_hides_secrets() {
        let env = |k: &str| match k {
            "UV_INDEX_URL" => Some("https://u:pw@a/simple".to_string()),
            "PIP_INDEX_URL" => Some("https://b/simple".to_string()),
            "PIP_FIND_LINKS" => Some("/w1 /w2".to_string()),
            _ => None,
        };
        let c = IndexConfig::from_lookup(&env);
        assert_eq!(c.index_url.as_deref(), Some("https://u:pw@a/simple"));
        assert_eq!(c.find_links, vec!["/w1", "/w2"]);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("pw"), "{dbg}");
        assert!(!c.describe().contains("pw"));
        assert!(c.exports().contains("export UV_INDEX_URL='https://u:pw@a/simple'"));
        assert_eq!(c.uv_args()[0], "--index-url");
    }
}
