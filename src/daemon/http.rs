//! The HTTP API: the route table, and serving it over plain TCP or TLS 1.3.
//!
//! `routes` is the one list of what the API offers and what each route needs
//! (`roles::Need`); the router is built from it, each route behind its own gate, so a
//! route cannot exist without a declared need. Connections are accepted here and
//! handed to hyper directly, which is what lets the same router run over plain TCP or
//! TLS, and tags each request with its client address and, under mutual TLS, the
//! client certificate the handshake verified, for the gate.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::client_cert::PeerCert;
use super::gate::{Gate, Peer, error, gate};
use super::handlers;
use super::roles::{Level, Need};
use super::shared::Shared;
use super::tls::Tls;

/// A client that does not finish its TLS handshake or request headers in this time
/// is dropped, so idle connections cannot pile up.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One route: method, path template, what its caller needs, and its handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub need: Need,
    handler: MethodRouter<Arc<Shared>>,
}

fn route(method: Method, path: &'static str, need: Need, handler: MethodRouter<Arc<Shared>>) -> Route {
    Route {
        method,
        path,
        need,
        handler,
    }
}

/// Every route of the API and the role it needs.
pub fn routes() -> Vec<Route> {
    use Level::{Admin, Operator, Viewer};
    vec![
        route(Method::GET, "/healthz", Need::Open, get(handlers::healthz)),
        route(Method::GET, "/metrics", Need::Metrics, get(handlers::metrics)),
        route(Method::GET, "/v1/status", Need::Any(Viewer), get(handlers::status)),
        route(Method::GET, "/v1/jobs", Need::Any(Viewer), get(handlers::jobs)),
        route(
            Method::POST,
            "/v1/datasets/{plan}/{dataset}/backup",
            Need::Plan(Operator),
            post(handlers::backup),
        ),
        route(
            Method::POST,
            "/v1/datasets/{plan}/{dataset}/verify",
            Need::Plan(Operator),
            post(handlers::verify),
        ),
        route(
            Method::POST,
            "/v1/plans/{plan}/playbooks/{playbook}/drill",
            Need::Plan(Operator),
            post(handlers::drill),
        ),
        route(
            Method::POST,
            "/v1/plans/{plan}/playbooks/{playbook}/failover",
            Need::Plan(Admin),
            post(handlers::failover),
        ),
    ]
}

pub fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for r in routes() {
        let g = Gate {
            shared: shared.clone(),
            route: r.path,
            need: r.need,
        };
        router = router.route(r.path, r.handler.layer(axum::middleware::from_fn_with_state(g, gate)));
    }
    let unmatched = Gate {
        shared: shared.clone(),
        route: "(no route)",
        need: Need::Any(Level::Viewer),
    };
    let not_found = axum::routing::any(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .layer(axum::middleware::from_fn_with_state(unmatched, gate));
    router
        .fallback_service(not_found.with_state(shared.clone()))
        .with_state(shared)
}

/// Accept connections until the process ends.
pub async fn serve(listener: TcpListener, router: Router, tls: Option<Arc<Tls>>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(connection(tcp, peer, router.clone(), acceptor));
    }
}

async fn connection(tcp: tokio::net::TcpStream, peer: SocketAddr, router: Router, tls: Option<TlsAcceptor>) {
    let router = router.layer(Extension(Peer(peer)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HANDSHAKE_TIMEOUT);
    let result = match tls {
        None => {
            let service = TowerToHyperService::new(router);
            http.serve_connection(TokioIo::new(tcp), service).await
        }
        Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => {
                let service = TowerToHyperService::new(with_client_cert(router, &stream));
                http.serve_connection(TokioIo::new(stream), service).await
            }
            Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
        },
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Tag the connection's requests with the client certificate the handshake verified.
fn with_client_cert(router: Router, stream: &TlsStream<tokio::net::TcpStream>) -> Router {
    match stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        Some(leaf) => router.layer(Extension(PeerCert::from_der(leaf))),
        None => router,
    }
}
