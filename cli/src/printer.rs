//! All of herd's terminal output goes through here: data on stdout (tables or JSON),
//! notes, warnings and errors on stderr, colour only where it is wanted. A closed pipe
//! (`herd ls | head`) ends output quietly instead of panicking.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::args::ColorChoice;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Bold,
    Dim,
    Green,
    Yellow,
    Red,
    Cyan,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Bold => "1",
            Style::Dim => "2",
            Style::Green => "32",
            Style::Yellow => "33",
            Style::Red => "31",
            Style::Cyan => "36",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Printer {
    out_color: bool,
    err_color: bool,
    err_tty: bool,
    verbose: bool,
}

impl Printer {
    pub fn new(choice: ColorChoice) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let err_tty = std::io::stderr().is_terminal();
        let decide = |tty: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color && std::env::var("TERM").map_or(true, |t| t != "dumb"),
        };
        Printer {
            out_color: decide(std::io::stdout().is_terminal()),
            err_color: decide(err_tty),
            err_tty,
            verbose: false,
        }
    }

    /// `--verbose`: errors also show where they happened (cloud, region, launch id).
    pub fn verbose(mut self, yes: bool) -> Self {
        self.verbose = yes;
        self
    }

    /// Whether progress animations make sense (stderr is a terminal).
    pub fn interactive_stderr(&self) -> bool {
        self.err_tty
    }

    /// Text styled for stdout.
    pub fn paint(&self, style: Style, text: &str) -> String {
        paint(self.out_color, style, text)
    }

    /// Text styled for stderr.
    pub fn paint_err(&self, style: Style, text: &str) -> String {
        paint(self.err_color, style, text)
    }

    /// A line of data on stdout.
    pub fn line(&self, text: impl AsRef<str>) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", text.as_ref());
    }

    /// Pretty JSON on stdout.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        let written = serde_json::to_writer_pretty(&mut out, value)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out));
        match written {
            // The reader has gone (`herd catalog --json | head`): nothing more to say.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        }
    }

    pub fn table(&self, table: &Table) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(table.render(self.out_color).as_bytes());
    }

    /// A table on stderr (previews before a question, not data).
    pub fn table_err(&self, table: &Table) {
        let _ = std::io::stderr()
            .lock()
            .write_all(table.render(self.err_color).as_bytes());
    }

    /// An informational line on stderr.
    pub fn note(&self, text: impl AsRef<str>) {
        let _ = writeln!(std::io::stderr().lock(), "{}", text.as_ref());
    }

    pub fn warn(&self, text: impl AsRef<str>) {
        let label = self.paint_err(Style::Yellow, "warning:");
        let _ = writeln!(std::io::stderr().lock(), "{label} {}", text.as_ref());
    }

    /// `warning: PREFIX: ...`, its causes and its hint: an error the command goes on past
    /// (one cloud of several failing).
    pub fn warn_error(&self, prefix: &str, err: &anyhow::Error) {
        let label = self.paint_err(Style::Yellow, "warning:");
        let text = render_error(err, self.err_color, self.verbose);
        let body = text
            .strip_prefix(&self.paint_err(Style::Red, "error:"))
            .unwrap_or(&text);
        let _ = write!(std::io::stderr().lock(), "{label} {prefix}:{body}");
    }

    /// `error: ...`, one `Caused by:` per source, then the hint of the first herd error
    /// in the chain.
    pub fn error(&self, err: &anyhow::Error) {
        let _ = std::io::stderr()
            .lock()
            .write_all(render_error(err, self.err_color, self.verbose).as_bytes());
    }

    /// Asks a yes/no question on the terminal. Without a terminal there is nobody to ask:
    /// that is an error telling the user how to confirm non-interactively.
    pub fn confirm(&self, question: &str, what: &str) -> anyhow::Result<bool> {
        if !std::io::stdin().is_terminal() {
            return Err(herd_core::Error::new(
                herd_core::ErrorKind::Conflict,
                format!("refusing to {what} without confirmation (no terminal to ask on)"),
            )
            .with_hint("pass --yes to confirm")
            .into());
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{question} [y/N] ");
        let _ = err.flush();
        drop(err);
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
    }
}

fn paint(enabled: bool, style: Style, text: &str) -> String {
    if enabled && !text.is_empty() {
        format!("\x1b[{}m{text}\x1b[0m", style.code())
    } else {
        text.to_string()
    }
}

pub fn render_error(err: &anyhow::Error, color: bool, verbose: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} {err}", paint(color, Style::Red, "error:"));
    for cause in err.chain().skip(1) {
        let _ = writeln!(s, "  {} {cause}", paint(color, Style::Dim, "Caused by:"));
    }
    if verbose {
        let context: Vec<String> = err
            .chain()
            .filter_map(|e| e.downcast_ref::<herd_core::Error>())
            .flat_map(|e| e.context().iter().map(|(k, v)| format!("{k}={v}")))
            .collect();
        if !context.is_empty() {
            let _ = writeln!(s, "  {} {}", paint(color, Style::Dim, "Context:"), context.join(", "));
        }
    }
    let hint = err
        .chain()
        .filter_map(|e| e.downcast_ref::<herd_core::Error>())
        .find_map(|e| e.hint());
    if let Some(h) = hint {
        let _ = writeln!(s, "{} {h}", paint(color, Style::Cyan, "hint:"));
    }
    s
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A cell: text plus an optional style applied after padding (so colour codes never
/// upset the column widths).
#[derive(Debug, Clone)]
pub struct Cell {
    pub text: String,
    pub style: Option<Style>,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell { text, style: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell {
            text: text.to_string(),
            style: None,
        }
    }
}

pub fn styled(text: impl Into<String>, style: Style) -> Cell {
    Cell {
        text: text.into(),
        style: Some(style),
    }
}

/// A plain aligned table: a header, rows, and optional footer rows under a rule.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    align: Vec<Align>,
    rows: Vec<Vec<Cell>>,
    footer: Vec<Vec<Cell>>,
}

impl Table {
    /// Columns whose header starts with `>` are right-aligned (numbers, money).
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            align: headers
                .iter()
                .map(|h| if h.starts_with('>') { Align::Right } else { Align::Left })
                .collect(),
            headers: headers.iter().map(|h| h.trim_start_matches('>')).collect(),
            rows: Vec::new(),
            footer: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub fn footer(&mut self, cells: Vec<Cell>) {
        self.footer.push(cells);
    }

    pub fn render(&self, color: bool) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in self.rows.iter().chain(&self.footer) {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.text.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<Cell> = self.headers.iter().map(|h| styled(*h, Style::Bold)).collect();
        self.render_row(&mut out, &header, &widths, color);
        for r in &self.rows {
            self.render_row(&mut out, r, &widths, color);
        }
        if !self.footer.is_empty() {
            let total: usize = widths.iter().sum::<usize>() + 2 * n.saturating_sub(1);
            let _ = writeln!(out, "{}", paint(color, Style::Dim, &"-".repeat(total)));
            for r in &self.footer {
                self.render_row(&mut out, r, &widths, color);
            }
        }
        out
    }

    fn render_row(&self, out: &mut String, cells: &[Cell], widths: &[usize], color: bool) {
        let mut line = String::new();
        let last = widths.len().saturating_sub(1);
        for (i, w) in widths.iter().enumerate() {
            let cell = cells.get(i);
            let text = cell.map_or("", |c| c.text.as_str());
            let pad = w.saturating_sub(text.chars().count());
            let shown = match cell.and_then(|c| c.style) {
                Some(s) => paint(color, s, text),
                None => text.to_string(),
            };
            match self.align[i] {
                Align::Right => {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(&shown);
                }
                Align::Left if i == last => line.push_str(&shown),
                Align::Left => {
                    line.push_str(&shown);
                    line.push_str(&" ".repeat(pad));
                }
            }
            if i != last {
                line.push_str("  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_ignores_colour_width() {
        let mut t = Table::new(&["ID", ">$/H", "STATE"]);
        t.row(vec!["i-1".into(), "$0.0104".into(), styled("running", Style::Green)]);
        t.row(vec!["i-22".into(), "$1.50".into(), "pending".into()]);
        t.footer(vec!["total".into(), "$1.5104".into()]);
        assert_eq!(
            t.render(false),
            "ID         $/H  STATE\n\
             i-1    $0.0104  running\n\
             i-22     $1.50  pending\n\
             -----------------------\n\
             total  $1.5104\n"
        );
        let coloured = t.render(true);
        assert!(coloured.contains("\x1b[32mrunning\x1b[0m"));
    }

    #[test]
    fn error_shows_causes_and_hint() {
        let inner = std::io::Error::other("disk on fire");
        let e = herd_core::Error::config("cannot open ledger")
            .with_hint("move it aside")
            .with_source(inner);
        let any = anyhow::Error::new(e);
        assert_eq!(
            render_error(&any, false, false),
            "error: cannot open ledger\n  Caused by: disk on fire\nhint: move it aside\n"
        );
    }

    #[test]
    fn verbose_errors_show_where_they_happened() {
        let e = herd_core::Error::invalid_spec("bad type")
            .with_context("cloud", "local")
            .with_context("region", "local-east-1");
        let any = anyhow::Error::new(e);
        assert_eq!(render_error(&any, false, false), "error: bad type\n");
        assert_eq!(
            render_error(&any, false, true),
            "error: bad type\n  Context: cloud=local, region=local-east-1\n"
        );
    }

    #[test]
    fn hint_found_under_anyhow_context() {
        let e = herd_core::Error::invalid_spec("bad").with_hint("do this");
        let any = anyhow::Error::new(e).context("launching");
        let s = render_error(&any, false, false);
        assert!(s.starts_with("error: launching\n  Caused by: bad\n"), "{s}");
        assert!(s.ends_with("hint: do this\n"), "{s}");
    }
}
