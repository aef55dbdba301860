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
