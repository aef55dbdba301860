//! The `herd` binary against a hostile EC2: herd-aws's test proxy in front of moto,
//! ignoring filters and id lists (so answers carry foreign resources planted straight in
//! moto: untagged, or another owner's) or cutting answers short. As a user types it:
//! `herd reap --yes` deletes nothing foreign, `herd down ID --yes` on another owner's
//! instance is refused and names the owner, `herd ls` on a cut answer is an error, never
//! "no instances". moto is read directly afterwards to prove nothing foreign was touched.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use herd_aws::testing::{check_planted, make_busy, plant, Fault, FaultProxy, Moto, Planted, Rule};
use serde_json::Value;

const HERD: &str = env!("CARGO_BIN_EXE_herd");
const REGION: &str = "us-east-1";

/// moto, the proxy in front of it, and the runtime both live on (the tests' own thread
/// runs `herd` processes meanwhile).
struct Hostile {
    rt: tokio::runtime::Runtime,
    moto: Moto,
    proxy: FaultProxy,
    dir: tempfile::TempDir,
}

impl Hostile {
    fn start(rule: Rule) -> Hostile {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let moto = rt.block_on(Moto::start()).unwrap_or_else(|e| panic!("{e}"));
        let proxy = rt.block_on(FaultProxy::start(Some(moto.endpoint()), rule));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Hostile { rt, moto, proxy, dir }
    }

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
            .env("HERD_SIM_DIR", self.path().join("sim"))
            .env("HERD_CLOUD", "aws")
            .env("USER", "tester")
            .env("NO_COLOR", "1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", self.proxy.endpoint())
            .env("HERD_AWS_REGIONS", REGION)
            // Retries end soon: a test asserts what herd says, not how long it waits.
            .env("HERD_RETRY_PATIENCE", "3s")
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

fn triple(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
    let h = Hostile::start(herd_aws::testing::pass());
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
    h.proxy.set_rule(herd_aws::testing::pass());
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
