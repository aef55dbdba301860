//! The report page in a real browser: Debian's headless Chromium (`/usr/bin/chromium`,
//! which scripts/test.sh installs) opens the page of the fixed sweep with `?check`, the
//! page's own script checks itself (every cell's row, sorting by each column, no element
//! outside the viewport) and writes the result into the DOM, which `--dump-dom` hands
//! back; at 1280 px and 500 px windows, and at a phone's 390 px (in a frame: Chromium's
//! window is at least 500 px wide). A screenshot must not be blank.
//!
//! Without Chromium the test fails with the command that installs it; it never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herd_sweep::{fixture, report};

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium() -> PathBuf {
    let p = PathBuf::from(CHROMIUM);
    assert!(
        p.is_file(),
        "{CHROMIUM} is missing: the report's browser test needs Debian's chromium; \
         install it with `sudo apt-get install -y chromium` (scripts/test.sh does it when run as root)"
    );
    p
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs headless Chromium with `args` and a fresh profile; kills it after a minute.
fn run(args: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
    ])
    .args([
        "--disable-extensions",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--mute-audio",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    if is_root() {
        cmd.arg("--no-sandbox");
    }
    let out_path = profile.path().join("stdout");
    let err_path = profile.path().join("stderr");
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish in 60 s: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        status.success(),
        "chromium failed ({status}): {}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    out
}

fn url(page: &Path, query: &str) -> String {
    format!("file://{}{query}", page.display())
}

/// The page's own checks at a viewport `width` px wide: the window's width at desktop
/// sizes; below 500 px, which Chromium's window does not go under, the page in a frame
/// that wide (`?check=WIDTH`).
fn checks(page: &Path, width: u32) -> serde_json::Value {
    let (window, query) = if width >= 500 {
        (width, "?check".to_string())
    } else {
        (1280, format!("?check={width}"))
    };
    let dom = run(&[
        format!("--window-size={window},900"),
        "--virtual-time-budget=5000".into(),
        "--dump-dom".into(),
        url(page, &query),
    ]);
    let start = dom
        .find("<pre id=\"check-result\">")
        .unwrap_or_else(|| panic!("the page's checks did not run at {width} px:\n{dom}"))
        + "<pre id=\"check-result\">".len();
    let end = dom[start..].find("</pre>").unwrap() + start;
    let json = dom[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("the checks wrote `{json}`: {e}"))
}

#[test]
fn the_report_works_in_headless_chromium_at_desktop_and_phone_widths() {
    let s = fixture::scores(12);
    let dir = tempfile::tempdir().unwrap();
    report::write_all(&s, dir.path()).unwrap();
    let page = dir.path().join("index.html");
    let columns = report::headers(&s).len();
    for width in [1280, 500, 390] {
        let r = checks(&page, width);
        assert_eq!(
            r["width"].as_u64(),
            Some(u64::from(width)),
            "the viewport is {width} px: {r}"
        );
        // Every cell has its row, the failed one too.
        let rows: Vec<&str> = r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(rows.len(), s.cells.len(), "{r}");
        for c in &s.cells {
            assert!(
                rows.contains(&c.cell.id.as_str()),
                "row of {} at {width} px: {r}",
                c.cell.id
            );
        }
        // Clicking each header sorts by it, both ways.
        let sorted = r["sorted"].as_array().unwrap();
        assert_eq!(sorted.len(), columns, "{r}");
        assert!(
            sorted.iter().all(|v| v == true),
            "every column sorts at {width} px: {r}"
        );
        assert_eq!(
            r["outside"].as_array().unwrap().len(),
            0,
            "nothing outside the viewport at {width} px: {r}"
        );
        // Rows link to points and points to rows, and every link lands.
        assert!(r["links"].as_u64().unwrap() > 2 * 10, "{r}");
        assert_eq!(r["broken_links"].as_array().unwrap().len(), 0, "{r}");
    }

    // A screenshot that is not blank: many colours (the clouds' and the phases'), and a
    // good share of non-white pixels.
    let shot = dir.path().join("shot.png");
    run(&[
        "--window-size=1280,1400".into(),
        format!("--screenshot={}", shot.display()),
        url(&page, ""),
    ]);
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let px: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let non_white = px.iter().filter(|p| p[..3].iter().any(|v| *v < 235)).count();
    let colours: std::collections::HashSet<&[u8]> = px.iter().map(|p| &p[..3]).collect();
    assert!(
        (info.width, info.height) == (1280, 1400),
        "{}x{}",
        info.width,
        info.height
    );
    assert!(
        non_white * 100 > px.len() * 3,
        "the screenshot is nearly blank: {non_white} of {} pixels not white",
        px.len()
    );
    assert!(colours.len() > 50, "the screenshot has {} colours", colours.len());
}
