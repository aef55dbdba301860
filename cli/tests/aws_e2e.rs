//! The `herd` binary against moto's EC2 server, as a user types it: launch, ls, cost,
//! down, reap. Credentials are fake and the endpoint comes from AWS_ENDPOINT_URL, the
//! way a user points herd at an emulator; instance metadata is off, so nothing but
//! 127.0.0.1 is ever asked.

use std::path::Path;
use std::process::{Command, Stdio};

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

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(HERD)
            .args(args)
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
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
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
