//! Rendering: JSON documents, human tables, sizes and the progress bar.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::Progress;

pub fn json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode the result as JSON: {e}"),
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
