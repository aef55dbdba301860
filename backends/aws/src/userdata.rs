//! The user data every instance boots with: an in-guest deadline and keepalive watchdog
//! first, then the user's setup and command. EC2 has no control-plane deadline, so the
//! guest enforces it: it shuts itself down, and `InstanceInitiatedShutdownBehavior=
//! terminate` turns that shutdown into a termination, which ends billing even when the
//! machine that launched it is gone.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use herd_core::{Error, Result};

/// EC2's limit on user data, before base64 (EC2 API reference, RunInstances `UserData`).
pub const MAX_USER_DATA: usize = 16 * 1024;

/// A marker the request assertions look for.
pub const WATCHDOG_MARKER: &str = "herd-watchdog";

/// The boot script, as plain text.
pub fn script(
    deadline: DateTime<Utc>,
    keepalive: Option<Duration>,
    setup: Option<&str>,
    command: Option<&str>,
) -> String {
    let deadline = deadline.timestamp();
    let keepalive = keepalive.map(|k| k.as_secs()).unwrap_or(0);
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str("# herd: this instance ends itself by its deadline (and when idle); the shutdown\n");
    s.push_str("# terminates it, since it was launched with InstanceInitiatedShutdownBehavior=terminate.\n");
    s.push_str(&format!("HERD_DEADLINE={deadline}\nHERD_KEEPALIVE={keepalive}\n"));
    s.push_str("mkdir -p /run/herd && touch /run/herd/heartbeat\n");
    // A backstop that needs no process of ours: systemd's scheduled shutdown.
    s.push_str("left=$(( (HERD_DEADLINE - $(date +%s)) / 60 )); [ \"$left\" -lt 1 ] && left=1\n");
    s.push_str("shutdown -h \"+$left\" 'herd deadline' || true\n");
    s.push_str(&format!(
        r#"cat > /usr/local/sbin/{WATCHDOG_MARKER} <<'HERD_EOF'
#!/bin/bash
# Every 30 s: past the deadline, or idle longer than the keepalive, power off.
# Busy means: the user's command runs, someone is logged in, or the heartbeat is fresh.
while :; do
  now=$(date +%s)
  if [ "$now" -ge "$1" ]; then shutdown -h now 'herd deadline'; fi
  if [ "$2" -gt 0 ]; then
    if pgrep -f /run/herd/command >/dev/null || [ -n "$(who)" ]; then touch /run/herd/heartbeat; fi
    last=$(stat -c %Y /run/herd/heartbeat 2>/dev/null || echo "$now")
    if [ $(( now - last )) -ge "$2" ]; then shutdown -h now 'herd keepalive'; fi
  fi
  sleep 30
done
HERD_EOF
chmod 755 /usr/local/sbin/{WATCHDOG_MARKER}
nohup /usr/local/sbin/{WATCHDOG_MARKER} "$HERD_DEADLINE" "$HERD_KEEPALIVE" >/var/log/{WATCHDOG_MARKER}.log 2>&1 &
"#
    ));
    if let Some(setup) = setup {
        s.push_str("cat > /run/herd/setup <<'HERD_SETUP_EOF'\n");
        s.push_str(setup);
        s.push_str("\nHERD_SETUP_EOF\nbash /run/herd/setup >/var/log/herd-setup.log 2>&1\n");
    }
    if let Some(command) = command {
        s.push_str("cat > /run/herd/command <<'HERD_COMMAND_EOF'\n");
        s.push_str(command);
        s.push_str("\nHERD_COMMAND_EOF\nnohup bash /run/herd/command >/var/log/herd-command.log 2>&1 &\n");
    }
    s
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
    fn script_carries_deadline_keepalive_and_user_steps_in_order() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let s = script(
            at,
            Some(Duration::from_secs(900)),
            Some("pip install x"),
            Some("python train.py"),
        );
        assert!(s.starts_with("#!/bin/bash\n"));
        assert!(s.contains("HERD_DEADLINE=1800000000\n"));
        assert!(s.contains("HERD_KEEPALIVE=900\n"));
        assert!(s.contains(WATCHDOG_MARKER));
        let w = s.find("nohup /usr/local/sbin").unwrap();
        let setup = s.find("pip install x").unwrap();
        let cmd = s.find("python train.py").unwrap();
        assert!(w < setup && setup < cmd, "watchdog, then setup, then command");
    }

    #[test]
    fn too_long_is_refused() {
        let at = DateTime::from_timestamp(0, 0).unwrap();
        let e = encoded(&script(at, None, Some(&"x".repeat(MAX_USER_DATA)), None)).unwrap_err();
        assert_eq!(e.kind(), herd_core::ErrorKind::InvalidSpec);
        assert!(encoded("short").is_ok());
    }
}
