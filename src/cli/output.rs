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

pub fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

/// A terminal progress bar fed from [`Progress`] counters; nothing when not a terminal.
pub struct Bar {
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Bar {
    pub fn start(label: &str, progress: Arc<Progress>, enabled: bool) -> Bar {
        if !enabled || !std::io::stderr().is_terminal() {
            return Bar {
                bar: None,
                ticker: None,
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
