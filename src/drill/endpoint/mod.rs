//! Endpoint providers: move one service's traffic to the target of a region.
//!
//! Each provider is real: `dns` sends a TSIG-signed RFC 2136 update to an authoritative
//! server, `file` renders a config fragment, swaps it in atomically and reloads, `http`
//! calls a gateway's admin API, `command` runs a program with the target.
//!
//! A change is only claimed once it is read back: `file` re-reads what it wrote and runs
//! its check, `http` can GET and compare (`verify_url`), `command` can run a `verify`
//! program. [`preflight`] checks every provider's needs before a run changes anything.

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

/// Point `change.endpoint` at `change.region` and read the change back; `Ok` is a
/// one-line account of what changed. An `Err` may come after the change was made (a
/// failed read-back): the caller treats the endpoint as re-pointed either way.
pub async fn repoint(change: &Change<'_>, http: &reqwest::Client) -> Result<String, String> {
    match provider(change.endpoint, change.route) {
        Provider::Dns { .. } => dns::update(change).await,
        Provider::File { .. } => file::swap(change).await,
        Provider::Http { .. } => http::call(change, http).await,
        Provider::Command { command, verify } => run_command(change, command, verify.as_deref()).await,
    }
}

fn with_target(argv: &[String], target: &str) -> Vec<String> {
    let mut argv = argv.to_vec();
    argv.push(target.to_string());
    argv
}

async fn run_command(change: &Change<'_>, command: &[String], verify: Option<&[String]>) -> Result<String, String> {
    let target = change.target()?;
    let env = change.env()?;
    process::run(&with_target(command, target), &env, &change.endpoint.env).await?;
    let Some(verify) = verify else {
        return Ok(format!("ran {} {target}", command.join(" ")));
    };
    process::run(&with_target(verify, target), &env, &change.endpoint.env)
        .await
        .map_err(|e| format!("ran {} {target}, but the verify command failed: {e}", command.join(" ")))?;
    Ok(format!(
        "ran {} {target}; `{} {target}` confirmed it",
        command.join(" "),
        verify.join(" ")
    ))
}

/// What a provider's preflight found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// One line for the report: what was checked and what the endpoint holds now.
    pub detail: String,
    /// The endpoint's current value where the provider reads one exactly (`dns`): the
    /// first change's prerequisite ([`Change::previous`]) and what [`restore`] puts back.
    pub current: Option<String>,
}

impl From<String> for Found {
    fn from(detail: String) -> Self {
        Found { detail, current: None }
    }
}

/// Preflight: everything a re-point needs, checked without changing anything (the
/// target is well-formed, programs exist, files can be read, APIs and DNS servers answer
/// an authenticated read).
pub async fn preflight(change: &Change<'_>, http: &reqwest::Client) -> Result<Found, String> {
    well_formed(change.target()?)?;
    match provider(change.endpoint, change.route) {
        Provider::Dns { server, record, .. } => {
            let value = dns::preflight(change).await?;
            let shown = if value.is_empty() { "no record" } else { &value };
            Ok(Found {
                detail: format!("{server} answers for {record}, which holds {shown}"),
                current: Some(value),
            })
        }
        Provider::File { check, reload, .. } => {
            for cmd in [check, reload].into_iter().flatten() {
                program_found(cmd)?;
            }
            file::preflight(change).await.map(Found::from)
        }
        Provider::Http { .. } => http::preflight(change, http).await.map(Found::from),
        Provider::Command { command, verify } => {
            for cmd in std::iter::once(command).chain(verify) {
                program_found(cmd)?;
            }
            Ok(format!("`{}` is there to run", command.join(" ")).into())
        }
    }
}

/// Put the endpoint back to `value`, what its preflight read before the run changed it
/// ([`Found::current`]), if it holds that or one of `ours` (the targets the run set);
/// `change.region` only names where that is. Providers that read no exact value are
/// re-pointed to `change.region` instead.
pub async fn restore(
    change: &Change<'_>,
    value: &str,
    ours: &[&str],
    http: &reqwest::Client,
) -> Result<String, String> {
    match provider(change.endpoint, change.route) {
        Provider::Dns { .. } => dns::restore(change, value, ours).await,
        _ => repoint(change, http).await,
    }
}

/// A target is one line of printable text: a newline or control character in it could
/// smuggle extra lines into a config file or a command's argument.
pub fn well_formed(target: &str) -> Result<(), String> {
    if target.trim().is_empty() {
        return Err("the target is empty".into());
    }
    if let Some(c) = target.chars().find(|c| c.is_control()) {
        return Err(format!("the target {target:?} holds the control character {c:?}"));
    }
    Ok(())
}

/// The program of `argv` exists and is executable (searched on `PATH` when it has no `/`).
fn program_found(argv: &[String]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let Some(program) = argv.first() else {
        return Err("empty command".into());
    };
    let runnable =
        |p: &std::path::Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    let found = if program.contains('/') {
        runnable(std::path::Path::new(program))
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path).any(|d| runnable(&d.join(program)))
    };
    if found {
        Ok(())
    } else {
        Err(format!(
            "program `{program}` is not there to run (not found or not executable)"
        ))
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
        Provider::Command { command, .. } => format!("run `{} {target}`", command.join(" ")),
    };
    format!("re-point {}{route} to {}: {how}", change.endpoint.name, change.region)
}
