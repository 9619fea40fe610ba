//! What a run would do, step by step, without doing any of it (`failover --dry-run`).
//! A dry run also makes the run's preflight checks, which change nothing either, so it
//! finds a missing secret or an unreachable API before the real run would.

use super::endpoint::{self, Change};
use super::runner::{default_timeout, kind, name, route};
use super::{Mode, Result, preflight};
use crate::apply::session::Session;
use crate::plan::{Plan, Playbook, Probe, Step, StepAction};

/// One line per action a run of `playbook` would take, in order, then what a failure
/// would undo.
pub fn preview(plan: &Plan, playbook: &Playbook, mode: Mode) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for (i, step) in playbook.steps.iter().enumerate() {
        lines.push(format!("{}. {}", i + 1, describe(plan, playbook, mode, step)));
    }
    let repoints: Vec<&Step> = playbook
        .steps
        .iter()
        .filter(|s| matches!(s.action, StepAction::Repoint { .. }))
        .rev()
        .collect();
    let undo: Vec<String> = repoints
        .iter()
        .filter_map(|s| match &s.action {
            StepAction::Repoint { endpoint, to } => {
                let ep = plan.endpoints.get(endpoint)?;
                let back = endpoint::primary_for(ep, to, playbook.primary.as_ref());
                Some(match back {
                    Ok(r) => format!("re-point {endpoint} back to {r}"),
                    Err(e) => e,
                })
            }
            _ => None,
        })
        .collect();
    if mode == Mode::Drill && !undo.is_empty() {
        lines.push(format!("after the steps pass: {}", undo.join(", then ")));
    }
    let rollback: Vec<String> = playbook
        .rollback
        .iter()
        .map(|s| describe(plan, playbook, mode, s))
        .collect();
    let on_failure: Vec<String> = undo.into_iter().chain(rollback).collect();
    if !on_failure.is_empty() {
        lines.push(format!("if a step fails: {}", on_failure.join("; then ")));
    }
    lines.push(format!("RTO objective: {}s", playbook.rto.as_secs()));
    Ok(lines)
}

/// The preflight's checks (over `session`, the plan's regions as the caller opened
/// them), then [`preview`]'s lines; a failed check is the error.
pub async fn dry_run(session: Session<'_>, playbook: &Playbook, mode: Mode) -> Result<Vec<String>> {
    let plan = session.plan();
    let checks = preflight::run(plan, playbook, mode, &reqwest::Client::new(), Some(session)).await;
    if checks.failed().is_some() {
        return Err(checks.error(playbook.name.as_str(), mode, None));
    }
    let mut lines = checks.lines();
    lines.extend(preview(plan, playbook, mode)?);
    Ok(lines)
}

fn describe(plan: &Plan, playbook: &Playbook, mode: Mode, step: &Step) -> String {
    let limit = step.timeout.unwrap_or_else(|| default_timeout(&step.action)).as_secs();
    let what = match &step.action {
        StepAction::Restore {
            dataset,
            region,
            snapshot,
            target,
        } => {
            let region = region.as_ref().or(playbook.standby.as_ref());
            let from = region.map_or("whichever region holds the newest".into(), |r| format!("region {r}"));
            format!("restore {dataset} ({snapshot}) from {from} into {}", target.display())
        }
        StepAction::Probe(Probe::Http(h)) => {
            let url = match mode {
                Mode::Drill => h.drill_url.as_deref().unwrap_or(&h.url),
                Mode::Failover => &h.url,
            };
            format!("probe {} {url} until it passes", h.method)
        }
        StepAction::Repoint { endpoint, to } => match plan.endpoints.get(endpoint) {
            Some(ep) => endpoint::describe(&Change {
                endpoint: ep,
                route: route(mode),
                region: to,
                playbook: playbook.name.as_str(),
                mode: "",
                previous: None,
            }),
            None => format!("re-point {endpoint} (not in the plan)"),
        },
        _ => format!("{} {}", kind(&step.action), name(step)),
    };
    // Previews are printed and logged; a URL's credentials must not be.
    format!("{} [timeout {limit}s]", crate::apply::secrets::redact(&what))
}
