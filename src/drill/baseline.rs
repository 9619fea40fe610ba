//! Model drift: a probe's answer compared with the one an earlier run recorded.
//!
//! A baseline is kept in the report of the run that recorded it: the probe step's
//! record carries the answer, and the report is sealed and stored in every region it
//! can reach, like every report. So no new kind of object is needed, a drill from the
//! standby region (or after the daemon's state is lost) finds the same baseline, and
//! where a baseline came from is always a report one can read. A later run lists the
//! playbook's reports newest first and takes the newest answer recorded for the same
//! request (method, URL path and body); a run that compared names the report it
//! compared with, so the search rarely reads more than two reports.
//!
//! A first baseline is recorded only when every region could be listed and none has
//! one; anything else (an unreadable region, too many reports to search) fails the
//! step, since recording then could silently replace the real baseline. Replacing a
//! baseline is the operator's explicit choice (`--record-baseline`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::drift::{BaselineAction, Difference};
use super::report::{Phase, Report, StepStatus};
use crate::apply::reports;
use crate::apply::session::Session;
use crate::format::names::RegionName;
use crate::plan::json_path::{JsonPath, Segment};
use crate::plan::{Baseline, HttpProbe};

/// The largest answer kept as a baseline (it is stored in every report that records it).
pub const MAX_ANSWER: usize = 256 << 10;
/// Most reports read while looking for a baseline.
const MAX_SEARCHED: usize = 200;
/// Most differences listed for one comparison.
const MAX_DIFFERENCES: usize = 20;

/// The question a probe asks, as baselines are keyed: its method, the path of the URL
/// it called (not the host, which differs between primary, standby and drill route)
/// and its body.
pub fn request_of(probe: &HttpProbe, url: &str) -> String {
    let path = reqwest::Url::parse(url).map_or_else(|_| url.to_string(), |u| u.path().to_string());
    format!("{} {path} {}", probe.method, probe.body.as_deref().unwrap_or(""))
}

/// Why `answer` cannot be recorded as a baseline compared `how`, if it cannot.
pub fn unfit(how: &Baseline, answer: &str) -> Option<String> {
    if answer.len() > MAX_ANSWER {
        return Some(format!(
            "the answer is {} bytes, more than the {} KiB a baseline may keep",
            answer.len(),
            MAX_ANSWER >> 10
        ));
    }
    let Baseline::Json { tolerance } = how else {
        return None;
    };
    let Ok(json) = serde_json::from_str::<Value>(answer) else {
        return Some("the answer is not JSON, so it cannot be compared as JSON".into());
    };
    tolerance
        .iter()
        .find(|(path, _)| !path.find(&json).is_some_and(Value::is_number))
        .map(|(path, _)| format!("the answer has no number at {path}, which `tolerance` names"))
}

/// How `answer` differs from `recorded` when compared `how`; empty when it does not.
pub fn differences(how: &Baseline, recorded: &str, answer: &str) -> Vec<Difference> {
    let parsed = (
        serde_json::from_str::<Value>(recorded),
        serde_json::from_str::<Value>(answer),
    );
    match (how, parsed) {
        (Baseline::Exact, _) if recorded == answer => Vec::new(),
        (Baseline::Exact, (Ok(a), Ok(b))) => {
            let found = json_differences(&a, &b, &[]);
            if found.is_empty() {
                // Same value, other bytes (spacing, key order, number spelling).
                vec![whole_body(recorded, answer)]
            } else {
                found
            }
        }
        (Baseline::Json { tolerance }, (Ok(a), Ok(b))) => json_differences(&a, &b, tolerance),
        _ => vec![whole_body(recorded, answer)],
    }
}

fn whole_body(recorded: &str, answer: &str) -> Difference {
    Difference {
        path: "body".into(),
        baseline: Some(Value::from(recorded)),
        answer: Some(Value::from(answer)),
        tolerance: None,
    }
}

/// The differences between two JSON values: the tolerated paths within their
/// tolerance, everything else equal.
fn json_differences(baseline: &Value, answer: &Value, tolerance: &[(JsonPath, f64)]) -> Vec<Difference> {
    let mut out = Vec::new();
    for (path, allowed) in tolerance {
        let (a, b) = (path.find(baseline), path.find(answer));
        let within = matches!((a.and_then(Value::as_f64), b.and_then(Value::as_f64)), (Some(x), Some(y)) if (x - y).abs() <= *allowed);
        if !within {
            out.push(Difference {
                path: path.text(),
                baseline: a.cloned(),
                answer: b.cloned(),
                tolerance: Some(*allowed),
            });
        }
    }
    let skip: BTreeMap<&JsonPath, ()> = tolerance.iter().map(|(p, _)| (p, ())).collect();
    walk(&JsonPath::root(), Some(baseline), Some(answer), &skip, &mut out);
    out.truncate(MAX_DIFFERENCES);
    out
}

/// Every place below `path` where the two values differ, except the `skip` paths.
fn walk(
    path: &JsonPath,
    a: Option<&Value>,
    b: Option<&Value>,
    skip: &BTreeMap<&JsonPath, ()>,
    out: &mut Vec<Difference>,
) {
    if out.len() >= MAX_DIFFERENCES || skip.contains_key(path) {
        return;
    }
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                walk(&path.child(Segment::Key(k.clone())), x.get(k), y.get(k), skip, out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for i in 0..x.len().max(y.len()) {
                walk(&path.child(Segment::Index(i)), x.get(i), y.get(i), skip, out);
            }
        }
        (Some(x), Some(y)) if same(x, y) => {}
        _ => out.push(Difference {
            path: path.text(),
            baseline: a.cloned(),
            answer: b.cloned(),
            tolerance: None,
        }),
    }
}

/// Equal values, numbers by value (`1` and `1.0` are the same JSON number).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// A baseline found in a stored report.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub answer: String,
    /// The report's object name under `reports/`.
    pub report: String,
    pub recorded_at: DateTime<Utc>,
}

/// The newest baseline recorded for `request` by playbook `playbook`: `Ok(None)` when
/// every region was read and none has one, `Err` when that cannot be known.
pub async fn find(session: &Session<'_>, playbook: &str, request: &str) -> Result<Option<Found>, String> {
    let (names, unreachable) = list(session, playbook).await;
    let mut order: Vec<&String> = names.keys().rev().collect();
    let mut next: Option<String> = None;
    for _ in 0..MAX_SEARCHED {
        let name = match next.take().filter(|n| names.contains_key(n)) {
            Some(n) => n,
            None => match order.first() {
                Some(n) => (*n).clone(),
                None => break,
            },
        };
        order.retain(|n| **n != name);
        let Some(report) = load(session, &names[&name], &name, playbook).await else {
            continue;
        };
        match in_report(&report, request) {
            Seen::Recorded(answer) => {
                let recorded_at = report.started;
                return Ok(Some(Found {
                    answer,
                    report: name,
                    recorded_at,
                }));
            }
            Seen::Compared(from) => next = Some(from),
            Seen::Nothing => {}
        }
    }
    if !order.is_empty() {
        return Err(format!(
            "no baseline in the newest {MAX_SEARCHED} reports of playbook {playbook}"
        ));
    }
    match unreachable.is_empty() {
        true => Ok(None),
        false => Err(unreachable.join("; ")),
    }
}

enum Seen {
    Recorded(String),
    Compared(String),
    Nothing,
}

/// What `report` says about the baseline of `request`.
fn in_report(report: &Report, request: &str) -> Seen {
    let notes = report
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Steps)
        .filter_map(|s| Some((s.status, s.baseline.as_ref().filter(|b| b.request == request)?)));
    let mut seen = Seen::Nothing;
    for (status, note) in notes {
        match (note.action, &note.answer, &note.from) {
            (BaselineAction::Recorded, Some(answer), _)
                if status == StepStatus::Passed && answer.len() <= MAX_ANSWER =>
            {
                return Seen::Recorded(answer.clone());
            }
            (BaselineAction::Compared, _, Some(from)) => seen = Seen::Compared(from.clone()),
            _ => {}
        }
    }
    seen
}

/// The playbook's report names in every region (name → regions holding it), and one
/// line per region that could not be listed.
async fn list(session: &Session<'_>, playbook: &str) -> (BTreeMap<String, Vec<RegionName>>, Vec<String>) {
    let mut names: BTreeMap<String, Vec<RegionName>> = BTreeMap::new();
    let mut unreachable = Vec::new();
    for region in session.plan().regions.keys() {
        match reports::list(session, region).await {
            Ok(listing) => {
                for name in listing.names.into_iter().filter(|n| is_report_of(n, playbook)) {
                    names.entry(name).or_default().push(region.clone());
                }
            }
            Err(e) => unreachable.push(crate::apply::secrets::redact(&e.to_string())),
        }
    }
    (names, unreachable)
}

/// `<time>-<playbook>-<mode>.json`, the JSON report of a run of `playbook`.
fn is_report_of(name: &str, playbook: &str) -> bool {
    let Some(base) = name.strip_suffix(".json") else {
        return false;
    };
    let Some(rest) = base.strip_suffix("-drill").or_else(|| base.strip_suffix("-failover")) else {
        return false;
    };
    rest.strip_suffix(playbook)
        .and_then(|time| time.strip_suffix('-'))
        .is_some_and(|time| time.len() == "20261201T100000.000Z".len())
}

/// The report `name` from the first of `regions` that gives a valid one.
async fn load(session: &Session<'_>, regions: &[RegionName], name: &str, playbook: &str) -> Option<Report> {
    for region in regions {
        let Ok(bytes) = reports::load(session, region, name).await else {
            continue;
        };
        let Ok(report) = serde_json::from_slice::<Report>(&bytes) else {
            continue;
        };
        if report.playbook == playbook && format!("{}.json", report.base_name()) == name {
            return Some(report);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tolerance(pairs: &[(&str, f64)]) -> Baseline {
        Baseline::Json {
            tolerance: pairs.iter().map(|(p, t)| (JsonPath::parse(p).unwrap(), *t)).collect(),
        }
    }

    #[test]
    fn exact_comparison_wants_the_same_bytes_and_names_what_changed() {
        let recorded = r#"{"answer": 7, "model": "a"}"#;
        assert!(differences(&Baseline::Exact, recorded, recorded).is_empty());
        let drift = differences(&Baseline::Exact, recorded, r#"{"answer": 8, "model": "a"}"#);
        assert_eq!(drift.len(), 1, "{drift:?}");
        assert_eq!(drift[0].to_string(), "$.answer is 8, baseline 7");
        let spacing = differences(&Baseline::Exact, recorded, r#"{"answer":7,"model":"a"}"#);
        assert_eq!(spacing[0].path, "body");
        let text = differences(&Baseline::Exact, "yes", "no");
        assert_eq!(text[0].to_string(), "body is \"no\", baseline \"yes\"");
    }

    #[test]
    fn tolerance_allows_small_numeric_changes_only_where_the_plan_says() {
        let how = tolerance(&[("$.choices[0].score", 0.01)]);
        let recorded = r#"{"choices": [{"score": 0.870, "label": "cat"}]}"#;
        let near = r#"{"choices": [{"score": 0.875, "label": "cat"}]}"#;
        assert!(differences(&how, recorded, near).is_empty());
        let far = r#"{"choices": [{"score": 0.93, "label": "cat"}]}"#;
        let drift = differences(&how, recorded, far);
        assert_eq!(drift.len(), 1, "{drift:?}");
        let shown = drift[0].to_string();
        assert!(
            shown.starts_with("$.choices[0].score is 0.93, baseline 0.87 (differs by 0.06"),
            "{shown}"
        );
        assert!(shown.ends_with("tolerance 0.01)"), "{shown}");
        let relabelled = r#"{"choices": [{"score": 0.87, "label": "dog"}]}"#;
        let drift = differences(&how, recorded, relabelled);
        assert_eq!(drift[0].to_string(), "$.choices[0].label is \"dog\", baseline \"cat\"");
        let gone = differences(&how, recorded, r#"{"choices": []}"#);
        assert!(
            gone.iter().any(|d| d.path == "$.choices[0]" && d.answer.is_none()),
            "{gone:?}"
        );
    }

    #[test]
    fn json_comparison_ignores_spacing_and_number_spelling() {
        let how = tolerance(&[]);
        assert!(differences(&how, r#"{"a": 1.0, "b": [1, 2]}"#, r#"{"b":[1,2],"a":1}"#).is_empty());
        let longer = differences(&how, r#"{"b": [1]}"#, r#"{"b": [1, 2]}"#);
        assert_eq!(longer[0].to_string(), "$.b[1] is 2, baseline missing");
    }

    #[test]
    fn an_answer_unfit_to_be_a_baseline_is_refused_with_the_reason() {
        let how = tolerance(&[("$.score", 0.1)]);
        assert_eq!(unfit(&how, r#"{"score": 1}"#), None);
        assert!(
            unfit(&how, r#"{"score": "high"}"#)
                .unwrap()
                .contains("no number at $.score")
        );
        assert!(unfit(&how, "plain text").unwrap().contains("not JSON"));
        assert!(
            unfit(&Baseline::Exact, &"x".repeat(MAX_ANSWER + 1))
                .unwrap()
                .contains("KiB")
        );
    }

    #[test]
    fn only_the_playbooks_own_json_reports_are_searched() {
        assert!(is_report_of("20261201T100000.000Z-recover-drill.json", "recover"));
        assert!(is_report_of("20261201T100000.000Z-a-b-failover.json", "a-b"));
        assert!(!is_report_of("20261201T100000.000Z-recover-drill.md", "recover"));
        assert!(!is_report_of("20261201T100000.000Z-x-recover-drill.json", "recover"));
        assert!(!is_report_of("20261201T100000.000Z-recover-audit.json", "recover"));
    }
}
