use std::path::Path;

use chrono::TimeZone;
use proptest::prelude::*;

use super::*;

/// A two-region plan with one dataset `data`; also the daemon's schedule tests' plan.
pub(crate) fn plan_with(schedule: &str, rpo: &str, extra: &str) -> Plan {
    let text = format!(
        r#"
version = 1
[key]
env = "LIFEBOAT_PASSWORD"
[regions.a]
address = "/tmp/lifeboat-due-a"
[regions.b]
address = "/tmp/lifeboat-due-b"
[datasets.data]
paths = ["/tmp"]
schedule = "{schedule}"
regions = ["a", "b"]
rpo = "{rpo}"
retention = {{ keep_last = 5 }}
{extra}
"#
    );
    let (plan, diags) = crate::plan::validate_source(Path::new("/tmp/p.toml"), &text);
    plan.unwrap_or_else(|| panic!("test plan invalid: {diags:?}"))
}

pub(crate) fn plan(schedule: &str, rpo: &str) -> Plan {
    plan_with(schedule, rpo, "")
}

/// `h:m:s` on 2030-01-01, UTC.
pub(crate) fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, h, m, s).unwrap()
}

fn name() -> DatasetName {
    DatasetName::new("data").unwrap()
}

fn obs(last_run: Option<DateTime<Utc>>, a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> DatasetObs {
    DatasetObs {
        last_run,
        ..DatasetObs::from_snapshots([("a", a), ("b", b)])
    }
}

/// What the daemon asks: spread by the plan's name `p`.
fn daemon_due(p: &Plan, o: DatasetObs, now: DateTime<Utc>) -> Vec<Due> {
    let observed = Observed {
        datasets: BTreeMap::from([(name(), o)]),
        spread: Some("p".into()),
        ..Observed::default()
    };
    due(p, &observed, now)
}

/// What `lifeboat plan` and `apply` ask: the regions' newest snapshots, no spread.
fn cli_due(p: &Plan, o: DatasetObs, now: DateTime<Utc>) -> Vec<Due> {
    let observed = Observed {
        datasets: BTreeMap::from([(name(), o)]),
        ..Observed::default()
    };
    due(p, &observed, now)
}

fn reason(d: &[Due]) -> Option<Reason> {
    d.iter().find_map(|d| match d {
        Due::Backup { reason, .. } => Some(*reason),
        _ => None,
    })
}

fn regions(d: &[Due]) -> Vec<String> {
    d.iter()
        .flat_map(|d| match d {
            Due::Backup { regions, .. } => regions.iter().map(|r| r.to_string()).collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_dataset_never_backed_up_is_due_at_once_in_every_region() {
    let p = plan("@hourly", "2h");
    let d = daemon_due(&p, DatasetObs::default(), at(10, 5, 0));
    assert_eq!(reason(&d), Some(Reason::NeverBackedUp));
    assert_eq!(regions(&d), ["a", "b"]);
}

#[test]
fn nothing_is_due_between_ticks() {
    let p = plan("@hourly", "2h");
    let t = at(10, 0, 0);
    assert!(daemon_due(&p, obs(Some(t), Some(t), Some(t)), at(10, 30, 0)).is_empty());
    assert!(cli_due(&p, obs(None, Some(t), Some(t)), at(10, 30, 0)).is_empty());
}

#[test]
fn the_daemon_waits_for_its_jitter_and_the_cli_does_not() {
    let p = plan("@hourly", "2h");
    let t = at(10, 0, 0);
    let j = chrono::Duration::from_std(jitter("p/data", Duration::from_secs(3600))).unwrap();
    assert!(j > chrono::Duration::zero() && j <= chrono::Duration::seconds(30));
    let o = obs(Some(t), Some(t), Some(t));
    assert!(daemon_due(&p, o.clone(), at(11, 0, 0) + j - chrono::Duration::milliseconds(1)).is_empty());
    assert_eq!(reason(&daemon_due(&p, o, at(11, 0, 0) + j)), Some(Reason::Schedule));
    let d = cli_due(&p, obs(None, Some(t), Some(t)), at(11, 0, 0));
    assert_eq!(reason(&d), Some(Reason::Schedule));
    assert_eq!(regions(&d), ["a", "b"]);
}

#[test]
fn a_missed_schedule_runs_once_after_downtime() {
    let p = plan("@hourly", "24h");
    let t = at(1, 0, 0);
    assert_eq!(daemon_due(&p, obs(Some(t), Some(t), Some(t)), at(9, 30, 0)).len(), 1);
    let ran = at(9, 30, 0);
    assert!(daemon_due(&p, obs(Some(ran), Some(ran), Some(ran)), at(9, 45, 0)).is_empty());
}

#[test]
fn a_region_over_its_rpo_is_due_without_a_tick() {
    let p = plan("@hourly", "2h");
    let mut o = obs(Some(at(10, 0, 0)), Some(at(7, 0, 0)), Some(at(7, 0, 0)));
    o.failures = 1;
    assert_eq!(reason(&daemon_due(&p, o, at(10, 10, 0))), Some(Reason::OverRpo));
    let ds = &p.datasets[&name()];
    assert!(!region_due(ds, Some(at(7, 0, 0)), at(7, 59, 59)));
    assert!(region_due(ds, Some(at(7, 0, 0)), at(8, 0, 0)));
    assert!(region_due(ds, None, at(0, 0, 0)));
}

#[test]
fn a_lagging_region_is_due_without_a_tick_and_named() {
    let p = plan("@hourly", "24h");
    let o = obs(Some(at(10, 0, 0)), Some(at(10, 0, 0)), Some(at(9, 0, 0)));
    let d = daemon_due(&p, o, at(10, 20, 0));
    assert_eq!(reason(&d), Some(Reason::LaggingRegion));
    assert_eq!(regions(&d), ["b"]);
    let ds = &p.datasets[&name()];
    let o = obs(None, Some(at(10, 0, 0)), Some(at(9, 0, 0)));
    assert!(region_lagging(ds, &o, "b"));
    assert!(!region_lagging(ds, &o, "a"));
}

#[test]
fn failures_back_off_the_objectives_but_not_the_schedule() {
    let p = plan("@hourly", "2h");
    let mut o = obs(Some(at(3, 0, 0)), Some(at(0, 0, 0)), Some(at(0, 0, 0)));
    o.failures = 3;
    assert!(daemon_due(&p, o.clone(), at(3, 0, 19)).is_empty());
    assert_eq!(reason(&daemon_due(&p, o.clone(), at(3, 0, 20))), Some(Reason::OverRpo));
    assert_eq!(backoff(1), Duration::from_secs(5));
    assert_eq!(backoff(3), Duration::from_secs(20));
    assert_eq!(backoff(100), MAX_BACKOFF);
    // The next tick is due whatever the back-off says.
    assert_eq!(reason(&daemon_due(&p, o, at(4, 0, 31))), Some(Reason::Schedule));
}

const CHECKS: &str = r#"
[verify.often]
schedule = "@hourly"
[endpoints.app]
provider = "file"
path = "/tmp/lifeboat-due-upstream.conf"
targets = { a = "server 127.0.0.1:1;", b = "server 127.0.0.1:2;" }
[playbooks.rehearse]
rto = "5m"
primary = "a"
standby = "b"
drill_schedule = "@daily"
steps = [{ kind = "repoint", endpoint = "app", to = "b" }]
[playbooks.manual]
rto = "5m"
steps = [{ kind = "repoint", endpoint = "app", to = "b" }]
"#;

fn checks(d: &[Due]) -> Vec<String> {
    d.iter()
        .filter_map(|d| match d {
            Due::Verify { policy } => Some(format!("verify {policy}")),
            Due::Drill { playbook } => Some(format!("drill {playbook}")),
            Due::Backup { .. } => None,
        })
        .collect()
}

#[test]
fn verifications_and_drills_run_one_tick_after_their_last_run() {
    let p = plan_with("@hourly", "2h", CHECKS);
    let t = at(10, 0, 0);
    let fresh = obs(None, Some(t), Some(t));
    let mut observed = Observed {
        datasets: BTreeMap::from([(name(), fresh)]),
        since: Some(at(9, 30, 0)),
        ..Observed::default()
    };
    // Watching since 09:30: the 10:00 tick makes the policy due; the daily drill waits.
    assert_eq!(checks(&due(&p, &observed, at(10, 0, 0))), ["verify often"]);
    assert_eq!(checks(&due(&p, &observed, at(23, 59, 0))), ["verify often"]);
    observed
        .verified
        .insert(VerifyName::new("often").unwrap(), at(10, 0, 0));
    assert!(checks(&due(&p, &observed, at(10, 59, 59))).is_empty());
    let next_day = Utc.with_ymd_and_hms(2030, 1, 2, 0, 0, 0).unwrap();
    assert_eq!(
        checks(&due(&p, &observed, next_day)),
        ["verify often", "drill rehearse"]
    );
    observed
        .drilled
        .insert(PlaybookName::new("rehearse").unwrap(), next_day);
    assert_eq!(checks(&due(&p, &observed, next_day)), ["verify often"]);
    // Without a start of observation (the CLI), only backups are decided.
    observed.since = None;
    assert!(checks(&due(&p, &observed, next_day)).is_empty());
}

fn any_time() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    prop::option::of((0i64..3 * 86_400).prop_map(|s| at(0, 0, 0) + chrono::Duration::seconds(s)))
}

proptest! {
    /// Without a last run or a spread (what `plan` and `apply` observe), a backup is due
    /// exactly when some region is, and the regions named are exactly those.
    #[test]
    fn the_dataset_is_due_exactly_when_a_region_is(
        (schedule, least_rpo) in prop::sample::select(vec![
            ("@hourly", 1u64), ("@daily", 24), ("*/20 * * * *", 1), ("0 3 * * SUN", 168),
        ]),
        extra_hours in 0u64..48,
        a in any_time(),
        b in any_time(),
        later in 0i64..10 * 86_400,
    ) {
        let p = plan(schedule, &format!("{}h", least_rpo + extra_hours));
        let ds = &p.datasets[&name()];
        let now = at(0, 0, 0) + chrono::Duration::seconds(later);
        prop_assume!(a.is_none_or(|t| t <= now) && b.is_none_or(|t| t <= now));
        let d = cli_due(&p, obs(None, a, b), now);
        let expected: Vec<String> = [("a", a), ("b", b)]
            .into_iter()
            .filter(|(_, t)| region_due(ds, *t, now))
            .map(|(r, _)| r.to_string())
            .collect();
        prop_assert_eq!(reason(&d).is_some(), !expected.is_empty());
        prop_assert_eq!(regions(&d), expected);
    }

    /// A region is due exactly when it has no snapshot, the schedule fired since its
    /// newest, or that one is older than the RPO.
    #[test]
    fn a_region_is_due_by_schedule_or_rpo(last in any_time(), later in 0i64..10 * 86_400) {
        let p = plan("@daily", "36h");
        let ds = &p.datasets[&name()];
        let now = at(0, 0, 0) + chrono::Duration::seconds(later);
        prop_assume!(last.is_none_or(|t| t <= now));
        let expected = match last {
            None => true,
            Some(t) => ds.schedule.next_after(t).is_some_and(|n| n <= now) || now - t > chrono::Duration::hours(36),
        };
        prop_assert_eq!(region_due(ds, last, now), expected);
    }
}
