//! Progress on stderr. Only the CLI knows indicatif; commands see a [`Spinner`] that is
//! silent when stderr is not a terminal (pipes, CI, tests), and the retry loop sees a
//! [`WaitReporter`], which makes a long wait visible whether or not there is a terminal:
//! after a few seconds of retrying, one line per change of what is being waited for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use herd_core::{ErrorKind, RetryObserver};
use indicatif::{ProgressBar, ProgressStyle};

use crate::printer::Printer;

/// The spinner being drawn, if any: wait lines are printed above it, not through it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

#[derive(Debug)]
pub struct Spinner {
    bar: Option<ProgressBar>,
}

impl Spinner {
    pub fn start(printer: &Printer, message: impl Into<String>) -> Self {
        if !printer.interactive_stderr() {
            return Spinner { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Ok(mut a) = ACTIVE.lock() {
            *a = Some(bar.clone());
        }
        Spinner { bar: Some(bar) }
    }

    /// Removes the spinner line, leaving the terminal as it was.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            if let Ok(mut a) = ACTIVE.lock() {
                *a = None;
            }
            b.finish_and_clear();
        }
    }
}

/// A line on stderr that does not tear a spinner being drawn.
pub fn note_above_spinner(printer: &Printer, text: &str) {
    let bar = ACTIVE.lock().ok().and_then(|a| a.clone());
    match bar {
        Some(b) => b.suspend(|| printer.note(text)),
        None => printer.note(text),
    }
}

/// How long the retry loop may wait before anyone is told: a blip stays quiet.
pub const QUIET_FOR: Duration = Duration::from_secs(3);
/// While the same thing is still being waited for, a reminder this often.
pub const REMIND_EVERY: Duration = Duration::from_secs(30);

/// Tells the person at the terminal what the retry loop of one cloud is waiting for,
/// how long it has waited, when it tries next and which endpoint it is talking to, e.g.
/// `waiting: EC2 throttling (RequestLimitExceeded) for 12s, retrying in 4s (endpoint
/// http://127.0.0.1:5000)`. Quiet for the first [`QUIET_FOR`]; then one line whenever
/// the reason changes, and a reminder every [`REMIND_EVERY`] while it does not.
#[derive(Debug)]
pub struct WaitReporter {
    printer: Printer,
    /// `EC2`, `the simulator`: who is being waited for.
    service: String,
    /// Where its calls go, when herd knows (the backend's error context wins).
    endpoint: Option<String>,
    /// Last line printed per reason, and when.
    printed: Mutex<HashMap<String, Instant>>,
}

impl WaitReporter {
    pub fn new(printer: Printer, service: impl Into<String>, endpoint: Option<String>) -> Self {
        WaitReporter {
            printer,
            service: service.into(),
            endpoint,
            printed: Mutex::new(HashMap::new()),
        }
    }

    /// The line for this wait, or `None` when it is too early or already said.
    fn line(&self, waited: Duration, next_wait: Duration, last: &herd_core::Error, now: Instant) -> Option<String> {
        if waited + next_wait < QUIET_FOR {
            return None;
        }
        let reason = reason(&self.service, last);
        {
            let mut printed = self.printed.lock().ok()?;
            if let Some(at) = printed.get(&reason) {
                if now.duration_since(*at) < REMIND_EVERY {
                    return None;
                }
            }
            printed.insert(reason.clone(), now);
        }
        let endpoint = last
            .context_value("endpoint")
            .map(str::to_string)
            .or_else(|| self.endpoint.clone());
        let at = endpoint.map(|e| format!(" (endpoint {e})")).unwrap_or_default();
        Some(format!(
            "waiting: {reason} for {}, retrying in {}{at}",
            secs(waited),
            secs(next_wait)
        ))
    }
}

impl RetryObserver for WaitReporter {
    fn retrying(&self, waited: Duration, next_wait: Duration, _attempt: u32, last: &herd_core::Error) {
        if let Some(line) = self.line(waited, next_wait, last, Instant::now()) {
            note_above_spinner(&self.printer, &line);
        }
    }
}

/// `EC2 throttling (RequestLimitExceeded)`, `the simulator unavailable (service unavailable)`.
fn reason(service: &str, e: &herd_core::Error) -> String {
    let what = match e.kind() {
        ErrorKind::RateLimited => "throttling",
        ErrorKind::Timeout => "not answering",
        ErrorKind::Unavailable => "unavailable",
        _ => "failing",
    };
    let code = e
        .context_value("ec2_code")
        .or_else(|| e.context_value("code"))
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    format!("{service} {what} ({code})")
}

/// Whole seconds, rounded up, so "retrying in 0s" never appears.
fn secs(d: Duration) -> String {
    let s = d.as_millis().div_ceil(1000);
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::ColorChoice;

    fn reporter() -> WaitReporter {
        WaitReporter::new(
            Printer::new(ColorChoice::Never),
            "EC2",
            Some("http://127.0.0.1:5000".into()),
        )
    }

    fn throttled() -> herd_core::Error {
        herd_core::Error::new(ErrorKind::RateLimited, "EC2 said RequestLimitExceeded")
            .with_context("ec2_code", "RequestLimitExceeded")
    }

    #[test]
    fn quiet_at_first_then_one_line_per_change() {
        let r = reporter();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(r.line(s(0), s(1), &throttled(), t0), None, "a blip stays quiet");
        assert_eq!(
            r.line(s(12), s(4), &throttled(), t0).as_deref(),
            Some("waiting: EC2 throttling (RequestLimitExceeded) for 12s, retrying in 4s (endpoint http://127.0.0.1:5000)")
        );
        assert_eq!(r.line(s(16), s(8), &throttled(), t0 + s(4)), None, "said already");
        let outage = herd_core::Error::new(ErrorKind::Unavailable, "EC2 answered HTTP 503");
        let line = r.line(s(24), s(8), &outage, t0 + s(12)).unwrap();
        assert!(
            line.starts_with("waiting: EC2 unavailable (service unavailable) for 24s"),
            "{line}"
        );
        let again = r.line(s(50), s(30), &throttled(), t0 + s(40)).unwrap();
        assert!(again.contains("for 50s"), "a reminder after 30 s: {again}");
    }

    #[test]
    fn the_backends_endpoint_wins_and_fractions_round_up() {
        let r = WaitReporter::new(Printer::new(ColorChoice::Never), "EC2", None);
        let e = herd_core::Error::new(ErrorKind::Timeout, "EC2 did not answer in time")
            .with_context("endpoint", "https://ec2.eu-west-1.amazonaws.com");
        let line = r
            .line(
                Duration::from_millis(2500),
                Duration::from_millis(700),
                &e,
                Instant::now(),
            )
            .unwrap();
        assert_eq!(
            line,
            "waiting: EC2 not answering (timeout) for 3s, retrying in 1s (endpoint https://ec2.eu-west-1.amazonaws.com)"
        );
    }
}
