//! End-to-end tests of `herd catalog` and `herd plan` over the real bundled catalogs,
//! and `herd catalog refresh` against recorded Azure Retail Prices pages served from
//! 127.0.0.1. Clean environment, temp HOME, no network.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use herd_testkit::cli::{Herd, Run};
use herd_testkit::Moto;
use serde_json::Value;

const HERD: &str = env!("CARGO_BIN_EXE_herd");

/// A scratch sandbox (herd-testkit's CLI harness): clean environment, temp HOME.
fn sandbox() -> Herd {
    Herd::new(HERD)
}

fn herd(h: &Herd, args: &[&str], env: &[(&str, &str)]) -> Run {
    h.run_env(args, env)
}

fn ok(h: &Herd, args: &[&str], env: &[(&str, &str)]) -> Run {
    let r = herd(h, args, env);
    assert_eq!(r.code, 0, "herd {args:?}:\n{}{}", r.stdout, r.stderr);
    r
}

fn json(h: &Herd, args: &[&str], env: &[(&str, &str)]) -> Value {
    let r = ok(h, args, env);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

fn amount(v: &Value) -> f64 {
    v["hourly"]["amount"].as_str().unwrap().parse().unwrap()
}

/// Never stale, so no warning depends on today's date.
const FRESH: (&str, &str) = ("HERD_MAX_PRICE_AGE_DAYS", "1000000");

#[test]
fn bundled_prices_carry_source_and_date() {
    let home = sandbox();
    let args = [
        "catalog",
        "--cloud",
        "aws",
        "--type",
        "c7g.large",
        "--region",
        "us-east-1",
        "--on-demand",
        "--json",
    ];
    let rows = json(&home, &args, &[FRESH]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["hourly"]["amount"], "0.077");
    assert_eq!(r["arch"], "arm64");
    assert_eq!(r["cpu_family"], "Graviton3");
    assert_eq!(r["price_as_of"], "2025-03-02");
    assert!(r["price_source"].as_str().unwrap().contains("libcloud"));

    // Past the threshold: a warning on stderr that names the date and the remedy.
    let table = ok(
        &home,
        &[
            "catalog",
            "--cloud",
            "aws",
            "--type",
            "c7g.large",
            "--region",
            "us-east-1",
        ],
        &[("HERD_MAX_PRICE_AGE_DAYS", "0")],
    );
    assert!(
        table.stderr.contains("warning: prices as of 2025-03-02"),
        "{}",
        table.stderr
    );
    assert!(table.stderr.contains("herd catalog refresh"), "{}", table.stderr);
    let fresh = ok(
        &home,
        &[
            "catalog",
            "--cloud",
            "aws",
            "--type",
            "c7g.large",
            "--region",
            "us-east-1",
        ],
        &[FRESH],
    );
    assert!(!fresh.stderr.contains("warning"), "{}", fresh.stderr);
    assert!(fresh.stderr.contains("prices as of 2025-03-02"), "{}", fresh.stderr);
}

#[test]
fn plan_arm64_across_all_clouds() {
    let home = sandbox();
    let plan = json(
        &home,
        &["plan", "--vcpus", "8", "--arch", "arm64", "--top", "20", "--json"],
        &[FRESH],
    );
    assert!(plan["scanned"].as_u64().unwrap() > 30_000, "{}", plan["scanned"]);
    let offers = plan["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 20);
    assert!(offers
        .iter()
        .all(|o| o["arch"] == "arm64" && o["vcpus"].as_u64().unwrap() >= 8));
    let prices: Vec<f64> = offers.iter().map(amount).collect();
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    assert!(plan["prices_age_days"].as_i64().unwrap() > 0);

    let per_vcpu = json(
        &home,
        &[
            "plan",
            "--cloud",
            "gcp",
            "--region",
            "europe-*",
            "--vcpus",
            "4",
            "--sort",
            "price-per-vcpu",
            "--json",
        ],
        &[FRESH],
    );
    let offers = per_vcpu["offers"].as_array().unwrap();
    assert!(!offers.is_empty());
    let ratios: Vec<f64> = offers
        .iter()
        .map(|o| amount(o) / o["vcpus"].as_f64().unwrap())
        .collect();
    assert!(ratios.windows(2).all(|w| w[0] <= w[1] + 1e-9), "{ratios:?}");
    assert!(offers
        .iter()
        .all(|o| o["region"].as_str().unwrap().starts_with("europe-")));
}

#[test]
fn families_spot_and_unknown_prices() {
    let home = sandbox();
    let fams = json(&home, &["catalog", "--cloud", "aws", "--families", "--json"], &[FRESH]);
    let c7g = fams.as_array().unwrap().iter().find(|f| f["family"] == "c7g").unwrap();
    assert_eq!(c7g["arch"], Value::Array(vec!["arm64".into()]));
    assert!(c7g["types"].as_u64().unwrap() >= 8);

    let spot = json(
        &home,
        &[
            "catalog",
            "--cloud",
            "azure",
            "--family",
            "Dsv3",
            "--spot",
            "--region",
            "westeurope",
            "--json",
        ],
        &[FRESH],
    );
    let spot = spot.as_array().unwrap();
    assert!(!spot.is_empty());
    assert!(spot.iter().all(|o| o["purchase"] == "spot" && o["family"] == "Dsv3"));

    // m8g.large in us-east-1: 0.0 in libcloud and absent from the 2024 list.
    let unpriced = ["catalog", "--type", "m8g.large", "--region", "us-east-1", "--json"];
    assert_eq!(json(&home, &unpriced, &[FRESH]), Value::Array(vec![]));
    let mut with = unpriced.to_vec();
    with.push("--unpriced");
    let rows = json(&home, &with, &[FRESH]);
    assert_eq!(rows[0]["hourly"], Value::Null, "unknown, never free");
}

#[test]
fn unknown_names_get_suggestions() {
    let home = sandbox();
    let r = herd(&home, &["catalog", "--type", "c7g.larg"], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("did you mean `c7g.large`"), "{}", r.stderr);
    let r = herd(&home, &["plan", "--cloud", "gcp", "--family", "n2x"], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("`n2d`") || r.stderr.contains("`n2`"), "{}", r.stderr);
    let r = herd(&home, &["plan", "--cloud", "aws", "--region", "us-est-1"], &[]);
    assert!(r.stderr.contains("did you mean `us-east-1`"), "{}", r.stderr);
    let r = herd(&home, &["catalog", "refresh", "--cloud", "local"], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nothing to refresh"), "{}", r.stderr);
}

#[test]
fn refresh_gcp_needs_credentials() {
    let home = sandbox();
    let r = herd(&home, &["catalog", "refresh", "--cloud", "gcp"], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("HERD_GCP_API_KEY"), "{}", r.stderr);
}

fn recorded(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../catalog/tests/recorded")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Serves `route(request target)` as JSON from 127.0.0.1, with `NEXT` in the body
/// replaced by its own base URL (for paging links). Returns the base URL.
fn serve(route: fn(&str) -> String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let b = base.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let target = first.split_whitespace().nth(1).unwrap_or("");
            let body = route(target).replace("NEXT", &b);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

/// The recorded Azure Retail Prices pages (page 2 when `$skip=3` is asked).
fn azure_pages(target: &str) -> String {
    if target.contains("$skip=3") {
        recorded("azure/page2.json")
    } else {
        recorded("azure/page1.json")
    }
}

/// The recorded AWS bulk offer files.
fn aws_files(target: &str) -> String {
    if target.ends_with("/region_index.json") {
        recorded("aws/region_index.json")
    } else if target.contains("/us-east-1/") {
        recorded("aws/us-east-1.json")
    } else {
        recorded("aws/eu-west-1.json")
    }
}

#[test]
fn refresh_aws_bulk_prices_and_ec2_spot_on_moto() {
    let moto = Moto::start_blocking();
    let home = sandbox();
    let overlay = home.path().join("prices");
    let pricing = serve(aws_files);
    let endpoint = moto.endpoint();
    let env = [
        ("HERD_AWS_PRICING_URL", pricing.as_str()),
        ("HERD_CATALOG_DIR", overlay.to_str().unwrap()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        FRESH,
    ];
    let r = ok(
        &home,
        &["catalog", "refresh", "--cloud", "aws", "--region", "us-east-1"],
        &env,
    );
    assert!(!r.stderr.contains("on-demand prices only"), "{}", r.stderr);
    let rows = json(
        &home,
        &[
            "catalog",
            "--cloud",
            "aws",
            "--type",
            "m5.large",
            "--region",
            "us-east-1",
            "--json",
        ],
        &env,
    );
    let rows = rows.as_array().unwrap();
    let od = rows.iter().find(|o| o["purchase"] == "on-demand").unwrap();
    assert_eq!(od["hourly"]["amount"], "0.09");
    assert_eq!(od["price_source"], "AWS Price List bulk offer files");
    let spot = rows.iter().find(|o| o["purchase"] == "spot").unwrap();
    // moto answers DescribeSpotPriceHistory with 0.00001 for every type.
    assert_eq!(spot["hourly"]["amount"], "0.00001");
    assert_eq!(spot["price_source"], "EC2 DescribeSpotPriceHistory");

    // Without credentials: on-demand only, and it says why.
    let bare = sandbox();
    let env = [
        ("HERD_AWS_PRICING_URL", pricing.as_str()),
        ("HERD_CATALOG_DIR", overlay.to_str().unwrap()),
        FRESH,
    ];
    let r = ok(
        &bare,
        &["catalog", "refresh", "--cloud", "aws", "--region", "eu-*"],
        &env,
    );
    assert!(r.stderr.contains("no AWS credentials"), "{}", r.stderr);
}

#[test]
fn refresh_writes_an_overlay_that_wins() {
    let home = sandbox();
    let overlay = home.path().join("prices");
    let url = format!("{}/api/retail/prices", serve(azure_pages));
    let env = [
        ("HERD_AZURE_PRICES_URL", url.as_str()),
        ("HERD_CATALOG_DIR", overlay.to_str().unwrap()),
        FRESH,
    ];
    let r = ok(&home, &["catalog", "refresh", "--cloud", "azure"], &env);
    assert!(r.stdout.contains("azure: "), "{}", r.stdout);
    assert!(overlay.join("azure.bin").is_file());
    let args = [
        "catalog",
        "--cloud",
        "azure",
        "--type",
        "Standard_D2s_v3",
        "--region",
        "eastus",
        "--json",
    ];
    let rows = json(&home, &args, &env);
    let rows = rows.as_array().unwrap();
    let od = rows.iter().find(|o| o["purchase"] == "on-demand").unwrap();
    assert_eq!(od["hourly"]["amount"], "0.09");
    assert_eq!(od["price_source"], "Azure Retail Prices API");
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(od["price_as_of"], today.as_str());
    let spot = rows.iter().find(|o| o["purchase"] == "spot").unwrap();
    assert_eq!(spot["hourly"]["amount"], "0.011");
    // Regions the refresh did not cover keep their bundled prices.
    let other = json(
        &home,
        &[
            "catalog",
            "--cloud",
            "azure",
            "--type",
            "Standard_D2s_v3",
            "--region",
            "japaneast",
            "--on-demand",
            "--json",
        ],
        &env,
    );
    assert_eq!(other[0]["price_as_of"], "2025-03-02");
    // A damaged overlay is an error with a way out, not silently ignored.
    std::fs::write(overlay.join("azure.bin"), b"garbage").unwrap();
    let r = herd(&home, &args, &env);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("damaged") && r.stderr.contains("hint:"),
        "{}",
        r.stderr
    );
}
