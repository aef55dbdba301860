//! What a VM does when its time is up (deadline reached, or idle past its keepalive), as
//! data each backend fills in: the watchdog script is generated from it in one place.
//!
//! Why two actions: on EC2 a power-off from inside *is* a termination when the instance
//! was launched with `InstanceInitiatedShutdownBehavior=terminate`. On GCE and Azure it
//! is not: a stopped GCE instance keeps billing its disks (and a stop clears
//! `scheduling.terminationTime`), and an Azure VM shut down from inside stays
//! "stopped", not deallocated, and keeps billing compute. There the guest must ask the
//! cloud's API to delete it, with a token from the metadata server.
//!
//! Validated once, at construction ([`DeleteRequest::new`]): everything in it ends up in
//! a root shell script, so names, methods and header values are checked here and every
//! literal is single-quoted when rendered.

use herd_core::{Error, Result};

/// The action the watchdog takes when the VM's time is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// `shutdown -h now` (then `poweroff`): the cloud turns the power-off into a deletion
    /// (EC2 with `InstanceInitiatedShutdownBehavior=terminate`). Only this action also
    /// schedules `shutdown -h +N` at boot as a backstop, since only here does stopping
    /// end billing.
    PowerOff,
    /// An HTTP request to the cloud's API that deletes this VM (GCE, Azure).
    Delete(DeleteRequest),
}

impl Expiry {
    /// Whether a plain OS shutdown ends billing, so the `shutdown -h +N` backstop is safe.
    pub fn shutdown_deletes(&self) -> bool {
        matches!(self, Expiry::PowerOff)
    }
}

/// A value the guest reads from the metadata server at expiry time (plain-text answer),
/// to fill a `{name}` placeholder of the delete URL: one startup script serves every VM
/// of a launch, so per-VM parts (the instance's name, its resource id) are read there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataValue {
    pub name: String,
    pub url: String,
}

/// Where the guest gets its bearer token: a metadata-server URL whose JSON answer holds
/// the token in `field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSource {
    pub url: String,
    pub field: String,
}

impl TokenSource {
    /// GCE: the default service account's OAuth token, `{"access_token": ...}`
    /// (https://cloud.google.com/compute/docs/access/authenticate-workloads#applications).
    pub fn gce_default_service_account() -> TokenSource {
        TokenSource {
            url: "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token".into(),
            field: "access_token".into(),
        }
    }

    /// Azure: the VM's managed identity, a token for Azure Resource Manager,
    /// `{"access_token": ...}` (https://learn.microsoft.com/en-us/entra/identity/managed-identities-azure-resources/how-to-use-vm-token).
    pub fn azure_managed_identity() -> TokenSource {
        TokenSource {
            url: "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F".into(),
            field: "access_token".into(),
        }
    }
}

/// The headers every request to a metadata server needs, per cloud: the server refuses
/// requests without them (a guard against SSRF through the VM).
pub fn gce_metadata_headers() -> Vec<(String, String)> {
    // https://cloud.google.com/compute/docs/metadata/querying-metadata
    vec![("Metadata-Flavor".into(), "Google".into())]
}

/// See [`gce_metadata_headers`]; Azure IMDS wants `Metadata: true`
/// (https://learn.microsoft.com/en-us/azure/virtual-machines/instance-metadata-service).
pub fn azure_metadata_headers() -> Vec<(String, String)> {
    vec![("Metadata".into(), "true".into())]
}

/// One piece of the delete URL: literal text or a metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Text(String),
    Var(String),
}

/// A validated delete request: method, URL template, the values it needs from the
/// metadata server, the token source, and the headers the metadata server wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    method: String,
    url: Vec<Part>,
    template: String,
    vars: Vec<MetadataValue>,
    token: TokenSource,
    metadata_headers: Vec<(String, String)>,
}

fn bad(what: impl Into<String>) -> Error {
    Error::invalid_spec(what).with_hint("this is the backend's guest expiry request; report it as a herd bug")
}

fn check_url(what: &str, url: &str, secure: bool) -> Result<()> {
    let loopback = ["http://127.0.0.1", "http://localhost"].iter().any(|h| {
        url.strip_prefix(h)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
    });
    let ok_scheme = if secure {
        url.starts_with("https://") || loopback
    } else {
        url.starts_with("http://") || url.starts_with("https://")
    };
    if !ok_scheme {
        let need = if secure { "https://" } else { "http:// or https://" };
        return Err(bad(format!("the {what} `{url}` must start with {need}")));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad(format!("the {what} `{url}` has spaces or control characters")));
    }
    Ok(())
}

fn is_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `a{x}b` into text and variable parts; `{`/`}` only as placeholders.
fn parse_template(t: &str) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(bad(format!("the delete URL `{t}` has a `}}` without `{{`")));
        }
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| bad(format!("the delete URL `{t}` has a `{{` without `}}`")))?;
        let name = &rest[open + 1..open + close];
        if !is_name(name) {
            return Err(bad(format!(
                "the delete URL `{t}` has placeholder `{{{name}}}`: names are lowercase letters, digits and _"
            )));
        }
        parts.push(Part::Var(name.to_string()));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

impl DeleteRequest {
    /// `method` (e.g. `DELETE`) on `url`, a template whose `{name}` placeholders are each
    /// one of `vars`, authorised by a bearer token from `token`. The URL must be https
    /// (the token travels to it; loopback http is allowed for tests); metadata URLs are
    /// the cloud's link-local http servers.
    pub fn new(
        method: &str,
        url: &str,
        vars: Vec<MetadataValue>,
        token: TokenSource,
        metadata_headers: Vec<(String, String)>,
    ) -> Result<DeleteRequest> {
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(bad(format!("the delete method `{method}` is not an HTTP method")));
        }
        check_url("delete URL", url, true)?;
        let parts = parse_template(url)?;
        for v in &vars {
            if !is_name(&v.name) {
                return Err(bad(format!(
                    "the metadata value name `{}` is not lowercase_with_digits",
                    v.name
                )));
            }
            check_url("metadata URL", &v.url, false)?;
        }
        for p in &parts {
            if let Part::Var(n) = p {
                if !vars.iter().any(|v| &v.name == n) {
                    return Err(bad(format!(
                        "the delete URL uses `{{{n}}}` but no metadata value is named `{n}`"
                    )));
                }
            }
        }
        check_url("token URL", &token.url, false)?;
        if token.field.is_empty() || !token.field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad(format!(
                "the token field `{}` is not a JSON key herd can read",
                token.field
            )));
        }
        for (k, v) in &metadata_headers {
            let key_ok = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            let value_ok = v.chars().all(|c| c.is_ascii_graphic() || c == ' ');
            if !key_ok || !value_ok {
                return Err(bad(format!(
                    "the metadata header `{k}: {v}` is not a plain HTTP header"
                )));
            }
        }
        Ok(DeleteRequest {
            method: method.to_string(),
            url: parts,
            template: url.to_string(),
            vars,
            token,
            metadata_headers,
        })
    }

    pub fn method(&self) -> &str {
        &self.method
    }
    /// The URL as given, placeholders and all.
    pub fn url_template(&self) -> &str {
        &self.template
    }
    pub(crate) fn parts(&self) -> &[Part] {
        &self.url
    }
    pub fn vars(&self) -> &[MetadataValue] {
        &self.vars
    }
    pub fn token(&self) -> &TokenSource {
        &self.token
    }
    pub fn metadata_headers(&self) -> &[(String, String)] {
        &self.metadata_headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gce(url: &str, vars: Vec<MetadataValue>) -> Result<DeleteRequest> {
        DeleteRequest::new(
            "DELETE",
            url,
            vars,
            TokenSource::gce_default_service_account(),
            gce_metadata_headers(),
        )
    }

    fn name() -> Vec<MetadataValue> {
        vec![MetadataValue {
            name: "name".into(),
            url: "http://metadata.google.internal/computeMetadata/v1/instance/name".into(),
        }]
    }

    #[test]
    fn a_template_splits_into_text_and_metadata_values() {
        let d = gce(
            "https://compute.googleapis.com/compute/v1/projects/p/zones/z/instances/{name}",
            name(),
        )
        .unwrap();
        assert_eq!(
            d.parts(),
            [
                Part::Text("https://compute.googleapis.com/compute/v1/projects/p/zones/z/instances/".into()),
                Part::Var("name".into())
            ]
        );
        assert!(!Expiry::Delete(d).shutdown_deletes());
        assert!(Expiry::PowerOff.shutdown_deletes());
    }

    #[test]
    fn anything_unsafe_for_a_root_script_is_refused() {
        let ok = "https://x.example/{name}";
        for (url, vars) in [
            ("http://x.example/{name}", name()),          // the token would travel in clear
            ("https://x.example/{nom}", name()),          // unknown placeholder
            ("https://x.example/{name", name()),          // unclosed
            ("https://x.example/name}", name()),          // stray
            ("https://x.example/{Na-me}", name()),        // not a name
            ("https://x.example/a b/{name}", name()),     // whitespace
            ("https://x.example/$(id)/{name}\n", name()), // control character
        ] {
            let e = gce(url, vars).unwrap_err();
            assert_eq!(e.kind(), herd_core::ErrorKind::InvalidSpec, "{url}");
        }
        assert!(gce(ok, name()).is_ok());
        let bad_method = DeleteRequest::new(
            "DEL;ETE",
            ok,
            name(),
            TokenSource::gce_default_service_account(),
            vec![],
        );
        assert!(bad_method.is_err());
        let mut t = TokenSource::gce_default_service_account();
        t.field = "a\"b".into();
        assert!(DeleteRequest::new("DELETE", ok, name(), t, vec![]).is_err());
        let h = vec![("Metadata".into(), "true\nX: y".into())];
        assert!(DeleteRequest::new("DELETE", ok, name(), TokenSource::azure_managed_identity(), h).is_err());
        assert!(
            gce("http://127.0.0.1:8080/{name}", name()).is_ok(),
            "loopback for tests"
        );
        assert!(gce("http://127.0.0.1.example/{name}", name()).is_err(), "not loopback");
    }
}
