//! The boot script every herd VM starts with (EC2 user data, GCE startup-script, Azure
//! customData), and the watchdog it installs: generated here once for every cloud, the
//! cloud's part being only its [`Expiry`] action.
//!
//! Order: the watchdog first (so a failing setup cannot keep a VM alive), then the
//! user's setup, then the command in the background. Output goes where `herd logs`
//! reads it: `/var/log/herd-setup.log`, `/var/log/herd-command.log`,
//! `/var/log/herd-watchdog.log`.
//!
//! The watchdog, every [`TICK`] (and exactly at the deadline or the idle limit, whichever
//! comes first): past the deadline, or idle for the keepalive, it takes the expiry
//! action; when that succeeds it exits, when it fails it tries again a tick later. Busy
//! means the user's command runs, someone is logged in, or a marker under
//! `/run/herd/busy.d/` (or `/run/herd/heartbeat`) says so (see [`crate::busy`]).
//!
//! Every path is under `$HERD_GUEST_ROOT` (default `/`), and time is read with
//! `date +%s` only, so a test runs the real script in a temp dir with a fake clock.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::busy;
use crate::expiry::{DeleteRequest, Expiry, Part};
use crate::ssh::HostKeyPair;

/// A marker the request assertions look for, and the watchdog's file and log name.
pub const WATCHDOG_MARKER: &str = "herd-watchdog";

/// How often the watchdog looks when nothing is due sooner.
pub const TICK: Duration = Duration::from_secs(30);

/// The environment variable that moves every path of the script under another root.
pub const ROOT_ENV: &str = "HERD_GUEST_ROOT";

/// Log files `herd logs` reads, relative to the guest root.
pub const SETUP_LOG: &str = "var/log/herd-setup.log";
pub const COMMAND_LOG: &str = "var/log/herd-command.log";
pub const WATCHDOG_LOG: &str = "var/log/herd-watchdog.log";

/// What a VM boots with.
#[derive(Debug, Clone)]
pub struct Boot<'a> {
    pub deadline: DateTime<Utc>,
    /// Idle time after which the VM ends; `None` or zero: only the deadline.
    pub keepalive: Option<Duration>,
    pub expiry: &'a Expiry,
    pub setup: Option<&'a str>,
    pub command: Option<&'a str>,
    /// The host key herd pinned for this launch, installed before anyone connects
    /// (docs/decisions/0008-ssh-host-keys.md).
    pub host_key: Option<&'a HostKeyPair>,
    /// Who herd logs in as, with the owner's public key, added to that user's
    /// `authorized_keys` (a cloud that injects the key itself gets it twice: harmless).
    pub login: Option<Login<'a>>,
}

/// The SSH login herd uses: the image's user and the owner's public key.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    pub user: &'a str,
    pub public_key: &'a str,
}

impl Login<'_> {
    /// Bash: the key appended to the user's `authorized_keys` unless already there.
    fn script(&self) -> String {
        let (u, k) = (sq(self.user), sq(self.public_key.trim()));
        let mut s = String::from("# herd: the owner's key, for the login herd uses\n");
        s.push_str(&format!("h=$(getent passwd {u} | cut -d: -f6)\n"));
        s.push_str("if [ -n \"$h\" ]; then\n");
        s.push_str("  mkdir -p \"$h/.ssh\" && chmod 700 \"$h/.ssh\"\n");
        s.push_str(&format!(
            "  grep -qxF {k} \"$h/.ssh/authorized_keys\" 2>/dev/null || echo {k} >> \"$h/.ssh/authorized_keys\"\n"
        ));
        s.push_str(&format!(
            "  chmod 600 \"$h/.ssh/authorized_keys\"; chown -R {u}: \"$h/.ssh\" 2>/dev/null || true\nfi\n"
        ));
        s
    }
}

/// `s` as one single-quoted shell word.
pub(crate) fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A heredoc delimiter that does not occur in `body`, so no user text can end it early.
fn delimiter(base: &str, body: &str) -> String {
    let mut d = base.to_string();
    let mut n = 0;
    while body.contains(&d) {
        n += 1;
        d = format!("{base}_{n}");
    }
    d
}

/// The lines every generated script starts its paths with.
const ROOTS: &str = r#"R="${HERD_GUEST_ROOT:-/}"; R="${R%/}"
RUN="$R/run/herd"
"#;

impl Boot<'_> {
    fn keepalive_secs(&self) -> u64 {
        self.keepalive.map_or(0, |k| k.as_secs())
    }

    /// The watchdog alone: a bash script with its deadline, keepalive and action inside.
    pub fn watchdog(&self) -> String {
        let mut s = String::new();
        s.push_str("#!/bin/bash\n");
        s.push_str(&format!(
            "# {WATCHDOG_MARKER}: ends this VM at its deadline, or when idle past its keepalive.\n"
        ));
        s.push_str("# Busy: the user's command runs, someone is logged in, or a marker under\n");
        s.push_str(&format!(
            "# /run/herd/{} (or /run/herd/heartbeat) names a live process or was touched lately.\n",
            busy::DIR_NAME
        ));
        s.push_str("set +x\n");
        s.push_str(&format!(
            "DEADLINE={}\nKEEPALIVE={}\nTICK={}\n",
            self.deadline.timestamp(),
            self.keepalive_secs(),
            TICK.as_secs()
        ));
        s.push_str(ROOTS);
        s.push_str(&format!("log() {{ echo \"{WATCHDOG_MARKER}: $*\"; }}\n"));
        match self.expiry {
            Expiry::PowerOff => s.push_str(POWER_OFF),
            Expiry::Delete(d) => s.push_str(&delete_fn(d)),
        }
        s.push_str(&crate::lograte::sampler_shell());
        s.push_str(&format!(
            r#"
# The latest moment something showed activity, given the last one known.
activity() {{
  local last=$1 m pid t
  if pgrep -f "$RUN/command" >/dev/null 2>&1 || [ -n "$(who 2>/dev/null)" ]; then last=$now; fi
  for m in "$RUN/heartbeat" "$RUN/{dir}"/*; do
    [ -f "$m" ] || continue
    pid=""
    read -r pid <"$m" 2>/dev/null
    if [[ "$pid" =~ ^[1-9][0-9]*$ ]] && kill -0 "$pid" 2>/dev/null; then last=$now; fi
    t=$(stat -c %Y "$m" 2>/dev/null) || t=0
    [ "$t" -gt "$now" ] && t=$now
    [ "$t" -gt "$last" ] && last=$t
  done
  echo "$last"
}}

now=$(date +%s)
last=$now
log "started at $now: deadline $DEADLINE, keepalive ${{KEEPALIVE}}s, action: {action}"
lr_t=""
while :; do
  now=$(date +%s)
  lograte
  why=""
  if [ "$now" -ge "$DEADLINE" ]; then
    why=deadline
  elif [ "$KEEPALIVE" -gt 0 ]; then
    last=$(activity "$last")
    [ $(( now - last )) -ge "$KEEPALIVE" ] && why=keepalive
  fi
  if [ -n "$why" ]; then
    expire "$why" && exit 0
    sleep "$TICK"
    continue
  fi
  # Wake at the next tick, or exactly when the deadline or the idle limit falls.
  nap=$TICK
  [ $(( DEADLINE - now )) -lt "$nap" ] && nap=$(( DEADLINE - now ))
  if [ "$KEEPALIVE" -gt 0 ] && [ $(( last + KEEPALIVE - now )) -lt "$nap" ]; then nap=$(( last + KEEPALIVE - now )); fi
  [ "$nap" -lt 1 ] && nap=1
  sleep "$nap"
done
"#,
            dir = busy::DIR_NAME,
            action = match self.expiry {
                Expiry::PowerOff => "power off",
                Expiry::Delete(_) => "delete through the cloud's API",
            }
        ));
        s
    }

    /// The whole boot script, as plain text (the backend encodes it and checks its size).
    pub fn script(&self) -> String {
        let watchdog = self.watchdog();
        let mut s = String::new();
        s.push_str("#!/bin/bash\n");
        match self.expiry {
            Expiry::PowerOff => s.push_str(
                "# herd: this VM powers itself off at its deadline (and when idle); the cloud turns\n\
                 # that into a termination (EC2: InstanceInitiatedShutdownBehavior=terminate).\n",
            ),
            Expiry::Delete(_) => s.push_str(
                "# herd: this VM deletes itself through the cloud's API at its deadline (and when\n\
                 # idle): stopping would keep billing here, so there is no OS-level backstop.\n",
            ),
        }
        // Read by the backstop below, and by a person reading the user data.
        s.push_str(&format!(
            "HERD_DEADLINE={}\nHERD_KEEPALIVE={}\n",
            self.deadline.timestamp(),
            self.keepalive_secs()
        ));
        s.push_str(ROOTS);
        s.push_str(&format!(
            "mkdir -p \"$RUN/{}\" \"$R/var/log\" \"$R/usr/local/sbin\" && touch \"$RUN/heartbeat\"\n",
            busy::DIR_NAME
        ));
        if self.expiry.shutdown_deletes() {
            // A backstop that needs no process of ours: the OS's scheduled shutdown, in whole
            // minutes, rounded down so it never falls after the deadline.
            s.push_str("left=$(( (HERD_DEADLINE - $(date +%s)) / 60 )); [ \"$left\" -lt 1 ] && left=1\n");
            s.push_str("shutdown -h \"+$left\" 'herd deadline' || true\n");
        }
        let d = delimiter("HERD_WATCHDOG_EOF", &watchdog);
        s.push_str(&format!("cat > \"$R/usr/local/sbin/{WATCHDOG_MARKER}\" <<'{d}'\n"));
        s.push_str(&watchdog);
        s.push_str(&format!("{d}\n"));
        s.push_str(&format!("chmod 755 \"$R/usr/local/sbin/{WATCHDOG_MARKER}\"\n"));
        s.push_str(&format!(
            "nohup \"$R/usr/local/sbin/{WATCHDOG_MARKER}\" >\"$R/{WATCHDOG_LOG}\" 2>&1 </dev/null &\n"
        ));
        if let Some(k) = self.host_key {
            s.push_str(&k.install_script());
        }
        if let Some(l) = &self.login {
            s.push_str(&l.script());
        }
        if let Some(setup) = self.setup {
            let d = delimiter("HERD_SETUP_EOF", setup);
            s.push_str(&format!("cat > \"$RUN/setup\" <<'{d}'\n{setup}\n{d}\n"));
            s.push_str(&format!("bash \"$RUN/setup\" >\"$R/{SETUP_LOG}\" 2>&1\n"));
        }
        if let Some(command) = self.command {
            let d = delimiter("HERD_COMMAND_EOF", command);
            s.push_str(&format!("cat > \"$RUN/command\" <<'{d}'\n{command}\n{d}\n"));
            s.push_str(&format!(
                "nohup bash \"$RUN/command\" >\"$R/{COMMAND_LOG}\" 2>&1 </dev/null &\n"
            ));
        }
        s
    }
}

/// `shutdown -h now`, then `poweroff` if that was refused.
const POWER_OFF: &str = r#"expire() {
  log "$1 reached at $now: powering off"
  shutdown -h now "herd $1" || poweroff
}
"#;

/// The metadata server's headers as `-H` words.
fn header_args(d: &DeleteRequest) -> String {
    d.metadata_headers()
        .iter()
        .map(|(k, v)| format!(" -H {}", sq(&format!("{k}: {v}"))))
        .collect()
}

/// The delete action: metadata values, a token, then the request. The token stays in
/// shell variables and reaches curl on its standard input (`-H @-`), so it is in no
/// process's arguments, no log and no URL.
fn delete_fn(d: &DeleteRequest) -> String {
    let h = header_args(d);
    let mut s = String::new();
    s.push_str("expire() {\n");
    s.push_str("  log \"$1 reached at $now: deleting this VM through the cloud's API\"\n");
    s.push_str("  local body tok url re");
    for v in d.vars() {
        s.push_str(&format!(" v_{}", v.name));
    }
    s.push('\n');
    for v in d.vars() {
        let n = &v.name;
        s.push_str(&format!(
            "  v_{n}=$(curl -sS -f --max-time 10{h} {url}) || {{ log \"cannot read {n} from the metadata server\"; return 1; }}\n",
            url = sq(&v.url)
        ));
        s.push_str(&format!(
            "  [ -n \"$v_{n}\" ] || {{ log \"the metadata server gave an empty {n}\"; return 1; }}\n"
        ));
    }
    s.push_str(&format!(
        "  body=$(curl -sS -f --max-time 10{h} {url}) || {{ log \"cannot get a token from the metadata server\"; return 1; }}\n",
        url = sq(&d.token().url)
    ));
    let field = &d.token().field;
    s.push_str(&format!("  re='\"{field}\"[[:space:]]*:[[:space:]]*\"([^\"]+)\"'\n"));
    s.push_str(&format!(
        "  if [[ $body =~ $re ]]; then tok=${{BASH_REMATCH[1]}}; else log \"the token answer has no {field}\"; return 1; fi\n"
    ));
    s.push_str("  unset body\n");
    let url: String = d
        .parts()
        .iter()
        .map(|p| match p {
            Part::Text(t) => sq(t),
            Part::Var(n) => format!("\"$v_{n}\""),
        })
        .collect();
    s.push_str(&format!("  url={url}\n"));
    s.push_str(&format!(
        "  if printf 'Authorization: Bearer %s\\n' \"$tok\" | curl -sS -f --max-time 30 -o /dev/null -X {m} -H @- \"$url\"; then\n",
        m = sq(d.method())
    ));
    s.push_str("    unset tok\n    log \"the cloud accepted the delete\"\n    return 0\n  fi\n");
    s.push_str("  unset tok\n  log \"the delete request failed; trying again in ${TICK}s\"\n  return 1\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::{MetadataValue, TokenSource};

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn script_carries_deadline_keepalive_and_user_steps_in_order() {
        let b = Boot {
            deadline: at(),
            keepalive: Some(Duration::from_secs(900)),
            expiry: &Expiry::PowerOff,
            host_key: None,
            login: None,
            setup: Some("pip install x"),
            command: Some("python train.py"),
        };
        let s = b.script();
        assert!(s.starts_with("#!/bin/bash\n"));
        assert!(s.contains("DEADLINE=1800000000\n"));
        assert!(s.contains("HERD_DEADLINE=1800000000\nHERD_KEEPALIVE=900\n"));
        assert!(s.contains("\nKEEPALIVE=900\n"), "inside the watchdog");
        assert!(s.contains(WATCHDOG_MARKER));
        assert!(
            s.contains("shutdown -h \"+$left\""),
            "the backstop where a shutdown deletes"
        );
        let w = s.find("nohup \"$R/usr/local/sbin").unwrap();
        let setup = s.find("pip install x").unwrap();
        let cmd = s.find("python train.py").unwrap();
        assert!(w < setup && setup < cmd, "watchdog, then setup, then command");
        assert!(s.contains("herd-command.log") && s.contains("herd-setup.log"));
    }

    #[test]
    fn delete_has_no_shutdown_backstop_and_quotes_every_literal() {
        let d = DeleteRequest::new(
            "DELETE",
            "https://x.example/it's/{name}",
            vec![MetadataValue {
                name: "name".into(),
                url: "http://169.254.169.254/name".into(),
            }],
            TokenSource::azure_managed_identity(),
            crate::expiry::azure_metadata_headers(),
        )
        .unwrap();
        let e = Expiry::Delete(d);
        let b = Boot {
            deadline: at(),
            keepalive: None,
            expiry: &e,
            host_key: None,
            login: None,
            setup: None,
            command: None,
        };
        let s = b.script();
        assert!(!s.contains("shutdown"), "{s}");
        assert!(!s.contains("poweroff"), "{s}");
        assert!(s.contains(r"url='https://x.example/it'\''s/'"), "{s}");
        assert!(s.contains("-H 'Metadata: true'"), "{s}");
    }

    #[test]
    fn user_text_cannot_end_its_heredoc() {
        let b = Boot {
            deadline: at(),
            keepalive: None,
            expiry: &Expiry::PowerOff,
            host_key: None,
            login: None,
            setup: Some("echo a\nHERD_SETUP_EOF\necho b"),
            command: None,
        };
        let s = b.script();
        assert!(s.contains("<<'HERD_SETUP_EOF_1'\n"), "{s}");
        assert_eq!(delimiter("D", "x"), "D");
        assert_eq!(delimiter("D", "D\nD_1"), "D_2");
    }
}
