//! `herd catalog refresh` against recorded responses in the exact shapes of the public
//! APIs (AWS bulk offer files, Azure Retail Prices pages, Cloud Billing Catalog pages),
//! served from 127.0.0.1 by a tiny server started here. No test touches the network.
#![cfg(feature = "refresh")]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use herd_catalog::refresh::{self, Endpoints, GcpAuth, Http, SpotPrices};
use herd_catalog::{bundled, overlay, Catalogs};
use herd_core::{Cloud, ErrorKind, PurchaseOption};
use rust_decimal::Decimal;

/// Answers each request with what `route(target, head)` says (`head`: the request line
/// and headers), replacing `NEXT` with its own base URL; a 3xx answer's body is its
/// `location`. Records every request line and its headers.
struct Server {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
}

fn recorded(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/recorded")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

impl Server {
    fn start(route: impl Fn(&str, &str) -> Option<(u16, String)> + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (b, s) = (base.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    request.push_str(&line);
                }
                let target = request.split_whitespace().nth(1).unwrap_or("").to_string();
                s.lock().unwrap().push(request.clone());
                let (status, body) = route(&target, &request).unwrap_or((404, "{}".to_string()));
                let body = body.replace("NEXT", &b);
                let _ = if (300..400).contains(&status) {
                    write!(
                        conn,
                        "HTTP/1.1 {status} X\r\nlocation: {body}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                } else {
                    write!(
                        conn,
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
            }
        });
        Server { base, seen }
    }
    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
}

fn endpoints(base: &str) -> Endpoints {
    Endpoints {
        aws: base.to_string(),
        azure: format!("{base}/api/retail/prices"),
        gcp: base.to_string(),
    }
}

fn price(c: &herd_core::Catalog, cloud: Cloud, t: &str, r: &str, p: PurchaseOption) -> Option<Decimal> {
    c.offer(cloud, t, r, p)
        .unwrap_or_else(|| panic!("no offer {t} {r} {p}"))
        .hourly
        .map(|m| m.amount)
}

fn aws_route(target: &str) -> Option<(u16, String)> {
    let path = target.split('?').next()?;
    Some((
        200,
        match path {
            "/offers/v1.0/aws/AmazonEC2/current/region_index.json" => recorded("aws/region_index.json"),
            "/offers/v1.0/aws/AmazonEC2/20261120185241/us-east-1/index.json" => recorded("aws/us-east-1.json"),
            "/offers/v1.0/aws/AmazonEC2/20261120185241/eu-west-1/index.json" => recorded("aws/eu-west-1.json"),
            _ => return None,
        },
    ))
}

struct FixedSpot;
impl SpotPrices for FixedSpot {
    fn spot_prices(&self, region: &str) -> herd_core::Result<Vec<(String, Decimal)>> {
        Ok(vec![(
            "c7g.large".into(),
            if region == "us-east-1" {
                Decimal::new(31, 3)
            } else {
                Decimal::ZERO
            },
        )])
    }
}

#[test]
fn aws_bulk_offer_files_plain_linux_only() {
    let srv = Server::start(|t, _| aws_route(t));
    let http = Http::new().unwrap();
    let r = refresh::aws(
        &http,
        &endpoints(&srv.base),
        &[],
        bundled(Cloud::Aws),
        Some(&FixedSpot),
        today(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(r.requests, 3);
    let c = &r.catalog;
    let on = PurchaseOption::OnDemand;
    // Windows, dedicated, SQL and capacity-reservation SKUs are not the Linux price.
    assert_eq!(
        price(c, Cloud::Aws, "c7g.large", "us-east-1", on),
        Some(Decimal::new(7, 2))
    );
    assert_eq!(
        price(c, Cloud::Aws, "m5.large", "us-east-1", on),
        Some(Decimal::new(9, 2))
    );
    assert_eq!(
        price(c, Cloud::Aws, "c7g.large", "eu-west-1", on),
        Some(Decimal::new(76, 3))
    );
    // 0 in the price list is unknown.
    assert_eq!(price(c, Cloud::Aws, "m5.large", "eu-west-1", on), None);
    // Spot from the seam; a zero spot price is unknown too.
    assert_eq!(
        price(c, Cloud::Aws, "c7g.large", "us-east-1", PurchaseOption::Spot),
        Some(Decimal::new(31, 3))
    );
    assert_eq!(
        price(c, Cloud::Aws, "c7g.large", "eu-west-1", PurchaseOption::Spot),
        None
    );
    assert!(r.unknown_types.contains("zz9.huge"));
    assert_eq!(c.sources()[0].as_of, today());
    let spot = c
        .offer(Cloud::Aws, "c7g.large", "us-east-1", PurchaseOption::Spot)
        .unwrap();
    assert_eq!(c.sources()[spot.source as usize].name, "EC2 DescribeSpotPriceHistory");

    // Region globs fetch only the matching files.
    let srv = Server::start(|t, _| aws_route(t));
    let r = refresh::aws(
        &http,
        &endpoints(&srv.base),
        &["eu-*".to_string()],
        bundled(Cloud::Aws),
        None,
        today(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(r.requests, 2);
    assert!(srv.requests().iter().all(|q| !q.contains("us-east-1/index.json")));
    let e = refresh::aws(
        &http,
        &endpoints(&srv.base),
        &["eu-wset-1".to_string()],
        bundled(Cloud::Aws),
        None,
        today(),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(e.suggestions()[0], "eu-west-1");
}

#[test]
fn aws_offer_file_with_terms_first_is_refused() {
    let text = r#"{"terms": {"OnDemand": {}}, "products": {}}"#;
    let e = refresh::parse_aws_region_file(text.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("products first"), "{e}");
}

fn azure_route(target: &str) -> Option<(u16, String)> {
    if !target.starts_with("/api/retail/prices?") || !target.contains("Virtual%20Machines") {
        return None;
    }
    Some((
        200,
        if target.contains("$skip=3") {
            recorded("azure/page2.json")
        } else {
            recorded("azure/page1.json")
        },
    ))
}

#[test]
fn azure_retail_prices_follows_next_page_link() {
    let srv = Server::start(|t, _| azure_route(t));
    let http = Http::new().unwrap();
    let r = refresh::azure(
        &http,
        &endpoints(&srv.base),
        &[],
        bundled(Cloud::Azure),
        today(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(r.requests, 2, "two pages");
    let c = &r.catalog;
    let t = "Standard_D2s_v3";
    assert_eq!(
        price(c, Cloud::Azure, t, "eastus", PurchaseOption::OnDemand),
        Some(Decimal::new(9, 2)),
        "Linux, not Windows"
    );
    assert_eq!(
        price(c, Cloud::Azure, t, "eastus", PurchaseOption::Spot),
        Some(Decimal::new(11, 3)),
        "Spot wins over Low Priority"
    );
    assert_eq!(
        price(c, Cloud::Azure, t, "westeurope", PurchaseOption::OnDemand),
        Some(Decimal::new(115, 3)),
        "DevTest prices are not pay-as-you-go"
    );
    assert!(r.unknown_types.contains("Standard_Z99_v9"));
}

/// The header `name` of a recorded request (names are case-insensitive).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn gcp_route(target: &str, head: &str) -> Option<(u16, String)> {
    if !target.starts_with("/v1/services/6F81-5844-456A/skus?") {
        return None;
    }
    if header(head, "x-goog-api-key") == Some("bad-key-Q7Z") {
        return Some((
            403,
            r#"{"error": {"code": 403, "message": "API key not valid.", "status": "PERMISSION_DENIED"}}"#.into(),
        ));
    }
    Some((
        200,
        if target.contains("pageToken=page-two") {
            recorded("gcp/page2.json")
        } else {
            recorded("gcp/page1.json")
        },
    ))
}

#[test]
fn gcp_billing_catalog_pages_and_formula() {
    let srv = Server::start(gcp_route);
    let http = Http::new().unwrap();
    let auth = GcpAuth::ApiKey("test-key-123".into());
    let r = refresh::gcp(
        &http,
        &endpoints(&srv.base),
        &auth,
        &[],
        bundled(Cloud::Gcp),
        today(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(r.requests, 2);
    let reqs = srv.requests();
    for q in &reqs {
        assert_eq!(
            header(q, "x-goog-api-key"),
            Some("test-key-123"),
            "the key is a header: {q}"
        );
        let request_line = q.lines().next().unwrap();
        assert!(
            !request_line.contains("test-key-123"),
            "never in the URL: {request_line}"
        );
        assert!(
            !request_line.contains("key="),
            "no key parameter at all: {request_line}"
        );
        assert_eq!(header(q, "referer"), None);
        assert_eq!(header(q, "authorization"), None);
    }
    assert!(reqs[1].contains("pageToken=page-two"));
    let c = &r.catalog;
    // 8 x 0.03 + 32 x 0.004 (custom-type SKUs are not the predefined rate)
    assert_eq!(
        price(c, Cloud::Gcp, "n2-standard-8", "us-central1", PurchaseOption::OnDemand),
        Some(Decimal::new(368, 3))
    );
    // 8 x 0.007 + 32 x 0.001
    assert_eq!(
        price(c, Cloud::Gcp, "n2-standard-8", "us-central1", PurchaseOption::Spot),
        Some(Decimal::new(88, 3))
    );
    // a2-highgpu-1g: 12 vCPU, 85 GiB and one A100: 12 x 0.031611 + 85 x 0.004237 + 2.933908
    assert_eq!(
        price(c, Cloud::Gcp, "a2-highgpu-1g", "us-central1", PurchaseOption::OnDemand),
        Some(Decimal::new(3673385, 6))
    );
    // No spot GPU SKU: the spot price is unknown, not the vCPU + RAM part alone.
    assert_eq!(
        price(c, Cloud::Gcp, "a2-highgpu-1g", "us-central1", PurchaseOption::Spot),
        None
    );
    assert!(c
        .offers()
        .iter()
        .all(|o| o.instance_type.starts_with("n2-") || o.instance_type.starts_with("a2-")));

    let bad = GcpAuth::ApiKey("bad-key-Q7Z".into());
    let e = refresh::gcp(
        &http,
        &endpoints(&srv.base),
        &bad,
        &[],
        bundled(Cloud::Gcp),
        today(),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(
        !format!("{e:#} {e:?}").contains("Q7Z"),
        "the key never appears in errors: {e:#}"
    );

    let token = GcpAuth::AccessToken("tok-abc".into());
    refresh::gcp(
        &http,
        &endpoints(&srv.base),
        &token,
        &[],
        bundled(Cloud::Gcp),
        today(),
        &mut |_| {},
    )
    .unwrap();
    assert!(srv
        .requests()
        .iter()
        .any(|q| q.to_ascii_lowercase().contains("authorization: bearer tok-abc")));
}

fn gcp(http: &Http, base: &str, auth: &GcpAuth) -> herd_core::Result<refresh::Refreshed> {
    refresh::gcp(
        http,
        &endpoints(base),
        auth,
        &[],
        bundled(Cloud::Gcp),
        today(),
        &mut |_| {},
    )
}

/// A server on another port that must never be reached: it only counts connections and
/// what it read, so even a request it could not parse is seen.
struct Tripwire {
    base: String,
    got: Arc<Mutex<Vec<String>>>,
}

impl Tripwire {
    fn start() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut head = String::new();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                g.lock().unwrap().push(head);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
            }
        });
        Tripwire { base, got }
    }
}

#[test]
fn a_redirect_to_another_host_never_receives_the_credentials() {
    let other = Tripwire::start();
    let target = format!("{}/v1/services/6F81-5844-456A/skus?stolen=1", other.base);
    let srv = Server::start(move |_, _| Some((302, target.clone())));
    let http = Http::new().unwrap();
    for auth in [
        GcpAuth::ApiKey("key-XK4-secret".into()),
        GcpAuth::AccessToken("tok-XK4-secret".into()),
    ] {
        let e = gcp(&http, &srv.base, &auth).unwrap_err();
        let shown = format!("{e} {e:#} {e:?} {}", e.hint().unwrap_or(""));
        assert!(!shown.contains("XK4"), "no secret in the error: {shown}");
        assert!(e.message().contains("redirected to another host"), "{e}");
        let other_host = other.base.trim_start_matches("http://");
        assert!(e.message().contains(other_host), "names where it pointed: {e}");
        assert!(!e.message().contains("stolen"), "not the redirect's path or query: {e}");
        assert!(e.hint().is_some());
    }
    assert_eq!(srv.requests().len(), 2, "each asked the real host once");
    assert!(
        other.got.lock().unwrap().is_empty(),
        "the other host was never contacted: {:?}",
        other.got.lock().unwrap()
    );
}

#[test]
fn a_redirect_on_the_same_host_is_followed_without_a_referer() {
    let srv = Server::start(|target, head| {
        if target.starts_with("/old/") {
            return Some((307, format!("NEXT/v1/{}", target.trim_start_matches("/old/v1/"))));
        }
        gcp_route(target, head)
    });
    // The configured base points at the old path, which redirects.
    let http = Http::new().unwrap();
    let r = gcp(
        &http,
        &format!("{}/old", srv.base),
        &GcpAuth::ApiKey("same-host-key".into()),
    )
    .unwrap();
    assert_eq!(r.requests, 2);
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 4, "two pages, each redirected once: {reqs:?}");
    for q in &reqs {
        assert_eq!(header(q, "x-goog-api-key"), Some("same-host-key"), "{q}");
        assert_eq!(header(q, "referer"), None, "{q}");
        assert!(!q.lines().next().unwrap().contains("same-host-key"));
    }
}

#[test]
fn page_tokens_are_encoded_not_spliced() {
    // A token with `&key=`: spliced into the URL it would add a parameter.
    let srv = Server::start(|target, _| {
        if target.contains("pageToken=") {
            return Some((200, r#"{"skus": []}"#.into()));
        }
        Some((200, r#"{"skus": [], "nextPageToken": "a+b/c=&key=x"}"#.into()))
    });
    let http = Http::new().unwrap();
    gcp(&http, &srv.base, &GcpAuth::ApiKey("k".into())).unwrap();
    let second = srv.requests()[1].lines().next().unwrap().to_string();
    assert!(second.contains("pageToken=a%2Bb%2Fc%3D%26key%3Dx"), "{second}");
}

#[test]
fn unreachable_source_is_a_clear_error() {
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let http = Http::new().unwrap();
    let e = refresh::azure(
        &http,
        &endpoints(&base),
        &[],
        bundled(Cloud::Azure),
        today(),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().contains("Azure Retail Prices"), "{e}");
}

#[test]
fn refreshed_overlay_wins_and_dates_itself() {
    let srv = Server::start(|t, _| azure_route(t));
    let http = Http::new().unwrap();
    let r = refresh::azure(
        &http,
        &endpoints(&srv.base),
        &[],
        bundled(Cloud::Azure),
        today(),
        &mut |_| {},
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    overlay::write(dir.path(), Cloud::Azure, &r.catalog).unwrap();
    let all = Catalogs::load(Some(dir.path())).unwrap();
    let o = all
        .catalog
        .offer(Cloud::Azure, "Standard_D2s_v3", "eastus", PurchaseOption::OnDemand)
        .unwrap();
    assert_eq!(o.hourly.unwrap().amount, Decimal::new(9, 2));
    assert_eq!(all.catalog.sources()[o.source as usize].as_of, today());
    let f = all.freshness.iter().find(|f| f.cloud == Cloud::Azure).unwrap();
    assert_eq!(f.overlay.as_ref().unwrap().1, today());
}
