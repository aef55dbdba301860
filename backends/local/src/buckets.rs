//! EC2-sized API token buckets, persisted in the state database so throttling spans
//! CLI invocations, refilled from the injected clock.
//!
//! Sizes and refill rates are EC2's documented ones ("Request throttling for the Amazon
//! EC2 API", docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html, tables
//! "Request token bucket sizes and refill rates" and "Resource token bucket sizes and
//! refill rates"). EC2 keeps them per account and region; so does the simulator for
//! RunInstances (so a fleet over two regions is paced by each region's own buckets), and
//! one set per state dir for the other calls, its regions sharing one control plane.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

/// One bucket: `capacity` tokens, refilled at `refill_per_sec`, starting full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BucketSpec {
    pub name: &'static str,
    pub capacity: f64,
    pub refill_per_sec: f64,
}

/// RunInstances request tokens: 5, refill 2/s (an "uncategorized action").
pub(crate) const RUN_INSTANCES: BucketSpec = BucketSpec {
    name: "RunInstances",
    capacity: 5.0,
    refill_per_sec: 2.0,
};
/// RunInstances resource tokens, one per instance: 1000, refill 2/s.
pub(crate) const RUN_INSTANCES_RESOURCE: BucketSpec = BucketSpec {
    name: "RunInstances/instances",
    capacity: 1000.0,
    refill_per_sec: 2.0,
};
/// TerminateInstances request tokens: 100, refill 5/s.
pub(crate) const TERMINATE_INSTANCES: BucketSpec = BucketSpec {
    name: "TerminateInstances",
    capacity: 100.0,
    refill_per_sec: 5.0,
};
/// TerminateInstances resource tokens, one per instance: 1000, refill 20/s.
pub(crate) const TERMINATE_INSTANCES_RESOURCE: BucketSpec = BucketSpec {
    name: "TerminateInstances/instances",
    capacity: 1000.0,
    refill_per_sec: 20.0,
};
/// DescribeInstances, filtered and paginated: a "non-mutating action", 100, refill 20/s.
pub(crate) const DESCRIBE_INSTANCES: BucketSpec = BucketSpec {
    name: "DescribeInstances",
    capacity: 100.0,
    refill_per_sec: 20.0,
};
/// DescribeVolumes, filtered: a "non-mutating action", 100, refill 20/s.
pub(crate) const DESCRIBE_VOLUMES: BucketSpec = BucketSpec {
    name: "DescribeVolumes",
    capacity: 100.0,
    refill_per_sec: 20.0,
};
/// DeleteVolume: an "uncategorized action", 100, refill 5/s.
pub(crate) const DELETE_VOLUME: BucketSpec = BucketSpec {
    name: "DeleteVolume",
    capacity: 100.0,
    refill_per_sec: 5.0,
};

/// Takes `n` tokens at `now_ms`, all or nothing. When there are not enough, nothing is
/// taken and the error says how long until there will be.
pub(crate) fn take(
    conn: &Connection,
    spec: &BucketSpec,
    n: u32,
    now_ms: i64,
) -> rusqlite::Result<Result<(), Duration>> {
    take_in(conn, spec, None, n, now_ms)
}

/// [`take`] from `region`'s own bucket of that kind (`None`: the one shared bucket).
pub(crate) fn take_in(
    conn: &Connection,
    spec: &BucketSpec,
    region: Option<&str>,
    n: u32,
    now_ms: i64,
) -> rusqlite::Result<Result<(), Duration>> {
    let name = match region {
        Some(r) => format!("{}@{r}", spec.name),
        None => spec.name.to_string(),
    };
    let stored: Option<(f64, i64)> = conn
        .query_row(
            "SELECT tokens, updated_at FROM buckets WHERE name = ?1",
            params![name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (tokens, stamp) = match stored {
        None => (spec.capacity, now_ms),
        Some((tokens, at)) => {
            let elapsed = (now_ms - at).max(0) as f64 / 1000.0;
            // A clock behind the stored stamp (another shell's skew) refills nothing
            // and does not move the stamp back, so it can never mint tokens.
            (
                (tokens + elapsed * spec.refill_per_sec).min(spec.capacity),
                now_ms.max(at),
            )
        }
    };
    let want = f64::from(n);
    let (left, outcome) = if tokens + 1e-9 >= want {
        ((tokens - want).max(0.0), Ok(()))
    } else {
        let secs = (want - tokens) / spec.refill_per_sec;
        (tokens, Err(Duration::from_secs_f64(secs.min(1e6))))
    };
    conn.execute(
        "INSERT INTO buckets (name, tokens, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at",
        params![name, left, stamp],
    )?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE buckets (name TEXT PRIMARY KEY, tokens REAL NOT NULL, updated_at INTEGER NOT NULL)",
        )
        .unwrap();
        c
    }

    #[test]
    fn run_instances_bursts_five_then_two_per_second() {
        let c = db();
        let t0 = 1_000_000;
        for _ in 0..5 {
            take(&c, &RUN_INSTANCES, 1, t0).unwrap().unwrap();
        }
        let wait = take(&c, &RUN_INSTANCES, 1, t0).unwrap().unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Half a second later one token is back, and only one.
        take(&c, &RUN_INSTANCES, 1, t0 + 500).unwrap().unwrap();
        assert!(take(&c, &RUN_INSTANCES, 1, t0 + 500).unwrap().is_err());
        // Never more than the capacity, however long the wait.
        for _ in 0..5 {
            take(&c, &RUN_INSTANCES, 1, t0 + 3_600_000).unwrap().unwrap();
        }
        assert!(take(&c, &RUN_INSTANCES, 1, t0 + 3_600_000).unwrap().is_err());
    }

    #[test]
    fn resource_tokens_are_all_or_nothing() {
        let c = db();
        let t0 = 5_000;
        take(&c, &RUN_INSTANCES_RESOURCE, 900, t0).unwrap().unwrap();
        // 100 left: a launch of 101 takes nothing and must wait half a second.
        let wait = take(&c, &RUN_INSTANCES_RESOURCE, 101, t0).unwrap().unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        take(&c, &RUN_INSTANCES_RESOURCE, 100, t0).unwrap().unwrap();
        assert!(take(&c, &RUN_INSTANCES_RESOURCE, 1, t0).unwrap().is_err());
        take(&c, &RUN_INSTANCES_RESOURCE, 2, t0 + 1000).unwrap().unwrap();
    }

    #[test]
    fn each_region_has_its_own_bucket() {
        let c = db();
        take_in(&c, &RUN_INSTANCES_RESOURCE, Some("east"), 1000, 0)
            .unwrap()
            .unwrap();
        assert!(take_in(&c, &RUN_INSTANCES_RESOURCE, Some("east"), 1, 0)
            .unwrap()
            .is_err());
        take_in(&c, &RUN_INSTANCES_RESOURCE, Some("west"), 1000, 0)
            .unwrap()
            .unwrap();
        take(&c, &RUN_INSTANCES_RESOURCE, 1000, 0).unwrap().unwrap();
    }

    #[test]
    fn describe_refills_twenty_per_second() {
        let c = db();
        take(&c, &DESCRIBE_INSTANCES, 100, 0).unwrap().unwrap();
        assert!(take(&c, &DESCRIBE_INSTANCES, 1, 0).unwrap().is_err());
        take(&c, &DESCRIBE_INSTANCES, 20, 1000).unwrap().unwrap();
        assert!(take(&c, &DESCRIBE_INSTANCES, 1, 1000).unwrap().is_err());
        // A clock going backwards (another shell's skew) never mints tokens.
        assert!(take(&c, &DESCRIBE_INSTANCES, 1, 500).unwrap().is_err());
    }
}
