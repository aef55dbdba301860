//! Who herd is to Azure: a [`TokenCredential`] of the SDK's line, chosen once. In order
//! (`[azure] credential = "auto"`): a fixed token from `AZURE_ACCESS_TOKEN` (tests, or a
//! token from `az account get-access-token`), the environment's service principal or
//! workload identity (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` or
//! `AZURE_FEDERATED_TOKEN_FILE`), App Service's managed identity (`IDENTITY_ENDPOINT`),
//! then the Azure CLI's login (when `~/.azure/azureProfile.json` exists). A VM's managed
//! identity (IMDS) only when asked (`credential = "managed-identity"`): probing IMDS off
//! Azure would cost a timeout on every laptop. None found: `Unauthenticated` before any call.
//!
//! Token requests of the SDK's credentials go through herd's transport ([`crate::client`]),
//! like every other request. Tokens never print: [`StaticToken`]'s `Debug` is redacted,
//! and the SDK's `Secret` redacts its own.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::auth::{AccessToken, TokenCredential};
use azure_identity::{
    AppServiceManagedIdentityCredential, AzureCliCredential, EnvironmentCredential, TokenCredentialOptions,
    VirtualMachineManagedIdentityCredential,
};
use herd_core::{Error, ErrorKind, Result};

/// The variable holding a fixed ARM access token.
pub const TOKEN_VAR: &str = "AZURE_ACCESS_TOKEN";

/// A fixed bearer token (tests, or one minted by `az account get-access-token`).
pub struct StaticToken(azure_core::auth::Secret);

impl StaticToken {
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken(azure_core::auth::Secret::new(token.into()))
    }
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

#[async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(&self, _scopes: &[&str]) -> azure_core::Result<AccessToken> {
        // An hour ahead: the SDK only reads the expiry to cache, and a fixed token is
        // used as it is until ARM refuses it.
        let expires = time::OffsetDateTime::now_utc() + std::time::Duration::from_secs(3600);
        Ok(AccessToken::new(self.0.secret().to_string(), expires))
    }
    async fn clear_cache(&self) -> azure_core::Result<()> {
        Ok(())
    }
}

/// Where the Azure CLI keeps its profile: `$AZURE_CONFIG_DIR` or `~/.azure`.
pub fn cli_profile(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let dir = env("AZURE_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".azure")))?;
    Some(dir.join("azureProfile.json"))
}

/// The CLI's default subscription (`isDefault` in `azureProfile.json`, which the CLI
/// writes with a UTF-8 byte-order mark).
pub fn cli_default_subscription(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let text = std::fs::read_to_string(cli_profile(env)?).ok()?;
    default_subscription_of(&text)
}

pub fn default_subscription_of(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}')).ok()?;
    v.get("subscriptions")?
        .as_array()?
        .iter()
        .find(|s| s.get("isDefault").and_then(serde_json::Value::as_bool) == Some(true))?
        .get("id")?
        .as_str()
        .map(str::to_string)
}

/// The credential herd uses, and what it is (for messages; never the secret).
pub fn discover(
    choice: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    http: Arc<dyn azure_core::HttpClient>,
) -> Result<(Arc<dyn TokenCredential>, String)> {
    let options = || TokenCredentialOptions::from(http.clone());
    let sdk = |e: azure_core::Error, what: &str| {
        Error::new(
            ErrorKind::Unauthenticated,
            format!("the {what} credential is not usable: {e}"),
        )
        .with_hint(crate::config::AzureSection::HOW_TO_CONFIGURE)
    };
    let choice = choice.unwrap_or("auto");
    match choice {
        "auto" => {}
        "environment" => {
            let c = EnvironmentCredential::create(options()).map_err(|e| sdk(e, "environment"))?;
            return Ok((Arc::new(c), "the environment's service principal".into()));
        }
        "cli" => return Ok((Arc::new(AzureCliCredential::new()), "the Azure CLI's login".into())),
        "managed-identity" => {
            return Ok((
                Arc::new(VirtualMachineManagedIdentityCredential::new(options())),
                "this VM's managed identity".into(),
            ))
        }
        other => {
            return Err(Error::config(format!("unknown Azure credential `{other}`"))
                .with_suggestions(herd_core::suggest::did_you_mean(
                    other,
                    ["auto", "environment", "cli", "managed-identity"],
                    2,
                ))
                .with_hint("[azure] credential is one of auto, environment, cli, managed-identity"))
        }
    }
    if let Some(t) = env(TOKEN_VAR) {
        return Ok((Arc::new(StaticToken::new(t)), format!("the token in {TOKEN_VAR}")));
    }
    if env("AZURE_CLIENT_ID").is_some()
        && (env("AZURE_CLIENT_SECRET").is_some() || env("AZURE_FEDERATED_TOKEN_FILE").is_some())
    {
        let c = EnvironmentCredential::create(options()).map_err(|e| sdk(e, "environment"))?;
        return Ok((Arc::new(c), "the environment's service principal".into()));
    }
    if env("IDENTITY_ENDPOINT").is_some() {
        let c = AppServiceManagedIdentityCredential::create(options()).map_err(|e| sdk(e, "managed identity"))?;
        return Ok((Arc::new(c), "App Service's managed identity".into()));
    }
    if cli_profile(env).is_some_and(|p| p.is_file()) {
        return Ok((Arc::new(AzureCliCredential::new()), "the Azure CLI's login".into()));
    }
    Err(Error::new(
        ErrorKind::Unauthenticated,
        "no Azure credentials: no AZURE_ACCESS_TOKEN, no service principal in the environment, no Azure CLI login",
    )
    .with_hint(crate::config::AzureSection::HOW_TO_CONFIGURE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_default_subscription_is_read_past_the_bom() {
        let text = "\u{feff}{\"subscriptions\":[{\"id\":\"a\",\"isDefault\":false},{\"id\":\"b\",\"isDefault\":true}]}";
        assert_eq!(default_subscription_of(text).as_deref(), Some("b"));
        assert_eq!(default_subscription_of("{}"), None);
    }

    #[test]
    fn static_tokens_never_print() {
        let t = StaticToken::new("secret-token-value");
        assert!(!format!("{t:?}").contains("secret-token-value"));
    }
}
