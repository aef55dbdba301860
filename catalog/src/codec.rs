//! The compact form of one cloud's catalog, for the bundled data and the user's overlay.
//!
//! Hand-rolled rather than serde-generic because load time is a budget (the whole
//! catalog in well under 20 ms): every string is stored once in a table and referenced
//! by index, numbers are LEB128 varints, prices are exact decimals (mantissa and scale),
//! and decoding is one pass with no intermediate structures.
//!
//! Layout (all integers varints unless noted):
//! `MAGIC`, cloud (byte), strings (count, then length + UTF-8 bytes each), sources
//! (name, as-of as days since 0001-01-01, licence), regions (name, zone count, zones),
//! types (name, family, vcpus, memory MiB, arch byte, vendor+1 or 0, cpu family+1 or 0,
//! GPU model+1 or 0 [then count, memory MiB per GPU]), offers (type, region, purchase
//! byte, source, price: 0 for unknown, else mantissa+1 then scale byte).

use std::collections::HashMap;

use chrono::NaiveDate;
use herd_core::catalog::Region;
use herd_core::{Arch, Catalog, Cloud, Error, Gpu, InstanceType, Money, Offer, PriceSource, PurchaseOption, Result};
use rust_decimal::Decimal;

const MAGIC: &[u8; 8] = b"HERDCAT\x01";

fn cloud_byte(c: Cloud) -> u8 {
    match c {
        Cloud::Local => 0,
        Cloud::Aws => 1,
        Cloud::Gcp => 2,
        Cloud::Azure => 3,
    }
}

fn byte_cloud(b: u8) -> Option<Cloud> {
    Some(match b {
        0 => Cloud::Local,
        1 => Cloud::Aws,
        2 => Cloud::Gcp,
        3 => Cloud::Azure,
        _ => return None,
    })
}

/// Encodes one cloud's part of `catalog` (types, regions and offers of other clouds are
/// left out). Offers whose type or region the catalog does not list are an error: the
/// decoder could not rebuild them.
pub fn encode(catalog: &Catalog, cloud: Cloud) -> Result<Vec<u8>> {
    let mut strings = Strings::default();
    let mut body = Vec::new();
    let w = &mut body;

    put(w, catalog.sources().len() as u64);
    for s in catalog.sources() {
        put(w, strings.id(&s.name));
        put(w, s.as_of.num_days_from_ce_u64());
        put(w, strings.id(&s.licence));
    }
    let regions: Vec<&Region> = catalog.regions(cloud).collect();
    let region_ids: HashMap<&str, u64> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i as u64))
        .collect();
    put(w, regions.len() as u64);
    for r in &regions {
        put(w, strings.id(&r.name));
        put(w, r.zones.len() as u64);
        for z in &r.zones {
            put(w, strings.id(z));
        }
    }
    let types: Vec<&InstanceType> = catalog.types().iter().filter(|t| t.cloud == cloud).collect();
    let type_ids: HashMap<&str, u64> = types
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i as u64))
        .collect();
    put(w, types.len() as u64);
    for t in &types {
        put(w, strings.id(&t.name));
        put(w, strings.id(&t.family));
        put(w, u64::from(t.vcpus));
        put(w, t.memory_mib);
        w.push(match t.arch {
            Arch::X86_64 => 0,
            Arch::Arm64 => 1,
        });
        put(w, t.cpu_vendor.as_deref().map_or(0, |v| strings.id(v) + 1));
        put(w, t.cpu_family.as_deref().map_or(0, |v| strings.id(v) + 1));
        match &t.gpu {
            None => put(w, 0),
            Some(g) => {
                put(w, strings.id(&g.model) + 1);
                put(w, u64::from(g.count));
                put(w, g.memory_mib);
            }
        }
    }
    let offers: Vec<&Offer> = catalog.offers().iter().filter(|o| o.cloud == cloud).collect();
    put(w, offers.len() as u64);
    for o in offers {
        let missing = |what: &str, name: &str| {
            Error::unexpected(format!(
                "cannot encode the {cloud} catalog: an offer names {what} `{name}` it does not list"
            ))
        };
        put(
            w,
            *type_ids
                .get(o.instance_type.as_str())
                .ok_or_else(|| missing("type", &o.instance_type))?,
        );
        put(
            w,
            *region_ids
                .get(o.region.as_str())
                .ok_or_else(|| missing("region", &o.region))?,
        );
        w.push(match o.purchase {
            PurchaseOption::OnDemand => 0,
            PurchaseOption::Spot => 1,
        });
        put(w, u64::from(o.source));
        match o.hourly {
            None => put(w, 0),
            Some(m) => {
                let d = m.amount.normalize();
                let mantissa = u64::try_from(d.mantissa()).map_err(|_| {
                    Error::unexpected(format!("negative price for {} in {}", o.instance_type, o.region))
                })?;
                put(w, mantissa + 1);
                w.push(d.scale() as u8);
            }
        }
    }

    let mut out = Vec::with_capacity(body.len() + strings.bytes + 64);
    out.extend_from_slice(MAGIC);
    out.push(cloud_byte(cloud));
    put(&mut out, strings.list.len() as u64);
    for s in &strings.list {
        put(&mut out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&body);
    Ok(out)
}

/// A catalog's parts before indexing, so several can be combined and indexed once.
pub type Parts = (Vec<InstanceType>, Vec<Offer>, Vec<PriceSource>, Vec<Region>);

/// Decodes what [`encode`] wrote. `what` names the data in errors (a file path, "bundled
/// AWS catalog").
pub fn decode(bytes: &[u8], what: &str) -> Result<(Cloud, Catalog)> {
    let (cloud, (types, offers, sources, regions)) = decode_parts(bytes, what)?;
    Ok((cloud, Catalog::new(types, offers, sources, regions)))
}

/// [`decode`] without building the catalog's indexes.
pub fn decode_parts(bytes: &[u8], what: &str) -> Result<(Cloud, Parts)> {
    let mut r = Reader { b: bytes, at: 0, what };
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(r.bad("not a herd catalog file (wrong header)"));
    }
    r.at = MAGIC.len();
    let cloud = byte_cloud(r.byte()?).ok_or_else(|| r.bad("unknown cloud"))?;

    let n = r.count()?;
    let mut strings: Vec<&str> = Vec::with_capacity(n);
    for _ in 0..n {
        let len = r.count()?;
        let raw = r.take(len)?;
        strings.push(std::str::from_utf8(raw).map_err(|_| r.bad("a string is not UTF-8"))?);
    }
    let s = |r: &mut Reader<'_>| -> Result<&str> {
        let i = r.count()?;
        strings
            .get(i)
            .copied()
            .ok_or_else(|| r.bad("string index out of range"))
    };
    let opt_s = |r: &mut Reader<'_>| -> Result<Option<&str>> {
        match r.count()? {
            0 => Ok(None),
            i => strings
                .get(i - 1)
                .copied()
                .map(Some)
                .ok_or_else(|| r.bad("string index out of range")),
        }
    };

    let n = r.count()?;
    let mut sources = Vec::with_capacity(n);
    for _ in 0..n {
        let name = s(&mut r)?.to_string();
        let days = i32::try_from(r.num()?).map_err(|_| r.bad("date out of range"))?;
        let as_of = NaiveDate::from_num_days_from_ce_opt(days).ok_or_else(|| r.bad("date out of range"))?;
        let licence = s(&mut r)?.to_string();
        sources.push(PriceSource { name, as_of, licence });
    }

    let n = r.count()?;
    let mut regions = Vec::with_capacity(n);
    for _ in 0..n {
        let name = s(&mut r)?.to_string();
        let nz = r.count()?;
        let mut zones = Vec::with_capacity(nz);
        for _ in 0..nz {
            zones.push(s(&mut r)?.to_string());
        }
        regions.push(Region { cloud, name, zones });
    }

    let n = r.count()?;
    let mut types = Vec::with_capacity(n);
    for _ in 0..n {
        let name = s(&mut r)?;
        let family = s(&mut r)?;
        let vcpus = u32::try_from(r.num()?).map_err(|_| r.bad("vCPUs out of range"))?;
        let memory_mib = r.num()?;
        let arch = match r.byte()? {
            0 => Arch::X86_64,
            1 => Arch::Arm64,
            _ => return Err(r.bad("unknown architecture")),
        };
        let mut t = InstanceType::new(cloud, name, family, vcpus, memory_mib, arch);
        t.cpu_vendor = opt_s(&mut r)?.map(str::to_string);
        t.cpu_family = opt_s(&mut r)?.map(str::to_string);
        if let Some(model) = opt_s(&mut r)? {
            let count = u32::try_from(r.num()?).map_err(|_| r.bad("GPU count out of range"))?;
            let memory_mib = r.num()?;
            t.gpu = Some(Gpu {
                model: model.to_string(),
                count,
                memory_mib,
            });
        }
        types.push(t);
    }

    let n = r.count()?;
    let mut offers = Vec::with_capacity(n);
    for _ in 0..n {
        let ti = r.count()?;
        let t = types.get(ti).ok_or_else(|| r.bad("type index out of range"))?;
        let ri = r.count()?;
        let region: &Region = regions.get(ri).ok_or_else(|| r.bad("region index out of range"))?;
        let purchase = match r.byte()? {
            0 => PurchaseOption::OnDemand,
            1 => PurchaseOption::Spot,
            _ => return Err(r.bad("unknown purchase option")),
        };
        let source = u32::try_from(r.num()?).map_err(|_| r.bad("source index out of range"))?;
        if source as usize >= sources.len() {
            return Err(r.bad("source index out of range"));
        }
        let hourly = match r.num()? {
            0 => None,
            m => {
                let scale = u32::from(r.byte()?);
                let mantissa = i64::try_from(m - 1).map_err(|_| r.bad("price out of range"))?;
                if scale > 28 {
                    return Err(r.bad("price scale out of range"));
                }
                Some(Money::usd(Decimal::new(mantissa, scale)))
            }
        };
        offers.push(Offer::new(
            cloud,
            t.name.as_str(),
            region.name.as_str(),
            purchase,
            hourly,
            source,
        ));
    }
    if r.at != bytes.len() {
        return Err(r.bad("trailing bytes"));
    }
    Ok((cloud, (types, offers, sources, regions)))
}

trait DaysFromCe {
    fn num_days_from_ce_u64(&self) -> u64;
}

impl DaysFromCe for NaiveDate {
    fn num_days_from_ce_u64(&self) -> u64 {
        use chrono::Datelike;
        self.num_days_from_ce().max(0) as u64
    }
}

/// Interns strings for the table.
#[derive(Default)]
struct Strings {
    ids: HashMap<String, u64>,
    list: Vec<String>,
    bytes: usize,
}

impl Strings {
    fn id(&mut self, s: &str) -> u64 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.list.len() as u64;
        self.ids.insert(s.to_string(), i);
        self.list.push(s.to_string());
        self.bytes += s.len() + 2;
        i
    }
}

fn put(w: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            w.push(b);
            return;
        }
        w.push(b | 0x80);
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    what: &'a str,
}

impl<'a> Reader<'a> {
    fn bad(&self, why: &str) -> Error {
        Error::config(format!("{} is damaged: {why} (at byte {})", self.what, self.at))
            .with_hint("run `herd catalog refresh` again, or delete the file to use the bundled catalog")
    }
    fn byte(&mut self) -> Result<u8> {
        let b = *self.b.get(self.at).ok_or_else(|| self.bad("truncated"))?;
        self.at += 1;
        Ok(b)
    }
    fn num(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.bad("number too long"))
    }
    /// A count or index: bounded by the data's length so garbage cannot ask for a huge
    /// allocation.
    fn count(&mut self) -> Result<usize> {
        let v = self.num()?;
        usize::try_from(v)
            .ok()
            .filter(|&n| n <= self.b.len() * 8 + 64)
            .ok_or_else(|| self.bad("count out of range"))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| self.bad("truncated"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Catalog {
        let src = PriceSource {
            name: "test source".into(),
            as_of: NaiveDate::from_ymd_opt(2025, 3, 2).unwrap(),
            licence: "Apache-2.0".into(),
        };
        let mut big = InstanceType::new(Cloud::Aws, "g5.xlarge", "g5", 4, 16384, Arch::X86_64);
        big.cpu_vendor = Some("AMD".into());
        big.cpu_family = Some("EPYC 7R32".into());
        big.gpu = Some(Gpu {
            model: "A10G".into(),
            count: 1,
            memory_mib: 24576,
        });
        let types = vec![
            InstanceType::new(Cloud::Aws, "c7g.large", "c7g", 2, 4096, Arch::Arm64),
            big,
        ];
        let regions = vec![
            Region {
                cloud: Cloud::Aws,
                name: "us-east-1".into(),
                zones: vec!["us-east-1a".into()],
            },
            Region {
                cloud: Cloud::Aws,
                name: "eu-west-1".into(),
                zones: vec![],
            },
        ];
        let offers = vec![
            Offer::new(
                Cloud::Aws,
                "c7g.large",
                "us-east-1",
                PurchaseOption::OnDemand,
                Some(Money::usd(Decimal::new(725, 4))),
                0,
            ),
            Offer::new(Cloud::Aws, "g5.xlarge", "eu-west-1", PurchaseOption::Spot, None, 0),
            Offer::new(
                Cloud::Aws,
                "g5.xlarge",
                "eu-west-1",
                PurchaseOption::OnDemand,
                Some(Money::usd(Decimal::new(1123, 3))),
                0,
            ),
        ];
        Catalog::new(types, offers, vec![src], regions)
    }

    #[test]
    fn round_trip_keeps_everything() {
        let c = sample();
        let bytes = encode(&c, Cloud::Aws).unwrap();
        let (cloud, d) = decode(&bytes, "test").unwrap();
        assert_eq!(cloud, Cloud::Aws);
        assert_eq!(d.types(), c.types());
        assert_eq!(d.offers(), c.offers());
        assert_eq!(d.sources(), c.sources());
        assert_eq!(
            d.regions(Cloud::Aws).collect::<Vec<_>>(),
            c.regions(Cloud::Aws).collect::<Vec<_>>()
        );
        // Unknown stays unknown, never zero.
        assert_eq!(d.offers()[1].hourly, None);
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let bytes = encode(&sample(), Cloud::Aws).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], "test").is_err(), "cut at {cut}");
        }
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        let e = decode(&wrong, "overlay aws.bin").unwrap_err();
        assert!(e.to_string().contains("overlay aws.bin"), "{e}");
        let mut extra = bytes;
        extra.push(0);
        assert!(decode(&extra, "test").is_err());
    }

    #[test]
    fn offers_of_unlisted_types_are_refused() {
        let mut c = sample();
        c.merge(Catalog::new(
            vec![],
            vec![Offer::new(
                Cloud::Aws,
                "zz.none",
                "us-east-1",
                PurchaseOption::OnDemand,
                None,
                0,
            )],
            vec![],
            vec![],
        ));
        assert!(encode(&c, Cloud::Aws).is_err());
    }
}
