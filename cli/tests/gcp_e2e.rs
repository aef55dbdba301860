//! The `herd` binary against the test kit's fake Compute Engine, as a user types it:
//! launch, ls, cost, down, reap with `--cloud gcp`, the API base from `HERD_GCP_API_BASE`
//! and a token from `GOOGLE_OAUTH_ACCESS_TOKEN`, so nothing but 127.0.0.1 is asked.

use herd_gcp::testing::{FakeGce, Faults, Herd};

const HERD: &str = env!("CARGO_BIN_EXE_herd");

fn sandbox(fake: &FakeGce) -> Herd {
    Herd::new(HERD)
        .env("HERD_CLOUD", "gcp")
        .env("HERD_GCP_PROJECT", "herd-test")
        .env("HERD_GCP_REGION", "us-central1")
        .env("HERD_GCP_API_BASE", fake.uri())
        .env("GOOGLE_OAUTH_ACCESS_TOKEN", "test-token")
        .env("USER", "tester")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_ls_cost_down_reap_on_the_fake() {
    let fake = FakeGce::start(Faults::default()).await;
    let h = sandbox(&fake);
    let r = tokio::task::spawn_blocking({
        let h = std::sync::Arc::new(h);
        move || {
            let launched = h.json(&["launch", "e2-micro", "-n", "2", "--deadline", "1h", "--json"]);
            let ls = h.json(&["ls", "--json"]);
            let cost = h.ok(&["cost"]).all();
            let down = h.ok(&["down", "--all", "--yes"]).all();
            let after = h.json(&["ls", "--json"]);
            let reap = h.ok(&["reap", "--yes"]).all();
            (launched, ls, cost, down, after, reap)
        }
    })
    .await
    .unwrap();
    let (launched, ls, cost, down, after, reap) = r;
    let ids: Vec<String> = launched["instances"]
        .as_array()
        .unwrap_or_else(|| panic!("{launched}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{launched}");
    assert!(ids.iter().all(|i| i.starts_with("herd-l-")), "{ids:?}");
    let listed = ls
        .as_array()
        .or_else(|| ls["instances"].as_array())
        .unwrap_or_else(|| panic!("{ls}"));
    assert_eq!(listed.len(), 2, "{ls}");
    // Priced at launch from the labels: the cluster's row is GCP's, 2 live.
    let row = cost
        .lines()
        .find(|l| l.contains(" gcp "))
        .unwrap_or_else(|| panic!("{cost}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["gcp", "2", "2"], "{cost}");
    assert!(!down.is_empty());
    let left = after
        .as_array()
        .or_else(|| after["instances"].as_array())
        .map_or(0, Vec::len);
    assert_eq!(left, 0, "{after}");
    assert!(fake.instances().is_empty());
    let bulk = fake.requests("compute.instances.bulkInsert");
    assert_eq!(bulk.len(), 1);
    assert_eq!(
        bulk[0].body["instanceProperties"]["scheduling"]["instanceTerminationAction"],
        "DELETE"
    );
    assert_eq!(fake.requests("compute.instances.delete").len(), 2);
    // The firewall rule is reaped once no VM of its owner is left.
    assert!(fake.firewalls().is_empty(), "reap said:\n{reap}");
}

#[test]
fn no_credentials_is_a_clear_error_before_any_call() {
    let h = Herd::new(HERD)
        .env("HERD_CLOUD", "gcp")
        .env("HERD_GCP_PROJECT", "herd-test")
        .env("HERD_GCP_CREDENTIALS", "/nonexistent/key.json");
    let r = h.fails(&["launch", "e2-micro", "--deadline", "1h"]);
    assert!(r.stderr.contains("cannot read GCP credentials"), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    let r = h.fails(&["launch", "e2-mikro", "--deadline", "1h"]);
    assert!(r.stderr.contains("e2-micro"), "suggested: {}", r.stderr);
}

/// exec, ssh and a sweep cell on "GCE": the fake is the control plane and every
/// instance's address goes (test builds only) to a real sshd on 127.0.0.1 serving the
/// launches' host key and admitting the owner's key the `ssh-keys` metadata carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_ssh_and_a_sweep_cell_over_ssh_on_the_fake() {
    use herd_guest::ssh::testing::Sshd;
    use herd_guest::ssh::HostKeyPair;
    let fake = FakeGce::start(Faults::default()).await;
    let uri = fake.uri();
    tokio::task::spawn_blocking(move || {
        let host = HostKeyPair::generate().unwrap();
        let mut h = Herd::with_config(HERD, "[simulator.faults]\nboot_delay = [\"100ms\", \"200ms\"]\n")
            .env("HERD_CLOUD", "gcp")
            .env("HERD_GCP_PROJECT", "herd-test")
            .env("HERD_GCP_REGION", "us-central1")
            .env("HERD_GCP_API_BASE", &uri)
            .env("GOOGLE_OAUTH_ACCESS_TOKEN", "test-token")
            .env("HERD_GCP_SSH_USER", herd_guest::ssh::testing::current_user().unwrap());
        let host_file = h.write("host-key", host.private_openssh());
        h.set_env("HERD_GCP_TEST_HOST_KEY", host_file.as_os_str());
        let launched = h.json(&[
            "launch",
            "e2-micro",
            "-n",
            "2",
            "--deadline",
            "1h",
            "--cluster",
            "g",
            "--json",
        ]);
        let ids: Vec<String> = launched["instances"]
            .as_array()
            .unwrap_or_else(|| panic!("{launched}"))
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        let owner = std::fs::read_to_string(h.home().join(".local/share/herd/keys/herd-tester-ed25519.pub")).unwrap();
        let sshd = Sshd::start_as(Some(host), &[owner]).unwrap_or_else(|e| panic!("{e}"));
        h.set_env("HERD_GCP_TEST_ADDRESS_MAP", format!("*={}", sshd.addr()));

        let r = h.ok(&["exec", "--cluster", "g", "--", "echo hello-gce"]);
        for id in &ids {
            assert!(r.stdout.contains(&format!("[{id}] hello-gce\n")), "{}", r.all());
        }
        let r = h.run(&["ssh", &ids[0], "--", "echo via-ssh"]);
        assert_eq!(r.code, 0, "{}", r.all());
        assert!(r.stdout.contains("via-ssh"), "{}", r.all());
        h.ok(&["down", "--cluster", "g", "--yes"]);

        h.write(
            "work.sh",
            "i=0\nwhile [ $i -lt 20000 ]; do i=$((i+1)); done\necho \"score: $i\"\n",
        );
        let spec = h.write(
            "s.toml",
            "name = \"gce\"\nrepetitions = 2\ntimeout = \"5m\"\nconcurrency = 2\nbudget = \"1\"\n\n\
             [workload]\nfiles = [\"work.sh\"]\nrun = \"sh work.sh\"\n\n\
             [workload.metric]\nregex = 'score: ([0-9]+)'\nbetter = \"higher\"\n\n\
             [matrix]\nclouds = [\"local\", \"gcp\"]\nregions = [\"local-east-1\", \"us-central1\"]\n\
             types = [\"l1.large\", \"e2-standard-2\"]\n",
        );
        let r = h.run(&["sweep", "run", spec.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.all());
        let v = h.json(&["sweep", "report", "gce", "--json"]);
        let cells = v["cells"].as_array().unwrap_or_else(|| panic!("{v}"));
        let clouds: Vec<&str> = cells.iter().filter_map(|c| c["cell"]["cloud"].as_str()).collect();
        assert!(clouds.contains(&"gcp") && clouds.contains(&"local"), "{v}");
        assert!(cells.iter().all(|c| c["metric"]["median"] == 20000.0), "{v}");
        assert!(h.live().is_empty(), "{:?}", h.live());
    })
    .await
    .unwrap();
    assert!(fake.instances().is_empty(), "{:?}", fake.instances());
}
