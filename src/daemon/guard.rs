//! What the API's gate consults: the tokens and client certificate roles in effect
//! (replaced on SIGHUP), the rate limiters, and the count of refused requests. Kept apart from the gate itself so
//! that the daemon's shared state can hold it without knowing of requests.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock, RwLock};

use axum::http::HeaderMap;

use super::access_log::Refusals;
use super::auth::{Tokens, bearer};
use super::client_cert::{CertRoles, PeerCert};
use super::oidc::Oidc;
use super::ratelimit::{Limiter, Rate};
use super::roles::Caller;

/// Who may call, and how often: the tokens (replaced on SIGHUP) and the limiters.
pub struct Guard {
    pub tokens: RwLock<Arc<Tokens>>,
    /// Grants per client certificate name (mutual TLS).
    pub cert_roles: RwLock<Arc<CertRoles>>,
    /// Requests per client address, before authentication.
    pub addresses: Limiter<IpAddr>,
    /// Requests per subject, after authentication.
    pub subjects: Limiter<String>,
    /// Work started (backups, verifications, drills, failovers) per subject.
    pub jobs: Limiter<String>,
    pub refusals: Refusals,
    /// The OIDC provider whose tokens are accepted, when `--oidc-issuer` is given.
    pub oidc: OnceLock<Arc<Oidc>>,
    /// `/metrics` needs no token (loopback listener, or `--metrics-public`).
    pub metrics_open: bool,
}

/// The rates and table size a guard is built with.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_address: Rate,
    pub per_subject: Rate,
    pub jobs_per_subject: Rate,
    pub entries: usize,
}

impl Guard {
    pub fn new(tokens: Tokens, limits: Limits, metrics_open: bool) -> Self {
        Self {
            tokens: RwLock::new(Arc::new(tokens)),
            cert_roles: RwLock::new(Arc::default()),
            addresses: Limiter::new(limits.per_address, limits.entries),
            subjects: Limiter::new(limits.per_subject, limits.entries),
            jobs: Limiter::new(limits.jobs_per_subject, limits.entries),
            refusals: Refusals::default(),
            oidc: OnceLock::new(),
            metrics_open,
        }
    }

    /// Replace the tokens (SIGHUP); callers already admitted are not affected.
    pub fn set_tokens(&self, tokens: Tokens) {
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tokens);
    }

    /// Replace the client certificate roles (start, SIGHUP).
    pub fn set_cert_roles(&self, roles: CertRoles) {
        *self.cert_roles.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(roles);
    }

    /// The caller. A bearer token, when one is sent, names it: a static token, or else
    /// a JWT from the OIDC provider (`--oidc-issuer`); an unknown token is no one,
    /// whatever certificate came with it. Without a token the client certificate
    /// (mutual TLS) does.
    pub async fn identify(&self, headers: &HeaderMap, cert: Option<&PeerCert>) -> Option<Caller> {
        if !headers.contains_key(axum::http::header::AUTHORIZATION) {
            let roles = self.cert_roles.read().unwrap_or_else(|e| e.into_inner()).clone();
            return cert.map(|c| roles.caller(c));
        }
        let token = bearer(headers)?;
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(caller) = tokens.identify(token) {
            return Some(caller);
        }
        let oidc = self.oidc.get().filter(|_| token.matches('.').count() == 2)?;
        oidc.identify(token).await
    }
}
