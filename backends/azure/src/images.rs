//! The boot image per architecture: Canonical's Ubuntu LTS Gen2 marketplace images
//! (`latest`, so herd never pins a stale one), overridable per architecture in `[azure]`
//! or per launch as `publisher:offer:sku:version` (the Azure CLI's URN). An image that
//! is plainly for the other architecture is refused before any call.
//! URNs: `az vm image list --publisher Canonical --all` and
//! <https://documentation.ubuntu.com/azure/en/latest/azure-how-to/instances/find-ubuntu-images/>.

use herd_core::{Arch, Error, Result};
use serde_json::{json, Value};

/// Ubuntu 24.04 LTS, Gen2, x86_64 (the default).
pub const UBUNTU_2404_X86_64: &str = "Canonical:ubuntu-24_04-lts:server:latest";
/// Ubuntu 24.04 LTS, arm64 (Gen2 only: Dpsv5, Epsv5 and the like).
pub const UBUNTU_2404_ARM64: &str = "Canonical:ubuntu-24_04-lts:server-arm64:latest";
pub const UBUNTU_2204_X86_64: &str = "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest";
pub const UBUNTU_2204_ARM64: &str = "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-arm64:latest";

/// An image reference: a marketplace URN, or a resource id (`/subscriptions/...` of a
/// gallery image or managed image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    Marketplace {
        publisher: String,
        offer: String,
        sku: String,
        version: String,
    },
    Id(String),
}

impl Image {
    pub fn parse(s: &str) -> Result<Image> {
        if s.starts_with('/') {
            return Ok(Image::Id(s.to_string()));
        }
        let p: Vec<&str> = s.split(':').collect();
        if p.len() != 4 || p.iter().any(|x| x.is_empty()) {
            return Err(Error::invalid_spec(format!(
                "image `{s}` is neither publisher:offer:sku:version nor a resource id"
            ))
            .with_hint(format!("e.g. {UBUNTU_2404_X86_64}")));
        }
        Ok(Image::Marketplace {
            publisher: p[0].into(),
            offer: p[1].into(),
            sku: p[2].into(),
            version: p[3].into(),
        })
    }

    /// `storageProfile.imageReference`.
    pub fn reference(&self) -> Value {
        match self {
            Image::Marketplace {
                publisher,
                offer,
                sku,
                version,
            } => json!({ "publisher": publisher, "offer": offer, "sku": sku, "version": version }),
            Image::Id(id) => json!({ "id": id }),
        }
    }

    fn says_arm(&self) -> bool {
        let l = match self {
            Image::Marketplace { offer, sku, .. } => format!("{offer}:{sku}"),
            Image::Id(id) => id.clone(),
        }
        .to_ascii_lowercase();
        l.contains("arm64") || l.contains("aarch64")
    }
}

/// The image for `arch`: the launch's own, else the configured one, else Ubuntu 24.04.
pub fn resolve(arch: Arch, size: &str, explicit: Option<&str>) -> Result<Image> {
    let text = explicit.map(str::to_string).unwrap_or_else(|| match arch {
        Arch::Arm64 => UBUNTU_2404_ARM64.into(),
        _ => UBUNTU_2404_X86_64.into(),
    });
    let image = Image::parse(&text)?;
    if image.says_arm() && arch != Arch::Arm64 {
        return Err(
            Error::invalid_spec(format!("image {text} is for arm64, but {size} is {}", arch.as_str())).with_hint(
                format!("pick an arm64 size (Standard_D2ps_v5, ...) or an x86_64 image, e.g. {UBUNTU_2404_X86_64}"),
            ),
        );
    }
    let canonical_x86 = matches!(&image, Image::Marketplace { publisher, .. } if publisher.eq_ignore_ascii_case("canonical"))
        && !image.says_arm();
    if arch == Arch::Arm64 && canonical_x86 {
        return Err(
            Error::invalid_spec(format!("image {text} is for x86_64, but {size} is arm64"))
                .with_hint(format!("use an arm64 image, e.g. {UBUNTU_2404_ARM64}")),
        );
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ubuntu_by_arch_and_mismatches_refused() {
        assert_eq!(
            resolve(Arch::X86_64, "Standard_D2s_v5", None).unwrap(),
            Image::parse(UBUNTU_2404_X86_64).unwrap()
        );
        assert_eq!(
            resolve(Arch::Arm64, "Standard_D2ps_v5", None).unwrap(),
            Image::parse(UBUNTU_2404_ARM64).unwrap()
        );
        let e = resolve(Arch::X86_64, "Standard_D2s_v5", Some(UBUNTU_2204_ARM64)).unwrap_err();
        assert!(
            e.message().contains("is for arm64, but Standard_D2s_v5 is x86_64"),
            "{e}"
        );
        let e = resolve(Arch::Arm64, "Standard_D2ps_v5", Some(UBUNTU_2204_X86_64)).unwrap_err();
        assert!(e.message().contains("is for x86_64"), "{e}");
        assert!(resolve(Arch::X86_64, "x", Some("ubuntu")).is_err());
        assert_eq!(
            Image::parse("/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/i")
                .unwrap()
                .reference()["id"],
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/i"
        );
    }
}
