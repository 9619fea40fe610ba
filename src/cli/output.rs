//! Rendering: JSON documents, human tables, sizes and the progress bar.
//!
//! All text goes through [`say!`] and [`note!`] rather than `println!`/`eprintln!`,
//! which panic when the reader has gone away (`lifeboat ls … | head`). Once stdout is
//! closed, later output is dropped quietly and the command runs to its end, so it still
//! exits with its own code: a failover whose output nobody reads has still moved traffic,
//! and its exit code must say how that went.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::Progress;

/// Set once a write to stdout failed; nothing more is written there.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Print a line on stdout (`say!` builds the arguments). A closed pipe ends output
/// quietly; another write error is reported once on stderr.
pub fn line(args: std::fmt::Arguments<'_>) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    if let Err(e) = written.and_then(|()| out.flush()) {
        gone(&e);
    }
}

/// Write `bytes` to stdout as they are (a generated script or page), like [`line`].
pub fn raw(bytes: &[u8]) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        gone(&e);
    }
}

fn gone(e: &std::io::Error) {
    STDOUT_GONE.store(true, Ordering::Relaxed);
    if e.kind() != std::io::ErrorKind::BrokenPipe {
        err_line(format_args!("error: cannot write to standard output: {e}"));
    }
}

/// Print a line on stderr (`note!` builds the arguments); a closed stderr is ignored.
pub fn err_line(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// `println!` that cannot panic: see [`line`].
macro_rules! say {
    ($($arg:tt)*) => { $crate::cli::output::line(format_args!($($arg)*)) };
}

/// `eprintln!` that cannot panic: see [`err_line`].
macro_rules! note {
    ($($arg:tt)*) => { $crate::cli::output::err_line(format_args!($($arg)*)) };
}

pub(crate) use {note, say};

pub fn json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => say!("{s}"),
        Err(e) => note!("error: cannot encode the result as JSON: {e}"),
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// The text lines for what a `restore --delete` removed or, in a dry run, would
/// remove; true when the restore itself was only previewed.
pub fn restore_deletions(out: &crate::engine::restore::RestoreOutcome, target: &std::path::Path) -> bool {
    let verb = if out.dry_run { "would remove" } else { "removed" };
    for rel in &out.deleted {
        say!("{verb} {}", target.join(rel).display());
    }
    if out.dry_run {
        say!(
            "dry run: {} entr(y/ies) in {} are not in snapshot {} and would be removed; nothing was written",
            out.deleted.len(),
            target.display(),
            out.snapshot.get(..8).unwrap_or(&out.snapshot)
        );
    }
    out.dry_run
}

pub fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

/// Progress of a long command on stderr, fed from [`Progress`] counters: a bar on a
/// terminal; otherwise (or with `--json`) one line every `line_interval()`, plain text
/// or a JSON object, so logs and `--json` consumers see the work move too. stdout
/// keeps only the command's result.
pub struct Bar {
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

/// Write one progress line every `line_interval()` until aborted.
fn spawn_lines(label: &str, progress: Arc<Progress>, json: bool) -> tokio::task::JoinHandle<()> {
    let label = label.to_string();
    let started = std::time::Instant::now();
    tokio::spawn(async move {
        let every = crate::engine::progress::line_interval();
        loop {
            tokio::time::sleep(every).await;
            let report = progress.report(started.elapsed());
            if json {
                let line = serde_json::json!({ "progress": { "operation": label, "report": report } });
                err_line(format_args!("{line}"));
            } else {
                err_line(format_args!("progress: {label}: {report}"));
            }
        }
    })
}

impl Bar {
    pub fn start(label: &str, progress: Arc<Progress>, enabled: bool, json: bool) -> Bar {
        if !enabled {
            return Bar {
                bar: None,
                ticker: None,
            };
        }
        if json || !std::io::stderr().is_terminal() {
            return Bar {
                bar: None,
                ticker: Some(spawn_lines(label, progress, json)),
            };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        let b = bar.clone();
        let ticker = tokio::spawn(async move {
            loop {
                let (files, done, files_total, total) = progress.snapshot();
                b.set_length(total.max(done));
                b.set_position(done);
                let all = if progress.totals_known.load(Ordering::Relaxed) {
                    files_total.to_string()
                } else {
                    "?".into()
                };
                b.set_message(format!("{files}/{all} files"));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Bar {
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }

    pub fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
