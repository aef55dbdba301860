//! How Compute Engine prices a machine type, shared by the generator (from libcloud's
//! per-family rates) and `herd catalog refresh` (from the Cloud Billing Catalog's SKUs),
//! so both compute the same number. Worked example in catalog/SOURCES.md.

use rust_decimal::{Decimal, RoundingStrategy};

/// Shared-core types are billed for a fraction of a vCPU (GCE docs, "shared-core machine
/// types": e2-micro 0.25, e2-small 0.5, e2-medium 1), plus their memory.
pub fn billed_vcpus(name: &str, vcpus: u32) -> Decimal {
    match name {
        "e2-micro" => Decimal::new(25, 2),
        "e2-small" => Decimal::new(5, 1),
        "e2-medium" => Decimal::ONE,
        _ => Decimal::from(vcpus),
    }
}

/// vCPUs times the family's vCPU-hour rate plus GiB times its GiB-hour rate, to 6 places
/// (GCE bills per second; 6 places keep sub-cent types distinct).
pub fn price(name: &str, vcpus: u32, memory_mib: u64, cpu_rate: Decimal, ram_rate: Decimal) -> Decimal {
    let gib = Decimal::from(memory_mib) / Decimal::from(1024);
    (billed_vcpus(name, vcpus) * cpu_rate + gib * ram_rate)
        .round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// GCE family from the machine type name: `n2d-standard-8` is `n2d`.
pub fn family(name: &str) -> &str {
    name.split('-').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example() {
        // n2-standard-8 in us-central1: 8 x 0.031611 + 32 x 0.004237 = 0.388472
        let p = price("n2-standard-8", 8, 32768, Decimal::new(31611, 6), Decimal::new(4237, 6));
        assert_eq!(p, Decimal::new(388472, 6));
        assert_eq!(billed_vcpus("e2-micro", 2), Decimal::new(25, 2));
        assert_eq!(family("n2d-highmem-4"), "n2d");
    }
}
