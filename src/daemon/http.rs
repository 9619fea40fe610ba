//! The HTTP API: routes, authentication per route, and serving with optional TLS.
//!
//! Routes are an axum `Router`; connections are accepted here and handed to hyper
//! directly, which is what lets the same router run over plain TCP or TLS 1.3.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::auth::{Denied, Role};
use super::shared::{Shared, lock};
use super::{metrics, runner, view};

/// Jobs listed by `/v1/jobs`.
const JOBS_LISTED: usize = 100;
/// A client that does not finish its TLS handshake or request headers in this time
/// is dropped, so idle connections cannot pile up.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

type AppState = State<Arc<Shared>>;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/status", get(status))
        .route("/v1/jobs", get(jobs))
        .route("/v1/datasets/{plan}/{dataset}/backup", post(trigger))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .with_state(shared)
}

fn error(code: StatusCode, what: &str) -> Response {
    (code, Json(json!({ "error": what }))).into_response()
}

/// Check the caller's token; refusals are logged here with the reason.
fn authorize(shared: &Shared, headers: &HeaderMap, needed: Role, route: &str) -> Result<Role, Denied> {
    shared.tokens.check(headers, needed).inspect_err(|denied| {
        tracing::warn!(route, ?denied, "API request refused");
    })
}

/// The answer to a refused request: its status and nothing more.
fn refusal(denied: Denied) -> Response {
    match denied {
        Denied::Unauthenticated => {
            let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        Denied::Forbidden => error(StatusCode::FORBIDDEN, "forbidden"),
    }
}

async fn healthz(State(shared): AppState) -> Response {
    if shared.stopping() {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
    } else {
        "ok\n".into_response()
    }
}

async fn metrics_text(State(shared): AppState) -> Response {
    let body = metrics::render(&shared);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn status(State(shared): AppState, headers: HeaderMap) -> Response {
    match authorize(&shared, &headers, Role::Viewer, "/v1/status") {
        Ok(_) => Json(view::status(&shared)).into_response(),
        Err(denied) => refusal(denied),
    }
}

async fn jobs(State(shared): AppState, headers: HeaderMap) -> Response {
    if let Err(denied) = authorize(&shared, &headers, Role::Viewer, "/v1/jobs") {
        return refusal(denied);
    }
    let active: Vec<_> = lock(&shared.active)
        .iter()
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
        Ok(recent) => Json(json!({ "active": active, "jobs": recent })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the job journal");
            error(StatusCode::INTERNAL_SERVER_ERROR, "job journal unavailable")
        }
    }
}

async fn trigger(
    State(shared): AppState,
    headers: HeaderMap,
    Path((plan, dataset)): Path<(String, String)>,
) -> Response {
    let route = "/v1/datasets/{plan}/{dataset}/backup";
    if let Err(denied) = authorize(&shared, &headers, Role::Operator, route) {
        return refusal(denied);
    }
    if !shared.trigger_limit.allow() {
        tracing::warn!(route, "API request refused: rate limit");
        return error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
    }
    if shared.stopping() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "stopping");
    }
    if !runner::trigger(&shared, &plan, &dataset) {
        return error(StatusCode::NOT_FOUND, "no such plan or dataset");
    }
    tracing::info!(plan, dataset, "backup triggered through the API");
    (
        StatusCode::ACCEPTED,
        Json(json!({"queued": true, "plan": plan, "dataset": dataset})),
    )
        .into_response()
}

/// Accept connections until the process ends.
pub async fn serve(listener: TcpListener, router: Router, tls: Option<TlsAcceptor>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(connection(tcp, peer, router.clone(), tls.clone()));
    }
}

async fn connection(tcp: tokio::net::TcpStream, peer: SocketAddr, router: Router, tls: Option<TlsAcceptor>) {
    let service = TowerToHyperService::new(router);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HANDSHAKE_TIMEOUT);
    let result = match tls {
        None => http.serve_connection(TokioIo::new(tcp), service).await,
        Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => http.serve_connection(TokioIo::new(stream), service).await,
            Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
        },
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
