//! Where the bearer token of every Compute Engine call comes from, behind one small
//! trait ([`TokenSource`]) so tests hand in a static token. Production uses Application
//! Default Credentials, in Google's documented order
//! (<https://cloud.google.com/docs/authentication/application-default-credentials>):
//! `GOOGLE_APPLICATION_CREDENTIALS` (or `[gcp] credentials`), then gcloud's
//! `application_default_credentials.json`, then the metadata server. Why herd does this
//! itself over reqwest instead of `gcp_auth`: docs/decisions/0009-gcp-auth.md.
//!
//! Tokens never print: [`Token`]'s Debug is redacted, and a token only ever travels in
//! the `Authorization` header, never in a URL.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use herd_core::{Error, ErrorKind, Result};
use serde::Deserialize;
use tokio::sync::Mutex;

/// An OAuth access token. Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(t: impl Into<String>) -> Self {
        Token(t.into())
    }
    /// The secret itself, for the `Authorization` header only.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Gives a token for each call (cached and refreshed by the implementation).
#[async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    async fn token(&self) -> Result<Token>;
    /// The project the credentials belong to, when they say.
    fn project(&self) -> Option<String> {
        None
    }
    /// What the credentials are, for messages (never the secret).
    fn describe(&self) -> String;
}

/// A fixed token (tests, and `gcloud auth print-access-token` piped in by hand).
#[derive(Debug, Clone)]
pub struct StaticToken(pub Token);

#[async_trait]
impl TokenSource for StaticToken {
    async fn token(&self) -> Result<Token> {
        Ok(self.0.clone())
    }
    fn describe(&self) -> String {
        "a static access token".into()
    }
}

/// The scope herd asks for: Compute Engine's read-write scope (discovery document `auth`).
pub const SCOPE: &str = "https://www.googleapis.com/auth/compute";
const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const METADATA_TOKEN: &str =
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token";
const METADATA_PROJECT: &str = "http://metadata.google.internal/computeMetadata/v1/project/project-id";

/// A credentials JSON file, as gcloud and the IAM console write them.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum CredentialsFile {
    ServiceAccount {
        client_email: String,
        private_key: String,
        #[serde(default)]
        token_uri: Option<String>,
        #[serde(default)]
        project_id: Option<String>,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        #[serde(default)]
        quota_project_id: Option<String>,
    },
}

enum Kind {
    ServiceAccount {
        email: String,
        key: Arc<ring::signature::RsaKeyPair>,
        token_uri: String,
    },
    User {
        client_id: String,
        client_secret: String,
        refresh_token: String,
    },
    Metadata,
    /// An access token handed in (`GOOGLE_OAUTH_ACCESS_TOKEN`): used as is, never refreshed.
    Static(Token),
}

/// An access token handed in by hand (`gcloud auth print-access-token`), the variable
/// Google's Terraform provider reads too; it wins over every file.
pub const ACCESS_TOKEN_VAR: &str = "GOOGLE_OAUTH_ACCESS_TOKEN";

/// Application Default Credentials, resolved once ([`Adc::discover`]); tokens cached
/// until a minute before they expire.
pub struct Adc {
    kind: Kind,
    from: String,
    project: Option<String>,
    http: reqwest::Client,
    cached: Mutex<Option<(Token, DateTime<Utc>)>>,
}

impl fmt::Debug for Adc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adc").field("from", &self.from).finish_non_exhaustive()
    }
}

/// gcloud's ADC file: `$CLOUDSDK_CONFIG/application_default_credentials.json`, else
/// `~/.config/gcloud/...`.
pub fn user_credentials_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let dir = env("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config").join("gcloud")))?;
    Some(dir.join("application_default_credentials.json"))
}

fn no_credentials(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unauthenticated, msg).with_hint(
        "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file",
    )
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(3))
        .build()
        .expect("a reqwest client")
}

impl Adc {
    /// Finds credentials in ADC's order; `file` is `[gcp] credentials`. The metadata
    /// server is asked last and only briefly (it exists only on Google's machines).
    pub async fn discover(file: Option<&Path>, env: &(dyn Fn(&str) -> Option<String> + Sync)) -> Result<Adc> {
        if let Some(t) = env(ACCESS_TOKEN_VAR) {
            return Ok(Adc {
                kind: Kind::Static(Token(t)),
                from: format!("the access token in {ACCESS_TOKEN_VAR}"),
                project: None,
                http: http(),
                cached: Mutex::new(None),
            });
        }
        let explicit = file
            .map(Path::to_path_buf)
            .or_else(|| env("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from));
        if let Some(p) = explicit {
            return Adc::from_file(&p);
        }
        if let Some(p) = user_credentials_file(env).filter(|p| p.is_file()) {
            return Adc::from_file(&p);
        }
        let http = http();
        let probe = http
            .get(METADATA_PROJECT)
            .header("Metadata-Flavor", "Google")
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        match probe {
            Ok(r) if r.status().is_success() => {
                let project = r.text().await.ok().filter(|p| !p.is_empty());
                Ok(Adc {
                    kind: Kind::Metadata,
                    from: "the metadata server's default service account".into(),
                    project,
                    http,
                    cached: Mutex::new(None),
                })
            }
            _ => Err(no_credentials(
                "no GCP credentials: GOOGLE_APPLICATION_CREDENTIALS is unset, gcloud's application-default \
                 credentials file does not exist, and no metadata server answered",
            )),
        }
    }

    /// A service-account key or gcloud user credentials file.
    pub fn from_file(path: &Path) -> Result<Adc> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| no_credentials(format!("cannot read GCP credentials {}: {e}", path.display())))?;
        let parsed: CredentialsFile = serde_json::from_str(&text).map_err(|e| {
            no_credentials(format!(
                "{} is not a service-account or authorized-user credentials file ({e})",
                path.display()
            ))
        })?;
        let from = path.display().to_string();
        let (kind, project) = match parsed {
            CredentialsFile::ServiceAccount {
                client_email,
                private_key,
                token_uri,
                project_id,
            } => {
                let der = pem_body(&private_key)
                    .ok_or_else(|| no_credentials(format!("the private key in {from} is not PEM")))?;
                let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
                    .map_err(|e| no_credentials(format!("the private key in {from} is not an RSA PKCS#8 key: {e}")))?;
                (
                    Kind::ServiceAccount {
                        email: client_email,
                        key: Arc::new(key),
                        token_uri: token_uri.unwrap_or_else(|| TOKEN_URI.into()),
                    },
                    project_id,
                )
            }
            CredentialsFile::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                quota_project_id,
            } => (
                Kind::User {
                    client_id,
                    client_secret,
                    refresh_token,
                },
                quota_project_id,
            ),
        };
        Ok(Adc {
            kind,
            from,
            project,
            http: http(),
            cached: Mutex::new(None),
        })
    }

    async fn fetch(&self) -> Result<(Token, DateTime<Utc>)> {
        let now = Utc::now();
        let req = match &self.kind {
            Kind::ServiceAccount { email, key, token_uri } => {
                let assertion = jwt(email, key, token_uri, now)?;
                let body = format!(
                    "grant_type={}&assertion={}",
                    form("urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    form(&assertion)
                );
                self.http
                    .post(token_uri)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
            }
            Kind::User {
                client_id,
                client_secret,
                refresh_token,
            } => {
                let body = format!(
                    "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
                    form(client_id),
                    form(client_secret),
                    form(refresh_token)
                );
                self.http
                    .post(TOKEN_URI)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
            }
            Kind::Metadata => self.http.get(METADATA_TOKEN).header("Metadata-Flavor", "Google"),
            Kind::Static(t) => return Ok((t.clone(), now + chrono::TimeDelta::days(1))),
        };
        let fail = |m: String| {
            Error::new(ErrorKind::Unauthenticated, m).with_hint(format!(
            "herd got its GCP credentials from {}; run `gcloud auth application-default login` again if they expired",
            self.from
        ))
        };
        let r = req.send().await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot reach Google's token endpoint: {e}"),
            )
        })?;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if !status.is_success() {
            // The answer names the OAuth error (`invalid_grant`), never a token.
            let why = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| status.to_string());
            return Err(fail(format!("Google refused herd's credentials: {why}")));
        }
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            #[serde(default)]
            expires_in: Option<i64>,
        }
        let a: Answer =
            serde_json::from_str(&text).map_err(|_| fail("the token endpoint's answer is not a token".into()))?;
        let ttl = a.expires_in.unwrap_or(300).max(0);
        Ok((Token(a.access_token), now + chrono::TimeDelta::seconds(ttl)))
    }
}

#[async_trait]
impl TokenSource for Adc {
    async fn token(&self) -> Result<Token> {
        if let Kind::Static(t) = &self.kind {
            return Ok(t.clone());
        }
        let mut c = self.cached.lock().await;
        if let Some((t, until)) = c.as_ref() {
            if Utc::now() + chrono::TimeDelta::seconds(60) < *until {
                return Ok(t.clone());
            }
        }
        let fresh = self.fetch().await?;
        let t = fresh.0.clone();
        *c = Some(fresh);
        Ok(t)
    }
    fn project(&self) -> Option<String> {
        self.project.clone()
    }
    fn describe(&self) -> String {
        self.from.clone()
    }
}

/// The DER inside a PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// The signed JWT a service account trades for a token (RFC 7523; claims after
/// <https://developers.google.com/identity/protocols/oauth2/service-account#authorizingrequests>).
fn jwt(email: &str, key: &ring::signature::RsaKeyPair, aud: &str, now: DateTime<Utc>) -> Result<String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": email, "scope": SCOPE, "aud": aud,
        "iat": now.timestamp(), "exp": now.timestamp() + 3600,
    });
    let signing = format!("{header}.{}", b64.encode(claims.to_string()));
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing.as_bytes(),
        &mut sig,
    )
    .map_err(|_| no_credentials("signing the service-account JWT failed"))?;
    Ok(format!("{signing}.{}", b64.encode(sig)))
}

/// `application/x-www-form-urlencoded` for one value: the same unreserved set as a URL's.
use crate::client::encode as form;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let t = Token::new("ya29.secret");
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        let s = StaticToken(t);
        assert!(!format!("{s:?}").contains("secret"));
    }

    #[test]
    fn user_credentials_are_read_and_bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("adc.json");
        std::fs::write(
            &p,
            r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r","quota_project_id":"proj-1"}"#,
        )
        .unwrap();
        let a = Adc::from_file(&p).unwrap();
        assert_eq!(a.project().as_deref(), Some("proj-1"));
        assert!(!format!("{a:?}").contains("\"r\""));
        std::fs::write(
            &p,
            r#"{"type":"service_account","client_email":"e","private_key":"nope"}"#,
        )
        .unwrap();
        let e = Adc::from_file(&p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        let e = Adc::from_file(&dir.path().join("missing.json")).unwrap_err();
        assert!(e.message().contains("cannot read GCP credentials"), "{e}");
        assert!(e.hint().unwrap().contains("gcloud auth application-default login"));
    }

    #[test]
    fn form_encoding_and_the_gcloud_path() {
        assert_eq!(form("a b/c:d"), "a%20b%2Fc%3Ad");
        let env = |k: &str| (k == "HOME").then(|| "/home/x".to_string());
        assert_eq!(
            user_credentials_file(&env).unwrap(),
            Path::new("/home/x/.config/gcloud/application_default_credentials.json")
        );
    }
}
