//! The `herd` binary against a hostile EC2: herd-aws's test proxy in front of moto,
//! ignoring filters and id lists (so answers carry foreign resources planted straight in
//! moto: untagged, or another owner's) or cutting answers short. As a user types it:
//! `herd reap --yes` deletes nothing foreign, `herd down ID --yes` on another owner's
//! instance is refused and names the owner, `herd ls` on a cut answer is an error, never
//! "no instances". moto is read directly afterwards to prove nothing foreign was touched.

use std::sync::Arc;

use herd_testkit::cli::Herd;
use herd_testkit::ec2::{check_planted, make_busy, plant, Planted};
use herd_testkit::{Fault, MotoBehindProxy, Rule};
use serde_json::Value;

const HERD: &str = env!("CARGO_BIN_EXE_herd");
const REGION: &str = "us-east-1";

/// moto behind the fault proxy (herd-testkit's servers, with the runtime they live on:
/// the tests' own thread runs `herd` processes meanwhile) and a sandbox pointed at the
/// proxy (herd-testkit's CLI harness).
struct Hostile {
    herd: Herd,
    servers: MotoBehindProxy,
}

impl std::ops::Deref for Hostile {
    type Target = MotoBehindProxy;
    fn deref(&self) -> &MotoBehindProxy {
        &self.servers
    }
}

impl Hostile {
    fn start(rule: Rule) -> Hostile {
        let servers = MotoBehindProxy::start(rule);
        // Retries end soon: a test asserts what herd says, not how long it waits. No
        // clean-up: what these tests plant is foreign by design, and moto ends with them.
        let herd = Herd::new(HERD)
            .aws(&servers.endpoint(), REGION)
            .env("HERD_RETRY_PATIENCE", "3s")
            .no_cleanup();
        Hostile { herd, servers }
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.herd.run(args).triple()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.herd.ok(args).stdout
    }

    fn plant(&self, label: &str, tags: &[(&str, &str)]) -> Planted {
        self.rt
            .block_on(plant(&self.moto.endpoint(), REGION, label, tags))
            .unwrap()
    }

    /// What of `p` moto no longer has as it was (empty: untouched).
    fn touched(&self, p: &Planted) -> Vec<String> {
        self.rt.block_on(check_planted(&self.moto.endpoint(), REGION, p))
    }
}

fn unfiltered() -> Rule {
    Arc::new(|_, _| Fault::Unfiltered { ids_too: true })
}

const BOB: [(&str, &str); 1] = [("herd-owner", "bob")];
const OURS: [(&str, &str); 1] = [("herd-owner", "tester")];

#[test]
fn reap_yes_deletes_nothing_foreign_when_the_server_ignores_filters() {
    let h = Hostile::start(unfiltered());
    let untagged = h.plant("untagged", &[]);
    let bobs = h.plant("bobs", &BOB);
    // The caller's own, but in use: attached, associated, used by a live instance (with
    // a deadline an hour away: not overdue, so reap leaves the instance alone too).
    let deadline = (chrono::Utc::now().timestamp() + 3600).to_string();
    let busy = h.plant("busy", &[OURS[0], ("herd-deadline", &deadline)]);
    h.rt.block_on(make_busy(&h.moto.endpoint(), REGION, &busy)).unwrap();

    // A launch and its end leave herd's key pair and group behind, unused.
    h.ok(&[
        "launch",
        "--cloud",
        "aws",
        "t3.micro",
        "--deadline",
        "30m",
        "--cluster",
        "h",
    ]);
    h.ok(&["down", "--cluster", "h", "--yes", "--cloud", "aws"]);

    let out = h.ok(&["reap", "--yes", "--json", "--cloud", "aws"]);
    let reaped: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let ids: Vec<String> = reaped["found"]["leftovers"]
        .as_array()
        .unwrap_or_else(|| panic!("{reaped}"))
        .iter()
        .map(|l| {
            l["id"]
                .as_str()
                .or(l["item"]["id"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(ids.iter().any(|i| i == "herd-tester"), "herd's own key pair: {reaped}");
    for p in [&untagged, &bobs, &busy] {
        for id in p
            .volumes
            .iter()
            .chain(&p.interfaces)
            .chain(&p.addresses)
            .chain(&p.groups)
            .chain(&p.keys)
        {
            assert!(!ids.contains(id), "{id} offered for reaping: {reaped}");
        }
    }
    for (name, p) in [("untagged", &untagged), ("bob's", &bobs), ("busy", &busy)] {
        let t = h.touched(p);
        assert!(t.is_empty(), "{name} resources touched: {t:?}");
    }
    let (code, _, err) = h.run(&["reap", "--yes", "--cloud", "aws"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing to reap"), "{err}");
}

#[test]
fn down_id_on_another_owners_or_an_untagged_instance_is_refused() {
    let h = Hostile::start(unfiltered());
    let bobs = h.plant("bobs", &BOB);
    let untagged = h.plant("untagged", &[]);
    let theirs = &bobs.instances[0];
    let (code, out, err) = h.run(&["down", theirs, "--yes"]);
    assert_ne!(code, 0, "refused:\n{out}{err}");
    assert!(err.contains("bob"), "names the owner: {err}");
    assert!(!out.contains("terminated"), "{out}");

    // An instance with no herd tag is invisible to herd's listing; its cloud's terminate,
    // asked about an id nobody listed, reads its tags and refuses: never "already gone".
    let stranger = &untagged.instances[0];
    let (code, out, err) = h.run(&["down", stranger, "--yes", "--cloud", "aws"]);
    assert_ne!(code, 0, "refused, not 'already gone':\n{out}{err}");
    assert!(
        !out.contains("terminated") && !out.contains("already gone"),
        "{out}{err}"
    );
    assert!(err.contains(stranger.as_str()), "says what it did with it: {err}");
    assert!(err.contains("no herd tags"), "says why: {err}");
    // Both still run, whatever the server answered.
    assert!(h.touched(&bobs).is_empty(), "{:?}", h.touched(&bobs));
    assert!(h.touched(&untagged).is_empty(), "{:?}", h.touched(&untagged));
    assert!(h.proxy.calls("TerminateInstances").is_empty(), "no terminate was sent");
}

#[test]
fn ls_on_a_truncated_answer_is_an_error_not_no_instances() {
    let h = Hostile::start(herd_testkit::pass());
    h.ok(&["launch", "--cloud", "aws", "t3.micro", "-n", "2", "--deadline", "30m"]);
    h.proxy.set_rule(Arc::new(|s, _| {
        if s.action == "DescribeInstances" {
            Fault::Truncate { percent: 60 }
        } else {
            Fault::Pass
        }
    }));
    let (code, out, err) = h.run(&["ls", "--cloud", "aws"]);
    assert_ne!(code, 0, "an error:\n{out}{err}");
    assert!(err.contains("malformed"), "{err}");
    assert!(err.contains(&h.proxy.endpoint()), "names the endpoint: {err}");
    assert!(
        !out.contains("no instances") && !err.contains("no instances"),
        "{out}{err}"
    );
    // Once the answers are whole, both are there.
    h.proxy.set_rule(herd_testkit::pass());
    let list: Value = serde_json::from_str(&h.ok(&["ls", "--json", "--cloud", "aws"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    // --verbose counts what went on the wire, not only the operations herd asked for.
    let before = h.proxy.seen().len();
    let (code, _, err) = h.run(&["-v", "down", "--all", "--yes", "--cloud", "aws"]);
    assert_eq!(code, 0, "{err}");
    let sent = h.proxy.seen().len() - before;
    assert!(
        err.contains(&format!("{sent} HTTP request(s)")),
        "-v reports the {sent} requests sent: {err}"
    );
}
