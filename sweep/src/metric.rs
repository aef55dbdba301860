//! Turning one run's output into a number: its wall time, or a number the workload
//! printed (matched by a regex, or a field of a JSON line). A metric that is not found is
//! an error carrying the output's last lines, never a silent zero.

use std::time::Duration;

use herd_core::{Error, ErrorKind, Result};

use crate::spec::{MetricSource, MetricSpec};

/// How many lines of output a failure keeps.
pub const TAIL_LINES: usize = 20;

/// A compiled metric.
#[derive(Debug, Clone)]
pub struct Metric {
    spec: MetricSpec,
    regex: Option<regex_lite::Regex>,
}

impl Metric {
    pub fn new(spec: &MetricSpec) -> Result<Metric> {
        let regex = match &spec.source {
            MetricSource::Regex(r) => Some(
                regex_lite::Regex::new(r)
                    .map_err(|e| Error::invalid_spec(format!("metric regex `{r}` is invalid: {e}")))?,
            ),
            _ => None,
        };
        Ok(Metric {
            spec: spec.clone(),
            regex,
        })
    }

    pub fn spec(&self) -> &MetricSpec {
        &self.spec
    }

    /// The value of one run. Wall time is in seconds.
    pub fn extract(&self, stdout: &str, wall: Duration) -> Result<f64> {
        let found = match &self.spec.source {
            MetricSource::WallTime => Some(wall.as_secs_f64()),
            MetricSource::Regex(r) => {
                let re = self.regex.as_ref().expect("compiled in new");
                // The last match: progress lines come before the result.
                re.captures_iter(stdout)
                    .last()
                    .and_then(|c| c.get(1).or_else(|| c.get(0)))
                    .map(|m| {
                        m.as_str().trim().parse::<f64>().map_err(|_| {
                            no_metric(
                                format!("metric regex `{r}` matched `{}`, which is not a number", m.as_str()),
                                stdout,
                            )
                        })
                    })
                    .transpose()?
            }
            MetricSource::JsonField(field) => stdout.lines().rev().find_map(|l| json_number(l, field)),
        };
        let v = found.ok_or_else(|| {
            let what = match &self.spec.source {
                MetricSource::Regex(r) => format!("metric regex `{r}` matched nothing in the output"),
                MetricSource::JsonField(f) => format!("no JSON line of the output has a numeric `{f}`"),
                MetricSource::WallTime => unreachable!("wall time is always there"),
            };
            no_metric(what, stdout)
        })?;
        if !v.is_finite() {
            return Err(no_metric(format!("the metric is {v}"), stdout));
        }
        Ok(v)
    }
}

fn no_metric(msg: String, stdout: &str) -> Error {
    Error::new(ErrorKind::InvalidSpec, msg)
        .with_hint(format!("the run's last output lines:\n{}", tail(stdout, TAIL_LINES)))
}

fn json_number(line: &str, field: &str) -> Option<f64> {
    let t = line.trim();
    if !t.starts_with('{') {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(t).ok()?;
    match v.get(field)? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The last `n` lines of `text` (for error reports).
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Better;

    fn m(source: MetricSource) -> Metric {
        Metric::new(&MetricSpec {
            name: "x".into(),
            unit: "/s".into(),
            source,
            better: Better::Higher,
        })
        .unwrap()
    }

    #[test]
    fn wall_time_by_default() {
        let v = m(MetricSource::WallTime)
            .extract("", Duration::from_millis(1500))
            .unwrap();
        assert_eq!(v, 1.5);
    }

    #[test]
    fn regex_takes_the_last_match_and_its_group() {
        let x = m(MetricSource::Regex(r"rate: ([0-9.]+) MB/s".into()));
        assert_eq!(
            x.extract("rate: 1 MB/s\nrate: 42.5 MB/s\n", Duration::ZERO).unwrap(),
            42.5
        );
        let e = x.extract("starting\nboom\n", Duration::ZERO).unwrap_err();
        assert!(e.message().contains("matched nothing"), "{e}");
        assert!(e.hint().unwrap().contains("boom"), "{:?}", e.hint());
    }

    #[test]
    fn json_field_from_the_last_line_that_has_it() {
        let x = m(MetricSource::JsonField("mbps".into()));
        let out = "{\"mbps\": 3}\nnoise\n{\"mbps\": 7.5, \"ok\": true}\n{\"other\": 1}\n";
        assert_eq!(x.extract(out, Duration::ZERO).unwrap(), 7.5);
        assert!(x.extract("{\"mbps\": \"fast\"}", Duration::ZERO).is_err());
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("", 2), "");
    }
}
