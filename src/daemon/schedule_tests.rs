use super::*;
use crate::plan::due::tests::{at, plan};
use crate::plan::schedule::MAX_JITTER;

fn key() -> DatasetKey {
    DatasetKey::new("p", "data")
}

fn obs(last_run: Option<DateTime<Utc>>, a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> DatasetObs {
    let mut o = DatasetObs {
        last_run,
        ..Default::default()
    };
    for (name, t) in [("a", a), ("b", b)] {
        o.regions.insert(
            name.into(),
            RegionObs {
                last_success: t,
                ..RegionObs::default()
            },
        );
    }
    o
}

fn due(p: &Plan, o: DatasetObs, now: DateTime<Utc>) -> Vec<Job> {
    let mut map = BTreeMap::new();
    map.insert(key(), o);
    due_jobs([("p", p)], &map, now)
}

#[test]
fn a_dataset_never_backed_up_is_due_at_once() {
    let p = plan("@hourly", "2h");
    let jobs = due(&p, DatasetObs::default(), at(10, 5, 0));
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].reason, Reason::NeverBackedUp);
}

#[test]
fn nothing_is_due_between_ticks() {
    let p = plan("@hourly", "2h");
    let t = at(10, 0, 0);
    assert!(due(&p, obs(Some(t), Some(t), Some(t)), at(10, 30, 0)).is_empty());
}

#[test]
fn the_tick_makes_it_due_after_its_jitter() {
    let p = plan("@hourly", "2h");
    let t = at(10, 0, 0);
    let j = chrono::Duration::from_std(jitter(&key(), Duration::from_secs(3600))).unwrap();
    assert!(j <= chrono::Duration::seconds(30));
    let o = obs(Some(t), Some(t), Some(t));
    let before = at(11, 0, 0) + j - chrono::Duration::milliseconds(1);
    assert!(due(&p, o.clone(), before).is_empty());
    let jobs = due(&p, o, at(11, 0, 0) + j);
    assert_eq!(jobs[0].reason, Reason::Schedule);
}

#[test]
fn a_missed_schedule_runs_once_after_downtime() {
    let p = plan("@hourly", "24h");
    let t = at(1, 0, 0);
    // Down from 01:00 to 09:30: eight ticks missed, one job.
    let jobs = due(&p, obs(Some(t), Some(t), Some(t)), at(9, 30, 0));
    assert_eq!(jobs.len(), 1);
    // Once it ran at 09:30, the next is the 10:00 tick, not the missed ones.
    let ran = at(9, 30, 0);
    assert!(due(&p, obs(Some(ran), Some(ran), Some(ran)), at(9, 45, 0)).is_empty());
}

#[test]
fn a_region_over_its_rpo_gets_work_without_a_tick() {
    // The 10:00 run failed everywhere; the schedule alone would wait for 11:00.
    let p = plan("@hourly", "2h");
    let mut o = obs(Some(at(10, 0, 0)), Some(at(7, 0, 0)), Some(at(7, 0, 0)));
    o.failures = 1;
    let jobs = due(&p, o, at(10, 10, 0));
    assert_eq!(jobs[0].reason, Reason::OverRpo);
}

#[test]
fn a_lagging_region_gets_work_without_a_tick() {
    let p = plan("@hourly", "24h");
    let jobs = due(
        &p,
        obs(Some(at(10, 0, 0)), Some(at(10, 0, 0)), Some(at(9, 0, 0))),
        at(10, 20, 0),
    );
    assert_eq!(jobs[0].reason, Reason::LaggingRegion);
    let ds = p.datasets.values().next().unwrap();
    let o = obs(None, Some(at(10, 0, 0)), Some(at(9, 0, 0)));
    assert!(region_lagging(ds, &o, "b"));
    assert!(!region_lagging(ds, &o, "a"));
}

#[test]
fn failures_back_off_reconciliation() {
    let p = plan("@hourly", "2h");
    let mut o = obs(Some(at(3, 0, 0)), Some(at(0, 0, 0)), Some(at(0, 0, 0)));
    o.failures = 3;
    // Third failure: wait 20 s before reconciling again.
    assert!(due(&p, o.clone(), at(3, 0, 19)).is_empty());
    assert_eq!(due(&p, o, at(3, 0, 20))[0].reason, Reason::OverRpo);
    assert_eq!(backoff(100), MAX_BACKOFF);
}

#[test]
fn jitter_is_stable_and_bounded() {
    let k = key();
    assert_eq!(jitter(&k, Duration::from_secs(3)), jitter(&k, Duration::from_secs(3)));
    assert!(jitter(&k, Duration::from_secs(3)) < Duration::from_millis(300));
    assert!(jitter(&k, Duration::from_secs(86400)) < MAX_JITTER);
    let spread: std::collections::BTreeSet<_> = (0..20)
        .map(|i| jitter(&DatasetKey::new("p", &format!("d{i}")), Duration::from_secs(3600)))
        .collect();
    assert!(spread.len() > 15, "datasets on one schedule should spread out");
}
