//! The API's access log and its summary of refused requests.
//!
//! Every request gives one `api request` line on the log target `lifeboat::access`
//! (client address, subject, roles, method, route template, status, latency); with
//! `--log-format json` it is one JSON object. The route is the template
//! (`/v1/datasets/{plan}/{dataset}/backup`), never the raw path, and no header is
//! logged, so a token cannot reach the log. `RUST_LOG=info,lifeboat::access=off`
//! silences the access lines alone.
//!
//! Unauthenticated requests are not also warned about one by one: a storm of bad
//! tokens would bury every other line. They are counted, and one warning per
//! interval says how many there were and from how many addresses.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::http::Method;

use super::roles::Caller;

/// How often refused requests are summarized.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);
/// Distinct addresses counted per interval; beyond it the count says "at least".
const ADDRESSES_COUNTED: usize = 1024;

/// One finished request.
pub struct Line<'a> {
    pub client: Option<SocketAddr>,
    pub caller: Option<&'a Caller>,
    pub method: &'a Method,
    pub route: &'a str,
    pub status: u16,
    pub latency: Duration,
}

pub fn request(line: &Line<'_>) {
    let client = line.client.map(|c| c.ip().to_string()).unwrap_or_default();
    let subject = line.caller.map(|c| c.subject.as_str()).unwrap_or("-");
    let roles = line.caller.map(Caller::roles).unwrap_or_else(|| "-".into());
    tracing::info!(
        target: "lifeboat::access",
        client = %client,
        subject,
        role = %roles,
        method = %line.method,
        route = line.route,
        status = line.status,
        latency_ms = line.latency.as_secs_f64() * 1000.0,
        "api request"
    );
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Unauthenticated requests since the last summary.
#[derive(Debug, Default)]
pub struct Refusals(Mutex<(u64, HashSet<IpAddr>)>);

impl Refusals {
    pub fn unauthorized(&self, from: Option<IpAddr>) {
        let mut r = lock(&self.0);
        r.0 += 1;
        if let Some(ip) = from
            && r.1.len() < ADDRESSES_COUNTED
        {
            r.1.insert(ip);
        }
    }

    /// The count and distinct addresses since the last call, then start again.
    fn take(&self) -> (u64, usize) {
        let mut r = lock(&self.0);
        let out = (r.0, r.1.len());
        *r = Default::default();
        out
    }
}

/// One warning for the requests refused since the last call, if there were any.
pub fn summarize(refusals: &Refusals) {
    let (refused, addresses) = refusals.take();
    if refused > 0 {
        tracing::warn!(
            refused,
            addresses,
            seconds = SUMMARY_INTERVAL.as_secs(),
            "API requests refused: unauthorized (missing, unknown or invalid token)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_then_reset() {
        let r = Refusals::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..5 {
            r.unauthorized(Some(a));
        }
        r.unauthorized(Some(b));
        r.unauthorized(None);
        assert_eq!(r.take(), (7, 2));
        assert_eq!(r.take(), (0, 0));
    }

    #[test]
    fn the_address_set_is_bounded() {
        let r = Refusals::default();
        for i in 0..5000u32 {
            r.unauthorized(Some(IpAddr::from(i.to_be_bytes())));
        }
        assert_eq!(r.take(), (5000, ADDRESSES_COUNTED));
    }
}
