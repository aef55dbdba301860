//! A current Linux image for an architecture: Amazon Linux 2023 from Amazon's own
//! images (DescribeImages, owner `amazon`, newest by creation date), or the user's AMI,
//! whose architecture is checked against the instance type before anything launches.
//!
//! Each answer is compared with what was asked: asked for one AMI, herd launches that AMI
//! or nothing (a server that ignores `ImageIds` must not hand it another), and the newest
//! Amazon Linux is chosen only among images whose name, architecture, owner and state
//! the answer itself shows match.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_ec2::types::{ArchitectureValues, Filter, Image, ImageState};
use herd_core::{Arch, Error, Result};

use crate::client::Ec2;

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
        client: &Ec2,
        arch: Arch,
        instance_type: &str,
        explicit: Option<&str>,
    ) -> Result<ResolvedImage> {
        let key = (
            client.region().to_string(),
            explicit.unwrap_or(arch.as_str()).to_string(),
        );
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

async fn by_id(client: &Ec2, id: &str) -> Result<ResolvedImage> {
    if !id.starts_with("ami-") {
        return Err(Error::invalid_spec(format!("`{id}` is not an AMI id"))
            .with_hint("an image on AWS is an AMI id such as `ami-0123456789abcdef0`"));
    }
    let out = client
        .describe_images()
        .image_ids(id)
        .send()
        .await
        .map_err(client.err())?;
    let image = out.images().iter().find(|i| i.image_id() == Some(id)).ok_or_else(|| {
        let n = out.images().len();
        let e = Error::invalid_spec(format!("image {id} does not exist in {}", client.region()));
        if n > 0 {
            // Something answered, but not about this image: never launch another one.
            client.context(e.with_hint(format!(
                "EC2 answered with {n} other image(s) and not {id}; herd launches only the image asked"
            )))
        } else {
            e.with_hint("AMI ids are per region: look it up in this region, or drop --image")
        }
    })?;
    to_resolved(image)
}

/// Amazon's own images: the `amazon` owner alias, or the account that publishes Amazon
/// Linux (137112412989 in the commercial regions, per the Amazon Linux 2023 user guide).
fn is_amazons(image: &Image) -> bool {
    image.image_owner_alias() == Some("amazon") || image.owner_id() == Some("137112412989")
}

/// `name` against a pattern with `*` wildcards (DescribeImages' filter syntax).
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

async fn newest(client: &Ec2, arch: Arch) -> Result<ResolvedImage> {
    let pattern = al2023_pattern(arch);
    let out = client
        .describe_images()
        .owners("amazon")
        .filters(Filter::builder().name("name").values(&pattern).build())
        .filters(Filter::builder().name("architecture").values(ec2_arch(arch)).build())
        .filters(Filter::builder().name("state").values("available").build())
        .send()
        .await
        .map_err(client.err())?;
    let best = out
        .images()
        .iter()
        .filter(|i| arch_of(i) == Some(arch))
        .filter(|i| i.name().is_some_and(|n| glob(&pattern, n)))
        .filter(|i| i.state().is_none_or(|s| *s == ImageState::Available))
        .filter(|i| is_amazons(i))
        .max_by(|a, b| {
            (a.creation_date().unwrap_or(""), a.name().unwrap_or(""))
                .cmp(&(b.creation_date().unwrap_or(""), b.name().unwrap_or("")))
        })
        .ok_or_else(|| {
            Error::not_found(format!("no Amazon Linux 2023 image for {arch} in {}", client.region()))
                .with_hint("name an image with --image ami-...")
        })?;
    to_resolved(best)
}

fn to_resolved(image: &Image) -> Result<ResolvedImage> {
    let id = image.image_id().unwrap_or_default().to_string();
    let arch = arch_of(image).ok_or_else(|| {
        Error::invalid_spec(format!(
            "image {id} has architecture {}, which herd cannot launch",
            image.architecture().map(|a| a.as_str()).unwrap_or("(none given)")
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
    fn glob_matches_like_describe_images() {
        let p = al2023_pattern(Arch::X86_64);
        assert!(glob(&p, "al2023-ami-2023.6.20250101.0-kernel-6.1-x86_64"));
        assert!(!glob(&p, "al2023-ami-2023.6.20250101.0-kernel-6.1-arm64"));
        assert!(!glob(&p, "amzn2-ami-hvm-2.0-x86_64"));
        assert!(!glob(&p, "al2023-ami-minimal-2023.6-kernel-6.1-x86_64"));
        assert!(glob("abc", "abc") && !glob("abc", "abcd"));
    }

    #[test]
    fn pattern_names_the_arch() {
        assert_eq!(al2023_pattern(Arch::Arm64), "al2023-ami-2023.*-kernel-*-arm64");
    }
}
