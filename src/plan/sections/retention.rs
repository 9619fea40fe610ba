//! A dataset's `retention` table, and the checks that catch policies that keep nothing
//! or carry a rule that another rule already covers.

use std::time::Duration;

use super::Ctx;
use super::checks::tags;
use crate::plan::reader::Fields;
use crate::plan::retention::Retention;
use crate::plan::schedule::Schedule;
use crate::plan::units::format_duration;

const RETENTION_KEYS: [&str; 8] = [
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "keep_within",
    "keep_tags",
];
const EXAMPLE: &str = "{ keep_daily = 7, keep_weekly = 4 }";

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// A calendar rule's bucket: its shortest and longest length.
struct Span {
    key: &'static str,
    shortest: u64,
    longest: u64,
}

const SPANS: [Span; 5] = [
    Span {
        key: "keep_hourly",
        shortest: HOUR,
        longest: HOUR,
    },
    Span {
        key: "keep_daily",
        shortest: DAY,
        longest: DAY,
    },
    Span {
        key: "keep_weekly",
        shortest: 7 * DAY,
        longest: 7 * DAY,
    },
    Span {
        key: "keep_monthly",
        shortest: 28 * DAY,
        longest: 31 * DAY,
    },
    Span {
        key: "keep_yearly",
        shortest: 365 * DAY,
        longest: 366 * DAY,
    },
];

/// The dataset's required `retention` table.
pub fn of_dataset(dataset: &Fields, schedule: Option<&Schedule>, ctx: &mut Ctx) -> Option<Retention> {
    let Some((table, span)) = dataset.table("retention", EXAMPLE, ctx.diags) else {
        if dataset.get("retention").is_none() {
            dataset.missing("retention", EXAMPLE, ctx.diags);
        }
        return None;
    };
    let context = format!("`retention` in {}", dataset.context());
    let fields = Fields::new(table, span.clone(), context, &RETENTION_KEYS, ctx.diags);
    let count = |key: &str, ctx: &mut Ctx| fields.count(key, "7", ctx.diags).map_or(0, |c| c.value);
    let retention = Retention {
        keep_last: count("keep_last", ctx),
        keep_hourly: count("keep_hourly", ctx),
        keep_daily: count("keep_daily", ctx),
        keep_weekly: count("keep_weekly", ctx),
        keep_monthly: count("keep_monthly", ctx),
        keep_yearly: count("keep_yearly", ctx),
        keep_within: fields.duration("keep_within", "\"7d\"", ctx.diags).map(|d| d.value),
        keep_tags: tags(&fields, "keep_tags", ctx),
    };
    if retention.keeps_nothing() {
        ctx.diags.error(
            &span,
            format!(
                "{} keeps no snapshot, so every prune would delete them all",
                fields.context()
            ),
            "keep at least one, e.g. `keep_daily = 7`; to keep everything, `keep_within = \"5200w\"`",
        );
        return None;
    }
    if let Some(schedule) = schedule {
        warn_covered_rules(&retention, &fields, schedule.max_interval(), ctx);
    }
    Some(retention)
}

/// How far back a rule reaches for certain, given snapshots at least every `gap`.
fn reach(retention: &Retention, span: &Span, gap: Duration) -> u64 {
    let count = count_of(retention, span.key);
    if gap.as_secs() > span.shortest || count == 0 {
        return 0;
    }
    u64::from(count - 1) * span.shortest
}

fn count_of(retention: &Retention, key: &str) -> u32 {
    retention
        .counts()
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(0, |(_, n)| *n)
}

/// Warns about a coarse rule whose every pick a finer rule or `keep_within` keeps anyway.
fn warn_covered_rules(retention: &Retention, fields: &Fields, gap: Duration, ctx: &mut Ctx) {
    for (i, coarse) in SPANS.iter().enumerate() {
        let count = count_of(retention, coarse.key);
        if count == 0 || gap.as_secs() > coarse.shortest {
            continue;
        }
        let needs = u64::from(count) * coarse.longest;
        let within = retention.keep_within.map(|w| {
            (
                w.as_secs().saturating_sub(1),
                "keep_within".to_string(),
                format_duration(w),
            )
        });
        // ISO weeks straddle months and years, so a week's newest snapshot need not be a month's.
        let nests = |fine: &&Span| !(fine.key == "keep_weekly" && i > 2);
        let finer = SPANS[..i].iter().filter(nests).map(|fine| {
            (
                reach(retention, fine, gap),
                fine.key.to_string(),
                count_of(retention, fine.key).to_string(),
            )
        });
        let Some((_, by, value)) = within.into_iter().chain(finer).find(|(reach, _, _)| *reach >= needs) else {
            continue;
        };
        let span = fields.get(coarse.key).map(|v| v.span()).unwrap_or_default();
        ctx.diags.warning(
            &span,
            format!(
                "`{} = {count}` in {} keeps nothing extra: `{by} = {value}` already keeps every snapshot it would",
                coarse.key,
                fields.context()
            ),
            format!(
                "remove `{}`, or raise it so it reaches further back than `{by}`",
                coarse.key
            ),
        );
    }
}
