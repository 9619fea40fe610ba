//! When a dataset is backed up or verified: a cron expression, checked and explored.
//!
//! Plans use the classic 5-field form (`min hour dom month dow`), a 6-field form with
//! seconds first, or an alias (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`).
//! The `cron` crate does the matching; this wrapper adds what validation needs: the
//! longest gap between runs (to check an RPO can be met) and a rule that day-of-week is
//! written by name, because `1` means Monday in classic cron and Sunday in the `cron`
//! crate — a silent off-by-one a backup schedule cannot afford.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::format::ids::ContentHash;

/// Why an expression is not a usable schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("cron expression {expr:?} has {found} fields")]
    FieldCount { expr: String, found: usize },
    #[error("{expr:?} is not a schedule alias")]
    UnknownAlias { expr: String },
    #[error("cron expression {expr:?} uses a number for the day of week")]
    NumericWeekday { expr: String },
    #[error("cron expression {expr:?} is invalid: {reason}")]
    Invalid { expr: String, reason: String },
    #[error("cron expression {expr:?} never fires")]
    NeverFires { expr: String },
}

impl ScheduleError {
    /// What to write instead, for the `— fix` half of a diagnostic.
    pub fn hint(&self) -> &'static str {
        match self {
            ScheduleError::FieldCount { .. } => {
                "write 5 fields (\"min hour day month weekday\", e.g. \"0 */6 * * *\"), 6 with seconds first, or an alias such as \"@daily\""
            }
            ScheduleError::UnknownAlias { .. } => {
                "use @hourly, @daily, @weekly, @monthly or @yearly, or a cron expression"
            }
            ScheduleError::NumericWeekday { .. } => {
                "name the day instead (MON, TUE, WED, THU, FRI, SAT, SUN), e.g. \"0 3 * * SUN\""
            }
            ScheduleError::Invalid { .. } => {
                "check each field's range: minute 0-59, hour 0-23, day 1-31, month 1-12 or JAN-DEC, weekday MON-SUN"
            }
            ScheduleError::NeverFires { .. } => "pick a day and month that exist, e.g. \"0 0 28 2 *\"",
        }
    }
}

const ALIASES: [&str; 5] = ["@hourly", "@daily", "@weekly", "@monthly", "@yearly"];

/// The longest jitter, whatever the interval.
pub const MAX_JITTER: Duration = Duration::from_secs(30);

/// A stable offset in `0..min(10% of interval, 30 s)` from `name`, so datasets sharing
/// a schedule spread out instead of hitting one bucket at once.
pub fn jitter(name: &str, interval: Duration) -> Duration {
    let span = (interval / 10).min(MAX_JITTER).as_millis() as u64;
    if span == 0 {
        return Duration::ZERO;
    }
    let hash = ContentHash::of_bytes(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.0[..8]);
    Duration::from_millis(u64::from_le_bytes(first) % span)
}

/// A validated cron schedule, evaluated in UTC.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: cron::Schedule,
    max_interval: Duration,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

impl Schedule {
    /// Parses and checks `expr`; see the module doc for the accepted forms.
    pub fn parse(expr: &str) -> Result<Self, ScheduleError> {
        let trimmed = expr.trim();
        let full = expand(trimmed)?;
        let cron = cron::Schedule::from_str(&full).map_err(|e| ScheduleError::Invalid {
            expr: trimmed.to_string(),
            reason: last_line(&e.to_string()),
        })?;
        let max_interval = gaps::longest(&cron).ok_or_else(|| ScheduleError::NeverFires {
            expr: trimmed.to_string(),
        })?;
        Ok(Self {
            expr: trimmed.to_string(),
            cron,
            max_interval,
        })
    }

    /// The expression as written in the plan.
    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// The first run strictly after `time`.
    pub fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.after(&time).next()
    }

    /// The longest gap between two consecutive runs (sampled; see `gaps`).
    pub fn max_interval(&self) -> Duration {
        self.max_interval
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

/// The cron crate's errors repeat the expression with a caret; the reason is the last line.
fn last_line(message: &str) -> String {
    let line = message.lines().rev().find(|l| !l.trim().is_empty());
    line.unwrap_or(message).trim().to_string()
}

/// Turns a 5- or 6-field expression or an alias into the crate's 6-field form.
fn expand(expr: &str) -> Result<String, ScheduleError> {
    if ALIASES.contains(&expr) {
        return Ok(expr.to_string());
    }
    if expr.starts_with('@') {
        return Err(ScheduleError::UnknownAlias { expr: expr.to_string() });
    }
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let full = match fields.len() {
        5 => format!("0 {}", fields.join(" ")),
        6 => fields.join(" "),
        found => {
            return Err(ScheduleError::FieldCount {
                expr: expr.to_string(),
                found,
            });
        }
    };
    if fields.last().is_some_and(|dow| dow.chars().any(|c| c.is_ascii_digit())) {
        return Err(ScheduleError::NumericWeekday { expr: expr.to_string() });
    }
    Ok(full)
}

/// Finding the longest gap between runs without walking every second of a year.
mod gaps {
    use super::*;

    /// Runs are walked one by one from a fixed start for this long or this many runs.
    const HORIZON_DAYS: i64 = 8 * 366;
    const MAX_RUNS: usize = 20_000;
    /// Past `MAX_RUNS`, probe the gap around one instant per step for a year.
    const PROBE_STEP_SECS: i64 = 3600;
    const PROBE_DAYS: i64 = 400;

    fn start() -> DateTime<Utc> {
        // 2001-01-01 starts a Monday and a non-leap year; fixed so results are reproducible.
        Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).single().unwrap_or_default()
    }

    /// The longest gap between consecutive runs, or `None` if the schedule never runs.
    pub fn longest(cron: &cron::Schedule) -> Option<Duration> {
        let start = start();
        let end = start + chrono::Duration::days(HORIZON_DAYS);
        let mut runs = cron.after(&start);
        let mut prev = runs.next()?;
        let mut longest = chrono::Duration::zero();
        for (count, run) in runs.enumerate() {
            longest = longest.max(run - prev);
            prev = run;
            if run > end {
                return longest.to_std().ok();
            }
            if count >= MAX_RUNS {
                return longest.max(probe(cron, start, longest)).to_std().ok();
            }
        }
        // Finitely many runs (a year field): the last one leaves no further gap.
        longest.to_std().ok()
    }

    /// For dense schedules: the gap around one instant per step, skipping known gaps.
    /// Every gap longer than the step contains a probe, and a gap no longer than
    /// `seen` (already measured) cannot raise the answer, so the step may be that long.
    fn probe(cron: &cron::Schedule, start: DateTime<Utc>, seen: chrono::Duration) -> chrono::Duration {
        let end = start + chrono::Duration::days(PROBE_DAYS);
        let step = chrono::Duration::seconds(PROBE_STEP_SECS).max(seen);
        let mut longest = chrono::Duration::zero();
        let mut at = start;
        while at < end {
            // The gap around `at` runs from the latest run at or before it to the next one.
            let before = if cron.includes(at) {
                Some(at)
            } else {
                cron.after(&at).next_back()
            };
            let (Some(before), Some(after)) = (before, cron.after(&at).next()) else {
                break;
            };
            longest = longest.max(after - before);
            at = (at + step).max(after);
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn five_fields_run_on_the_minute() {
        let s = Schedule::parse("30 */6 * * *").unwrap();
        assert_eq!(s.next_after(utc(2025, 1, 1, 0, 0)), Some(utc(2025, 1, 1, 0, 30)));
        assert_eq!(s.next_after(utc(2025, 1, 1, 0, 30)), Some(utc(2025, 1, 1, 6, 30)));
        assert_eq!(s.max_interval(), Duration::from_secs(6 * 3600));
    }

    #[test]
    fn six_fields_allow_seconds() {
        let s = Schedule::parse("*/15 * * * * *").unwrap();
        assert_eq!(s.max_interval(), Duration::from_secs(15));
    }

    #[test]
    fn aliases_are_accepted() {
        assert_eq!(
            Schedule::parse("@hourly").unwrap().max_interval(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            Schedule::parse("@daily").unwrap().max_interval(),
            Duration::from_secs(86400)
        );
        assert_eq!(
            Schedule::parse("@weekly").unwrap().max_interval(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(
            Schedule::parse("@monthly").unwrap().max_interval(),
            Duration::from_secs(31 * 86400)
        );
    }

    #[test]
    fn uneven_schedules_report_their_longest_gap() {
        let s = Schedule::parse("0 9,17 * * MON-FRI").unwrap();
        // Friday 17:00 to Monday 09:00.
        assert_eq!(s.max_interval(), Duration::from_secs(64 * 3600));
    }

    #[test]
    fn dense_schedules_with_a_gap_are_probed() {
        let s = Schedule::parse("* * 0-21 * * *").unwrap();
        assert_eq!(s.max_interval(), Duration::from_secs(2 * 3600 + 1));
    }

    #[test]
    fn numeric_weekdays_are_refused() {
        assert!(matches!(
            Schedule::parse("0 3 * * 1"),
            Err(ScheduleError::NumericWeekday { .. })
        ));
        assert!(Schedule::parse("0 3 * * SUN").is_ok());
    }

    #[test]
    fn wrong_field_counts_and_ranges_are_refused() {
        assert!(matches!(
            Schedule::parse("0 3 * *"),
            Err(ScheduleError::FieldCount { found: 4, .. })
        ));
        assert!(matches!(
            Schedule::parse("0 25 * * *"),
            Err(ScheduleError::Invalid { .. })
        ));
        assert!(matches!(
            Schedule::parse("0 0 30 2 *"),
            Err(ScheduleError::NeverFires { .. })
        ));
    }
}
