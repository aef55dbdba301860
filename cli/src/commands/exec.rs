//! `herd exec (ID | --cluster NAME | --launch ID) [--timeout D] [--files PATH...] -- CMD`:
//! the command on every selected instance at once (each cloud's `exec`: SSH on AWS, the
//! agent on the simulator), output streamed line by line prefixed by the instance id,
//! then a summary of exit codes; non-zero when any instance failed. Ctrl-C stops the
//! remote commands (each runs under a busy marker naming its shell, so herd can signal
//! its process group) before herd exits with 130.

use std::io::Write;
use std::time::Duration;

use herd_core::{guardrails, Error, ErrorKind, ExecOutput, ExecRequest, Instance, Launcher, OutputStream};
use serde::Serialize;

use super::{chatty, target, Interrupted};
use crate::args::ExecArgs;
use crate::clouds;
use crate::context::Context;
use crate::printer::{styled, Style, Table};

#[derive(Debug, Serialize)]
struct Result1 {
    id: String,
    cloud: herd_core::Cloud,
    exit_code: Option<i32>,
    timed_out: bool,
    wall_secs: f64,
    /// Bytes of output the command wrote (both streams; the chatty-log warning's measure).
    output_bytes: u64,
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr: Option<String>,
}

impl Result1 {
    fn ok(&self) -> bool {
        self.error.is_none() && self.exit_code == Some(0)
    }
}

/// Splits a stream into lines and prints each with its instance's prefix.
struct Lines {
    prefix: String,
    out: Vec<u8>,
    err: Vec<u8>,
}

impl Lines {
    /// Prints the chunk's whole lines with the prefix in one write (a line at a time
    /// would cost a write per line: 100 MB of short lines is millions of them) and
    /// holds the unfinished rest.
    fn feed(&mut self, s: OutputStream, data: &[u8]) {
        let buf = match s {
            OutputStream::Stdout => &mut self.out,
            OutputStream::Stderr => &mut self.err,
        };
        buf.extend_from_slice(data);
        let mut printed = Vec::with_capacity(buf.len() + 64);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
            printed.extend_from_slice(self.prefix.as_bytes());
            printed.extend_from_slice(&buf[start..=start + nl]);
            start += nl + 1;
        }
        buf.drain(..start);
        // A line longer than 64 KiB is printed in pieces rather than held.
        if buf.len() > 64 * 1024 {
            printed.extend_from_slice(self.prefix.as_bytes());
            printed.append(buf);
            printed.push(b'\n');
        }
        emit(s, &printed);
    }

    fn finish(&mut self) {
        for s in [OutputStream::Stdout, OutputStream::Stderr] {
            let buf = match s {
                OutputStream::Stdout => std::mem::take(&mut self.out),
                OutputStream::Stderr => std::mem::take(&mut self.err),
            };
            if !buf.is_empty() {
                emit(s, &[self.prefix.as_bytes(), buf.as_slice(), b"\n"].concat());
            }
        }
    }
}

fn emit(s: OutputStream, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let _ = match s {
        OutputStream::Stdout => std::io::stdout().lock().write_all(bytes),
        OutputStream::Stderr => std::io::stderr().lock().write_all(bytes),
    };
}

/// What runs on each instance after Ctrl-C: TERM to the process group of every command
/// this herd process started there (the markers `exec-<pid>-*` name their shells). It
/// looks twice, a second apart: a command whose shell was still starting when the first
/// look ran has marked itself by the second.
pub fn stop_command() -> String {
    format!(
        "for round in 1 2; do for m in /run/herd/busy.d/exec-{}-*; do [ -f \"$m\" ] || continue; p=$(cat \"$m\"); case \"$p\" in ''|*[!0-9]*) continue;; esac; kill -TERM -- \"-$p\" 2>/dev/null || kill -TERM \"$p\" 2>/dev/null; done; [ $round = 2 ] || sleep 1; done; true",
        std::process::id()
    )
}

pub fn run(ctx: &Context, a: &ExecArgs) -> anyhow::Result<()> {
    let timeout = a.timeout.as_deref().map(guardrails::parse_duration).transpose()?;
    let command = a.command.join(" ");
    let files = super::cp::read_files(&a.files)?;
    let clouds_ = ctx.clouds(&[])?;
    let (launchers, failures) = clouds::launchers(ctx, &clouds_);
    clouds::warn(ctx, &failures);
    ctx.block_on(async {
        let targets = target::select(ctx, &launchers, a.id.as_deref(), &a.target).await?;
        let n = targets.len();
        let work = targets.iter().map(|(l, i)| one(l, i, &command, timeout, &files, a.json));
        let all = clouds::join_all(work.collect());
        let results = tokio::select! {
            r = all => r,
            _ = tokio::signal::ctrl_c() => {
                ctx.printer.warn(format!("interrupted: stopping the command on {n} instance(s)"));
                let stop = ExecRequest::new(stop_command()).timeout(Duration::from_secs(15));
                let stops = targets.iter().map(|(l, i)| {
                    let stop = &stop;
                    async move { l.exec(&i.id, stop).await }
                });
                let _ = tokio::time::timeout(Duration::from_secs(30), clouds::join_all(stops.collect())).await;
                return Err(Interrupted(Error::new(ErrorKind::Conflict, format!("interrupted: the command was stopped on {n} instance(s)"))).into());
            }
        };
        // Two measures: what the guest saw its logs grow by, and what this command wrote.
        let mut warnings = chatty::check(ctx, &targets, n).await;
        let threshold = ctx.settings.log_warn_mb_per_min;
        warnings.extend(targets.iter().zip(&results).filter_map(|((_, i), r)| {
            chatty::from_output(threshold, i, r.output_bytes, Duration::from_secs_f64(r.wall_secs), n)
        }));
        chatty::print(ctx, &chatty::merge(warnings));
        report(ctx, a, &results)
    })?
}

async fn one(
    l: &Launcher,
    i: &Instance,
    command: &str,
    timeout: Option<Duration>,
    files: &[herd_sweep::spec::ShippedFile],
    json: bool,
) -> Result1 {
    let mut lines = Lines {
        prefix: format!("[{}] ", i.id),
        out: Vec::new(),
        err: Vec::new(),
    };
    let mut req = ExecRequest::new(command);
    if let Some(t) = timeout {
        req = req.timeout(t);
    }
    let r: herd_core::Result<ExecOutput> = async {
        super::cp::ship(l, &i.id, files, None).await?;
        if json {
            l.exec(&i.id, &req).await
        } else {
            l.exec_streaming(&i.id, &req, &mut |s, d| lines.feed(s, d)).await
        }
    }
    .await;
    lines.finish();
    match r {
        Ok(o) => Result1 {
            id: i.id.clone(),
            cloud: i.cloud,
            exit_code: o.exit_code,
            timed_out: o.timed_out,
            wall_secs: o.wall.as_secs_f64(),
            output_bytes: o.output_bytes,
            error: None,
            stdout: json.then(|| o.stdout.clone()),
            stderr: json.then(|| o.stderr.clone()),
        },
        Err(e) => Result1 {
            id: i.id.clone(),
            cloud: i.cloud,
            exit_code: None,
            timed_out: false,
            wall_secs: 0.0,
            output_bytes: 0,
            error: Some(match e.hint() {
                Some(h) => format!("{e} (hint: {h})"),
                None => e.to_string(),
            }),
            stdout: None,
            stderr: None,
        },
    }
}

fn report(ctx: &Context, a: &ExecArgs, results: &[Result1]) -> anyhow::Result<()> {
    let failed = results.iter().filter(|r| !r.ok()).count();
    if a.json {
        ctx.printer.json(results)?;
    } else {
        let mut t = Table::new(&["ID", "CLOUD", "EXIT", "TIME"]);
        for r in results {
            let exit = match (&r.error, r.exit_code, r.timed_out) {
                (Some(e), _, _) => styled(format!("error: {e}"), Style::Red),
                (None, _, true) => styled("timed out", Style::Red),
                (None, Some(0), _) => styled("0", Style::Green),
                (None, Some(c), _) => styled(c.to_string(), Style::Red),
                (None, None, _) => styled("killed by a signal", Style::Red),
            };
            t.row(vec![
                r.id.clone().into(),
                r.cloud.to_string().into(),
                exit,
                format!("{:.1}s", r.wall_secs).into(),
            ]);
        }
        ctx.printer.table_err(&t);
    }
    if failed > 0 {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!("the command failed on {failed} of {} instance(s)", results.len()),
        )
        .with_hint("the summary above has each instance's exit code; its output is prefixed by its id")
        .into());
    }
    Ok(())
}
