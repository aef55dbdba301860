//! DescribeInstances filtered by herd's tags on the server side, every page.

use aws_sdk_ec2::types::Filter;
use aws_sdk_ec2::Client;
use chrono::{DateTime, Utc};
use herd_core::{tags, Instance, ListRequest, Result};

use crate::error::from_sdk;
use crate::instance::{convert, ec2_states};

/// EC2's bounds on `MaxResults` for DescribeInstances (API reference).
pub const MIN_PAGE: i32 = 5;
pub const MAX_PAGE: i32 = 1000;

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

/// What one region's listing returned, and how many pages it took.
#[derive(Debug, Default)]
pub struct Listed {
    pub instances: Vec<Instance>,
    pub pages: u32,
}

pub async fn list_region(client: &Client, region: &str, req: &ListRequest, now: DateTime<Utc>) -> Result<Listed> {
    let page = req
        .page_size
        .map(|p| (p as i32).clamp(MIN_PAGE, MAX_PAGE))
        .unwrap_or(MAX_PAGE);
    let filters = filters(req);
    let mut out = Listed::default();
    let mut token: Option<String> = None;
    loop {
        let r = client
            .describe_instances()
            .set_filters(Some(filters.clone()))
            .max_results(page)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(from_sdk)?;
        out.pages += 1;
        for res in r.reservations() {
            for i in res.instances() {
                let inst = convert(i, region, None, now);
                if req.matches(&inst) {
                    out.instances.push(inst);
                }
            }
        }
        match r.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}
