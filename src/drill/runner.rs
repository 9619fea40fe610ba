//! The step runner: each step in order under its deadline, every step timed and
//! recorded; on the first failure, the re-points made so far are undone newest first
//! and the playbook's rollback steps run. A passing drill also puts traffic back.
//!
//! Where the preflight read an endpoint's value (DNS), the first change of it requires
//! that value still be there, and undoing puts back exactly that value rather than the
//! primary's target: the endpoint ends as it was before the run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::baseline;
use super::drift::{BaselineAction, BaselineNote};
use super::endpoint::{self, Change, Route};
use super::report::{Phase, StepRecord, StepStatus};
use super::template::{Vars, render};
use super::{Mode, probe, process};
use crate::apply::recover::{Wanted, restore_by_plan};
use crate::apply::secrets;
use crate::apply::session::Session;
use crate::apply::{Placement, Progress, RestoreOptions};
use crate::format::names::{DatasetName, RegionName};
use crate::plan::{Baseline, EndpointName, HttpProbe, Plan, Playbook, Probe, Step, StepAction, UrlSource};

/// How long a step may take when the plan does not say.
pub fn default_timeout(action: &StepAction) -> Duration {
    let secs = match action {
        StepAction::Restore { .. } => 3600,
        StepAction::Probe(_) => 60,
        StepAction::Repoint { .. } => 120,
        StepAction::Command { .. } => 600,
        StepAction::Wait { duration } => return *duration + Duration::from_secs(10),
        StepAction::Notify { .. } => 30,
    };
    Duration::from_secs(secs)
}

/// A dataset restored during the run, for measuring its RPO.
#[derive(Debug, Clone)]
pub struct Restored {
    pub dataset: DatasetName,
    pub region: String,
    pub snapshot: String,
}

/// What the runner found.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub records: Vec<StepRecord>,
    /// Time from the start until every step had passed; `None` when one failed.
    pub recovered_in: Option<Duration>,
    pub restored: Vec<Restored>,
}

#[derive(Debug, Default)]
struct Done {
    detail: String,
    latency: Option<Duration>,
    attempts: Option<u32>,
    /// Boxed: most steps have none, and `Done` travels in both arms of a `Result`.
    baseline: Option<Box<BaselineNote>>,
}

impl From<String> for Done {
    fn from(detail: String) -> Self {
        Done {
            detail,
            ..Done::default()
        }
    }
}

pub struct Runner<'a> {
    plan: &'a Plan,
    playbook: &'a Playbook,
    mode: Mode,
    session: Option<&'a Session<'a>>,
    http: reqwest::Client,
    start: Instant,
    records: Vec<StepRecord>,
    repointed: Vec<(EndpointName, RegionName)>,
    restored: Vec<Restored>,
    /// Values read by the preflight, until the first change of their endpoint.
    expected: BTreeMap<EndpointName, String>,
    /// Values read by the preflight, which undoing restores.
    before: BTreeMap<EndpointName, String>,
    baselines: Baselines,
}

/// What probes with `record_baseline` may do in this run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Baselines {
    /// Record every answer as the new baseline instead of comparing (the operator asked).
    pub record: bool,
    /// The run's report is stored in the regions, where baselines are kept.
    pub stored: bool,
}

impl<'a> Runner<'a> {
    /// `session` holds the plan's opened repositories; only restore steps need it.
    pub fn new(plan: &'a Plan, playbook: &'a Playbook, mode: Mode, session: Option<&'a Session<'a>>) -> Self {
        Runner {
            plan,
            playbook,
            mode,
            session,
            http: reqwest::Client::new(),
            start: Instant::now(),
            records: Vec::new(),
            repointed: Vec::new(),
            restored: Vec::new(),
            expected: BTreeMap::new(),
            before: BTreeMap::new(),
            baselines: Baselines::default(),
        }
    }

    /// Whether probes record baselines anew, and whether a recorded one will be kept.
    pub fn with_baselines(mut self, baselines: Baselines) -> Self {
        self.baselines = baselines;
        self
    }

    /// The endpoint values the preflight read ([`super::preflight::Preflight::current`]).
    pub fn with_current(mut self, current: BTreeMap<EndpointName, String>) -> Self {
        self.expected = current.clone();
        self.before = current;
        self
    }

    /// Measure offsets and the RTO from `start` (the run's start, before preflight)
    /// instead of from the first step.
    pub fn since(mut self, start: Instant) -> Self {
        self.start = start;
        self
    }

    pub async fn run(mut self) -> RunResult {
        let mut failed = false;
        for step in &self.playbook.steps {
            if failed {
                self.skip(step);
            } else {
                failed = !self.step(step, Phase::Steps).await;
            }
        }
        let recovered_in = (!failed).then(|| self.start.elapsed());
        if failed {
            self.undo_repoints(Phase::Rollback).await;
            for step in &self.playbook.rollback {
                self.step(step, Phase::Rollback).await;
            }
        } else if self.mode == Mode::Drill {
            self.undo_repoints(Phase::PointBack).await;
        }
        RunResult {
            records: self.records,
            recovered_in,
            restored: self.restored,
        }
    }

    /// The playbook's values for templates (`{playbook}`, `{mode}`).
    fn vars(&self) -> Vars<'_> {
        Vars {
            playbook: self.playbook.name.as_str(),
            mode: mode_str(self.mode),
            ..Vars::default()
        }
    }

    /// A step's name as the report shows it, its templates rendered: a notify step is
    /// named by its message, which may say `{playbook}` or `{mode}`.
    fn label(&self, step: &Step) -> String {
        render(&name(step), &self.vars())
    }

    fn skip(&mut self, step: &Step) {
        self.records.push(StepRecord {
            phase: Phase::Steps,
            kind: kind(&step.action).into(),
            name: self.label(step),
            offset_ms: ms(self.start.elapsed()),
            duration_ms: 0,
            status: StepStatus::Skipped,
            detail: "not run: an earlier step failed".into(),
            latency_ms: None,
            attempts: None,
            baseline: None,
        });
    }

    /// Run one step under its deadline and record it; `true` when it passed.
    async fn step(&mut self, step: &Step, phase: Phase) -> bool {
        let offset = self.start.elapsed();
        let began = Instant::now();
        let limit = step.timeout.unwrap_or_else(|| default_timeout(&step.action));
        // Probes stop themselves at the deadline with their last error; the grace
        // only catches an attempt that hangs.
        let grace = match step.action {
            StepAction::Probe(_) => Duration::from_secs(2),
            _ => Duration::ZERO,
        };
        let result = tokio::time::timeout(limit + grace, self.act(step, began + limit))
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {}", secs(limit)).into()));
        let label = self.label(step);
        self.record(phase, kind(&step.action), label, offset, began.elapsed(), result)
    }

    fn record(
        &mut self,
        phase: Phase,
        kind: &str,
        name: String,
        offset: Duration,
        took: Duration,
        result: Result<Done, Done>,
    ) -> bool {
        let (status, done) = match result {
            Ok(d) => (StepStatus::Passed, d),
            Err(d) => (StepStatus::Failed, d),
        };
        // A step's detail repeats what programs printed and URLs it called: it goes into
        // reports, logs and the API, so credentials and secret values are masked here.
        self.records.push(StepRecord {
            phase,
            kind: kind.into(),
            name: secrets::redact(&name),
            offset_ms: ms(offset),
            duration_ms: ms(took),
            status,
            detail: secrets::redact(&done.detail),
            latency_ms: done.latency.map(ms),
            attempts: done.attempts,
            baseline: done.baseline.map(|b| *b),
        });
        status == StepStatus::Passed
    }

    async fn act(&mut self, step: &Step, deadline: Instant) -> Result<Done, Done> {
        match &step.action {
            StepAction::Restore {
                dataset,
                region,
                snapshot,
                target,
            } => self
                .restore(dataset, region.as_ref(), snapshot, target)
                .await
                .map(Done::from),
            StepAction::Probe(p) => self.probe(p, &step.env, deadline).await,
            StepAction::Repoint { endpoint, to } => {
                self.change(endpoint, to)?.target()?;
                // Counted before the change is tried: a failed read-back or an outcome
                // left unknown (an error half-way, a timeout dropping this future) may
                // have moved traffic, so rollback puts it back too.
                self.repointed.push((endpoint.clone(), to.clone()));
                let previous = self.expected.remove(endpoint);
                let done = self.repoint(endpoint, to, previous).await?;
                Ok(done.into())
            }
            StepAction::Command { command } => {
                let out = process::run(command, &self.env(), &step.env)
                    .await
                    .map_err(Done::from)?;
                Ok(format!("`{}` exited 0 {out}", command.join(" "))
                    .trim()
                    .to_string()
                    .into())
            }
            StepAction::Wait { duration } => {
                tokio::time::sleep(*duration).await;
                Ok(format!("waited {}", secs(*duration)).into())
            }
            StepAction::Notify { message, url } => self.notify(message, url.as_ref()).await.map(Done::from),
        }
        .map_err(|e: Done| e)
    }

    fn env(&self) -> Vec<(&'static str, &str)> {
        let standby = self.playbook.standby.as_ref().map_or("", |r| r.as_str());
        let primary = self.playbook.primary.as_ref().map_or("", |r| r.as_str());
        vec![
            ("LIFEBOAT_PLAYBOOK", self.playbook.name.as_str()),
            ("LIFEBOAT_MODE", mode_str(self.mode)),
            ("LIFEBOAT_STANDBY", standby),
            ("LIFEBOAT_PRIMARY", primary),
        ]
    }

    async fn restore(
        &mut self,
        dataset: &DatasetName,
        region: Option<&RegionName>,
        snapshot: &str,
        target: &std::path::Path,
    ) -> Result<String, Done> {
        let Some(session) = self.session else {
            return Err("no repository password to restore with".to_string().into());
        };
        let region = region.or(self.playbook.standby.as_ref());
        // A fresh directory beside the target, swapped in when complete: nothing left
        // in the target by the last run (a planted symlink) is ever written through.
        let opts = RestoreOptions {
            target: target.to_path_buf(),
            include: Vec::new(),
            only: None,
            placement: Placement::Swap,
            ..Default::default()
        };
        let progress = Arc::new(Progress::default());
        // Drills and failovers never accept a signed dataset's snapshot whose signature
        // does not hold: a refused restore fails the step.
        let wanted = Wanted {
            dataset,
            region,
            snapshot: Some(snapshot),
            allow_unsigned: false,
        };
        let done = restore_by_plan(session, wanted, &opts, progress)
            .await
            .map_err(|e| Done::from(format!("restore of {dataset}: {e}")))?;
        let o = &done.outcome;
        let signature = done
            .signature
            .as_ref()
            .map_or(String::new(), |v| format!("; signature: {}", v.describe()));
        let detail = format!(
            "restored {} file(s), {} bytes of {dataset} from region {} (snapshot {}) into {}{signature}",
            o.files,
            o.bytes,
            done.region,
            o.snapshot.get(..12).unwrap_or(&o.snapshot),
            target.display()
        );
        self.restored.push(Restored {
            dataset: dataset.clone(),
            region: done.region.clone(),
            snapshot: o.snapshot.clone(),
        });
        Ok(detail)
    }

    async fn probe(&self, p: &Probe, passed: &[String], deadline: Instant) -> Result<Done, Done> {
        let url = match (p, self.mode) {
            (Probe::Http(h), Mode::Drill) => h.drill_url.as_deref(),
            _ => None,
        };
        let env = self.env();
        let to_done = |r: &probe::ProbeResult| Done {
            detail: r.detail.clone(),
            latency: Some(r.latency),
            attempts: Some(r.attempts),
            baseline: None,
        };
        let result = probe::run(p, url, &self.http, (&env, passed), deadline)
            .await
            .map_err(|r| to_done(&r))?;
        let done = to_done(&result);
        match (p, &result.body) {
            (Probe::Http(h), Some(body)) if h.baseline.is_some() => {
                let url = url.unwrap_or(&h.url);
                self.against_baseline(h, &baseline::request_of(h, url), body, done)
                    .await
            }
            _ => Ok(done),
        }
    }

    /// Record `answer` as the baseline of `request`, or compare it with the one recorded.
    async fn against_baseline(&self, h: &HttpProbe, request: &str, answer: &str, done: Done) -> Result<Done, Done> {
        let Some(how) = &h.baseline else {
            return Ok(done);
        };
        let fail = |why: String| Err(Done::from(format!("{}; {why}", done.detail)));
        let Some(session) = self.session else {
            return fail("no repository password: baselines are kept in the reports stored in the regions".into());
        };
        if self.baselines.record {
            return self.record_baseline(how, request, answer, done, "recorded as the new baseline, as asked");
        }
        match baseline::find(session, self.playbook.name.as_str(), request).await {
            Ok(Some(found)) => Ok(compared(how, request, &found, answer, done)?),
            Ok(None) => self.record_baseline(how, request, answer, done, "recorded as the first baseline"),
            Err(e) => fail(format!(
                "cannot tell whether a baseline was recorded ({e}) — run again when every region can be read, \
                 or record a new baseline with `lifeboat drill --record-baseline`"
            )),
        }
    }

    fn record_baseline(
        &self,
        how: &Baseline,
        request: &str,
        answer: &str,
        done: Done,
        what: &str,
    ) -> Result<Done, Done> {
        let why = baseline::unfit(how, answer).or_else(|| {
            (!self.baselines.stored)
                .then(|| "this run stores no report in the regions, so a baseline would be lost".into())
        });
        if let Some(why) = why {
            return Err(format!("{}; the answer cannot be the baseline: {why}", done.detail).into());
        }
        Ok(Done {
            detail: format!("{}; {what}", done.detail),
            baseline: Some(Box::new(BaselineNote {
                request: request.to_string(),
                action: BaselineAction::Recorded,
                answer: Some(answer.to_string()),
                from: None,
                recorded_at: None,
                drift: Vec::new(),
            })),
            ..done
        })
    }

    fn change<'c>(&'c self, endpoint: &EndpointName, to: &'c RegionName) -> Result<Change<'c>, String> {
        let ep = self
            .plan
            .endpoints
            .get(endpoint)
            .ok_or_else(|| format!("the plan has no endpoint {endpoint}"))?;
        Ok(Change {
            endpoint: ep,
            route: route(self.mode),
            region: to,
            playbook: self.playbook.name.as_str(),
            mode: mode_str(self.mode),
            previous: None,
        })
    }

    async fn repoint(
        &self,
        endpoint: &EndpointName,
        to: &RegionName,
        previous: Option<String>,
    ) -> Result<String, String> {
        let change = Change {
            previous,
            ..self.change(endpoint, to)?
        };
        endpoint::repoint(&change, &self.http).await
    }

    async fn timed_put_back(&self, endpoint: &EndpointName, back: &RegionName) -> Result<String, String> {
        let limit = Duration::from_secs(120);
        tokio::time::timeout(limit, self.put_back(endpoint, back))
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {}", secs(limit))))
    }

    /// Undo the re-points of `endpoint`: back to the value the preflight read (if the
    /// endpoint holds that or a target this run set), else to region `back`.
    async fn put_back(&self, endpoint: &EndpointName, back: &RegionName) -> Result<String, String> {
        let change = self.change(endpoint, back)?;
        let Some(value) = self.before.get(endpoint) else {
            return endpoint::repoint(&change, &self.http).await;
        };
        let ours: Vec<&str> = self
            .repointed
            .iter()
            .filter(|(e, _)| e == endpoint)
            .filter_map(|(_, to)| change.endpoint.targets.get(to).map(String::as_str))
            .collect();
        endpoint::restore(&change, value, &ours, &self.http).await
    }

    /// Point every re-pointed endpoint back at its primary, newest first.
    async fn undo_repoints(&mut self, phase: Phase) {
        let done: Vec<(EndpointName, RegionName)> = self.repointed.iter().rev().cloned().collect();
        for (endpoint, to) in done {
            let offset = self.start.elapsed();
            let began = Instant::now();
            let back = self
                .plan
                .endpoints
                .get(&endpoint)
                .ok_or_else(|| format!("the plan has no endpoint {endpoint}"))
                .and_then(|ep| endpoint::primary_for(ep, &to, self.playbook.primary.as_ref()));
            // A value the preflight read is put back even when no primary can be named.
            let (name, result) = match (back, self.before.contains_key(&endpoint)) {
                (Ok(r), _) => (
                    format!("{endpoint} back to {r}"),
                    self.timed_put_back(&endpoint, &r).await,
                ),
                (Err(_), true) => (
                    format!("{endpoint} back to its value before the run"),
                    self.timed_put_back(&endpoint, &to).await,
                ),
                (Err(e), false) => (format!("{endpoint} back"), Err(e)),
            };
            let result = result.map(Done::from).map_err(Done::from);
            self.record(phase, "repoint", name, offset, began.elapsed(), result);
        }
        self.repointed.clear();
    }

    async fn notify(&self, message: &str, url: Option<&UrlSource>) -> Result<String, Done> {
        let text = render(message, &self.vars());
        let Some(url) = url else {
            return Ok(format!("noted: {text}"));
        };
        let (url, shown) = secrets::url(url).map_err(|e| Done::from(format!("webhook: {e}")))?;
        let body = serde_json::json!({
            "text": text,
            "playbook": self.playbook.name.as_str(),
            "mode": mode_str(self.mode),
        });
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| Done::from(format!("webhook {shown}: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            Ok(format!("sent to {shown}: {text}"))
        } else {
            Err(format!("webhook {shown} answered {}", status.as_u16()).into())
        }
    }
}

/// The step's outcome after comparing `answer` with the baseline `found`: drift fails it.
fn compared(how: &Baseline, request: &str, found: &baseline::Found, answer: &str, done: Done) -> Result<Done, Done> {
    let drift = baseline::differences(how, &found.answer, answer);
    let source = format!(
        "the baseline recorded {} (report {})",
        found.recorded_at.format("%Y-%m-%d %H:%M:%S UTC"),
        found.report
    );
    let listed: Vec<String> = drift.iter().map(ToString::to_string).collect();
    let detail = match listed.is_empty() {
        true => format!("{}; the same as {source}", done.detail),
        false => format!("{}; DRIFT from {source}: {}", done.detail, listed.join("; ")),
    };
    let outcome = Done {
        detail,
        baseline: Some(Box::new(BaselineNote {
            request: request.to_string(),
            action: BaselineAction::Compared,
            answer: None,
            from: Some(found.report.clone()),
            recorded_at: Some(found.recorded_at),
            drift,
        })),
        ..done
    };
    match listed.is_empty() {
        true => Ok(outcome),
        false => Err(outcome),
    }
}

pub fn route(mode: Mode) -> Route {
    match mode {
        Mode::Drill => Route::Drill,
        Mode::Failover => Route::Production,
    }
}

pub fn mode_str(mode: Mode) -> &'static str {
    match mode {
        Mode::Drill => "drill",
        Mode::Failover => "failover",
    }
}

pub fn kind(action: &StepAction) -> &'static str {
    match action {
        StepAction::Restore { .. } => "restore",
        StepAction::Probe(_) => "probe",
        StepAction::Repoint { .. } => "repoint",
        StepAction::Command { .. } => "command",
        StepAction::Wait { .. } => "wait",
        StepAction::Notify { .. } => "notify",
    }
}

/// The step's own name, or one made from its settings.
pub fn name(step: &Step) -> String {
    if let Some(n) = &step.name {
        return n.clone();
    }
    match &step.action {
        StepAction::Restore { dataset, target, .. } => format!("{dataset} into {}", target.display()),
        StepAction::Probe(Probe::Http(h)) => format!("{} {}", h.method, h.url),
        StepAction::Probe(Probe::Command { argv, .. }) | StepAction::Command { command: argv } => argv.join(" "),
        StepAction::Repoint { endpoint, to } => format!("{endpoint} to {to}"),
        StepAction::Wait { duration } => secs(*duration),
        StepAction::Notify { message, .. } => message.clone(),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
