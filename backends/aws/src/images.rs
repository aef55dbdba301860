//! A current Linux image for an architecture: Amazon Linux 2023 from Amazon's own
//! images (DescribeImages, owner `amazon`, newest by creation date), or the user's AMI,
//! whose architecture is checked against the instance type before anything launches.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_ec2::types::{ArchitectureValues, Filter, Image};
use aws_sdk_ec2::Client;
use herd_core::{Arch, Error, Result};

use crate::error::from_sdk;

/// What RunInstances needs from an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    pub id: String,
    pub arch: Arch,
    /// The root volume's device, so it can be marked delete-on-termination.
    pub root_device: Option<String>,
    /// The root volume's snapshot and size, repeated in the override (emulators want them).
    pub root_snapshot: Option<String>,
    pub root_size_gib: Option<i32>,
}

/// Images already resolved, per (region, image or arch): one DescribeImages per process.
#[derive(Debug, Default)]
pub struct ImageCache(Mutex<HashMap<(String, String), ResolvedImage>>);

/// The name pattern of Amazon Linux 2023's standard images for `arch`.
pub fn al2023_pattern(arch: Arch) -> String {
    format!("al2023-ami-2023.*-kernel-*-{}", arch.as_str())
}

fn ec2_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::Arm64 => "arm64",
    }
}

fn arch_of(image: &Image) -> Option<Arch> {
    match image.architecture()? {
        ArchitectureValues::X8664 => Some(Arch::X86_64),
        ArchitectureValues::Arm64 => Some(Arch::Arm64),
        _ => None,
    }
}

impl ImageCache {
    /// The image to launch `instance_type` (of `arch`) from: `explicit` when given (and of
    /// the right architecture), else the newest Amazon Linux 2023 for `arch`.
    pub async fn resolve(
        &self,
        client: &Client,
        region: &str,
        arch: Arch,
        instance_type: &str,
        explicit: Option<&str>,
    ) -> Result<ResolvedImage> {
        let key = (region.to_string(), explicit.unwrap_or(arch.as_str()).to_string());
        if let Some(hit) = self.0.lock().expect("image cache").get(&key) {
            return check_arch(hit.clone(), arch, instance_type);
        }
        let found = match explicit {
            Some(id) => by_id(client, id).await?,
            None => newest(client, arch).await?,
        };
        self.0.lock().expect("image cache").insert(key, found.clone());
        check_arch(found, arch, instance_type)
    }
}

fn check_arch(image: ResolvedImage, want: Arch, instance_type: &str) -> Result<ResolvedImage> {
    if image.arch != want {
        return Err(Error::invalid_spec(format!(
            "image {} is {}, but {instance_type} is {}",
            image.id, image.arch, want
        ))
        .with_hint(format!(
            "use a {want} image for {instance_type}, or drop --image to get the current Amazon Linux for {want}"
        )));
    }
    Ok(image)
}

async fn by_id(client: &Client, id: &str) -> Result<ResolvedImage> {
    if !id.starts_with("ami-") {
        return Err(Error::invalid_spec(format!("`{id}` is not an AMI id"))
            .with_hint("an image on AWS is an AMI id such as `ami-0123456789abcdef0`"));
    }
    let out = client.describe_images().image_ids(id).send().await.map_err(from_sdk)?;
    let image = out
        .images()
        .first()
        .ok_or_else(|| Error::invalid_spec(format!("image {id} does not exist in this region")))?;
    to_resolved(image)
}

async fn newest(client: &Client, arch: Arch) -> Result<ResolvedImage> {
    let out = client
        .describe_images()
        .owners("amazon")
        .filters(Filter::builder().name("name").values(al2023_pattern(arch)).build())
        .filters(Filter::builder().name("architecture").values(ec2_arch(arch)).build())
        .filters(Filter::builder().name("state").values("available").build())
        .send()
        .await
        .map_err(from_sdk)?;
    let best = out
        .images()
        .iter()
        .filter(|i| arch_of(i) == Some(arch))
        .max_by(|a, b| {
            (a.creation_date().unwrap_or(""), a.name().unwrap_or(""))
                .cmp(&(b.creation_date().unwrap_or(""), b.name().unwrap_or("")))
        })
        .ok_or_else(|| {
            Error::not_found(format!("no Amazon Linux 2023 image for {arch} in this region"))
                .with_hint("name an image with --image ami-...")
        })?;
    to_resolved(best)
}

fn to_resolved(image: &Image) -> Result<ResolvedImage> {
    let id = image.image_id().unwrap_or_default().to_string();
    let arch = arch_of(image).ok_or_else(|| {
        Error::invalid_spec(format!(
            "image {id} has architecture {:?}, which herd cannot launch",
            image.architecture()
        ))
    })?;
    let root_device = image.root_device_name().map(str::to_string);
    let root = image
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == root_device.as_deref())
        .and_then(|m| m.ebs());
    Ok(ResolvedImage {
        id,
        arch,
        root_device,
        root_snapshot: root.and_then(|e| e.snapshot_id()).map(str::to_string),
        root_size_gib: root.and_then(|e| e.volume_size()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatched_arch_is_a_user_error_naming_both() {
        let img = ResolvedImage {
            id: "ami-1".into(),
            arch: Arch::Arm64,
            root_device: None,
            root_snapshot: None,
            root_size_gib: None,
        };
        let e = check_arch(img.clone(), Arch::X86_64, "t3.micro").unwrap_err();
        assert_eq!(e.kind(), herd_core::ErrorKind::InvalidSpec);
        assert!(e.message().contains("arm64") && e.message().contains("t3.micro"), "{e}");
        assert!(check_arch(img, Arch::Arm64, "t4g.micro").is_ok());
    }

    #[test]
    fn pattern_names_the_arch() {
        assert_eq!(al2023_pattern(Arch::Arm64), "al2023-ami-2023.*-kernel-*-arm64");
    }
}
