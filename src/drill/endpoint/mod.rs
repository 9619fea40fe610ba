//! Endpoint providers: move one service's traffic to the target of a region.
//!
//! Each provider is real: `dns` sends a TSIG-signed RFC 2136 update to an authoritative
//! server, `file` renders a config fragment, swaps it in atomically and reloads, `http`
//! calls a gateway's admin API, `command` runs a program with the target.

pub mod dns;
mod file;
mod http;

use super::process;
use super::template::Vars;
use crate::format::names::RegionName;
use crate::plan::{Endpoint, Provider};

/// Which route of an endpoint to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Production,
    /// The endpoint's drill route (its production route when it has none).
    Drill,
}

/// The provider a route uses.
pub fn provider(endpoint: &Endpoint, route: Route) -> &Provider {
    match (route, &endpoint.drill) {
        (Route::Drill, Some(drill)) => drill,
        _ => &endpoint.provider,
    }
}

/// What a re-point needs to know beyond the provider.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub endpoint: &'a Endpoint,
    pub route: Route,
    pub region: &'a RegionName,
    pub playbook: &'a str,
    pub mode: &'a str,
    /// What the endpoint held before the run changed it, as its provider's `preflight`
    /// returned it: the change then applies only if that is still so. `None`: unknown.
    pub previous: Option<String>,
}

impl Change<'_> {
    pub fn target(&self) -> Result<&str, String> {
        self.endpoint
            .targets
            .get(self.region)
            .map(String::as_str)
            .ok_or_else(|| {
                format!(
                    "endpoint {} has no target for region {}",
                    self.endpoint.name, self.region
                )
            })
    }

    fn vars(&self) -> Result<Vars<'_>, String> {
        Ok(Vars {
            target: self.target()?,
            region: self.region.as_str(),
            endpoint: self.endpoint.name.as_str(),
            playbook: self.playbook,
            mode: self.mode,
        })
    }

    fn env(&self) -> Result<Vec<(&'static str, &str)>, String> {
        Ok(vec![
            ("LIFEBOAT_TARGET", self.target()?),
            ("LIFEBOAT_REGION", self.region.as_str()),
            ("LIFEBOAT_ENDPOINT", self.endpoint.name.as_str()),
            ("LIFEBOAT_PLAYBOOK", self.playbook),
            ("LIFEBOAT_MODE", self.mode),
        ])
    }
}

/// Point `change.endpoint` at `change.region`; `Ok` is a one-line account of what changed.
pub async fn repoint(change: &Change<'_>, http: &reqwest::Client) -> Result<String, String> {
    match provider(change.endpoint, change.route) {
        Provider::Dns { .. } => dns::update(change).await,
        Provider::File { .. } => file::swap(change).await,
        Provider::Http { .. } => http::call(change, http).await,
        Provider::Command { command } => {
            let mut argv = command.clone();
            argv.push(change.target()?.to_string());
            process::run(&argv, &change.env()?, &change.endpoint.env).await?;
            Ok(format!("ran {} {}", command.join(" "), change.target()?))
        }
    }
}

/// The region traffic goes back to when a re-point to `to` is undone: the playbook's
/// primary when the endpoint serves it, else the endpoint's only other region.
pub fn primary_for(endpoint: &Endpoint, to: &RegionName, primary: Option<&RegionName>) -> Result<RegionName, String> {
    if let Some(p) = primary.filter(|p| endpoint.targets.contains_key(*p)) {
        return Ok(p.clone());
    }
    let others: Vec<&RegionName> = endpoint.targets.keys().filter(|r| *r != to).collect();
    match others.as_slice() {
        [only] => Ok((*only).clone()),
        _ => Err(format!(
            "cannot tell where endpoint {} goes back to — set `primary` in the playbook",
            endpoint.name
        )),
    }
}

/// A short description of what a re-point would do, for previews and reports.
pub fn describe(change: &Change<'_>) -> String {
    let target = change.target().unwrap_or("?");
    let route = match (change.route, &change.endpoint.drill) {
        (Route::Drill, Some(_)) => " (drill route)",
        _ => "",
    };
    let how = match provider(change.endpoint, change.route) {
        Provider::Dns {
            server, record, ttl, ..
        } => format!(
            "DNS update of {record} at {server} to {target} (ttl {}s)",
            ttl.as_secs()
        ),
        Provider::File { path, reload, .. } => {
            let reload = reload
                .as_ref()
                .map_or(String::new(), |r| format!(", then `{}`", r.join(" ")));
            format!("rewrite {} for {target}{reload}", path.display())
        }
        Provider::Http { url, method, .. } => format!("{method} {url} with {target}"),
        Provider::Command { command } => format!("run `{} {target}`", command.join(" ")),
    };
    format!("re-point {}{route} to {}: {how}", change.endpoint.name, change.region)
}
