//! A point-in-time reading of [`Progress`] with rate and ETA, shared by the terminal
//! bar, the one-line progress written when there is no terminal, and the daemon's
//! job list, so every place names and computes the figures the same way.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Progress;

/// How far an operation is: counts, totals (once the pre-scan knows them), rate and ETA.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ProgressReport {
    pub files_done: u64,
    /// `None` until the totals are known.
    pub files_total: Option<u64>,
    /// Bytes read (backup) or written (restore) so far.
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    /// Average since the start.
    pub bytes_per_second: u64,
    /// Seconds left at the average rate; `None` until totals and a rate are known.
    pub eta_seconds: Option<u64>,
    pub elapsed_seconds: u64,
}

impl Progress {
    /// The counters now, `elapsed` after the operation started.
    pub fn report(&self, elapsed: Duration) -> ProgressReport {
        let (files_done, bytes_done, files_total, bytes_total) = self.snapshot();
        let known = self.totals_known.load(Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            (bytes_done as f64 / secs) as u64
        } else {
            0
        };
        let left = bytes_total.saturating_sub(bytes_done);
        ProgressReport {
            files_done,
            files_total: known.then_some(files_total),
            bytes_done,
            bytes_total: known.then_some(bytes_total.max(bytes_done)),
            bytes_per_second: rate,
            eta_seconds: (known && rate > 0).then(|| left.div_ceil(rate)),
            elapsed_seconds: elapsed.as_secs(),
        }
    }
}

/// How often a progress line is written where there is no terminal (command output
/// without a terminal, `--json`, the daemon's log): 10 s, or `LIFEBOAT_PROGRESS_SECONDS`
/// (1 to 3600).
pub fn line_interval() -> Duration {
    let secs = std::env::var("LIFEBOAT_PROGRESS_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| (1..=3600).contains(s))
        .unwrap_or(10);
    Duration::from_secs(secs)
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
}

fn or_unknown(v: Option<String>) -> String {
    v.unwrap_or_else(|| "?".into())
}

/// One line: `1.0 MiB of 4.0 MiB (25%), 3 of 10 files, 2.0 MiB/s, ETA 2s`.
impl fmt::Display for ProgressReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = self
            .bytes_total
            .filter(|t| *t > 0)
            .map(|t| format!(" ({}%)", self.bytes_done * 100 / t))
            .unwrap_or_default();
        write!(
            f,
            "{} of {}{percent}, {} of {} files, {}/s, ETA {}",
            mib(self.bytes_done),
            or_unknown(self.bytes_total.map(mib)),
            self.files_done,
            or_unknown(self.files_total.map(|n| n.to_string())),
            mib(self.bytes_per_second),
            or_unknown(self.eta_seconds.map(|s| format!("{s}s"))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_eta_follow_the_counters_once_totals_are_known() {
        let p = Progress::default();
        p.add_total(10, 4 << 20);
        p.add_done(3, 1 << 20);
        let early = p.report(Duration::from_secs(1));
        assert_eq!((early.bytes_total, early.eta_seconds), (None, None));
        assert_eq!(early.bytes_per_second, 1 << 20);
        p.totals_known.store(true, Ordering::Relaxed);
        let r = p.report(Duration::from_secs(2));
        assert_eq!(r.bytes_per_second, 512 << 10);
        assert_eq!(r.eta_seconds, Some(6));
        assert_eq!(r.files_total, Some(10));
        assert_eq!(
            r.to_string(),
            "1.0 MiB of 4.0 MiB (25%), 3 of 10 files, 0.5 MiB/s, ETA 6s"
        );
    }
}
