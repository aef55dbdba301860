//! The user data every instance boots with: herd-guest's boot script with the
//! power-off expiry. EC2 has no control-plane deadline, so the guest enforces it: it
//! powers itself off (and schedules `shutdown -h +N` as a backstop), and
//! `InstanceInitiatedShutdownBehavior=terminate` turns that into a termination, which
//! ends billing even when the machine that launched it is gone. What stays here is
//! EC2's part: the size limit and the base64 encoding.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use herd_core::{Error, Result};
use herd_guest::boot::{Boot, Login};
use herd_guest::expiry::Expiry;
use herd_guest::ssh::HostKeyPair;

pub use herd_guest::boot::WATCHDOG_MARKER;

/// EC2's limit on user data, before base64 (EC2 API reference, RunInstances `UserData`).
pub const MAX_USER_DATA: usize = 16 * 1024;

/// The boot script, as plain text.
pub fn script(
    deadline: DateTime<Utc>,
    keepalive: Option<Duration>,
    setup: Option<&str>,
    command: Option<&str>,
    host_key: Option<&HostKeyPair>,
    login: Option<Login<'_>>,
) -> String {
    Boot {
        deadline,
        keepalive,
        expiry: &Expiry::PowerOff,
        setup,
        command,
        host_key,
        login,
    }
    .script()
}

/// The script base64-encoded for RunInstances, or `InvalidSpec` when it is too long.
pub fn encoded(script: &str) -> Result<String> {
    if script.len() > MAX_USER_DATA {
        return Err(Error::invalid_spec(format!(
            "setup and command make {} bytes of user data, more than EC2's {MAX_USER_DATA}",
            script.len()
        ))
        .with_hint("put long scripts in a file the setup downloads, or in the image"));
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(script))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_powers_off_with_a_backstop_then_runs_the_user_steps_in_order() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let s = script(
            at,
            Some(Duration::from_secs(900)),
            Some("pip install x"),
            Some("python train.py"),
            None,
            None,
        );
        assert!(s.starts_with("#!/bin/bash\n"));
        assert!(s.contains("DEADLINE=1800000000\n"));
        assert!(s.contains("KEEPALIVE=900\n"));
        assert!(s.contains("InstanceInitiatedShutdownBehavior=terminate"));
        assert!(s.contains("shutdown -h now"), "the watchdog powers off");
        assert!(s.contains("shutdown -h \"+$left\""), "the scheduled backstop");
        assert!(!s.contains("curl"), "EC2 needs no API call to end an instance");
        let w = s
            .find(&format!("nohup \"$R/usr/local/sbin/{WATCHDOG_MARKER}\""))
            .unwrap();
        let setup = s.find("pip install x").unwrap();
        let cmd = s.find("python train.py").unwrap();
        assert!(w < setup && setup < cmd, "watchdog, then setup, then command");
    }

    #[test]
    fn too_long_is_refused() {
        let at = DateTime::from_timestamp(0, 0).unwrap();
        let e = encoded(&script(at, None, Some(&"x".repeat(MAX_USER_DATA)), None, None, None)).unwrap_err();
        assert_eq!(e.kind(), herd_core::ErrorKind::InvalidSpec);
        assert!(encoded("short").is_ok());
    }
}
