//! Mixed fleets typed as a user types them, on the simulator with real processes: several
//! types and regions in one `herd launch`, a fleet file with weights, a forced failure in
//! one region (all or nothing, then `--partial`), and one `down --launch` for all of it.

use std::collections::BTreeMap;

use herd_testkit::cli::Herd;
use serde_json::Value;

const HERD: &str = env!("CARGO_BIN_EXE_herd");

/// Fast boots; `extra` adds to `[simulator.faults]`.
fn sandbox(extra: &str) -> Herd {
    Herd::with_config(
        HERD,
        &format!("[simulator.faults]\nboot_delay = [\"100ms\", \"200ms\"]\n{extra}"),
    )
}

/// (type, region) → how many live instances `ls` shows, and the clusters seen.
fn split(live: &[Value]) -> (BTreeMap<(String, String), usize>, Vec<String>) {
    let mut parts = BTreeMap::new();
    let mut clusters: Vec<String> = Vec::new();
    for i in live {
        let region = i["region"].as_str().unwrap_or_else(|| panic!("{i}")).to_string();
        let ty = i["instance_type"].as_str().unwrap_or_else(|| panic!("{i}")).to_string();
        *parts.entry((ty, region)).or_insert(0) += 1;
        let c = i["tags"]["herd-cluster"].as_str().unwrap_or_default().to_string();
        if !clusters.contains(&c) {
            clusters.push(c);
        }
    }
    (parts, clusters)
}

fn key(ty: &str, region: &str) -> (String, String) {
    (ty.to_string(), region.to_string())
}

#[test]
fn two_types_times_two_regions_is_one_launch_one_cluster_one_stop() {
    let h = sandbox("");
    let args = [
        "launch",
        "l1.small,l1.large",
        "--region",
        "local-east-1,local-west-1",
        "-n",
        "10",
        "--deadline",
        "10m",
    ];
    // The plan first: each part's count and worst case, one total, nothing started.
    let plan = h.ok(&[&args[..], &["--dry-run"]].concat());
    assert!(plan.stdout.contains("10 instances in 4 parts"), "{}", plan.stdout);
    assert!(plan.stdout.contains("reserved once"), "{}", plan.stdout);
    assert!(h.live().is_empty());

    let r = h.json(&[&args[..], &["--json"]].concat());
    let launch_id = r["launch_id"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
    let parts = r["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 4, "{r}");
    assert!(parts.iter().all(|p| p["error"].is_null()), "{r}");
    // 10 over 4 parts: 3, 3, 2, 2 (the remainder one each to the first parts, types outer).
    let (got, clusters) = split(&h.live());
    let want: BTreeMap<_, _> = [
        (key("l1.small", "local-east-1"), 3),
        (key("l1.small", "local-west-1"), 3),
        (key("l1.large", "local-east-1"), 2),
        (key("l1.large", "local-west-1"), 2),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    assert_eq!(clusters, vec![r["cluster"].as_str().unwrap().to_string()]);

    // One launch row on the ledger, holding the whole fleet.
    let cost = h.ok(&["cost", "--by", "cluster"]).stdout;
    let row = cost
        .lines()
        .find(|l| l.contains(r["cluster"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("{cost}"));
    assert!(row.split_whitespace().any(|w| w == "10"), "{cost}");

    // One stop for all four parts.
    h.ok(&["down", "--launch", &launch_id, "--yes"]);
    assert!(h.live().is_empty(), "{:?}", h.live());
}

#[test]
fn a_fleet_file_with_weights_splits_the_total() {
    let h = sandbox("");
    let file = h.write(
        "fleet.toml",
        "count = 8\n\
         [[part]]\ntype = \"l1.small\"\nregion = \"local-east-1\"\nweight = 3\n\
         [[part]]\ntype = \"l1.large\"\nregion = \"local-west-1\"\nweight = 1\n",
    );
    h.ok(&["launch", "--fleet", file.to_str().unwrap(), "--deadline", "10m"]);
    let (got, clusters) = split(&h.live());
    let want: BTreeMap<_, _> = [
        (key("l1.small", "local-east-1"), 6),
        (key("l1.large", "local-west-1"), 2),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    assert_eq!(clusters.len(), 1);

    // A typo in the file is refused before anything starts, naming the file.
    let bad = h.write(
        "bad.toml",
        "[[part]]\ntype = \"l1.small\"\nregoin = \"local-east-1\"\ncount = 1\n",
    );
    let r = h.fails(&["launch", "--fleet", bad.to_str().unwrap(), "--deadline", "10m"]);
    assert!(r.stderr.contains("bad.toml"), "{}", r.stderr);
    assert_eq!(h.live().len(), 8);
}

#[test]
fn a_failed_part_ends_the_whole_fleet_unless_partial() {
    // No room in the west: its parts fail with InsufficientCapacity.
    let h = sandbox("capacity = { \"local-west-1a\" = 0, \"local-west-1b\" = 0 }\n");
    let args = [
        "launch",
        "l1.small",
        "--region",
        "local-east-1,local-west-1",
        "-n",
        "4",
        "--deadline",
        "10m",
    ];
    let r = h.run(&args);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("error: "), "{}", r.stderr);
    assert!(
        r.stderr.contains("local-west-1"),
        "the error names the failed part: {}",
        r.stderr
    );
    // All or nothing: the east part that started was ended too.
    assert!(h.live().is_empty(), "left running: {:?}", h.live());

    // --partial keeps what started; the exit code still says something failed.
    let r = h.run(&[&args[..], &["--partial"]].concat());
    assert_eq!(r.code, 1, "{}", r.all());
    let (got, _) = split(&h.live());
    let want: BTreeMap<_, _> = [(key("l1.small", "local-east-1"), 2)].into_iter().collect();
    assert_eq!(got, want);
}
