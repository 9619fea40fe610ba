//! Preflight: everything a drill or failover will need, checked before its first step.
//!
//! In an incident the restore step may run for an hour; a missing TSIG secret or an
//! expired API token found only after it is an hour lost, and a re-point that fails
//! half-way leaves traffic split. So before anything changes the run resolves every
//! secret the playbook needs (repository password, TSIG secrets, HTTP tokens) on a
//! blocking thread (a secret `command` runs a program), opens the plan's regions once
//! for the whole run (config and key: a wrong password shows here; the run restores,
//! reads snapshot times and stores its report through that one session), and
//! asks every endpoint it will touch, including the ones rollback would put back, for
//! a read-only check of its provider (see [`endpoint::preflight`]). Any failure stops
//! the run with nothing changed; every check is kept in the report's `preflight` phase.
//! A DNS record's value as read here is kept: the run's first update of it carries that
//! value as its prerequisite, and a rollback restores exactly it.
//!
//! A re-point moves traffic onto whatever the target region serves, so before any
//! re-point the newest snapshot of each signed dataset kept in its target region (and
//! not restored by the playbook itself, whose restore checks it) must carry a signature
//! the plan trusts: one that does not is damage, and the run stops with nothing changed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use super::endpoint::{self, Change};
use super::report::{Phase, StepRecord, StepStatus};
use super::runner::{self, mode_str, route};
use super::{DrillError, Mode};
use crate::apply::session::{Regions, Session};
use crate::apply::{secrets, verify};
use crate::format::names::{DatasetName, RegionName};
use crate::plan::{EndpointName, KeySource, Plan, Playbook, Probe, Provider, Step, StepAction, UrlSource};

/// How long one endpoint or region check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a check failed, which decides the exit code of the stopped run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A secret missing, a wrong password, a target or endpoint the plan gets wrong.
    BadInput,
    /// A server, API or region that could not be reached or refused the request.
    Unavailable,
    /// A snapshot the run relies on is not trusted (its signature does not hold).
    Damage,
}

/// What one check found (`Ok`), or why it failed.
type CheckResult = Result<String, (Cause, String)>;

/// One check and how it went; `Ok` says what was found.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub offset: Duration,
    pub took: Duration,
    pub result: Result<String, (Cause, String)>,
}

/// All checks of one run, the plan's regions opened with the repository password when
/// it resolved, and the value each endpoint holds now where its provider reads one
/// (DNS): the run's first change of the endpoint requires that value, and rollback puts
/// it back.
#[derive(Debug, Default)]
pub struct Preflight<'p> {
    pub checks: Vec<Check>,
    pub session: Option<Session<'p>>,
    pub current: BTreeMap<EndpointName, String>,
}

impl Preflight<'_> {
    /// The cause of the first failure (damage wins over bad input, which wins over
    /// unavailable); `None` when every check passed.
    pub fn failed(&self) -> Option<Cause> {
        let causes: Vec<Cause> = self.failures().map(|(c, _)| c).collect();
        [Cause::Damage, Cause::BadInput]
            .iter()
            .find(|wanted| causes.contains(*wanted))
            .or(causes.first())
            .copied()
    }

    /// The error that stops the run, naming every failed check (and the report kept).
    pub fn error(&self, playbook: &str, mode: Mode, report: Option<&Path>) -> DrillError {
        let failures: Vec<String> = self.failures().map(|(_, f)| f).collect();
        let report = report.map_or(String::new(), |p| format!(" (report: {})", p.display()));
        DrillError::Preflight {
            message: secrets::redact(&format!(
                "preflight of playbook {playbook} failed, so the {mode} changed nothing: {} — fix this and run it again{report}",
                failures.join("; ")
            )),
            bad_input: self.failed() == Some(Cause::BadInput),
            damage: self.failed() == Some(Cause::Damage),
        }
    }

    /// One line per check, for a dry run.
    pub fn lines(&self) -> Vec<String> {
        self.checks
            .iter()
            .map(|c| match &c.result {
                Ok(d) => format!("preflight ok: {}: {d}", c.name),
                Err((_, e)) => format!("preflight FAILED: {}: {e}", c.name),
            })
            .map(|line| secrets::redact(&line))
            .collect()
    }

    /// `(cause, "check: reason")` of every failed check.
    pub fn failures(&self) -> impl Iterator<Item = (Cause, String)> + '_ {
        self.checks.iter().filter_map(|c| match &c.result {
            Err((cause, why)) => Some((*cause, format!("{}: {why}", c.name))),
            Ok(_) => None,
        })
    }

    /// The checks as report timeline entries (phase `preflight`).
    pub fn records(&self) -> Vec<StepRecord> {
        self.checks
            .iter()
            .map(|c| {
                let (status, detail) = match &c.result {
                    Ok(d) => (StepStatus::Passed, d.clone()),
                    Err((_, e)) => (StepStatus::Failed, e.clone()),
                };
                // Details repeat URLs and program output: masked like every step's.
                StepRecord {
                    phase: Phase::Preflight,
                    kind: "preflight".into(),
                    name: secrets::redact(&c.name),
                    offset_ms: ms(c.offset),
                    duration_ms: ms(c.took),
                    status,
                    detail: secrets::redact(&detail),
                    latency_ms: None,
                    attempts: None,
                    baseline: None,
                }
            })
            .collect()
    }

    fn push(&mut self, start: Instant, began: Instant, name: String, result: Result<String, (Cause, String)>) {
        self.checks.push(Check {
            name,
            offset: began.duration_since(start),
            took: began.elapsed(),
            result,
        });
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn all_steps(playbook: &Playbook) -> impl Iterator<Item = &Step> {
    playbook.steps.iter().chain(&playbook.rollback)
}

/// Run every check for `playbook` in `mode`, with the plan's regions already opened
/// (`opened`, by a caller that checked the password) or opened here. Region checks need
/// the password, so they are made only when it resolved.
pub async fn run<'p>(
    plan: &'p Plan,
    playbook: &Playbook,
    mode: Mode,
    http: &reqwest::Client,
    opened: Option<Session<'p>>,
) -> Preflight<'p> {
    let start = Instant::now();
    let mut out = Preflight::default();
    let password = match opened {
        Some(session) => {
            out.push(start, Instant::now(), PASSWORD_CHECK.into(), Ok("resolved".into()));
            out.session = Some(session);
            None
        }
        None => self::password(plan, playbook, start, &mut out).await,
    };
    // An endpoint whose secret is missing is not asked: the secret's check names it.
    let mut unsigned = BTreeSet::new();
    for (endpoint, what, key) in endpoint_secrets(plan, playbook, mode) {
        let began = Instant::now();
        let result = resolve(&key).await.map(|_| "resolved".to_string());
        if let (Err(_), Some(name)) = (&result, endpoint) {
            unsigned.insert(name);
        }
        out.push(start, began, format!("secret: {what}"), result);
    }
    if let Some(pw) = password {
        open_session(plan, &pw, start, &mut out).await;
    }
    regions(plan, playbook, start, &mut out);
    signatures(plan, playbook, start, &mut out).await;
    endpoints(plan, playbook, mode, http, start, &unsigned, &mut out).await;
    out
}

/// The signed datasets whose newest snapshot in a re-point's target region the run
/// relies on without restoring it: `(dataset, region)`.
fn relied_on(plan: &Plan, playbook: &Playbook) -> BTreeSet<(DatasetName, RegionName)> {
    let restored: BTreeSet<&DatasetName> = all_steps(playbook)
        .filter_map(|s| match &s.action {
            StepAction::Restore { dataset, .. } => Some(dataset),
            _ => None,
        })
        .collect();
    let targets = playbook.steps.iter().filter_map(|s| match &s.action {
        StepAction::Repoint { to, .. } => Some(to),
        _ => None,
    });
    let mut out = BTreeSet::new();
    for to in targets {
        let served =
            (plan.datasets.values()).filter(|d| d.sign && d.regions.contains(to) && !restored.contains(&&d.name));
        out.extend(served.map(|d| (d.name.clone(), to.clone())));
    }
    out
}

/// Check the signature of every snapshot the re-points rely on (see the module doc).
async fn signatures(plan: &Plan, playbook: &Playbook, start: Instant, out: &mut Preflight<'_>) {
    let relied = relied_on(plan, playbook);
    if relied.is_empty() {
        return;
    }
    for (dataset, region) in relied {
        let began = Instant::now();
        let result = match &out.session {
            None => Err((
                Cause::BadInput,
                "no repository password to read the snapshot with".into(),
            )),
            Some(session) => verify::check_latest(session, &dataset, &region).await.map_err(|e| {
                let cause = if e.is_damage() {
                    Cause::Damage
                } else {
                    Cause::Unavailable
                };
                (cause, e.to_string())
            }),
        };
        out.push(
            start,
            began,
            format!("signature of {dataset} in region {region}"),
            result,
        );
    }
}

/// A secret's value, or a message naming where it was looked for. Resolved on a
/// blocking thread: a `command` source runs a program, which must not stall the runtime.
async fn resolve(key: &KeySource) -> Result<Vec<u8>, (Cause, String)> {
    let key = key.clone();
    let joined = tokio::task::spawn_blocking(move || secrets::resolve(&key)).await;
    let resolved = joined.map_err(|e| (Cause::Unavailable, format!("the lookup did not finish: {e}")))?;
    resolved.map_err(|e| {
        let text = e.to_string();
        // The resolver words its "nothing found" for the repository password; the
        // sources it lists are what matters for any secret.
        let text = text.strip_prefix("no repository password: ").unwrap_or(&text);
        (Cause::BadInput, format!("not set: {text}"))
    })
}

/// Restores read the repositories, and so do probes comparing with a baseline (kept in
/// the reports stored there).
fn needs_repositories(playbook: &Playbook) -> bool {
    all_steps(playbook).any(|s| match &s.action {
        StepAction::Restore { .. } => true,
        StepAction::Probe(Probe::Http(h)) => h.baseline.is_some(),
        _ => false,
    })
}

const PASSWORD_CHECK: &str = "secret: repository password";

/// The repository password: required when the playbook restores, keeps a baseline or
/// relies on a signed snapshot, else resolved if it can be (it stores the report in the regions).
async fn password(plan: &Plan, playbook: &Playbook, start: Instant, out: &mut Preflight<'_>) -> Option<Vec<u8>> {
    let began = Instant::now();
    let result = resolve(&plan.key).await;
    let needed = needs_repositories(playbook) || !relied_on(plan, playbook).is_empty();
    let mut password = None;
    let result = match result {
        Ok(pw) => {
            password = Some(pw);
            Ok("resolved".to_string())
        }
        Err(e) if needed => Err(e),
        Err((_, e)) => Ok(format!(
            "{e} (no restore or baseline needs it; the report is kept locally only)"
        )),
    };
    out.push(start, began, PASSWORD_CHECK.into(), result);
    password
}

/// The endpoints the run may re-point, with the regions: each step's target and the
/// region a rollback would put it back to.
fn repoints(plan: &Plan, playbook: &Playbook) -> BTreeMap<EndpointName, BTreeSet<RegionName>> {
    let mut out: BTreeMap<EndpointName, BTreeSet<RegionName>> = BTreeMap::new();
    for step in all_steps(playbook) {
        if let StepAction::Repoint { endpoint, to } = &step.action {
            let regions = out.entry(endpoint.clone()).or_default();
            regions.insert(to.clone());
            let back = plan
                .endpoints
                .get(endpoint)
                .and_then(|ep| endpoint::primary_for(ep, to, playbook.primary.as_ref()).ok());
            regions.extend(back);
        }
    }
    out
}

/// A secret to resolve: the endpoint needing it (if one does), what it is, its reference.
type Secret = (Option<EndpointName>, String, KeySource);

/// Every secret the re-points and notifications need.
fn endpoint_secrets(plan: &Plan, playbook: &Playbook, mode: Mode) -> Vec<Secret> {
    let mut out: Vec<Secret> = all_steps(playbook)
        .filter_map(|s| match &s.action {
            StepAction::Notify {
                url: Some(UrlSource::Secret(key)),
                ..
            } => Some((
                None,
                format!("webhook URL of notify step `{}`", runner::name(s)),
                key.clone(),
            )),
            _ => None,
        })
        .collect();
    for name in repoints(plan, playbook).keys() {
        let Some(ep) = plan.endpoints.get(name) else { continue };
        let (what, key) = match endpoint::provider(ep, route(mode)) {
            Provider::Dns {
                tsig_secret: Some(s), ..
            } => ("TSIG secret", s),
            Provider::Http { token: Some(t), .. } => ("token", t),
            _ => continue,
        };
        out.push((Some(name.clone()), format!("{what} of endpoint {name}"), key.clone()));
    }
    out
}

/// A restore step's regions: the one it names (or the standby), else any of the
/// dataset's regions (the restore uses whichever holds the newest snapshot).
fn restore_regions(plan: &Plan, playbook: &Playbook) -> Vec<(DatasetName, Vec<RegionName>, bool)> {
    all_steps(playbook)
        .filter_map(|s| match &s.action {
            StepAction::Restore { dataset, region, .. } => {
                Some((dataset, region.as_ref().or(playbook.standby.as_ref())))
            }
            _ => None,
        })
        .map(|(dataset, region)| match region {
            Some(r) => (dataset.clone(), vec![r.clone()], true),
            None => {
                let any = plan
                    .datasets
                    .get(dataset)
                    .map(|d| d.regions.clone())
                    .unwrap_or_default();
                (dataset.clone(), any, false)
            }
        })
        .collect()
}

/// Open the plan's regions with `password` for the whole run, within the check timeout;
/// when they do not all answer in time, the run has no session and says so.
async fn open_session<'p>(plan: &'p Plan, password: &[u8], start: Instant, out: &mut Preflight<'p>) {
    let began = Instant::now();
    let opening = Session::with_password(plan, password, Regions::Existing);
    match tokio::time::timeout(CHECK_TIMEOUT, opening).await {
        Ok(session) => out.session = Some(session),
        Err(_) => {
            let all: Vec<RegionName> = plan.regions.keys().cloned().collect();
            let why = format!(
                "opening {} did not finish in {}s",
                names_of(&all),
                CHECK_TIMEOUT.as_secs()
            );
            out.push(start, began, "regions".into(), Err((Cause::Unavailable, why)));
        }
    }
}

/// Check every region a restore reads from: its config and a key the password opens.
fn regions(plan: &Plan, playbook: &Playbook, start: Instant, out: &mut Preflight<'_>) {
    let Some(session) = &out.session else { return };
    let mut state: BTreeMap<RegionName, Result<(), (Cause, String)>> = BTreeMap::new();
    for r in session.regions() {
        let cause = if r.wrong_password() {
            Cause::BadInput
        } else {
            Cause::Unavailable
        };
        let result = r.repo.as_ref().map(drop).map_err(|e| (cause, e.to_string()));
        state.insert(r.name.clone(), result);
    }
    let began = Instant::now();
    let checks: Vec<(String, CheckResult)> = restore_regions(plan, playbook)
        .into_iter()
        .map(|(dataset, regions, named)| {
            let result = restore_check(plan, &dataset, &regions, named, &state);
            (format!("restore of {dataset}"), result)
        })
        .collect();
    for (name, result) in checks {
        out.push(start, began, name, result);
    }
}

fn names_of(regions: &[RegionName]) -> String {
    let names: Vec<String> = regions.iter().map(|r| format!("region {r}")).collect();
    names.join(", ")
}

/// A named region must open and keep the dataset; of unnamed ones, one opening is enough.
fn restore_check(
    plan: &Plan,
    dataset: &DatasetName,
    regions: &[RegionName],
    named: bool,
    state: &BTreeMap<RegionName, Result<(), (Cause, String)>>,
) -> Result<String, (Cause, String)> {
    let kept = plan
        .datasets
        .get(dataset)
        .map(|d| d.regions.clone())
        .unwrap_or_default();
    if let Some(r) = regions.iter().find(|r| named && !kept.contains(r)) {
        return Err((Cause::BadInput, format!("dataset {dataset} is not kept in region {r}")));
    }
    let mut failed = Vec::new();
    for r in regions {
        match state.get(r) {
            Some(Ok(())) => return Ok(format!("region {r} opens with the repository password")),
            Some(Err((cause, e))) => failed.push((*cause, format!("region {r}: {e}"))),
            None => failed.push((Cause::Unavailable, format!("region {r} was not opened"))),
        }
    }
    let cause = if failed.iter().all(|(c, _)| *c == Cause::BadInput) && !failed.is_empty() {
        Cause::BadInput
    } else {
        Cause::Unavailable
    };
    let why: Vec<String> = failed.into_iter().map(|(_, e)| e).collect();
    if why.is_empty() {
        return Err((Cause::BadInput, format!("dataset {dataset} is kept in no region")));
    }
    Err((cause, why.join("; ")))
}

/// Check each endpoint for each region the run may point it at, but those in `unsigned`.
async fn endpoints(
    plan: &Plan,
    playbook: &Playbook,
    mode: Mode,
    http: &reqwest::Client,
    start: Instant,
    unsigned: &BTreeSet<EndpointName>,
    out: &mut Preflight<'_>,
) {
    for (name, regions) in repoints(plan, playbook) {
        if unsigned.contains(&name) {
            continue;
        }
        for region in regions {
            let began = Instant::now();
            let result = endpoint_check(plan, playbook, mode, http, &name, &region).await;
            let result = result.map(|found| {
                if let Some(value) = found.current {
                    out.current.entry(name.clone()).or_insert(value);
                }
                found.detail
            });
            out.push(start, began, format!("endpoint {name} to {region}"), result);
        }
    }
    for step in all_steps(playbook) {
        if let StepAction::Repoint { endpoint, to } = &step.action
            && let Some(ep) = plan.endpoints.get(endpoint)
            && let Err(e) = endpoint::primary_for(ep, to, playbook.primary.as_ref())
        {
            out.push(
                start,
                Instant::now(),
                format!("rollback of endpoint {endpoint}"),
                Err((Cause::BadInput, e)),
            );
        }
    }
}

async fn endpoint_check(
    plan: &Plan,
    playbook: &Playbook,
    mode: Mode,
    http: &reqwest::Client,
    name: &EndpointName,
    region: &RegionName,
) -> Result<endpoint::Found, (Cause, String)> {
    let bad = |e: String| (Cause::BadInput, e);
    let ep = plan
        .endpoints
        .get(name)
        .ok_or_else(|| bad(format!("the plan has no endpoint {name}")))?;
    let change = Change {
        endpoint: ep,
        route: route(mode),
        region,
        playbook: playbook.name.as_str(),
        mode: mode_str(mode),
        previous: None,
    };
    endpoint::well_formed(change.target().map_err(bad)?).map_err(bad)?;
    match tokio::time::timeout(CHECK_TIMEOUT, endpoint::preflight(&change, http)).await {
        Ok(result) => result.map_err(|e| (Cause::Unavailable, e)),
        Err(_) => Err((Cause::Unavailable, format!("no answer in {}s", CHECK_TIMEOUT.as_secs()))),
    }
}
