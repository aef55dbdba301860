//! The boot image per architecture: Debian 12's public image families (a family names
//! the newest image, so herd never pins a stale one), overridable per architecture in
//! `[gcp]` or per launch. An image that is plainly for the other architecture is refused
//! before any call.
//! Families: <https://cloud.google.com/compute/docs/images/os-details#debian>.

use herd_core::{Arch, Error, Result};

pub const DEBIAN_X86_64: &str = "projects/debian-cloud/global/images/family/debian-12";
pub const DEBIAN_ARM64: &str = "projects/debian-cloud/global/images/family/debian-12-arm64";

/// The image for `arch`: the launch's own, else the configured one, else Debian's family.
pub fn resolve(arch: Arch, machine_type: &str, explicit: Option<&str>) -> Result<String> {
    let image = explicit.map(str::to_string).unwrap_or_else(|| match arch {
        Arch::Arm64 => DEBIAN_ARM64.into(),
        _ => DEBIAN_X86_64.into(),
    });
    let says_arm = {
        let l = image.to_ascii_lowercase();
        l.contains("arm64") || l.contains("aarch64")
    };
    if says_arm && arch != Arch::Arm64 {
        return Err(Error::invalid_spec(format!(
            "image {image} is for arm64, but {machine_type} is {}",
            arch.as_str()
        ))
        .with_hint("pick an arm64 type (t2a-, c4a-) or an x86_64 image, e.g. family/debian-12"));
    }
    if arch == Arch::Arm64 && explicit.is_some() && !says_arm {
        // A custom image may well be arm64 without saying so: only the defaults are known.
        return Ok(image);
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_by_arch_and_arm_on_x86_refused() {
        assert_eq!(resolve(Arch::X86_64, "e2-micro", None).unwrap(), DEBIAN_X86_64);
        assert_eq!(resolve(Arch::Arm64, "t2a-standard-1", None).unwrap(), DEBIAN_ARM64);
        let e = resolve(Arch::X86_64, "e2-micro", Some(DEBIAN_ARM64)).unwrap_err();
        assert_eq!(e.kind(), herd_core::ErrorKind::InvalidSpec);
        assert!(e.message().contains("is for arm64, but e2-micro is x86_64"), "{e}");
    }
}
