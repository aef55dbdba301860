//! herd's tag convention. Every resource herd creates carries these, so that `herd reap`
//! finds it from the cloud alone, whatever happened to the machine that launched it.
//! Values are restricted to what the strictest cloud accepts (GCP labels: lowercase
//! `[a-z0-9_-]`, at most 63 characters), so one convention serves every backend.

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::money::Money;
use crate::types::Tags;

pub const OWNER: &str = "herd-owner";
pub const CLUSTER: &str = "herd-cluster";
pub const LAUNCH: &str = "herd-launch";
/// Unix seconds at which the instance must be gone.
pub const DEADLINE: &str = "herd-deadline";
/// The hourly price frozen at launch, in micro-USD (an integer: labels allow no `.`).
pub const PRICE: &str = "herd-price-microusd";
/// Idle timeout in seconds.
pub const KEEPALIVE: &str = "herd-keepalive";

/// Keys herd reserves; user tags may not set them.
pub const RESERVED: [&str; 6] = [OWNER, CLUSTER, LAUNCH, DEADLINE, PRICE, KEEPALIVE];

/// Largest number of user tags: AWS allows 50 per resource, herd keeps 6 for itself.
pub const MAX_USER_TAGS: usize = 40;

/// Turns any string into a valid label value: lowercase, `[a-z0-9_-]`, at most 63 chars.
/// Latin letters with diacritics become their base letter (`Ünïcode` -> `unicode`,
/// `José` -> `jose`), so a name keeps its shape; anything else becomes `-`.
pub fn sanitize_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len().min(63));
    for c in v.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
            out.push(c);
        } else if let Some(base) = fold(c) {
            out.push_str(base);
        } else {
            out.push('-');
        }
        if out.len() >= 63 {
            break;
        }
    }
    out.truncate(63);
    out
}

/// A valid value to suggest in a hint when `v` is not one: sanitized, with runs of `-`
/// folded and none at either end (`My  Cluster!` -> `my-cluster`); `fallback` when
/// nothing of `v` is left.
pub fn suggest_value(v: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in sanitize_value(v).chars() {
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        fallback.to_string()
    } else {
        out.to_string()
    }
}

/// The ASCII base of a lowercase Latin letter with a diacritic (Latin-1 Supplement and
/// Latin Extended-A, where European names live), or of a ligature.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à'..='å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è'..='ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì'..='ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĳ' => "ij",
        'ĵ' => "j",
        'ķ' | 'ĸ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' | 'ŉ' | 'ŋ' => "n",
        'ò'..='ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ſ' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' => "t",
        'þ' => "th",
        'ù'..='ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

/// Checks a user tag: key and value in the label alphabet, not a reserved key.
pub fn validate_user_tag(key: &str, value: &str) -> Result<()> {
    let ok_key = !key.is_empty()
        && key.len() <= 63
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok_key {
        return Err(Error::invalid_spec(format!("tag key `{key}` is not valid"))
            .with_hint("tag keys start with a lowercase letter and use only a-z, 0-9, `_` and `-` (at most 63), so they work on GCP too"));
    }
    if RESERVED.contains(&key) {
        return Err(Error::invalid_spec(format!("tag key `{key}` is reserved for herd")));
    }
    if sanitize_value(value) != value {
        return Err(
            Error::invalid_spec(format!("tag value `{value}` for `{key}` is not valid")).with_hint(format!(
                "use lowercase a-z, 0-9, `_` and `-` (at most 63), e.g. `{}`",
                suggest_value(value, "value")
            )),
        );
    }
    Ok(())
}

/// The full tag set of a launch: user tags plus herd's own.
pub fn herd_tags(
    user: &Tags,
    owner: &str,
    cluster: &str,
    launch: &str,
    deadline: DateTime<Utc>,
    price: Money,
    keepalive_secs: Option<u64>,
) -> Tags {
    let mut t = user.clone();
    t.insert(OWNER.into(), sanitize_value(owner));
    t.insert(CLUSTER.into(), sanitize_value(cluster));
    t.insert(LAUNCH.into(), sanitize_value(launch));
    t.insert(DEADLINE.into(), deadline.timestamp().to_string());
    t.insert(PRICE.into(), price.to_micros().to_string());
    if let Some(k) = keepalive_secs {
        t.insert(KEEPALIVE.into(), k.to_string());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize() {
        assert_eq!(sanitize_value("Alice@Example.com"), "alice-example-com");
        assert_eq!(sanitize_value(&"x".repeat(80)).len(), 63);
        assert_eq!(sanitize_value("Ünïcode"), "unicode");
        assert_eq!(sanitize_value("José Müller-Straße"), "jose-muller-strasse");
        assert_eq!(sanitize_value("ŁÓDŹ"), "lodz");
        assert_eq!(sanitize_value("日本"), "--");
        assert_eq!(sanitize_value(&"ß".repeat(80)).len(), 63);
        for v in ["Ünïcode", "日本", "a b", &"é".repeat(100)] {
            let s = sanitize_value(v);
            assert!(
                s.len() <= 63
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'),
                "{v}: {s}"
            );
        }
    }

    #[test]
    fn suggestions_are_sensible_values() {
        assert_eq!(suggest_value("Ünïcode", "my-cluster"), "unicode");
        assert_eq!(suggest_value("  My  Cluster! ", "my-cluster"), "my-cluster");
        assert_eq!(suggest_value("日本", "my-cluster"), "my-cluster");
        assert_eq!(suggest_value("ML Research", "value"), "ml-research");
    }

    #[test]
    fn user_tags() {
        assert!(validate_user_tag("team", "ml").is_ok());
        assert!(validate_user_tag("Team", "ml").is_err());
        assert!(validate_user_tag("herd-owner", "x").is_err());
        let e = validate_user_tag("team", "ML Research").unwrap_err();
        assert!(e.hint().unwrap().contains("ml-research"));
    }
}
