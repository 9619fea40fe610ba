//! The door every API request passes: rate limit by client address, identify the
//! caller (bearer token, or the client certificate under mutual TLS), check the
//! route's need, rate limit by subject, then the handler, then one access-log line.
//!
//! It wraps each route separately, with the need that route declares in the route
//! table (`http::routes`), so no handler can be reached without its check and the
//! table is the one place that says who may call what.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::access_log;
use super::auth::Denied;
use super::client_cert::PeerCert;
use super::roles::{Caller, Level, Need};
use super::shared::Shared;

/// The client address of a connection, put on each of its requests.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// One route's gate: the daemon, the route's template and what it needs.
#[derive(Clone)]
pub struct Gate {
    pub shared: Arc<Shared>,
    pub route: &'static str,
    pub need: Need,
}

/// Why a request was stopped before its handler.
enum Stop {
    Denied(Denied),
    Limited(Duration),
}

pub async fn gate(State(g): State<Gate>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    let method = req.method().clone();
    let (mut parts, body) = req.into_parts();
    let plan = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .and_then(|p| p.iter().find(|(k, _)| *k == "plan").map(|(_, v)| v.to_string()));
    let mut req = Request::from_parts(parts, body);
    let cert = req.extensions().get::<PeerCert>();
    let admitted = admit(&g, peer, cert, &method, plan.as_deref(), req.headers()).await;
    let (response, caller) = match admitted {
        Ok(caller) => {
            if let Some(c) = &caller {
                req.extensions_mut().insert(c.clone());
            }
            (next.run(req).await, caller)
        }
        Err(stop) => (refusal(stop), None),
    };
    access_log::request(&access_log::Line {
        client: peer,
        caller: caller.as_ref(),
        method: &method,
        route: g.route,
        status: response.status().as_u16(),
        latency: started.elapsed(),
    });
    response
}

async fn admit(
    g: &Gate,
    peer: Option<SocketAddr>,
    cert: Option<&PeerCert>,
    method: &Method,
    plan: Option<&str>,
    headers: &HeaderMap,
) -> Result<Option<Caller>, Stop> {
    let guard = &g.shared.guard;
    if g.need == Need::Open {
        return Ok(None);
    }
    if let Some(addr) = peer {
        guard.addresses.check(&addr.ip()).map_err(Stop::Limited)?;
    }
    if g.need == Need::Metrics && guard.metrics_open {
        return Ok(None);
    }
    let Some(caller) = guard.identify(headers, cert).await else {
        guard.refusals.unauthorized(peer.map(|p| p.ip()));
        return Err(Stop::Denied(Denied::Unauthenticated));
    };
    let allowed = match g.need {
        Need::Plan(level) => caller.may(level, plan),
        Need::Any(level) => caller.may(level, None),
        Need::Metrics | Need::Open => caller.may(Level::Viewer, None),
    };
    if !allowed {
        tracing::warn!(route = g.route, subject = %caller.subject, roles = %caller.roles(), plan, "API request refused: forbidden");
        return Err(Stop::Denied(Denied::Forbidden));
    }
    guard.subjects.check(&caller.subject).map_err(Stop::Limited)?;
    if method == Method::POST {
        guard.jobs.check(&caller.subject).map_err(Stop::Limited)?;
    }
    Ok(Some(caller))
}

pub fn error(code: StatusCode, what: &str) -> Response {
    (code, Json(json!({ "error": what }))).into_response()
}

/// The answer to a stopped request: its status and nothing more.
fn refusal(stop: Stop) -> Response {
    match stop {
        Stop::Denied(Denied::Unauthenticated) => {
            let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        Stop::Denied(Denied::Forbidden) => error(StatusCode::FORBIDDEN, "forbidden"),
        Stop::Limited(wait) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            r
        }
    }
}

/// Log one line per interval in which requests were refused as unauthorized.
pub async fn summarize_refusals(shared: Arc<Shared>) {
    while !shared.stopping() {
        tokio::time::sleep(access_log::SUMMARY_INTERVAL).await;
        access_log::summarize(&shared.guard.refusals);
    }
}
