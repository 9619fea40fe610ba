//! Which snapshots to keep: restic's `forget` policy as a pure function.
//!
//! `Retention::decide` sees snapshot times and tags, nothing else, and returns one
//! decision per snapshot with the reasons it is kept. Keeping this pure (the clock is an
//! argument) is what lets property tests pin the rules down and lets `lifeboat plan` show
//! exactly what a prune would delete before anything is deleted.
//!
//! Semantics follow restic: snapshots are walked newest first; `keep_last` keeps the N
//! newest; each bucket rule (hourly … yearly) keeps the newest snapshot of each of the
//! last N distinct hours/days/ISO weeks/months/years that have a snapshot; `keep_within`
//! keeps everything younger than the duration, measured back from the newest snapshot;
//! `keep_tags` keeps every snapshot carrying one of the tags. A snapshot dated after `now`
//! (clock skew on the host that took it) is always kept, since its age is unknown.

use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::format::names::Tag;

/// How many snapshots of each kind to keep. All zero / empty keeps nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    pub keep_within: Option<Duration>,
    pub keep_tags: Vec<Tag>,
}

/// What `decide` needs to know about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapInfo {
    pub id: String,
    pub time: DateTime<Utc>,
    pub tags: Vec<String>,
}

/// The verdict on one snapshot; `reasons` is empty exactly when `keep` is false.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: String,
    pub keep: bool,
    pub reasons: Vec<String>,
}

/// One calendar bucket rule: its name, how many buckets, and the bucket of a time.
struct Bucket {
    name: &'static str,
    remaining: u32,
    last: Option<i64>,
    of: fn(&DateTime<Utc>) -> i64,
}

fn hour_of(t: &DateTime<Utc>) -> i64 {
    day_of(t) * 100 + i64::from(t.hour())
}
fn day_of(t: &DateTime<Utc>) -> i64 {
    month_of(t) * 100 + i64::from(t.day())
}
fn week_of(t: &DateTime<Utc>) -> i64 {
    let week = t.iso_week();
    i64::from(week.year()) * 100 + i64::from(week.week())
}
fn month_of(t: &DateTime<Utc>) -> i64 {
    year_of(t) * 100 + i64::from(t.month())
}
fn year_of(t: &DateTime<Utc>) -> i64 {
    i64::from(t.year())
}

impl Retention {
    /// True when this policy would keep no snapshot at all.
    pub fn keeps_nothing(&self) -> bool {
        self.counts().iter().all(|(_, n)| *n == 0) && self.keep_within.is_none() && self.keep_tags.is_empty()
    }

    /// The count rules by name, as written in a plan.
    pub fn counts(&self) -> [(&'static str, u32); 6] {
        [
            ("keep_last", self.keep_last),
            ("keep_hourly", self.keep_hourly),
            ("keep_daily", self.keep_daily),
            ("keep_weekly", self.keep_weekly),
            ("keep_monthly", self.keep_monthly),
            ("keep_yearly", self.keep_yearly),
        ]
    }

    fn buckets(&self) -> Vec<Bucket> {
        let rule = |name, remaining, of| Bucket {
            name,
            remaining,
            last: None,
            of,
        };
        vec![
            rule("hourly", self.keep_hourly, hour_of as fn(&DateTime<Utc>) -> i64),
            rule("daily", self.keep_daily, day_of),
            rule("weekly", self.keep_weekly, week_of),
            rule("monthly", self.keep_monthly, month_of),
            rule("yearly", self.keep_yearly, year_of),
        ]
    }

    /// Decides every snapshot, newest first (ties broken by id), so output is stable.
    pub fn decide(&self, snapshots: &[SnapInfo], now: DateTime<Utc>) -> Vec<Decision> {
        let mut sorted: Vec<&SnapInfo> = snapshots.iter().collect();
        sorted.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.id.cmp(&b.id)));
        let newest = sorted.first().map(|s| s.time);
        let mut buckets = self.buckets();
        sorted
            .iter()
            .enumerate()
            .map(|(index, snap)| {
                let mut reasons = self.unbucketed_reasons(index, snap, newest, now);
                reasons.extend(bucket_reasons(&mut buckets, &snap.time));
                Decision {
                    id: snap.id.clone(),
                    keep: !reasons.is_empty(),
                    reasons,
                }
            })
            .collect()
    }

    /// Reasons that do not use up a bucket: future-dated, tags, last N, within.
    fn unbucketed_reasons(
        &self,
        index: usize,
        snap: &SnapInfo,
        newest: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let mut reasons = Vec::new();
        if snap.time > now {
            reasons.push("dated after now".to_string());
        }
        if let Some(tag) = self
            .keep_tags
            .iter()
            .find(|t| snap.tags.iter().any(|s| s == t.as_str()))
        {
            reasons.push(format!("tagged {tag}"));
        }
        if index < self.keep_last as usize {
            reasons.push("last snapshot".to_string());
        }
        if let (Some(within), Some(newest)) = (self.keep_within, newest) {
            let cutoff = chrono::Duration::from_std(within)
                .ok()
                .and_then(|w| newest.checked_sub_signed(w));
            if cutoff.is_none_or(|cutoff| snap.time > cutoff) {
                reasons.push(format!("within {}", super::units::format_duration(within)));
            }
        }
        reasons
    }
}

/// Each bucket rule with count left keeps the first snapshot of a bucket not yet seen.
fn bucket_reasons(buckets: &mut [Bucket], time: &DateTime<Utc>) -> Vec<String> {
    let mut reasons = Vec::new();
    for bucket in buckets.iter_mut().filter(|b| b.remaining > 0) {
        let value = (bucket.of)(time);
        if bucket.last != Some(value) {
            bucket.last = Some(value);
            bucket.remaining -= 1;
            reasons.push(format!("{} snapshot", bucket.name));
        }
    }
    reasons
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
