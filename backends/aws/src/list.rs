//! DescribeInstances filtered by herd's tags on the server side, every page, and checked
//! again on each answer: a server that ignores filters (an emulator, a proxy, a bug)
//! must never make a foreign instance look like herd's. Pages end when the token does;
//! a token that comes back again, or more pages than any account could fill, is an
//! error, never an endless loop.

use std::collections::HashSet;

use aws_sdk_ec2::types::Filter;
use chrono::{DateTime, Utc};
use herd_core::{tags, Error, Instance, ListRequest, Result};

use crate::client::Ec2;
use crate::instance::{convert, ec2_states};

/// EC2's bounds on `MaxResults` for DescribeInstances (API reference).
pub const MIN_PAGE: i32 = 5;
pub const MAX_PAGE: i32 = 1000;

/// Most instances herd expects one region's listing to page through (far above EC2's
/// default quotas); with the page size it bounds the number of pages.
pub const MAX_LISTED: u32 = 200_000;

/// The filters for a request. Only instances carrying herd's owner tag are ever listed:
/// herd never sees, let alone terminates, what it did not launch.
pub fn filters(req: &ListRequest) -> Vec<Filter> {
    let mut f = vec![Filter::builder().name("tag-key").values(tags::OWNER).build()];
    for (k, v) in &req.tags {
        f.push(Filter::builder().name(format!("tag:{k}")).values(v).build());
    }
    if !req.states.is_empty() {
        let mut b = Filter::builder().name("instance-state-name");
        for s in &req.states {
            for name in ec2_states(*s) {
                b = b.values(*name);
            }
        }
        f.push(b.build());
    }
    if !req.ids.is_empty() {
        // A filter, not InstanceIds: an unknown id then matches nothing instead of
        // failing the whole call.
        let mut b = Filter::builder().name("instance-id");
        for id in &req.ids {
            b = b.values(id);
        }
        f.push(b.build());
    }
    f
}

/// Follows `NextToken`s: stops with an error on a token seen before or past `max` pages.
#[derive(Debug)]
pub struct Pages {
    action: &'static str,
    seen: HashSet<String>,
    pages: u32,
    max: u32,
}

impl Pages {
    pub fn new(action: &'static str, max: u32) -> Self {
        Pages {
            action,
            seen: HashSet::new(),
            pages: 0,
            max: max.max(1),
        }
    }

    /// The token for the next page after an answer that carried `next`, or `None` at the end.
    pub fn next(&mut self, next: Option<&str>) -> Result<Option<String>> {
        self.pages += 1;
        let Some(t) = next.filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        if !self.seen.insert(t.to_string()) {
            return Err(Error::unexpected(format!(
                "EC2 sent the same page token twice in {} (after {} pages): its answers cannot be trusted",
                self.action, self.pages
            ))
            .with_hint("the endpoint is repeating itself; nothing was listed, try again later")
            .with_context("action", self.action));
        }
        if self.pages >= self.max {
            return Err(Error::unexpected(format!(
                "{} still had more pages after {}: herd stopped rather than page forever",
                self.action, self.pages
            ))
            .with_context("action", self.action));
        }
        Ok(Some(t.to_string()))
    }

    pub fn count(&self) -> u32 {
        self.pages
    }
}

/// What one region's listing returned, and how many pages it took.
#[derive(Debug, Default)]
pub struct Listed {
    pub instances: Vec<Instance>,
    pub pages: u32,
}

/// Whether an instance from an answer may be shown as herd's for `req`: core's check (the
/// owner tag on the instance itself, every requested filter), in the region asked.
pub fn admits(req: &ListRequest, region: &str, i: &Instance) -> bool {
    i.region == region && herd_core::plumbing::admits(req, i)
}

pub async fn list_region(ec2: &Ec2, region: &str, req: &ListRequest, now: DateTime<Utc>) -> Result<Listed> {
    let page = req
        .page_size
        .map(|p| (p as i32).clamp(MIN_PAGE, MAX_PAGE))
        .unwrap_or(MAX_PAGE);
    let filters = filters(req);
    let mut out = Listed::default();
    let mut ids = HashSet::new();
    let mut pages = Pages::new("DescribeInstances", MAX_LISTED.div_ceil(page as u32) + 10);
    let mut token: Option<String> = None;
    loop {
        let r = ec2
            .describe_instances()
            .set_filters(Some(filters.clone()))
            .max_results(page)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(ec2.err())?;
        for res in r.reservations() {
            for i in res.instances() {
                let inst = convert(i, region, None, now);
                if admits(req, region, &inst) && ids.insert(inst.id.clone()) {
                    out.instances.push(inst);
                }
            }
        }
        match pages.next(r.next_token()).map_err(|e| ec2.context(e))? {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    out.pages = pages.count();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_token_stops_with_an_error() {
        let mut p = Pages::new("DescribeInstances", 100);
        assert_eq!(p.next(Some("a")).unwrap().as_deref(), Some("a"));
        assert_eq!(p.next(Some("b")).unwrap().as_deref(), Some("b"));
        let e = p.next(Some("a")).unwrap_err();
        assert_eq!(e.kind(), herd_core::ErrorKind::Unexpected);
        assert!(e.message().contains("same page token"), "{e}");
    }

    #[test]
    fn pages_are_bounded_and_end_on_no_token() {
        let mut p = Pages::new("DescribeVolumes", 3);
        assert!(p.next(Some("1")).unwrap().is_some());
        assert!(p.next(Some("2")).unwrap().is_some());
        assert!(p.next(Some("3")).is_err());
        let mut p = Pages::new("DescribeVolumes", 3);
        assert_eq!(p.next(Some("")).unwrap(), None);
        assert_eq!(p.next(None).unwrap(), None);
    }

    #[test]
    fn only_tagged_instances_of_the_region_asked_are_admitted() {
        let mut i = Instance::new(
            "i-1",
            herd_core::Cloud::Aws,
            "us-east-1",
            "us-east-1a",
            "t3.micro",
            herd_core::LaunchId::new("l").unwrap(),
            Utc::now(),
            Utc::now(),
            herd_core::Money::ZERO,
        );
        assert!(!admits(&ListRequest::new(), "us-east-1", &i));
        i.tags.insert(tags::OWNER.into(), "alice".into());
        assert!(admits(&ListRequest::new().tag(tags::OWNER, "alice"), "us-east-1", &i));
        assert!(!admits(&ListRequest::new().tag(tags::OWNER, "bob"), "us-east-1", &i));
        assert!(!admits(&ListRequest::new(), "eu-west-1", &i));
    }
}
