//! Examples and properties for `Retention::decide`.

use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

fn at(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
}

fn snap(id: &str, time: DateTime<Utc>) -> SnapInfo {
    SnapInfo {
        id: id.to_string(),
        time,
        tags: Vec::new(),
    }
}

fn kept(decisions: &[Decision]) -> Vec<&str> {
    decisions.iter().filter(|d| d.keep).map(|d| d.id.as_str()).collect()
}

/// Two snapshots a day (06:00 and 18:00) for ten days, ids "d{day}-{hour}".
fn twice_daily() -> Vec<SnapInfo> {
    (1..=10)
        .flat_map(|day| [6, 18].map(|hour| snap(&format!("d{day:02}-{hour}"), at(2025, 3, day, hour))))
        .collect()
}

#[test]
fn keep_daily_keeps_the_newest_of_each_recent_day() {
    let policy = Retention {
        keep_daily: 3,
        ..Retention::default()
    };
    let decisions = policy.decide(&twice_daily(), at(2025, 4, 1, 0));
    assert_eq!(kept(&decisions), ["d10-18", "d09-18", "d08-18"]);
    assert_eq!(decisions[0].reasons, ["daily snapshot"]);
    assert!(decisions.iter().filter(|d| !d.keep).all(|d| d.reasons.is_empty()));
}

#[test]
fn rules_combine_and_name_every_reason() {
    let policy = Retention {
        keep_last: 1,
        keep_daily: 2,
        ..Retention::default()
    };
    let decisions = policy.decide(&twice_daily(), at(2025, 4, 1, 0));
    assert_eq!(kept(&decisions), ["d10-18", "d09-18"]);
    assert_eq!(decisions[0].reasons, ["last snapshot", "daily snapshot"]);
}

#[test]
fn keep_within_counts_back_from_the_newest_snapshot_not_now() {
    let policy = Retention {
        keep_within: Some(Duration::from_secs(36 * 3600)),
        ..Retention::default()
    };
    let decisions = policy.decide(&twice_daily(), at(2030, 1, 1, 0));
    assert_eq!(kept(&decisions), ["d10-18", "d10-6", "d09-18"]);
    assert_eq!(decisions[0].reasons, ["within 1d12h"]);
}

#[test]
fn keep_tags_keeps_tagged_snapshots_without_using_a_count() {
    let mut snaps = twice_daily();
    snaps[0].tags = vec!["release".into()];
    let policy = Retention {
        keep_tags: vec![Tag::new("release").unwrap()],
        ..Retention::default()
    };
    let decisions = policy.decide(&snaps, at(2025, 4, 1, 0));
    assert_eq!(kept(&decisions), ["d01-6"]);
    assert_eq!(decisions.last().unwrap().reasons, ["tagged release"]);
}

#[test]
fn weekly_buckets_use_iso_weeks() {
    // 2024-12-30 (Mon) belongs to ISO week 2025-W01, like 2025-01-05 (Sun).
    let snaps = [
        snap("mon", at(2024, 12, 30, 1)),
        snap("sun", at(2025, 1, 5, 1)),
        snap("prev", at(2024, 12, 29, 1)),
    ];
    let policy = Retention {
        keep_weekly: 2,
        ..Retention::default()
    };
    assert_eq!(kept(&policy.decide(&snaps, at(2025, 2, 1, 0))), ["sun", "prev"]);
}

#[test]
fn future_dated_snapshots_are_kept() {
    let policy = Retention {
        keep_last: 1,
        ..Retention::default()
    };
    let snaps = [snap("future", at(2026, 1, 1, 0)), snap("past", at(2025, 1, 1, 0))];
    let decisions = policy.decide(&snaps, at(2025, 6, 1, 0));
    assert_eq!(decisions[0].reasons, ["dated after now", "last snapshot"]);
    assert_eq!(kept(&decisions), ["future"]);
}

#[test]
fn an_empty_policy_keeps_nothing() {
    assert!(Retention::default().keeps_nothing());
    assert!(kept(&Retention::default().decide(&twice_daily(), at(2025, 4, 1, 0))).is_empty());
}

fn arb_snaps() -> impl Strategy<Value = Vec<SnapInfo>> {
    // Times within about three years, so every bucket size matters; ids may repeat times.
    prop::collection::vec((0i64..100_000_000, 0u8..3), 0..60).prop_map(|items| {
        items
            .into_iter()
            .enumerate()
            .map(|(i, (secs, tag))| SnapInfo {
                id: format!("s{i:03}"),
                time: Utc.timestamp_opt(1_600_000_000 + secs, 0).unwrap(),
                tags: if tag == 0 { vec!["keep".into()] } else { Vec::new() },
            })
            .collect()
    })
}

fn arb_policy() -> impl Strategy<Value = Retention> {
    (
        prop::array::uniform6(0u32..6),
        prop::option::of(0u64..50_000_000),
        any::<bool>(),
    )
        .prop_map(|(n, within, tags)| Retention {
            keep_last: n[0],
            keep_hourly: n[1],
            keep_daily: n[2],
            keep_weekly: n[3],
            keep_monthly: n[4],
            keep_yearly: n[5],
            keep_within: within.map(Duration::from_secs),
            keep_tags: if tags {
                vec![Tag::new("keep").unwrap()]
            } else {
                Vec::new()
            },
        })
}

/// The policy split into one policy per rule.
fn single_rules(p: &Retention) -> Vec<Retention> {
    let only = |f: &dyn Fn(&mut Retention)| {
        let mut r = Retention::default();
        f(&mut r);
        r
    };
    vec![
        only(&|r| r.keep_last = p.keep_last),
        only(&|r| r.keep_hourly = p.keep_hourly),
        only(&|r| r.keep_daily = p.keep_daily),
        only(&|r| r.keep_weekly = p.keep_weekly),
        only(&|r| r.keep_monthly = p.keep_monthly),
        only(&|r| r.keep_yearly = p.keep_yearly),
        only(&|r| r.keep_within = p.keep_within),
        only(&|r| r.keep_tags = p.keep_tags.clone()),
    ]
}

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).unwrap()
}

proptest! {
    #[test]
    fn a_snapshot_kept_by_any_single_rule_is_kept_by_the_whole_policy(snaps in arb_snaps(), policy in arb_policy()) {
        let all = policy.decide(&snaps, now());
        for rule in single_rules(&policy) {
            for (one, combined) in rule.decide(&snaps, now()).iter().zip(&all) {
                prop_assert_eq!(&one.id, &combined.id);
                prop_assert!(!one.keep || combined.keep, "{} kept by {:?} but removed", one.id, rule);
            }
        }
    }

    #[test]
    fn the_same_snapshots_in_any_order_get_the_same_decisions(snaps in arb_snaps(), policy in arb_policy()) {
        let mut reversed = snaps.clone();
        reversed.reverse();
        prop_assert_eq!(policy.decide(&snaps, now()), policy.decide(&snaps, now()));
        prop_assert_eq!(policy.decide(&snaps, now()), policy.decide(&reversed, now()));
    }

    #[test]
    fn keep_last_keeps_exactly_the_n_newest(snaps in arb_snaps(), n in 0u32..80) {
        let policy = Retention { keep_last: n, ..Retention::default() };
        let decisions = policy.decide(&snaps, now());
        let expected = (n as usize).min(snaps.len());
        prop_assert_eq!(decisions.iter().filter(|d| d.keep).count(), expected);
        prop_assert!(decisions.iter().take(expected).all(|d| d.keep));
    }

    #[test]
    fn decisions_are_newest_first_and_keep_matches_reasons(snaps in arb_snaps(), policy in arb_policy()) {
        let decisions = policy.decide(&snaps, now());
        prop_assert_eq!(decisions.len(), snaps.len());
        let time_of = |id: &str| snaps.iter().find(|s| s.id == id).map(|s| s.time);
        for pair in decisions.windows(2) {
            prop_assert!(time_of(&pair[0].id) >= time_of(&pair[1].id));
        }
        prop_assert!(decisions.iter().all(|d| d.keep != d.reasons.is_empty()));
    }
}
