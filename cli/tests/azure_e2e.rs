//! The `herd` binary against the test kit's stateful ARM, as a user types it: launch, ls,
//! cost, down, reap with `--cloud azure`, the ARM endpoint from `HERD_AZURE_API_BASE` and a
//! token from `AZURE_ACCESS_TOKEN`, so nothing but 127.0.0.1 is asked.

use herd_azure::testing::{FakeArm, Faults, Herd, Kind};

const HERD: &str = env!("CARGO_BIN_EXE_herd");
const SUB: &str = "00000000-0000-0000-0000-0000000000e2";

fn sandbox(fake: &FakeArm) -> Herd {
    Herd::new(HERD)
        .env("HERD_AZURE_SUBSCRIPTION", SUB)
        .env("HERD_AZURE_REGION", "eastus")
        .env("HERD_AZURE_API_BASE", fake.uri())
        .env("AZURE_ACCESS_TOKEN", "test-token")
        .env("USER", "tester")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_ls_cost_down_reap_on_the_fake() {
    let fake = FakeArm::start(Faults::default()).await;
    let h = sandbox(&fake);
    let r = tokio::task::spawn_blocking({
        let h = std::sync::Arc::new(h);
        move || {
            let launched = h.json(&[
                "launch",
                "Standard_D2s_v3",
                "--cloud",
                "azure",
                "-n",
                "2",
                "--deadline",
                "1h",
                "--json",
            ]);
            let ls = h.json(&["ls", "--cloud", "azure", "--json"]);
            let cost = h.ok(&["cost"]).all();
            let down = h.ok(&["down", "--all", "--yes"]).all();
            let after = h.json(&["ls", "--cloud", "azure", "--json"]);
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
    // Priced at launch from the tags: the cluster's row is Azure's, 2 live.
    let row = cost
        .lines()
        .find(|l| l.contains(" azure "))
        .unwrap_or_else(|| panic!("{cost}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["azure", "2", "2"], "{cost}");
    assert!(!down.is_empty());
    let left = after
        .as_array()
        .or_else(|| after["instances"].as_array())
        .map_or(0, Vec::len);
    assert_eq!(left, 0, "{after}");
    // Nothing billable is left: no VM, NIC, IP or disk; the cluster's group deleted.
    assert!(fake.vms().is_empty());
    assert!(fake.nics().is_empty() && fake.public_ips().is_empty() && fake.disks().is_empty());
    let puts = fake.requests_to("PUT", Kind::Vm);
    assert_eq!(puts.len(), 2);
    assert_eq!(
        puts[0].body["properties"]["storageProfile"]["osDisk"]["deleteOption"],
        "Delete"
    );
    assert_eq!(fake.requests_to("DELETE", Kind::Vm).len(), 2);
    assert!(
        !fake.requests_to("DELETE", Kind::ResourceGroup).is_empty(),
        "reap said:\n{reap}"
    );
}

#[test]
fn no_subscription_or_a_wrong_size_is_a_clear_error_before_any_call() {
    let h = Herd::new(HERD)
        .env("HERD_AZURE_API_BASE", "http://127.0.0.1:9")
        .env("AZURE_ACCESS_TOKEN", "test-token");
    let r = h.fails(&["launch", "Standard_D2s_v3", "--cloud", "azure", "--deadline", "1h"]);
    assert!(r.stderr.contains("no Azure subscription"), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    let r = h.fails(&["launch", "Standard_D2s_v33", "--cloud", "azure", "--deadline", "1h"]);
    assert!(r.stderr.contains("Standard_D2s_v3"), "suggested: {}", r.stderr);
}

/// `herd exec`, `herd ssh` and a sweep mixing the simulator and Azure: each VM's public
/// address goes (test builds only) to a real sshd on 127.0.0.1 serving the launches'
/// host key and admitting the owner's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_ssh_and_a_sweep_cell_over_ssh_on_the_fake() {
    use herd_guest::ssh::testing::Sshd;
    use herd_guest::ssh::HostKeyPair;
    let fake = FakeArm::start(Faults::default()).await;
    let uri = fake.uri();
    tokio::task::spawn_blocking(move || {
        let host = HostKeyPair::generate().unwrap();
        let mut h = Herd::with_config(HERD, "[simulator.faults]\nboot_delay = [\"100ms\", \"200ms\"]\n")
            .env("HERD_AZURE_SUBSCRIPTION", SUB)
            .env("HERD_AZURE_REGION", "eastus")
            .env("HERD_AZURE_API_BASE", &uri)
            .env("AZURE_ACCESS_TOKEN", "test-token")
            .env("HERD_AZURE_SSH_USER", herd_guest::ssh::testing::current_user().unwrap());
        let host_file = h.write("host-key", host.private_openssh());
        h.set_env("HERD_AZURE_TEST_HOST_KEY", host_file.as_os_str());
        let launched = h.json(&[
            "launch",
            "Standard_D2s_v3",
            "--cloud",
            "azure",
            "-n",
            "2",
            "--deadline",
            "1h",
            "--cluster",
            "z",
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
        h.set_env("HERD_AZURE_TEST_ADDRESS_MAP", format!("*={}", sshd.addr()));

        let r = h.ok(&["exec", "--cluster", "z", "--", "echo hello-azure"]);
        for id in &ids {
            assert!(r.stdout.contains(&format!("[{id}] hello-azure\n")), "{}", r.all());
        }
        let r = h.run(&["ssh", &ids[0], "--", "echo via-ssh"]);
        assert_eq!(r.code, 0, "{}", r.all());
        assert!(r.stdout.contains("via-ssh"), "{}", r.all());
        h.ok(&["down", "--cluster", "z", "--yes"]);

        h.write(
            "work.sh",
            "i=0\nwhile [ $i -lt 20000 ]; do i=$((i+1)); done\necho \"score: $i\"\n",
        );
        let spec = h.write(
            "s.toml",
            "name = \"az\"\nrepetitions = 2\ntimeout = \"5m\"\nconcurrency = 2\nbudget = \"1\"\n\n\
             [workload]\nfiles = [\"work.sh\"]\nrun = \"sh work.sh\"\n\n\
             [workload.metric]\nregex = 'score: ([0-9]+)'\nbetter = \"higher\"\n\n\
             [matrix]\nclouds = [\"local\", \"azure\"]\nregions = [\"local-east-1\", \"eastus\"]\n\
             types = [\"l1.large\", \"Standard_D2s_v3\"]\n",
        );
        let r = h.run(&["sweep", "run", spec.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.all());
        let v = h.json(&["sweep", "report", "az", "--json"]);
        let cells = v["cells"].as_array().unwrap_or_else(|| panic!("{v}"));
        let clouds: Vec<&str> = cells.iter().filter_map(|c| c["cell"]["cloud"].as_str()).collect();
        assert!(clouds.contains(&"azure") && clouds.contains(&"local"), "{v}");
        assert!(cells.iter().all(|c| c["metric"]["median"] == 20000.0), "{v}");
        assert!(h.live().is_empty(), "{:?}", h.live());
    })
    .await
    .unwrap();
    assert!(fake.vms().is_empty(), "{:?}", fake.vms());
}
