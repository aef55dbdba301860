//! herd's tag protocol, in one place. Every resource herd creates carries these tags, so
//! that `herd reap` finds it from the cloud alone, whatever happened to the machine that
//! launched it, and every backend reads an [`Instance`] back from them the same way.
//!
//! - Every `herd-*` key is herd's: a user tag with that prefix is refused before any call
//!   ([`validate_user_tag`]); herd's own components (the sweep runner) set theirs through
//!   [`LaunchSpec::herd_tag`](crate::LaunchSpec::herd_tag), checked by [`validate_herd_tag`].
//! - Encoding ([`HerdFields::encode`], [`herd_tags`]) and decoding ([`HerdFields::decode`],
//!   [`read_instance`]) live here: the deadline as unix seconds, the price as integer
//!   micro-USD (GCE labels allow no `.`).
//! - Values are restricted to what the strictest cloud accepts (GCE labels: lowercase
//!   `[a-z0-9_-]`, at most 63 characters), so one convention serves every backend; each
//!   cloud's own limits (counts, lengths, characters) are checked at plan time from its
//!   [`TagLimits`] ([`check_limits`]). Backends only map tags to their cloud's field.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::capabilities::TagLimits;
use crate::error::{Error, Result};
use crate::money::Money;
use crate::types::{Cloud, Instance, LaunchId, Tags};

/// The prefix of every key herd reserves.
pub const PREFIX: &str = "herd-";

pub const OWNER: &str = "herd-owner";
pub const CLUSTER: &str = "herd-cluster";
pub const LAUNCH: &str = "herd-launch";
/// Unix seconds at which the instance must be gone.
pub const DEADLINE: &str = "herd-deadline";
/// The hourly price frozen at launch, in micro-USD (an integer: labels allow no `.`).
pub const PRICE: &str = "herd-price-microusd";
/// Idle timeout in seconds.
pub const KEEPALIVE: &str = "herd-keepalive";
/// The id one launch call was sent under (a batch of a split launch has its own): the
/// key of the idempotency lookup ([`crate::plumbing::lookup`]).
pub const REQUEST: &str = "herd-request";
/// The launch's spec fingerprint: a reused launch id with another spec is a `Conflict`
/// even where the cloud's own idempotency key is not honoured.
pub const SPEC: &str = "herd-spec";
/// The sweep an instance runs for, and its cell (set by `herd-sweep`).
pub const SWEEP: &str = "herd-sweep";
pub const SWEEP_CELL: &str = "herd-sweep-cell";

/// Every key herd writes. Any other `herd-*` key is reserved too ([`is_reserved`]).
pub const RESERVED: [&str; 10] = [
    OWNER, CLUSTER, LAUNCH, DEADLINE, PRICE, KEEPALIVE, REQUEST, SPEC, SWEEP, SWEEP_CELL,
];

/// The keys herd's own components may set on a launch ([`validate_herd_tag`]); the rest
/// are the Launcher's or the backend's to write.
pub const COMPONENT_KEYS: [&str; 2] = [SWEEP, SWEEP_CELL];

/// Largest number of user tags on any cloud: AWS and Azure allow 50 per resource, herd
/// keeps up to 10 for itself. Each cloud's own count is checked by [`check_limits`].
pub const MAX_USER_TAGS: usize = 40;

/// Whether `key` is herd's: any key starting with `herd-`, in any case (Azure's tag names
/// are case-insensitive, so `HERD-owner` would collide with `herd-owner` there).
pub fn is_reserved(key: &str) -> bool {
    key.len() >= PREFIX.len() && key.as_bytes()[..PREFIX.len()].eq_ignore_ascii_case(PREFIX.as_bytes())
}

/// Checks a user tag: not a reserved key, key and value in the label alphabet.
pub fn validate_user_tag(key: &str, value: &str) -> Result<()> {
    if is_reserved(key) {
        let rest = suggest_value(&key[PREFIX.len()..], "my-tag");
        let rest = if rest.starts_with(|c: char| c.is_ascii_lowercase()) {
            rest
        } else {
            format!("my-{rest}")
        };
        return Err(Error::invalid_spec(format!(
            "tag key `{key}` is reserved: herd sets every `{PREFIX}*` tag itself"
        ))
        .with_hint(format!(
            "use a key of your own, e.g. `--tag {rest}={}`; name the cluster with --cluster",
            suggest_value(value, "value")
        )));
    }
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
    check_value(key, value)
}

/// Checks a tag one of herd's components sets: a key of [`COMPONENT_KEYS`] and a value
/// in the label alphabet. The Launcher's own keys (owner, cluster, ...) are refused.
pub fn validate_herd_tag(key: &str, value: &str) -> Result<()> {
    if !COMPONENT_KEYS.contains(&key) {
        return Err(Error::invalid_spec(format!(
            "`{key}` is not a tag herd's components may set (only {})",
            COMPONENT_KEYS.join(", ")
        )));
    }
    check_value(key, value)
}

fn check_value(key: &str, value: &str) -> Result<()> {
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

/// herd's fields of an instance, as its tags carry them. What cannot be read (absent or
/// malformed) is `None`; [`read_instance`] says what stands in for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HerdFields {
    /// The sanitized owner.
    pub owner: Option<String>,
    pub cluster: Option<String>,
    pub launch_id: Option<LaunchId>,
    /// Whole seconds: the tag is unix seconds.
    pub deadline: Option<DateTime<Utc>>,
    pub price: Option<Money>,
    pub keepalive: Option<Duration>,
}

impl HerdFields {
    /// Reads herd's fields from a tag set (any cloud's, once mapped to key/value pairs).
    pub fn decode(tags: &Tags) -> HerdFields {
        let get = |k: &str| tags.get(k).map(String::as_str).filter(|v| !v.is_empty());
        HerdFields {
            owner: get(OWNER).map(str::to_string),
            cluster: get(CLUSTER).map(str::to_string),
            launch_id: get(LAUNCH).and_then(|l| LaunchId::new(l).ok()),
            deadline: get(DEADLINE)
                .and_then(|d| d.parse::<i64>().ok())
                .and_then(|d| DateTime::from_timestamp(d, 0)),
            price: get(PRICE)
                .and_then(|p| p.parse::<i64>().ok())
                .filter(|p| *p >= 0)
                .map(Money::from_micros),
            keepalive: get(KEEPALIVE)
                .and_then(|k| k.parse::<u64>().ok())
                .map(Duration::from_secs),
        }
    }

    /// Writes the fields that are set into `tags` (values sanitized where they are names).
    pub fn encode(&self, tags: &mut Tags) {
        if let Some(o) = &self.owner {
            tags.insert(OWNER.into(), sanitize_value(o));
        }
        if let Some(c) = &self.cluster {
            tags.insert(CLUSTER.into(), sanitize_value(c));
        }
        if let Some(l) = &self.launch_id {
            tags.insert(LAUNCH.into(), sanitize_value(l.as_str()));
        }
        if let Some(d) = self.deadline {
            tags.insert(DEADLINE.into(), d.timestamp().to_string());
        }
        if let Some(p) = self.price {
            tags.insert(PRICE.into(), p.to_micros().to_string());
        }
        if let Some(k) = self.keepalive {
            tags.insert(KEEPALIVE.into(), k.as_secs().to_string());
        }
    }
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
    HerdFields {
        owner: Some(owner.to_string()),
        cluster: Some(cluster.to_string()),
        launch_id: None,
        deadline: Some(deadline),
        price: Some(price),
        keepalive: keepalive_secs.map(Duration::from_secs),
    }
    .encode(&mut t);
    // The launch id is written as given (sanitized), even where `LaunchId` would refuse it.
    t.insert(LAUNCH.into(), sanitize_value(launch));
    t
}

/// The tags a backend puts on every resource of one launch call: the request's own
/// (herd's included), the id this call was sent under and the spec fingerprint, which
/// the idempotency lookup ([`crate::plumbing::lookup`]) reads back.
pub fn request_tags(req: &crate::request::LaunchRequest) -> Tags {
    let mut t = req.tags.clone();
    t.insert(REQUEST.into(), req.launch_id.to_string());
    t.insert(SPEC.into(), req.fingerprint());
    t
}

/// An [`Instance`] from what the cloud reports (id, place, type, launch time) and its
/// tags: launch id, deadline, frozen price and idle timeout come back from herd's tags,
/// so any machine can list and price what another launched. Every backend builds its
/// instances here. What the tags lack stands in as: launch id `unknown`, deadline = the
/// launch time, price zero (an instance herd did not tag is never herd's to bill).
pub fn read_instance(
    cloud: Cloud,
    id: impl Into<String>,
    region: impl Into<String>,
    zone: impl Into<String>,
    instance_type: impl Into<String>,
    launched_at: DateTime<Utc>,
    tags: Tags,
) -> Instance {
    let f = HerdFields::decode(&tags);
    let launch = f
        .launch_id
        .unwrap_or_else(|| LaunchId::new("unknown").expect("a valid literal launch id"));
    let mut out = Instance::new(
        id,
        cloud,
        region,
        zone,
        instance_type,
        launch,
        launched_at,
        f.deadline.unwrap_or(launched_at),
        f.price.unwrap_or(Money::ZERO),
    );
    out.keepalive = f.keepalive;
    out.tags = tags;
    out
}

/// Checks a launch's full tag set (user tags and herd's) against one cloud's limits,
/// before any call: the number of tags (with those the backend adds itself), key and
/// value lengths in characters, the cloud's alphabet and reserved prefixes.
pub fn check_limits(limits: &TagLimits, tags: &Tags) -> Result<()> {
    let cloud = limits.name;
    let added = limits.backend_tags.iter().filter(|k| !tags.contains_key(**k)).count();
    let total = tags.len() + added;
    if total > limits.max_tags {
        let user = tags.keys().filter(|k| !is_reserved(k)).count();
        return Err(Error::invalid_spec(format!(
            "{total} tags is more than {cloud} allows on one resource ({}); herd uses {} of them",
            limits.max_tags,
            total - user
        ))
        .with_hint(format!(
            "drop some --tag: at most {} of your own here",
            limits.max_tags.saturating_sub(total - user)
        )));
    }
    let mut folded: Vec<String> = Vec::new();
    for (k, v) in tags {
        let key_chars = k.chars().count();
        if k.is_empty() || key_chars > limits.max_key_chars {
            return Err(Error::invalid_spec(format!(
                "tag key `{k}` is {key_chars} characters; {cloud} allows 1 to {}",
                limits.max_key_chars
            )));
        }
        let value_chars = v.chars().count();
        if value_chars > limits.max_value_chars {
            return Err(Error::invalid_spec(format!(
                "the value of tag `{k}` is {value_chars} characters; {cloud} allows at most {}",
                limits.max_value_chars
            )));
        }
        if let Some(c) = k.chars().find(|c| limits.forbidden_key_chars.contains(*c)) {
            return Err(Error::invalid_spec(format!(
                "tag key `{k}` contains `{c}`, which {cloud} does not allow in tag names"
            ))
            .with_hint(format!(
                "{cloud} tag names may not contain any of {}",
                limits.forbidden_key_chars
            )));
        }
        let lower = k.to_lowercase();
        if let Some(p) = limits.reserved_prefixes.iter().find(|p| lower.starts_with(*p)) {
            return Err(Error::invalid_spec(format!(
                "tag key `{k}` starts with `{p}`, which {cloud} reserves for itself"
            )));
        }
        if limits.reserved_in_values {
            let v = v.to_lowercase();
            if let Some(p) = limits.reserved_prefixes.iter().find(|p| v.starts_with(*p)) {
                return Err(Error::invalid_spec(format!(
                    "the value of tag `{k}` starts with `{p}`, which {cloud} reserves for itself"
                )));
            }
        }
        if limits.label_alphabet {
            let label = |s: &str| {
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            };
            if !k.starts_with(|c: char| c.is_ascii_lowercase()) || !label(k) {
                return Err(Error::invalid_spec(format!("tag key `{k}` is not a valid {cloud} key"))
                    .with_hint("keys start with a lowercase letter and use only a-z, 0-9, `_` and `-`"));
            }
            if !label(v) {
                return Err(
                    Error::invalid_spec(format!("the value `{v}` of tag `{k}` is not a valid {cloud} value"))
                        .with_hint(format!(
                            "use lowercase a-z, 0-9, `_` and `-`, e.g. `{}`",
                            suggest_value(v, "value")
                        )),
                );
            }
        }
        if limits.case_insensitive_keys {
            if folded.contains(&lower) {
                return Err(Error::invalid_spec(format!(
                    "tag key `{k}` differs from another only in case, and {cloud} tag names ignore case"
                )));
            }
            folded.push(lower);
        }
    }
    Ok(())
}

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

    #[test]
    fn every_herd_key_is_reserved_not_only_the_known_ones() {
        // `herd-spec` used to pass and then be overwritten by the backend's own.
        for k in [
            "herd-spec",
            "herd-x",
            "herd-request",
            "herd-sweep",
            "herd-",
            "HERD-owner",
            "Herd-Cluster",
        ] {
            let e = validate_user_tag(k, "1").unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidSpec, "{k}");
            assert!(e.message().contains("is reserved"), "{k}: {e}");
            let hint = e.hint().expect("a hint");
            assert!(hint.contains("--tag "), "{hint}");
            // The suggested key is itself a valid user key.
            let suggested = hint.split("--tag ").nth(1).unwrap().split('=').next().unwrap();
            assert!(validate_user_tag(suggested, "1").is_ok(), "{k}: {hint}");
        }
        assert!(validate_user_tag("herdsman", "1").is_ok());
        assert!(validate_user_tag("my-herd-x", "1").is_ok());
        assert!(RESERVED.iter().all(|k| is_reserved(k)));
        assert!(!is_reserved("herd") && !is_reserved("her"));
    }

    #[test]
    fn components_set_only_their_own_keys() {
        assert!(validate_herd_tag(SWEEP, "s-1").is_ok());
        assert!(validate_herd_tag(SWEEP_CELL, "c_2").is_ok());
        assert!(validate_herd_tag(SWEEP, "Not Valid").is_err());
        for k in [OWNER, CLUSTER, LAUNCH, DEADLINE, PRICE, REQUEST, SPEC, "herd-x", "team"] {
            assert!(validate_herd_tag(k, "x").is_err(), "{k}");
        }
    }

    #[test]
    fn fields_round_trip_through_tags() {
        let deadline = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let f = HerdFields {
            owner: Some("alice".into()),
            cluster: Some("c-1".into()),
            launch_id: Some(LaunchId::new("l-abc").unwrap()),
            deadline: Some(deadline),
            price: Some(Money::from_micros(41_600)),
            keepalive: Some(Duration::from_secs(1200)),
        };
        let mut t = Tags::new();
        f.encode(&mut t);
        assert_eq!(t[DEADLINE], "1800000000");
        assert_eq!(t[PRICE], "41600");
        assert_eq!(t[KEEPALIVE], "1200");
        assert_eq!(HerdFields::decode(&t), f);
        // herd_tags writes the same encoding.
        let full = herd_tags(
            &Tags::new(),
            "Alice",
            "c-1",
            "l-abc",
            deadline,
            Money::from_micros(41_600),
            Some(1200),
        );
        assert_eq!(full, t);
    }

    #[test]
    fn malformed_fields_are_absent_and_read_instance_says_what_stands_in() {
        let t: Tags = [
            (DEADLINE, "soon"),
            (PRICE, "-5"),
            (KEEPALIVE, "1.5"),
            (LAUNCH, "not a launch id"),
            (OWNER, ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(HerdFields::decode(&t), HerdFields::default());
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let i = read_instance(Cloud::Aws, "i-1", "us-east-1", "us-east-1a", "t3.micro", at, t.clone());
        assert_eq!(i.launch_id.as_str(), "unknown");
        assert_eq!(i.deadline, at);
        assert_eq!(i.hourly_price, Money::ZERO);
        assert_eq!(i.keepalive, None);
        assert_eq!(i.tags, t);
        let good = herd_tags(&Tags::new(), "bob", "c", "l-1", at, Money::from_micros(7), None);
        let i = read_instance(
            Cloud::Gcp,
            "vm-1",
            "europe-west1",
            "europe-west1-b",
            "e2-small",
            at,
            good,
        );
        assert_eq!((i.launch_id.as_str(), i.hourly_price), ("l-1", Money::from_micros(7)));
        assert_eq!((i.cloud, i.zone.as_str()), (Cloud::Gcp, "europe-west1-b"));
    }

    fn tags_of(pairs: &[(&str, &str)]) -> Tags {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn many(n: usize) -> Tags {
        (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect()
    }

    fn refused(limits: &TagLimits, t: &Tags, says: &str) {
        let e = check_limits(limits, t).expect_err(says);
        assert_eq!(e.kind(), crate::ErrorKind::InvalidSpec);
        assert!(e.message().contains(says), "{} / {says}: {e}", limits.name);
    }

    #[test]
    fn ec2_limits() {
        let l = TagLimits::EC2;
        // 50 per resource, with the two the AWS backend adds.
        let mut b = l;
        b.backend_tags = &[REQUEST, SPEC];
        assert!(check_limits(&b, &many(48)).is_ok());
        refused(&b, &many(49), "51 tags is more than EC2 allows");
        assert!(check_limits(&l, &many(50)).is_ok());
        refused(&l, &many(51), "more than EC2 allows");
        assert!(check_limits(&l, &tags_of(&[(&"k".repeat(128), "v")])).is_ok());
        refused(&l, &tags_of(&[(&"k".repeat(129), "v")]), "129 characters");
        assert!(check_limits(&l, &tags_of(&[("k", &"é".repeat(256))])).is_ok());
        refused(&l, &tags_of(&[("k", &"v".repeat(257))]), "257 characters");
        refused(&l, &tags_of(&[("aws:cloudformation", "v")]), "reserves");
        refused(&l, &tags_of(&[("AWS:x", "v")]), "reserves");
        refused(&l, &tags_of(&[("k", "aws:x")]), "reserves");
        refused(&l, &tags_of(&[("", "v")]), "0 characters");
        // EC2 takes any characters and case.
        assert!(check_limits(&l, &tags_of(&[("Team Name", "ML Research / 2")])).is_ok());
    }

    #[test]
    fn gce_label_limits() {
        let l = TagLimits::GCE;
        assert!(check_limits(&l, &many(64)).is_ok());
        refused(&l, &many(65), "more than GCE labels allows");
        assert!(check_limits(&l, &tags_of(&[(&"k".repeat(63), &"v".repeat(63))])).is_ok());
        refused(&l, &tags_of(&[(&"k".repeat(64), "v")]), "64 characters");
        refused(&l, &tags_of(&[("k", &"v".repeat(64))]), "64 characters");
        refused(&l, &tags_of(&[("Team", "v")]), "not a valid GCE labels key");
        refused(&l, &tags_of(&[("1team", "v")]), "not a valid GCE labels key");
        refused(&l, &tags_of(&[("_team", "v")]), "not a valid GCE labels key");
        refused(&l, &tags_of(&[("team.name", "v")]), "not a valid GCE labels key");
        refused(&l, &tags_of(&[("team", "ML")]), "not a valid GCE labels value");
        refused(&l, &tags_of(&[("team", "a.b")]), "not a valid GCE labels value");
        assert!(check_limits(&l, &tags_of(&[("team_1-x", "a_b-9"), ("empty", "")])).is_ok());
    }

    #[test]
    fn azure_limits() {
        let l = TagLimits::AZURE;
        assert!(check_limits(&l, &many(50)).is_ok());
        refused(&l, &many(51), "more than Azure allows");
        assert!(check_limits(&l, &tags_of(&[(&"k".repeat(512), &"v".repeat(256))])).is_ok());
        refused(&l, &tags_of(&[(&"k".repeat(513), "v")]), "513 characters");
        refused(&l, &tags_of(&[("k", &"v".repeat(257))]), "257 characters");
        for c in ['<', '>', '%', '&', '\\', '?', '/'] {
            refused(&l, &tags_of(&[(&format!("a{c}b"), "v")]), &format!("contains `{c}`"));
        }
        for p in ["microsoft.x", "Azure-thing", "WINDOWS"] {
            refused(&l, &tags_of(&[(p, "v")]), "reserves");
        }
        // Values may use what names may not, and any case.
        assert!(check_limits(&l, &tags_of(&[("team", "A/B?<>")])).is_ok());
        refused(&l, &tags_of(&[("Team", "a"), ("team", "b")]), "only in case");
    }

    #[test]
    fn herds_own_tags_fit_every_cloud() {
        let at = DateTime::from_timestamp(4_000_000_000, 0).unwrap();
        let long = "x".repeat(200);
        let t = herd_tags(
            &many(MAX_USER_TAGS),
            &long,
            &long,
            &long,
            at,
            Money::from_micros(i64::MAX),
            Some(u64::MAX),
        );
        let mut aws = TagLimits::EC2;
        aws.backend_tags = &[REQUEST, SPEC];
        for l in [aws, TagLimits::GCE, TagLimits::AZURE, TagLimits::PORTABLE] {
            check_limits(&l, &t).unwrap_or_else(|e| panic!("{}: {e}", l.name));
        }
    }
}
