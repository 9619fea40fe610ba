//! What each API route does once its gate has let the caller in.
//!
//! A handler that reads shows only the plans the caller may see; one that starts work
//! names the caller as the actor of every audit event the work writes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde_json::json;

use super::gate::error;
use super::roles::Caller;
use super::shared::{Shared, lock, read};
use super::{drills, metrics, runner, verifier, view};
use crate::apply::audit::api_actor;
use crate::drill::Mode;

/// Jobs listed by `/v1/jobs`.
const JOBS_LISTED: usize = 100;

type AppState = State<Arc<Shared>>;

pub async fn healthz(State(shared): AppState) -> Response {
    if shared.stopping() {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
    } else {
        "ok\n".into_response()
    }
}

/// The exposition; a caller (when `/metrics` needs one) sees only its plans' series.
pub async fn metrics(State(shared): AppState, caller: Option<Extension<Caller>>) -> Response {
    let mut body = match &caller {
        Some(Extension(c)) => metrics::render(&shared, &visible_status(&shared, c)),
        None => metrics::render(&shared, &view::status(&shared)),
    };
    if let Some(Extension(c)) = caller {
        body = only_visible_series(&body, &c);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Drop the samples labelled with a plan the caller does not see.
fn only_visible_series(text: &str, caller: &Caller) -> String {
    let hidden = |line: &str| {
        let Some(rest) = line.split_once("plan=\"").map(|(_, r)| r) else {
            return false;
        };
        let plan = rest.split('"').next().unwrap_or_default();
        !line.starts_with('#') && !caller.sees(plan)
    };
    let kept: Vec<&str> = text.lines().filter(|l| !hidden(l)).collect();
    let mut out = kept.join("\n");
    out.push('\n');
    out
}

pub async fn status(State(shared): AppState, Extension(caller): Extension<Caller>) -> Response {
    Json(visible_status(&shared, &caller)).into_response()
}

/// The daemon's status as the caller may see it: its plans only, and job counts,
/// plan errors and violations of those plans only (`/v1/status` and `/metrics` alike).
fn visible_status(shared: &Shared, caller: &Caller) -> view::StatusView {
    let mut st = view::status(shared);
    st.plans.retain(|p| caller.sees(&p.name));
    st.plan_errors.retain(|e| caller.sees(&plan_of_file(&e.file)));
    st.violations
        .retain(|v| v.split_once('/').is_some_and(|(plan, _)| caller.sees(plan)));
    st.drills.retain(|d| caller.sees(&d.plan));
    (st.running_jobs, st.queued_jobs) = view::job_counts(&lock(&shared.active), |p| caller.sees(p));
    st
}

/// A plan is named by its file's stem.
fn plan_of_file(file: &str) -> String {
    std::path::Path::new(file)
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

pub async fn jobs(State(shared): AppState, Extension(caller): Extension<Caller>) -> Response {
    let active: Vec<_> = lock(&shared.active)
        .iter()
        .filter(|(key, _)| caller.sees(&key.plan))
        .map(|(key, a)| {
            let elapsed = a.started.map(|s| (Utc::now() - s).to_std().unwrap_or_default());
            let p = a.progress.report(elapsed.unwrap_or_default());
            json!({"plan": key.plan, "dataset": key.dataset, "id": a.id, "reason": a.reason,
                   "queued": a.queued, "started": a.started, "files_done": p.files_done,
                   "files_total": p.files_total, "bytes_done": p.bytes_done, "bytes_total": p.bytes_total,
                   "bytes_per_second": p.bytes_per_second, "eta_seconds": p.eta_seconds})
        })
        .collect();
    match shared.store.jobs(JOBS_LISTED) {
        Ok(mut recent) => {
            recent.retain(|j| caller.sees(&j.plan));
            Json(json!({ "active": active, "jobs": recent })).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the job journal");
            error(StatusCode::INTERNAL_SERVER_ERROR, "job journal unavailable")
        }
    }
}

/// The actor that audit events of work the caller started name.
fn actor(caller: &Caller) -> String {
    api_actor(&caller.subject)
}

fn accepted(what: serde_json::Value) -> Response {
    (StatusCode::ACCEPTED, Json(what)).into_response()
}

pub async fn backup(
    State(shared): AppState,
    Extension(caller): Extension<Caller>,
    Path((plan, dataset)): Path<(String, String)>,
) -> Response {
    if shared.stopping() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "stopping");
    }
    if !runner::trigger(&shared, &plan, &dataset, Some(actor(&caller))) {
        return error(StatusCode::NOT_FOUND, "no such plan or dataset");
    }
    tracing::info!(plan, dataset, subject = %caller.subject, "backup triggered through the API");
    accepted(json!({"queued": true, "plan": plan, "dataset": dataset}))
}

pub async fn verify(
    State(shared): AppState,
    Extension(caller): Extension<Caller>,
    Path((plan, dataset)): Path<(String, String)>,
) -> Response {
    if shared.stopping() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "stopping");
    }
    let Some(found) = read(&shared.plans).find(&plan, &dataset) else {
        return error(StatusCode::NOT_FOUND, "no such plan or dataset");
    };
    tracing::info!(plan, dataset, subject = %caller.subject, "verification started through the API");
    let (s, p, d) = (shared.clone(), plan.clone(), dataset.clone());
    tokio::spawn(async move { verifier::on_demand(&s, &p, &found, &d, actor(&caller)).await });
    accepted(json!({"started": true, "plan": plan, "dataset": dataset}))
}

pub async fn drill(
    State(shared): AppState,
    Extension(caller): Extension<Caller>,
    Path((plan, playbook)): Path<(String, String)>,
) -> Response {
    start_playbook(shared, caller, plan, playbook, Mode::Drill)
}

/// A real failover, only with `{"confirm": true}` in the body.
pub async fn failover(
    State(shared): AppState,
    Extension(caller): Extension<Caller>,
    Path((plan, playbook)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let confirmed = serde_json::from_slice::<serde_json::Value>(&body)
        .is_ok_and(|v| v.get("confirm") == Some(&serde_json::Value::Bool(true)));
    if !confirmed {
        return error(
            StatusCode::BAD_REQUEST,
            "a failover moves production traffic: send {\"confirm\": true} to start it",
        );
    }
    start_playbook(shared, caller, plan, playbook, Mode::Failover)
}

fn start_playbook(shared: Arc<Shared>, caller: Caller, plan: String, playbook: String, mode: Mode) -> Response {
    if shared.stopping() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "stopping");
    }
    let Some(found) = read(&shared.plans).plans.get(&plan).map(|p| p.plan.clone()) else {
        return error(StatusCode::NOT_FOUND, "no such plan or playbook");
    };
    if !found.playbooks.keys().any(|k| k.as_str() == playbook) {
        return error(StatusCode::NOT_FOUND, "no such plan or playbook");
    }
    let started = drills::start(&shared, &plan, found, &playbook, mode, actor(&caller));
    if !started {
        return error(StatusCode::CONFLICT, "this playbook is already running");
    }
    tracing::info!(plan, playbook, %mode, subject = %caller.subject, "playbook started through the API");
    accepted(json!({"started": true, "plan": plan, "playbook": playbook, "mode": mode.to_string()}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::roles::parse_grants;

    #[test]
    fn scoped_callers_see_only_their_plans_series() {
        let caller = Caller {
            subject: "t".into(),
            grants: parse_grants(["viewer:ml"]).unwrap(),
        };
        let text = "# HELP a A.\n# TYPE a gauge\na{plan=\"ml\",dataset=\"d\"} 1\na{plan=\"web\",dataset=\"d\"} 2\nlifeboat_build_info{version=\"1\"} 1\n";
        assert_eq!(
            only_visible_series(text, &caller),
            "# HELP a A.\n# TYPE a gauge\na{plan=\"ml\",dataset=\"d\"} 1\nlifeboat_build_info{version=\"1\"} 1\n"
        );
    }
}
