//! How fast a VM's workload writes output, and when that is worth a warning.
//!
//! A 1,000-node cluster left at debug logging can cost more in log shipping than in
//! compute. The guest measures: the watchdog (and the simulator's agent) samples the
//! size of the setup and command logs every so often and keeps the last two samples in
//! [`FILE`] (`t0 b0 t1 b1`, epoch seconds and bytes). herd reads that file with
//! [`PROBE`] over `exec` and warns, with the projection over the fleet and the deadline
//! and what shipping that volume to the cloud's log service would cost.

use std::time::Duration;

use herd_core::Cloud;

/// The samples' file, relative to the guest root (`$HERD_GUEST_ROOT`, `/` on a VM).
pub const FILE: &str = "run/herd/lograte";

/// The fewest seconds between two samples: shorter windows are mostly noise.
pub const MIN_WINDOW_SECS: u64 = 5;

/// The default threshold, `[logs] warn_mb_per_min`.
pub const DEFAULT_WARN_MB_PER_MIN: f64 = 1.0;

/// The shell that prints the samples (nothing when the VM has none yet).
pub const PROBE: &str = "cat \"${HERD_GUEST_ROOT:-}/run/herd/lograte\" 2>/dev/null; true";

/// The watchdog's sampler, for its loop: `$now` is the loop's time, `$R` the guest root,
/// `$RUN` herd's run folder. Writes through a temporary file so a reader never sees half.
pub fn sampler_shell() -> String {
    format!(
        r#"lograte() {{
  local f s b=0
  for f in "$R/{setup}" "$R/{command}"; do s=$(stat -c %s "$f" 2>/dev/null) || s=0; b=$(( b + s )); done
  if [ -z "$lr_t" ]; then lr_t=$now; lr_b=$b; return; fi
  [ $(( now - lr_t )) -ge {min} ] || return
  mkdir -p "$RUN" 2>/dev/null
  echo "$lr_t $lr_b $now $b" > "$RUN/lograte.tmp" && mv -f "$RUN/lograte.tmp" "$RUN/lograte"
  lr_t=$now; lr_b=$b
}}
"#,
        setup = crate::boot::SETUP_LOG,
        command = crate::boot::COMMAND_LOG,
        min = MIN_WINDOW_SECS,
    )
}

/// One measurement: bytes written over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub bytes: u64,
    pub window: Duration,
    /// When the window ended (epoch seconds, the VM's clock).
    pub at: i64,
}

impl Rate {
    /// The samples file's text (`t0 b0 t1 b1`); `None` for nothing or for anything
    /// malformed (a log that shrank was rotated: no rate from it).
    pub fn parse(text: &str) -> Option<Rate> {
        let v: Vec<i64> = text.split_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?;
        let [t0, b0, t1, b1] = v[..] else { return None };
        if t1 <= t0 || b1 < b0 || b0 < 0 {
            return None;
        }
        Some(Rate {
            bytes: (b1 - b0) as u64,
            window: Duration::from_secs((t1 - t0) as u64),
            at: t1,
        })
    }

    pub fn mb_per_min(&self) -> f64 {
        self.bytes as f64 / 1e6 / (self.window.as_secs_f64() / 60.0)
    }
}

/// A cloud's log service at its list price per GB ingested.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogService {
    pub name: &'static str,
    pub usd_per_gb: f64,
}

/// What shipping logs costs where `cloud`'s users usually send them. Sources (list
/// prices, first paid tier, 2026): aws.amazon.com/cloudwatch/pricing (Logs, standard
/// ingestion, $0.50/GB); cloud.google.com/stackdriver/pricing (Cloud Logging, $0.50/GiB
/// past the free 50 GiB); azure.microsoft.com/pricing/details/monitor (Log Analytics,
/// Analytics logs pay-as-you-go, $2.30/GB). The simulator is priced like AWS: it stands
/// in for a cloud.
pub fn log_service(cloud: Cloud) -> LogService {
    match cloud {
        Cloud::Gcp => LogService {
            name: "Cloud Logging",
            usd_per_gb: 0.50,
        },
        Cloud::Azure => LogService {
            name: "Azure Monitor Logs",
            usd_per_gb: 2.30,
        },
        _ => LogService {
            name: "CloudWatch Logs",
            usd_per_gb: 0.50,
        },
    }
}

/// A chatty instance: its rate and what it means for the fleet it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    pub instance: String,
    pub mb_per_min: f64,
    pub threshold_mb_per_min: f64,
    pub fleet: usize,
    pub remaining: Duration,
    pub projected_gb: f64,
    pub service: LogService,
}

impl Warning {
    /// A warning when `rate` is over `threshold` MB/min (0 turns warnings off): the
    /// projection assumes every one of the `fleet` instances writes as fast until the
    /// deadline, `remaining` from now.
    pub fn assess(
        instance: &str,
        rate: &Rate,
        threshold: f64,
        fleet: usize,
        remaining: Duration,
        cloud: Cloud,
    ) -> Option<Warning> {
        let mb = rate.mb_per_min();
        if threshold <= 0.0 || mb <= threshold {
            return None;
        }
        let fleet = fleet.max(1);
        let projected_gb = mb * remaining.as_secs_f64() / 60.0 * fleet as f64 / 1000.0;
        Some(Warning {
            instance: instance.to_string(),
            mb_per_min: mb,
            threshold_mb_per_min: threshold,
            fleet,
            remaining,
            projected_gb,
            service: log_service(cloud),
        })
    }

    pub fn projected_usd(&self) -> f64 {
        self.projected_gb * self.service.usd_per_gb
    }

    /// The line herd prints (after `warning: `).
    pub fn message(&self) -> String {
        let hours = self.remaining.as_secs_f64() / 3600.0;
        let who = if self.fleet == 1 {
            "it".to_string()
        } else {
            format!("{} instances like it", self.fleet)
        };
        format!(
            "{} writes {:.1} MB/min of output (warning above {} MB/min): at that rate {who} write {:.1} GB by the deadline ({:.1} h left); shipped to {} that is ${:.2} at ${:.2}/GB",
            self.instance,
            self.mb_per_min,
            self.threshold_mb_per_min,
            self.projected_gb,
            hours,
            self.service.name,
            self.projected_usd(),
            self.service.usd_per_gb,
        )
    }

    pub const HINT: &'static str = "lower the workload's log level or write to a file you keep on the VM; `[logs] warn_mb_per_min` sets the threshold (0: off)";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_and_nonsense_is_no_rate() {
        let r = Rate::parse("100 1000 160 5001000\n").unwrap();
        assert_eq!(r.bytes, 5_000_000);
        assert_eq!(r.window, Duration::from_secs(60));
        assert!((r.mb_per_min() - 5.0).abs() < 1e-9);
        for bad in ["", "1 2 3", "100 10 100 20", "100 20 160 10", "a b c d", "1 2 3 4 5"] {
            assert_eq!(Rate::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn five_mb_a_minute_on_a_thousand_nodes_is_projected_and_priced() {
        let r = Rate::parse("0 0 60 5000000").unwrap();
        let w = Warning::assess("i-1", &r, 1.0, 1000, Duration::from_secs(10 * 3600), Cloud::Aws).unwrap();
        // 5 MB/min × 600 min × 1,000 = 3,000 GB; × $0.50 = $1,500.
        assert!((w.projected_gb - 3000.0).abs() < 1e-6, "{w:?}");
        assert!((w.projected_usd() - 1500.0).abs() < 1e-6);
        let m = w.message();
        assert!(m.contains("5.0 MB/min"), "{m}");
        assert!(m.contains("1000 instances like it write 3000.0 GB"), "{m}");
        assert!(m.contains("CloudWatch Logs that is $1500.00 at $0.50/GB"), "{m}");
        let az = Warning::assess("vm", &r, 1.0, 1, Duration::from_secs(3600), Cloud::Azure).unwrap();
        assert!(az.message().contains("Azure Monitor Logs"), "{}", az.message());
    }

    #[test]
    fn quiet_instances_and_a_zero_threshold_warn_of_nothing() {
        let r = Rate::parse("0 0 60 900000").unwrap();
        assert_eq!(
            Warning::assess("i", &r, 1.0, 10, Duration::from_secs(60), Cloud::Aws),
            None
        );
        let loud = Rate::parse("0 0 60 90000000").unwrap();
        assert_eq!(
            Warning::assess("i", &loud, 0.0, 10, Duration::from_secs(60), Cloud::Aws),
            None
        );
    }
}
