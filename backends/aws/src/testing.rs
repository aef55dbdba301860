//! Test servers for this crate's tests, the conformance suite, the CLI's end-to-end tests
//! and the benchmark. They live in `herd-testkit` (moto's launcher, the protocol-neutral
//! fault proxy speaking EC2's query protocol, planting and checking resources straight in
//! moto); this module re-exports them under their old names, and keeps the one helper that
//! needs this crate's own code (the image lookup of [`raw_run_instances`]).

use std::time::{Duration, Instant};

pub use herd_testkit::ec2::{check_planted, direct_client, make_busy, plant, Planted};
pub use herd_testkit::moto::{moto_binary, Moto};
pub use herd_testkit::protocol::{
    ec2_error_body as error_body, parse_form, with_next_token, without_items_mentioning, Effect, Failure, Seen,
};
pub use herd_testkit::proxy::{pass, Fault, FaultProxy, Rewriter, Rule, Tokens};

/// One plain RunInstances of `count` x `instance_type` (MinCount = MaxCount = count)
/// straight from the SDK, as a baseline for the launch benchmark; the image is resolved
/// before, outside what the caller times. Returns the instance ids.
pub async fn raw_run_instances(
    endpoint: &str,
    region: &str,
    instance_type: &str,
    arch: herd_core::Arch,
    count: i32,
) -> Result<(Duration, Vec<String>), String> {
    let conf = aws_sdk_ec2::config::Builder::new()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .build();
    let client = aws_sdk_ec2::Client::from_conf(conf);
    let image = crate::images::ImageCache::default()
        .resolve(
            &crate::Ec2::new(client.clone(), Some(endpoint), region),
            arch,
            instance_type,
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let r = client
        .run_instances()
        .image_id(image.id)
        .instance_type(aws_sdk_ec2::types::InstanceType::from(instance_type))
        .min_count(count)
        .max_count(count)
        .send()
        .await
        .map_err(|e| crate::error::from_sdk(e).to_string())?;
    let took = start.elapsed();
    Ok((
        took,
        r.instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect(),
    ))
}
