//! `cargo xtask catalog [--data DIR] [--out DIR]`: regenerates the bundled catalogs
//! (`catalog/data/{aws,gcp,azure}.bin`) from the public data in DIR (default
//! `../shared/data/catalog` beside the checkout, or `$HERD_CATALOG_DATA`). Not part of
//! the herd binary.

mod clouds;
mod sources;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::NaiveDate;
use herd_core::{Catalog, Cloud};

const SERVERS: &str = "sparecores-data-0.3.4_servers_aws_gcp_azure.csv";
const AWS_2024: &str = "sparecores-data-0.1.0_aws_ondemand_2024-02-21.csv";
const LIBCLOUD: &str = "libcloud-3.9.1-pricing.json";

fn usage() -> String {
    "usage: cargo xtask catalog [--data DIR] [--out DIR]".to_string()
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut it = args.into_iter();
    match it.next().as_deref() {
        Some("catalog") => {}
        _ => return Err(usage()),
    }
    let mut data = std::env::var_os("HERD_CATALOG_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data/catalog"));
    let mut out = root.join("catalog/data");
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(usage)?;
        match flag.as_str() {
            "--data" => data = PathBuf::from(value),
            "--out" => out = PathBuf::from(value),
            _ => return Err(usage()),
        }
    }
    let read = |name: &str| {
        let p = data.join(name);
        std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let servers = sources::servers(&read(SERVERS)?)?;
    let lc = sources::libcloud(&read(LIBCLOUD)?)?;
    let old = sources::aws_prices(&read(AWS_2024)?)?;
    let old_as_of = NaiveDate::from_ymd_opt(2024, 2, 21).ok_or("bad date")?;

    let parts = [
        (Cloud::Aws, clouds::aws(&servers, &lc, &old, old_as_of)),
        (Cloud::Gcp, clouds::gcp(&servers, &lc)),
        (Cloud::Azure, clouds::azure(&servers, &lc)),
    ];
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (cloud, c) in &parts {
        let bytes = herd_catalog::codec::encode(c, *cloud).map_err(|e| e.to_string())?;
        let p = out.join(format!("{cloud}.bin"));
        std::fs::write(&p, &bytes).map_err(|e| format!("{}: {e}", p.display()))?;
        println!("{}: {} bytes; {}", p.display(), bytes.len(), summary(c));
    }
    Ok(())
}

fn summary(c: &Catalog) -> String {
    let priced = c.offers().iter().filter(|o| o.hourly.is_some()).count();
    let offered: std::collections::BTreeSet<&str> = c.offers().iter().map(|o| o.instance_type.as_str()).collect();
    let by_source: Vec<String> = c
        .sources()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n = c.offers().iter().filter(|o| o.source as usize == i).count();
            format!("{n} from {}", s.name)
        })
        .collect();
    format!(
        "{} types ({} with offers), {} offers ({priced} priced, {} unknown): {}",
        c.types().len(),
        offered.len(),
        c.offers().len(),
        c.offers().len() - priced,
        by_source.join("; ")
    )
}
