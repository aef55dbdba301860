//! The client-side owner checks, once for every backend. herd acts only on what the
//! answer itself shows is the caller's: the `herd-owner` tag read from the resource, never
//! a filter the server may have ignored. On list results an instance without that tag is
//! not herd's and is never shown; before terminate, another owner's instance or one with
//! no herd tags refuses the whole call (`PermissionDenied`, naming whose), before any effect.

use crate::error::{Error, ErrorKind, Result};
use crate::request::ListRequest;
use crate::tags;
use crate::types::{Instance, Tags};

/// Whose a resource is, by the tags in an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Mine,
    Other(String),
    /// No `herd-owner` tag: herd did not launch it.
    Untagged,
}

/// Whose a resource is, from its tags as key/value pairs (any cloud's, unmapped);
/// `owner` is compared in its tag form ([`tags::sanitize_value`]).
pub fn owner_in<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, owner: &str) -> Owner {
    let want = tags::sanitize_value(owner);
    match pairs.into_iter().find(|(k, _)| *k == tags::OWNER) {
        Some((_, v)) if v == want => Owner::Mine,
        Some((_, v)) => Owner::Other(v.to_string()),
        None => Owner::Untagged,
    }
}

/// Whose a resource is, from its tag map.
pub fn owner_of(t: &Tags, owner: &str) -> Owner {
    owner_in(t.iter().map(|(k, v)| (k.as_str(), v.as_str())), owner)
}

/// The sentence for a resource that is not the caller's, or `None` when it is.
pub fn refusal(what: &str, id: &str, owner: &Owner) -> Option<String> {
    match owner {
        Owner::Mine => None,
        Owner::Other(o) => Some(format!("{what} {id} belongs to herd owner `{o}`")),
        Owner::Untagged => Some(format!("{what} {id} has no herd tags: herd did not launch it")),
    }
}

/// Most refusals one error lists by name; the rest are counted.
const NAMED: usize = 5;

/// `Ok` when every resource (id, tags from the answer) is `owner`'s; else one
/// `PermissionDenied` naming whose each is, so the caller terminates nothing at all.
pub fn check_owned<'a>(what: &str, owner: &str, items: impl IntoIterator<Item = (&'a str, &'a Tags)>) -> Result<()> {
    let refused: Vec<(String, String)> = items
        .into_iter()
        .filter_map(|(id, t)| refusal(what, id, &owner_of(t, owner)).map(|r| (id.to_string(), r)))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let me = tags::sanitize_value(owner);
    let named: Vec<&str> = refused.iter().take(NAMED).map(|(_, r)| r.as_str()).collect();
    let more = refused.len().saturating_sub(NAMED);
    Err(Error::new(
        ErrorKind::PermissionDenied,
        format!(
            "{}{}; herd terminates only owner `{me}`'s instances, so nothing was terminated",
            named.join("; "),
            if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            }
        ),
    )
    .with_hint(format!(
        "only instances tagged {}={me} are yours to stop; `herd ls` lists them",
        tags::OWNER
    ))
    .with_context("instance", refused[0].0.clone()))
}

/// Whether an instance from a list answer may be shown as herd's for `req`: it carries
/// the owner tag (any owner, unless `req` names one) and passes every requested filter.
pub fn admits(req: &ListRequest, i: &Instance) -> bool {
    i.tags.get(tags::OWNER).is_some_and(|o| !o.is_empty()) && req.matches(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cloud, LaunchId, Money};

    fn tagged(pairs: &[(&str, &str)]) -> Tags {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn owner_is_read_from_the_tags_in_its_sanitized_form() {
        let t = tagged(&[(tags::OWNER, "alice"), ("Name", "x")]);
        assert_eq!(owner_of(&t, "Alice"), Owner::Mine);
        assert_eq!(owner_of(&t, "bob"), Owner::Other("alice".into()));
        assert_eq!(owner_of(&tagged(&[("Name", "x")]), "bob"), Owner::Untagged);
        assert_eq!(owner_in([("Name", "x"), (tags::OWNER, "bob")], "bob"), Owner::Mine);
        assert_eq!(
            refusal("instance", "i-1", &Owner::Other("bob".into())).unwrap(),
            "instance i-1 belongs to herd owner `bob`"
        );
        assert!(refusal("instance", "i-1", &Owner::Untagged)
            .unwrap()
            .contains("herd did not launch it"));
        assert_eq!(refusal("instance", "i-1", &Owner::Mine), None);
    }

    #[test]
    fn one_foreign_or_untagged_resource_refuses_all_and_says_whose() {
        let mine = tagged(&[(tags::OWNER, "ann")]);
        let bobs = tagged(&[(tags::OWNER, "bob")]);
        let none = Tags::new();
        assert!(check_owned("instance", "Ann", [("i-1", &mine)]).is_ok());
        assert!(check_owned("instance", "ann", []).is_ok());
        let e = check_owned("instance", "Ann", [("i-1", &mine), ("i-2", &bobs), ("i-3", &none)]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.message().contains("i-2 belongs to herd owner `bob`"), "{e}");
        assert!(e.message().contains("i-3 has no herd tags"), "{e}");
        assert!(e.message().contains("owner `ann`'s") && e.message().contains("nothing was terminated"));
        assert!(!e.message().contains("i-1 "), "{e}");
        assert_eq!(e.context_value("instance"), Some("i-2"));
        assert!(e.hint().unwrap().contains("herd-owner=ann"));
        let ids: Vec<String> = (0..8).map(|i| format!("i-{i}")).collect();
        let e = check_owned("instance", "ann", ids.iter().map(|id| (id.as_str(), &bobs))).unwrap_err();
        assert!(e.message().contains("(and 3 more)"), "{e}");
    }

    #[test]
    fn list_answers_show_only_tagged_matching_instances() {
        let mk = |owner: Option<&str>, region: &str| {
            let mut i = Instance::new(
                "i-1",
                Cloud::Aws,
                region,
                "z",
                "t3.micro",
                LaunchId::new("l").unwrap(),
                chrono::Utc::now(),
                chrono::Utc::now(),
                Money::ZERO,
            );
            if let Some(o) = owner {
                i.tags.insert(tags::OWNER.into(), o.into());
            }
            i
        };
        let mine = ListRequest::new().tag(tags::OWNER, "alice");
        assert!(admits(&mine, &mk(Some("alice"), "us-east-1")));
        assert!(!admits(&mine, &mk(Some("bob"), "us-east-1")));
        assert!(!admits(&mine, &mk(None, "us-east-1")));
        assert!(!admits(&ListRequest::new(), &mk(None, "us-east-1")));
        assert!(!admits(&ListRequest::new(), &mk(Some(""), "us-east-1")));
        assert!(admits(&ListRequest::new(), &mk(Some("bob"), "us-east-1")));
        assert!(!admits(
            &mine.clone().region("eu-west-1"),
            &mk(Some("alice"), "us-east-1")
        ));
    }
}
