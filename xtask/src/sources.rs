//! Readers for the public data the bundled catalog is generated from (see
//! `catalog/SOURCES.md`): the Spare Cores server and AWS price CSVs, and libcloud's
//! pricing JSON. They keep the sources' own facts and flag their quirks; turning them
//! into herd's model is `clouds.rs`'s job.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use chrono::{DateTime, NaiveDate};
use herd_core::Arch;
use rust_decimal::Decimal;
use serde_json::Value;

pub type Res<T> = std::result::Result<T, String>;

/// One row of `sparecores-data-*_servers_*.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// `aws`, `gcp`, `azure`.
    pub vendor: String,
    /// The name the cloud's API takes (`api_reference`): `c7g.large`, `n2-standard-8`,
    /// `Standard_D4s_v5`.
    pub name: String,
    /// Spare Cores' family (`c7g`, `n2d`, `DSv5`); herd derives its own for Azure.
    pub family: String,
    pub vcpus: u32,
    pub arch: Arch,
    pub cpu_manufacturer: String,
    pub cpu_family: String,
    pub cpu_model: String,
    pub memory_mib: u64,
    pub gpu_count: u32,
    /// Total over all GPUs, MiB; 0 when the source does not say.
    pub gpu_memory_total_mib: u64,
    pub gpu_model: String,
}

/// One row of `sparecores-data-0.1.0_aws_ondemand_*.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsPrice {
    pub region: String,
    pub instance_type: String,
    /// `None`: 0.0 in the source, which means unknown.
    pub price: Option<Decimal>,
}

/// Splits CSV text into rows of fields (RFC 4180 quoting: `"a,b"`, `""` for a quote).
pub fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Rows as maps from the header's column names; `need` columns must exist.
fn csv_records(text: &str, need: &[&str], what: &str) -> Res<Vec<HashMap<String, String>>> {
    let mut rows = csv_rows(text).into_iter();
    let header = rows.next().ok_or_else(|| format!("{what}: empty file"))?;
    for n in need {
        if !header.iter().any(|h| h == n) {
            return Err(format!("{what}: no `{n}` column (columns: {})", header.join(", ")));
        }
    }
    Ok(rows
        .filter(|r| !(r.len() == 1 && r[0].is_empty()))
        .map(|r| header.iter().cloned().zip(r).collect())
        .collect())
}

fn num<T: FromStr>(rec: &HashMap<String, String>, col: &str, what: &str) -> Res<T> {
    let v = rec.get(col).map(String::as_str).unwrap_or("");
    let v = if v.is_empty() { "0" } else { v };
    // Some numeric columns carry a float form of an integer ("16384.0").
    let v = v.strip_suffix(".0").unwrap_or(v);
    v.parse().map_err(|_| format!("{what}: `{col}` is `{v}`, not a number"))
}

/// A source's architecture name: the Mac hosts are ARM or x86 like any other, and the
/// `I386` types (t2.micro, m1.small) are 64-bit x86 machines that also run 32-bit AMIs.
pub fn arch(s: &str) -> Res<Arch> {
    match s {
        "ARM64" | "ARM64_MAC" => Ok(Arch::Arm64),
        "X86_64" | "X86_64_MAC" | "I386" => Ok(Arch::X86_64),
        other => Err(format!("unknown cpu_architecture `{other}`")),
    }
}

pub fn servers(text: &str) -> Res<Vec<Server>> {
    let need = [
        "vendor_id",
        "api_reference",
        "family",
        "vcpus",
        "cpu_architecture",
        "cpu_manufacturer",
        "cpu_family",
        "cpu_model",
        "memory_mib",
        "gpu_count",
        "gpu_memory_total",
        "gpu_model",
    ];
    csv_records(text, &need, "servers CSV")?
        .into_iter()
        .map(|r| {
            let name = r["api_reference"].clone();
            let what = format!("servers CSV, {name}");
            Ok(Server {
                vendor: r["vendor_id"].clone(),
                family: r["family"].clone(),
                vcpus: num(&r, "vcpus", &what)?,
                arch: arch(&r["cpu_architecture"]).map_err(|e| format!("{what}: {e}"))?,
                cpu_manufacturer: r["cpu_manufacturer"].clone(),
                cpu_family: r["cpu_family"].clone(),
                cpu_model: r["cpu_model"].clone(),
                memory_mib: num(&r, "memory_mib", &what)?,
                gpu_count: num(&r, "gpu_count", &what)?,
                gpu_memory_total_mib: num(&r, "gpu_memory_total", &what)?,
                gpu_model: r["gpu_model"].clone(),
                name,
            })
        })
        .collect()
}

/// Linux on-demand USD prices; other currencies (the CNY of the China regions) and
/// other allocations are left out.
pub fn aws_prices(text: &str) -> Res<Vec<AwsPrice>> {
    let need = [
        "region",
        "server_id",
        "operating_system",
        "allocation",
        "price",
        "currency",
        "unit",
    ];
    let mut out = Vec::new();
    for r in csv_records(text, &need, "AWS prices CSV")? {
        if r["operating_system"] != "Linux" || r["allocation"] != "ONDEMAND" || r["currency"] != "USD" {
            continue;
        }
        if r["unit"] != "HOUR" {
            return Err(format!("AWS prices CSV: unit `{}`, expected HOUR", r["unit"]));
        }
        out.push(AwsPrice {
            region: r["region"].clone(),
            instance_type: r["server_id"].clone(),
            price: price(&r["price"]).map_err(|e| format!("AWS prices CSV, {}: {e}", r["server_id"]))?,
        });
    }
    Ok(out)
}

/// A price as the sources print it; 0 means unknown.
pub fn price(s: &str) -> Res<Option<Decimal>> {
    let d = Decimal::from_str(s)
        .or_else(|_| Decimal::from_scientific(s))
        .map_err(|_| format!("`{s}` is not a price"))?;
    if d.is_sign_negative() {
        return Err(format!("negative price `{s}`"));
    }
    Ok(if d.is_zero() { None } else { Some(d.normalize()) })
}

fn json_price(v: &Value, what: &str) -> Res<Option<Decimal>> {
    match v {
        // The shortest decimal that round-trips the f64: what the file says.
        Value::Number(n) => price(&n.to_string()).map_err(|e| format!("{what}: {e}")),
        Value::Null => Ok(None),
        other => Err(format!("{what}: expected a number, found {other}")),
    }
}

/// Per instance type, per region: price (None = unknown).
pub type PriceTable = BTreeMap<String, BTreeMap<String, Option<Decimal>>>;

/// Per region: price per unit (vCPU-hour, GiB-hour, or instance-hour for f1/g1).
pub type Rates = BTreeMap<String, Option<Decimal>>;

/// One GCE machine family in libcloud: on-demand and preemptible rates per component.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GceFamily {
    pub cpu_on_demand: Rates,
    pub cpu_preemptible: Rates,
    pub ram_on_demand: Rates,
    pub ram_preemptible: Rates,
    /// libcloud's description of the CPU SKU (`micro instance` for f1 means per instance).
    pub cpu_description: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Libcloud {
    /// `updated`, as a date.
    pub as_of: NaiveDate,
    pub ec2_linux: PriceTable,
    pub azure_linux: PriceTable,
    pub gce: BTreeMap<String, GceFamily>,
}

fn price_table(v: Option<&Value>, what: &str) -> Res<PriceTable> {
    let obj = v
        .and_then(Value::as_object)
        .ok_or_else(|| format!("libcloud: no `{what}` table"))?;
    let mut out = PriceTable::new();
    for (name, regions) in obj {
        let regions = regions
            .as_object()
            .ok_or_else(|| format!("libcloud {what}.{name}: not an object"))?;
        let mut m = BTreeMap::new();
        for (region, p) in regions {
            m.insert(
                region.clone(),
                json_price(p, &format!("libcloud {what}.{name}.{region}"))?,
            );
        }
        out.insert(name.clone(), m);
    }
    Ok(out)
}

fn rates(v: Option<&Value>, what: &str) -> Res<Rates> {
    let mut out = Rates::new();
    let Some(obj) = v.and_then(Value::as_object) else {
        return Ok(out);
    };
    for (region, entry) in obj {
        out.insert(
            region.clone(),
            json_price(entry.get("price").unwrap_or(&Value::Null), &format!("{what}.{region}"))?,
        );
    }
    Ok(out)
}

pub fn libcloud(text: &str) -> Res<Libcloud> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("libcloud pricing JSON: {e}"))?;
    let updated = v
        .get("updated")
        .and_then(Value::as_i64)
        .ok_or("libcloud pricing JSON: no `updated` time")?;
    let as_of = DateTime::from_timestamp(updated, 0)
        .ok_or("libcloud pricing JSON: `updated` out of range")?
        .date_naive();
    let compute = v.get("compute").ok_or("libcloud pricing JSON: no `compute`")?;
    let mut gce = BTreeMap::new();
    let fams = compute
        .get("gce_instances")
        .and_then(Value::as_object)
        .ok_or("libcloud: no `gce_instances` table")?;
    for (family, parts) in fams {
        let what = format!("libcloud gce_instances.{family}");
        let cpu = parts.get("cpu");
        let ram = parts.get("ram");
        gce.insert(
            family.clone(),
            GceFamily {
                cpu_on_demand: rates(cpu.and_then(|c| c.get("on_demand")), &format!("{what}.cpu.on_demand"))?,
                cpu_preemptible: rates(
                    cpu.and_then(|c| c.get("preemptible")),
                    &format!("{what}.cpu.preemptible"),
                )?,
                ram_on_demand: rates(ram.and_then(|c| c.get("on_demand")), &format!("{what}.ram.on_demand"))?,
                ram_preemptible: rates(
                    ram.and_then(|c| c.get("preemptible")),
                    &format!("{what}.ram.preemptible"),
                )?,
                cpu_description: cpu
                    .and_then(|c| c.get("description"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            },
        );
    }
    Ok(Libcloud {
        as_of,
        ec2_linux: price_table(compute.get("ec2_linux"), "ec2_linux")?,
        azure_linux: price_table(compute.get("azure_linux"), "azure_linux")?,
        gce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn csv_quoting() {
        let rows = csv_rows("a,b\n\"x, y\",\"say \"\"hi\"\"\"\r\nlast,\n");
        assert_eq!(rows, vec![vec!["a", "b"], vec!["x, y", "say \"hi\""], vec!["last", ""]]);
    }

    #[test]
    fn servers_excerpt() {
        let s = servers(&fixture("servers.csv")).unwrap();
        let c7g = s.iter().find(|s| s.name == "c7g.large").unwrap();
        assert_eq!((c7g.vcpus, c7g.memory_mib, c7g.arch), (2, 4096, Arch::Arm64));
        assert_eq!(c7g.cpu_model, "Neoverse-V1");
        let t2 = s.iter().find(|s| s.name == "t2.micro").unwrap();
        assert_eq!(t2.arch, Arch::X86_64, "I386 is a 64-bit x86 machine");
        let a2 = s.iter().find(|s| s.name == "a2-highgpu-1g").unwrap();
        assert_eq!(
            (a2.gpu_count, a2.gpu_memory_total_mib, a2.gpu_model.as_str()),
            (1, 40960, "A100")
        );
        assert!(servers("vendor_id,name\naws,x\n")
            .unwrap_err()
            .contains("api_reference"));
        let bad = fixture("servers.csv").replacen("ARM64", "SPARC", 1);
        assert!(servers(&bad).unwrap_err().contains("SPARC"));
    }

    #[test]
    fn aws_prices_excerpt_keeps_usd_linux_and_unknowns() {
        let p = aws_prices(&fixture("aws_ondemand.csv")).unwrap();
        assert!(p.iter().all(|p| !p.region.starts_with("cn-")), "CNY rows are left out");
        let a1 = p
            .iter()
            .find(|p| p.instance_type == "a1.2xlarge" && p.region == "ap-south-1")
            .unwrap();
        assert_eq!(a1.price, Some(Decimal::new(204, 3)));
        // The excerpt has no 0.0 row (nor has the whole file); the rule is the same as libcloud's.
        assert_eq!(price("0.0").unwrap(), None, "0.0 in a source is unknown");
    }

    #[test]
    fn libcloud_excerpt() {
        let l = libcloud(&fixture("libcloud.json")).unwrap();
        assert_eq!(l.as_of, NaiveDate::from_ymd_opt(2025, 3, 2).unwrap());
        assert_eq!(l.ec2_linux["a1.medium"]["us-east-1"], Some(Decimal::new(27, 3)));
        assert_eq!(l.ec2_linux["a1.medium"]["ap-northeast-1"], None, "0.0 is unknown");
        let n2 = &l.gce["n2"];
        assert_eq!(n2.cpu_on_demand["us-central1"], Some(Decimal::new(31611, 6)));
        assert!(l.azure_linux.contains_key("standardd2sv3"));
        assert!(price("-1").is_err());
        assert_eq!(price("1e-5").unwrap(), Some(Decimal::new(1, 5)));
    }
}
