//! What the API's gate consults: the tokens in effect (replaced on SIGHUP), the rate
//! limiters, and the count of refused requests. Kept apart from the gate itself so
//! that the daemon's shared state can hold it without knowing of requests.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock, RwLock};

use axum::http::HeaderMap;

use super::access_log::Refusals;
use super::auth::{Tokens, bearer};
use super::oidc::Oidc;
use super::ratelimit::{Limiter, Rate};
use super::roles::Caller;

/// Who may call, and how often: the tokens (replaced on SIGHUP) and the limiters.
pub struct Guard {
    pub tokens: RwLock<Arc<Tokens>>,
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

    /// The caller a request's bearer token names: a static token, or else a JWT from
    /// the OIDC provider (`--oidc-issuer`).
    pub async fn identify(&self, headers: &HeaderMap) -> Option<Caller> {
        let token = bearer(headers)?;
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(caller) = tokens.identify(token) {
            return Some(caller);
        }
        let oidc = self.oidc.get().filter(|_| token.matches('.').count() == 2)?;
        oidc.identify(token).await
    }
}
