//! The `herd` binary against moto's EC2 server, as a user types it: launch, ls, cost,
//! down, reap, with the simulator beside it (one view of every cloud). Credentials are
//! fake and the endpoint comes from AWS_ENDPOINT_URL, the way a user points herd at an
//! emulator; instance metadata is off, so nothing but 127.0.0.1 is ever asked.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use herd_aws::testing::Moto;
use serde_json::Value;

const HERD: &str = env!("CARGO_BIN_EXE_herd");

struct Sandbox {
    dir: tempfile::TempDir,
    endpoint: String,
}

impl Sandbox {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(HERD);
        c.args(args)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path().join("home"))
            .env("XDG_CONFIG_HOME", self.path().join("home/.config"))
            .env("XDG_DATA_HOME", self.path().join("home/.local/share"))
            .env("HERD_LEDGER", self.path().join("ledger.db"))
            .env("HERD_CLOUD", "aws")
            .env("USER", "tester")
            .env("NO_COLOR", "1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("HERD_AWS_REGIONS", "us-east-1")
            .env("HERD_SIM_DIR", self.path().join("sim"))
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        triple(self.cmd(args).output().unwrap())
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "herd {args:?} failed:\n{out}{err}");
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("herd {args:?}: not JSON ({e}):\n{out}"))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Whatever a test launched, on either cloud, ends with it.
        let _ = self.cmd(&["down", "--all", "--yes"]).output();
    }
}

fn triple(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sandbox(moto: &Moto) -> Sandbox {
    let sb = Sandbox {
        dir: tempfile::tempdir().unwrap(),
        endpoint: moto.endpoint(),
    };
    std::fs::create_dir_all(sb.path().join("home")).unwrap();
    sb
}

/// Runs a command line exactly as herd printed it, on a pseudo-terminal that answers
/// `y` to the confirmation question.
fn run_printed(sb: &Sandbox, line: &str) -> (i32, String, String) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[0], "herd", "{line}");
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into the pointers and reads nothing else.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut typing = std::fs::File::from(master);
    typing.write_all(b"y\n").unwrap();
    let out = sb.cmd(&words[1..]).stdin(Stdio::from(slave)).output().unwrap();
    drop(typing);
    triple(out)
}

/// The `herd ...` command a message prints between backticks, starting with `prefix`.
fn printed_command(text: &str, prefix: &str) -> String {
    let start = text
        .find(&format!("`{prefix}"))
        .unwrap_or_else(|| panic!("no `{prefix}...` in:\n{text}"));
    let rest = &text[start + 1..];
    rest[..rest.find('`').unwrap()].to_string()
}

fn clouds_of(list: &Value) -> Vec<String> {
    let mut c: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["cloud"].as_str().unwrap().to_string())
        .collect();
    c.sort();
    c
}

fn moto() -> Moto {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(Moto::start()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn launch_ls_cost_down_reap_on_moto() {
    let moto = moto();
    let sb = Sandbox {
        dir: tempfile::tempdir().unwrap(),
        endpoint: moto.endpoint(),
    };
    std::fs::create_dir_all(sb.path().join("home")).unwrap();

    let launched = sb.ok(&[
        "launch",
        "--cloud",
        "aws",
        "t3.micro",
        "-n",
        "2",
        "--deadline",
        "30m",
        "--cluster",
        "e2e",
        "--tag",
        "team=ml",
    ]);
    assert_eq!(launched.matches("t3.micro").count(), 2, "{launched}");
    assert!(launched.contains("us-east-1"), "the zone is shown: {launched}");

    let list = sb.json(&["ls", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for i in list {
        assert_eq!(i["cloud"], "aws");
        assert_eq!(i["instance_type"], "t3.micro");
        assert_eq!(i["tags"]["herd-cluster"], "e2e");
        assert_eq!(i["tags"]["team"], "ml");
        assert_eq!(i["hourly_price"]["amount"], "0.0104", "priced from the bundled catalog");
    }
    // The private key is where the settings say, 0600.
    let key = sb.path().join("home/.local/share/herd/keys/herd-tester-ed25519");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let cost = sb.json(&["cost", "--json"]);
    assert_eq!(cost["total"]["instances"], 2);
    assert_eq!(cost["total"]["live"], 2);

    let down = sb.ok(&["down", "--cluster", "e2e", "--yes"]);
    assert_eq!(down.matches("terminated").count(), 2, "{down}");
    assert_eq!(sb.json(&["ls", "--json"]), Value::Array(vec![]));

    // What the launches left: the owner's key pair and security group, now unused.
    let reaped = sb.json(&["reap", "--yes", "--json"]);
    let kinds: Vec<&str> = reaped["found"]["leftovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"key-pair") && kinds.contains(&"security-group"),
        "{reaped}"
    );
    let (code, _, err) = sb.run(&["reap", "--yes"]);
    assert_eq!(code, 0);
    assert!(err.contains("nothing to reap"), "{err}");
}

#[test]
fn aws_errors_are_clear_before_any_call() {
    let moto = moto();
    let sb = Sandbox {
        dir: tempfile::tempdir().unwrap(),
        endpoint: moto.endpoint(),
    };
    std::fs::create_dir_all(sb.path().join("home")).unwrap();
    let (code, _, err) = sb.run(&["launch", "--cloud", "aws", "t3.micr", "--deadline", "10m"]);
    assert_eq!(code, 1);
    assert!(err.contains("t3.micro"), "suggests the type: {err}");
    let (code, _, err) = sb.run(&[
        "launch",
        "--cloud",
        "aws",
        "t3.micro",
        "--image",
        "nonsense",
        "--deadline",
        "10m",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("AMI"), "{err}");
}

#[test]
fn every_cloud_in_one_view_and_the_printed_stop_command_stops_it_on_aws() {
    let moto = moto();
    let sb = sandbox(&moto);
    sb.ok(&[
        "launch",
        "--cloud",
        "local",
        "l1.small",
        "--deadline",
        "30m",
        "--cluster",
        "sim",
    ]);
    let (code, _, launched) = sb.run(&["launch", "t3.micro", "-n", "2", "--deadline", "30m", "--cluster", "web"]);
    assert_eq!(code, 0, "{launched}");

    // Plain `ls` shows both clouds, with a CLOUD column; --cloud narrows.
    let all = sb.json(&["ls", "--json"]);
    assert_eq!(clouds_of(&all), ["aws", "aws", "local"], "{all}");
    let table = sb.ok(&["ls"]);
    assert!(table.lines().next().unwrap().contains("CLOUD"), "{table}");
    assert_eq!(clouds_of(&sb.json(&["ls", "--json", "--cloud", "local"])), ["local"]);
    assert_eq!(clouds_of(&sb.json(&["ls", "--json", "--cloud", "aws"])), ["aws", "aws"]);
    let cost = sb.json(&["cost", "--json", "--by", "cloud"]);
    assert_eq!(cost["total"]["live"], 3, "{cost}");

    // The stop command the AWS launch printed, exactly as printed, stops it on AWS.
    let stop = printed_command(&launched, "herd down");
    assert_eq!(stop, "herd down --cluster web");
    let (code, out, err) = run_printed(&sb, &stop);
    assert_eq!(code, 0, "{stop}: {out}{err}");
    assert_eq!(out.matches("terminated").count(), 2, "{out}");
    assert_eq!(clouds_of(&sb.json(&["ls", "--json"])), ["local"]);

    // `down ID` finds an AWS id's cloud from the ledger; already gone is gone, on aws.
    let (code, _, launched) = sb.run(&["launch", "t3.micro", "--deadline", "30m", "--cluster", "one"]);
    assert_eq!(code, 0, "{launched}");
    let aws = sb.json(&["ls", "--json", "--cloud", "aws"]);
    let id = aws[0]["id"].as_str().unwrap().to_string();
    let down = sb.json(&["down", &id, "--yes", "--json"]);
    assert_eq!(down[0]["cloud"], "aws", "{down}");
    assert_eq!(down[0]["outcome"], "terminated", "{down}");
    let again = sb.json(&["down", &id, "--yes", "--json"]);
    assert_eq!(again[0]["outcome"], "already-gone", "{again}");

    // The kill switch: everything, every cloud.
    sb.ok(&["launch", "t3.micro", "--deadline", "30m"]);
    let down = sb.json(&["down", "--all", "--yes", "--json"]);
    assert_eq!(clouds_of(&down), ["aws", "local"], "{down}");
    assert_eq!(sb.json(&["ls", "--json"]), Value::Array(vec![]));
}

#[test]
fn a_failing_cloud_is_a_warning_beside_the_others() {
    let moto = moto();
    let sb = sandbox(&moto);
    sb.ok(&["launch", "--cloud", "local", "l1.small", "--deadline", "30m"]);
    // Nothing listens on port 1 of 127.0.0.1: EC2 is unreachable.
    let dead = |args: &[&str]| {
        triple(
            sb.cmd(args)
                .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
                .env("HERD_RETRY_PATIENCE", "1s")
                .output()
                .unwrap(),
        )
    };
    let (code, out, err) = dead(&["ls"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("l1.small") && out.contains("local"),
        "the simulator's instance is shown: {out}"
    );
    assert!(err.contains("warning: aws: "), "{err}");
    assert!(err.contains("127.0.0.1:1"), "the endpoint is named: {err}");
    assert!(err.contains("error: the list is incomplete: aws failed"), "{err}");
    let (code, _, err) = dead(&["down", "--all", "--yes"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("warning: aws: "), "{err}");
    assert_eq!(
        sb.json(&["ls", "--json"]),
        Value::Array(vec![]),
        "the simulator's was still stopped"
    );
}

#[test]
fn down_refuses_another_owners_aws_instance() {
    let moto = moto();
    let sb = sandbox(&moto);
    let as_other = |args: &[&str]| triple(sb.cmd(args).env("USER", "other").output().unwrap());
    let (code, out, err) = as_other(&["launch", "t3.micro", "--deadline", "30m", "--json"]);
    assert_eq!(code, 0, "{err}");
    let theirs: Value = serde_json::from_str(&out).unwrap();
    let id = theirs["instances"][0]["id"].as_str().unwrap().to_string();
    let (code, _, err) = sb.run(&["down", &id, "--yes"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("{id} (owner other)")), "{err}");
    assert!(err.contains("nothing was terminated"), "{err}");
    let (_, still, _) = as_other(&["ls", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&still).unwrap()[0]["state"],
        "running",
        "{still}"
    );
    assert_eq!(as_other(&["down", "--all", "--yes"]).0, 0);
}

#[test]
fn a_long_wait_is_seen_with_its_reason_and_endpoint() {
    use herd_aws::testing::{Fault, FaultProxy};
    let moto = moto();
    let sb = sandbox(&moto);
    // EC2 throttles every call, for ever: herd says so while it waits, then gives up.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(FaultProxy::start(
        None,
        std::sync::Arc::new(|_, _| Fault::fail(503, "RequestLimitExceeded")),
    ));
    let out = sb
        .cmd(&["ls", "--cloud", "aws"])
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .env("HERD_RETRY_PATIENCE", "8s")
        .output()
        .unwrap();
    let (code, _, err) = triple(out);
    assert_eq!(code, 1, "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("waiting: "))
        .unwrap_or_else(|| panic!("no waiting line: {err}"));
    assert!(
        line.starts_with("waiting: EC2 throttling (RequestLimitExceeded) for "),
        "{line}"
    );
    assert!(line.contains(", retrying in "), "{line}");
    assert!(line.ends_with(&format!("(endpoint {})", proxy.endpoint())), "{line}");
    assert!(err.contains("patience 8s"), "the give-up names the setting: {err}");
}
