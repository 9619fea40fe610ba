//! `lifeboat daemon`: keeps every plan's objectives met without anyone running `apply`.
//!
//! The parts, each in its own file: `schedule` turns what the pure `plan::due` finds
//! due into jobs; `runner` starts and journals jobs, which call `apply` like the CLI
//! does; `plans` reloads plan files; `state` is the local journal (sled, behind a
//! trait) that `rebuild` can always recreate from the repositories; `http` (the route
//! table), `gate` (rate limits, identity, roles) with its `guard`, `auth` (static tokens), `oidc` (JWTs),
//! `client_cert` (mutual TLS), `roles`, `ratelimit`, `access_log`, `handlers`, `tls`, `metrics`
//! and `view` serve the API; `client` reads it for `lifeboat status`.
//! The daemon uses only `plan` and `apply` (and `format::names`), never the engine.

mod access_log;
pub mod auth;
pub mod client;
mod client_cert;
mod drills;
mod gate;
mod guard;
mod handlers;
mod http;
mod lock;
pub mod logging;
mod metrics;
pub mod oidc;
mod plans;
mod ratelimit;
mod rebuild;
mod roles;
mod runner;
pub mod schedule;
mod shared;
pub mod state;
mod tls;
mod verifier;
pub mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use shared::{Shared, write};
use state::{Opened, SledStore};

/// Everything `lifeboat daemon` is told on its command line.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub plans_dir: PathBuf,
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    pub tokens: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// CA whose client certificates the API requires (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
    /// Roles per client certificate Common Name, `ROLES CN=NAME` lines.
    pub tls_client_roles: Option<PathBuf>,
    /// Jobs running at once, over all plans.
    pub max_jobs: usize,
    /// How long running jobs may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// How often plan files are checked for changes.
    pub reload_poll: Duration,
    /// Work (backups, verifications, drills, failovers) each subject may start per minute.
    pub trigger_rate_per_minute: u32,
    pub trigger_burst: u32,
    /// API requests per minute from one client address, before authentication.
    pub address_rate_per_minute: u32,
    /// API requests per minute of one subject.
    pub subject_rate_per_minute: u32,
    /// Keys each rate-limit table holds at most.
    pub rate_limit_entries: usize,
    /// `/metrics` without a token even on a non-loopback address.
    pub metrics_public: bool,
    /// Serve plain HTTP on a non-loopback address.
    pub insecure_http: bool,
    /// Accept JWTs from this OIDC provider.
    pub oidc: Option<oidc::OidcConfig>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            plans_dir: PathBuf::new(),
            state_dir: PathBuf::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7600)),
            tokens: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_client_roles: None,
            max_jobs: 2,
            shutdown_grace: Duration::from_secs(30),
            reload_poll: Duration::from_secs(2),
            trigger_rate_per_minute: 30,
            trigger_burst: 5,
            address_rate_per_minute: 1200,
            subject_rate_per_minute: 600,
            rate_limit_entries: 10_000,
            metrics_public: false,
            insecure_http: false,
            oidc: None,
        }
    }
}

impl DaemonConfig {
    /// `/metrics` answers without a token: on loopback, or when asked to.
    pub fn metrics_open(&self) -> bool {
        self.metrics_public || self.listen.ip().is_loopback()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "another lifeboat daemon{} is using state directory {state_dir} — stop it, or give this one its own --state",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    AlreadyRunning { state_dir: PathBuf, pid: Option<u32> },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("cannot listen on {addr}: {source} — pick a free address with --listen")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("TLS: {0}")]
    Tls(String),
    #[error(
        "refusing to serve the API over plain HTTP on {0}, which is not a loopback address — give --tls-cert and --tls-key, or --insecure-http if a proxy in front encrypts"
    )]
    PlainHttp(SocketAddr),
    #[error("cannot handle signals: {0}")]
    Signals(String),
    #[error(transparent)]
    Tokens(#[from] auth::TokenFileError),
    #[error(transparent)]
    Oidc(#[from] oidc::OidcError),
    #[error(transparent)]
    CertRoles(#[from] client_cert::CertRolesError),
    #[error("{0}")]
    Client(String),
    /// Never holds what the command printed: that may be a token.
    #[error("token command: {0} — check --token-command")]
    TokenCommand(String),
}

impl DaemonError {
    /// True when the fault is in what the user gave (flags, files), not in running.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            DaemonError::Tls(_)
                | DaemonError::Tokens(_)
                | DaemonError::CertRoles(_)
                | DaemonError::PlainHttp(_)
                | DaemonError::Oidc(_)
                | DaemonError::TokenCommand(_)
        )
    }
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Tokens are secrets: say so when others on the machine may read them.
fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(file = %path.display(), "token file is readable by group or others; chmod 600 it");
    }
}

fn load_tokens(cfg: &DaemonConfig) -> Result<auth::Tokens, DaemonError> {
    match &cfg.tokens {
        Some(path) => {
            warn_if_readable_by_others(path);
            Ok(auth::Tokens::load(path)?)
        }
        None => Ok(auth::Tokens::default()),
    }
}

/// Read the token file again (SIGHUP); a file that cannot be read or parsed keeps the
/// tokens in effect.
fn reload_tokens(shared: &Shared) {
    match load_tokens(&shared.config) {
        Ok(tokens) => {
            shared.guard.set_tokens(tokens);
            if shared.config.tokens.is_some() {
                tracing::info!("API tokens reloaded");
            }
        }
        Err(e) => tracing::error!(error = %e, "API tokens not reloaded; the previous ones stay in effect"),
    }
}

/// Read the certificate, key, client CA and certificate roles again (SIGHUP); what
/// cannot be read or used keeps what is in effect.
fn reload_tls(shared: &Shared, tls: Option<&tls::Tls>) {
    let Some(tls) = tls else { return };
    match tls.reload() {
        Ok(()) => tracing::info!("TLS certificate reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "TLS certificate not reloaded; the previous certificate, key and client CA stay in effect")
        }
    }
    if shared.config.tls_client_roles.is_none() {
        return;
    }
    match client_cert::CertRoles::from_config(&shared.config) {
        Ok(roles) => {
            tracing::info!(names = roles.len(), "client certificate roles reloaded");
            shared.guard.set_cert_roles(roles);
        }
        Err(e) => {
            tracing::error!(error = %e, "client certificate roles not reloaded; the previous ones stay in effect")
        }
    }
}

/// Every API route as `(method, path template, role it needs)`, from the one table
/// the router is built from.
pub fn api_routes() -> Vec<(String, &'static str, String)> {
    http::routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path, r.need.to_string()))
        .collect()
}

/// Open the state store; log when it has to be rebuilt from the repositories.
fn open_state(cfg: &DaemonConfig) -> Result<(SledStore, Option<String>), DaemonError> {
    let dir = cfg.state_dir.join("sled");
    let (store, opened) = SledStore::open(&dir).map_err(|e| match e {
        state::StateError::InUse { .. } => DaemonError::AlreadyRunning {
            state_dir: cfg.state_dir.clone(),
            pid: None,
        },
        other => other.into(),
    })?;
    let rebuilt = match opened {
        Opened::Existing => None,
        Opened::Fresh => Some("no local state found".to_string()),
        Opened::Replaced(why) => Some(format!("local state was damaged ({why})")),
    };
    if let Some(why) = &rebuilt {
        tracing::warn!(state = %dir.display(), "{why}: rebuilding the state from the repositories");
    }
    Ok((store, rebuilt))
}

/// Run the daemon until SIGTERM or SIGINT; returns once running jobs have finished.
pub async fn run(cfg: DaemonConfig) -> Result<(), DaemonError> {
    state::make_private(&cfg.state_dir).map_err(io_err(&cfg.state_dir))?;
    let _lock = lock::StateLock::acquire(&cfg.state_dir)?;
    let tokens = load_tokens(&cfg)?;
    if tokens.is_empty() && cfg.oidc.is_none() {
        tracing::warn!("no API tokens (--tokens): every API call but /healthz and /metrics is refused");
    }
    let tls = tls::Tls::from_config(&cfg)?;
    let cert_roles = client_cert::CertRoles::from_config(&cfg)?;
    if tls.is_none() && !cfg.listen.ip().is_loopback() && !cfg.insecure_http {
        return Err(DaemonError::PlainHttp(cfg.listen));
    }
    let oidc = cfg.oidc.clone().map(oidc::Oidc::new).transpose()?.map(Arc::new);
    // Installed first: SIGHUP's default action would end the process.
    let mut signals = Signals::install().map_err(|e| DaemonError::Signals(e.to_string()))?;
    let hangup = signals.hup.take();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let (store, rebuilt) = open_state(&cfg)?;
    let shared = Arc::new(Shared::new(cfg.clone(), Box::new(store), tokens, rebuilt));
    shared.guard.set_cert_roles(cert_roles);
    if let Some(o) = oidc {
        if let Some(c) = &cfg.oidc {
            tracing::info!(issuer = %c.issuer, audience = %c.audience, roles_claim = %c.roles_claim, "API accepts the OIDC provider's tokens");
        }
        tokio::spawn(o.clone().prefetch());
        let _ = shared.guard.oidc.set(o);
    }
    start(&shared, listener, tls, hangup).await;
    let why = signals.stop().await;
    shutdown(&shared, &mut signals, why).await;
    Ok(())
}

/// Load plans, catch up with the repositories, then start the API, scheduler and watcher.
async fn start(
    shared: &Arc<Shared>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<tls::Tls>>,
    hangup: Option<Signal>,
) {
    reload(shared, "start");
    rebuild::close_interrupted(shared);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mutual_tls = tls.as_ref().is_some_and(|t| t.mutual());
    tokio::spawn(http::serve(listener, http::router(shared.clone()), tls.clone()));
    tokio::spawn(gate::summarize_refusals(shared.clone()));
    tracing::info!(listen = %shared.config.listen, scheme, mutual_tls, "API listening");
    rebuild::observe_all(shared).await;
    if shared.rebuilt.is_some() {
        tracing::info!("state rebuilt from the repositories");
    }
    tokio::spawn(runner::scheduler(shared.clone()));
    tokio::spawn(verifier::verifier(shared.clone()));
    tokio::spawn(drills::driller(shared.clone()));
    tokio::spawn(watch_plans(shared.clone(), hangup, tls));
    tracing::info!(plans = %shared.config.plans_dir.display(), state = %shared.config.state_dir.display(), "daemon started");
}

/// Reload the plans. A refused plan is logged with every error; its plan in effect,
/// or else its last valid version from the state, keeps running flagged stale, and the
/// plan's alert hooks say so.
fn reload(shared: &Arc<Shared>, why: &str) {
    let last_valid = shared.store.plans().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the last valid plans from the state");
        Default::default()
    });
    let outcome = write(&shared.plans).reload(&shared.config.plans_dir, &last_valid);
    keep_last_valid(shared, &outcome);
    for name in &outcome.loaded {
        let stale = shared::read(&shared.plans).plans.get(name).is_some_and(|p| p.stale);
        tracing::info!(plan = %name, trigger = why, stale, "plan loaded");
        let plan = shared::read(&shared.plans).plans.get(name).map(|p| p.plan.clone());
        if let (Some(plan), true) = (plan, why != "start") {
            let (shared, name) = (shared.clone(), name.clone());
            tokio::spawn(async move { rebuild::observe_plan(&shared, &name, &plan).await });
        }
    }
    for err in &outcome.refused {
        tracing::error!(file = %err.file.display(), previous_kept = err.previous_kept, errors = %err.errors.join("\n"), "plan refused");
        if err.previous_kept {
            alert_stale(shared, err);
        }
    }
    for name in &outcome.removed {
        tracing::info!(plan = %name, "plan removed");
    }
    shared.wake.notify_one();
}

/// Keep each newly valid plan as its last valid version; forget removed plans'.
fn keep_last_valid(shared: &Shared, outcome: &plans::ReloadOutcome) {
    for (name, stored) in &outcome.valid {
        if let Err(e) = shared.store.put_plan(name, stored) {
            tracing::warn!(plan = %name, error = %e, "cannot keep the plan's last valid version");
        }
    }
    for name in &outcome.removed {
        if let Err(e) = shared.store.remove_plan(name) {
            tracing::warn!(plan = %name, error = %e, "cannot forget the removed plan");
        }
    }
    for name in &outcome.unkept {
        tracing::warn!(plan = %name, "the plan writes a credential in a URL, so its last valid version is not kept: if its file turns invalid before a restart, it will not run — use a secret reference instead");
        if let Err(e) = shared.store.remove_plan(name) {
            tracing::warn!(plan = %name, error = %e, "cannot forget the plan's older version");
        }
    }
    shared.flush();
}

/// Tell the plan's alert hooks that its file is invalid and an older version runs.
fn alert_stale(shared: &Arc<Shared>, err: &plans::PlanLoadError) {
    let name = err
        .file
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let Some(plan) = shared::read(&shared.plans).plans.get(&name).map(|p| p.plan.clone()) else {
        return;
    };
    let alert = crate::apply::alerts::Alert {
        kind: "plan".into(),
        plan: name.clone(),
        dataset: String::new(),
        region: String::new(),
        message: format!(
            "plan file {} is invalid ({} error(s)); its last valid version keeps running until it is fixed",
            err.file.display(),
            err.errors.len()
        ),
    };
    tokio::spawn(async move {
        for problem in crate::apply::alerts::fire(&plan.alerts, &alert).await {
            tracing::warn!(plan = %name, problem = %problem, "alert not delivered");
        }
    });
}

/// Reload on SIGHUP and whenever a plan file changes.
async fn watch_plans(shared: Arc<Shared>, mut hup: Option<Signal>, tls: Option<Arc<tls::Tls>>) {
    loop {
        let hangup = async {
            match hup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = hangup => {
                reload_tokens(&shared);
                reload_tls(&shared, tls.as_deref());
                reload(&shared, "SIGHUP");
            }
            _ = tokio::time::sleep(shared.config.reload_poll) => {
                if shared::read(&shared.plans).changed(&shared.config.plans_dir) {
                    reload(&shared, "file change");
                }
            }
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP, installed before anything can be interrupted.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Option<Signal>,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: Some(signal(SignalKind::hangup())?),
        })
    }

    async fn stop(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Stop taking jobs, give running ones the grace time, and leave.
async fn shutdown(shared: &Arc<Shared>, signals: &mut Signals, why: &str) {
    shared.stop();
    let grace = shared.config.shutdown_grace;
    tracing::info!(
        signal = why,
        running = shared.active_count(),
        grace_seconds = grace.as_secs(),
        "stopping: no new jobs"
    );
    let drained = async {
        while shared.active_count() > 0 {
            let ended = shared.job_ended.notified();
            if shared.active_count() == 0 {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), ended).await;
        }
    };
    tokio::select! {
        _ = drained => {
            shared.flush();
            tracing::info!("all jobs finished; daemon stopped");
        }
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(running = shared.active_count(), "jobs did not finish within the grace time; leaving them");
            exit_now(shared, 0);
        }
        second = signals.stop() => {
            tracing::warn!(signal = second, running = shared.active_count(), "second signal: exiting at once");
            exit_now(shared, 1);
        }
    }
}

/// Leave without waiting for abandoned jobs: their threads would keep the runtime
/// (and so the process) alive. Their journal entries are closed first; the state
/// lock goes with the process.
fn exit_now(shared: &Shared, code: i32) -> ! {
    rebuild::close_interrupted(shared);
    std::process::exit(code)
}
