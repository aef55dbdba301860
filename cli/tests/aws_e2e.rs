//! The `herd` binary against moto's EC2 server, as a user types it: launch, ls, cost,
//! down, reap, with the simulator beside it (one view of every cloud). Credentials are
//! fake and the endpoint comes from AWS_ENDPOINT_URL, the way a user points herd at an
//! emulator; instance metadata is off, so nothing but 127.0.0.1 is ever asked.

use herd_testkit::cli::{printed_command, Herd};
use herd_testkit::Moto;
use serde_json::Value;

const HERD: &str = env!("CARGO_BIN_EXE_herd");

/// A sandbox (herd-testkit's CLI harness) pointed at `moto` with fake credentials, AWS the
/// default cloud; dropping it ends whatever a test launched, on either cloud.
fn sandbox(moto: &Moto) -> Herd {
    Herd::new(HERD).aws(&moto.endpoint(), "us-east-1")
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
    Moto::start_blocking()
}

#[test]
fn launch_ls_cost_down_reap_on_moto() {
    let moto = moto();
    let sb = sandbox(&moto);

    let launched = sb
        .ok(&[
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
        ])
        .stdout;
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

    let down = sb.ok(&["down", "--cluster", "e2e", "--yes"]).stdout;
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
    let (code, _, err) = sb.run(&["reap", "--yes"]).triple();
    assert_eq!(code, 0);
    assert!(err.contains("nothing to reap"), "{err}");
}

#[test]
fn aws_errors_are_clear_before_any_call() {
    let moto = moto();
    let sb = sandbox(&moto);
    let (code, _, err) = sb
        .run(&["launch", "--cloud", "aws", "t3.micr", "--deadline", "10m"])
        .triple();
    assert_eq!(code, 1);
    assert!(err.contains("t3.micro"), "suggests the type: {err}");
    let (code, _, err) = sb
        .run(&[
            "launch",
            "--cloud",
            "aws",
            "t3.micro",
            "--image",
            "nonsense",
            "--deadline",
            "10m",
        ])
        .triple();
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
    let (code, _, launched) = sb
        .run(&["launch", "t3.micro", "-n", "2", "--deadline", "30m", "--cluster", "web"])
        .triple();
    assert_eq!(code, 0, "{launched}");

    // Plain `ls` shows both clouds, with a CLOUD column; --cloud narrows.
    let all = sb.json(&["ls", "--json"]);
    assert_eq!(clouds_of(&all), ["aws", "aws", "local"], "{all}");
    let table = sb.ok(&["ls"]).stdout;
    assert!(table.lines().next().unwrap().contains("CLOUD"), "{table}");
    assert_eq!(clouds_of(&sb.json(&["ls", "--json", "--cloud", "local"])), ["local"]);
    assert_eq!(clouds_of(&sb.json(&["ls", "--json", "--cloud", "aws"])), ["aws", "aws"]);
    let cost = sb.json(&["cost", "--json", "--by", "cloud"]);
    assert_eq!(cost["total"]["live"], 3, "{cost}");

    // The stop command the AWS launch printed, exactly as printed, stops it on AWS.
    let stop = printed_command(&launched, "herd down");
    assert_eq!(stop, "herd down --cluster web");
    let (code, out, err) = sb.run_printed(&stop).triple();
    assert_eq!(code, 0, "{stop}: {out}{err}");
    assert_eq!(out.matches("terminated").count(), 2, "{out}");
    assert_eq!(clouds_of(&sb.json(&["ls", "--json"])), ["local"]);

    // `down ID` finds an AWS id's cloud from the ledger; already gone is gone, on aws.
    let (code, _, launched) = sb
        .run(&["launch", "t3.micro", "--deadline", "30m", "--cluster", "one"])
        .triple();
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
        sb.run_cmd(
            sb.cmd(args)
                .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
                .env("HERD_RETRY_PATIENCE", "1s"),
        )
        .triple()
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
    let as_other = |args: &[&str]| sb.run_cmd(sb.cmd(args).env("USER", "other")).triple();
    let (code, out, err) = as_other(&["launch", "t3.micro", "--deadline", "30m", "--json"]);
    assert_eq!(code, 0, "{err}");
    let theirs: Value = serde_json::from_str(&out).unwrap();
    let id = theirs["instances"][0]["id"].as_str().unwrap().to_string();
    let (code, _, err) = sb.run(&["down", &id, "--yes"]).triple();
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
    use herd_testkit::{Fault, FaultProxy};
    let moto = moto();
    let sb = sandbox(&moto);
    // EC2 throttles every call, for ever: herd says so while it waits, then gives up.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxy = rt.block_on(FaultProxy::start(
        None,
        std::sync::Arc::new(|_, _| Fault::fail(503, "RequestLimitExceeded")),
    ));
    let (code, _, err) = sb
        .run_cmd(
            sb.cmd(&["ls", "--cloud", "aws"])
                .env("AWS_ENDPOINT_URL", proxy.endpoint())
                .env("HERD_RETRY_PATIENCE", "8s"),
        )
        .triple();
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
