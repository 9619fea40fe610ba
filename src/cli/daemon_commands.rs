//! `lifeboat daemon` and `lifeboat status`: arguments, one call into `daemon`, rendering.

use chrono::{DateTime, Utc};

use std::io::{BufRead, Read};

use super::args::{DaemonArgs, StatusArgs, TokenAction};
use super::context::Ctx;
use super::error::{CliError, EXIT_DEGRADED, EXIT_OK, Result};
use super::output::{self, say};
use crate::daemon::logging;
use crate::daemon::oidc::OidcConfig;
use crate::daemon::view::{DatasetView, StatusView};
use crate::daemon::{self, DaemonConfig, DaemonError, auth, client};

fn daemon_err(e: DaemonError) -> CliError {
    if e.is_bad_input() {
        CliError::BadInput(e.to_string())
    } else {
        CliError::Failed(e.to_string())
    }
}

impl Ctx {
    pub async fn daemon(&self, args: DaemonArgs) -> Result<i32> {
        logging::init(args.log_format);
        let config = DaemonConfig {
            plans_dir: args.plans,
            state_dir: args.state,
            listen: args.listen,
            tokens: args.tokens,
            tls_cert: args.tls_cert,
            tls_key: args.tls_key,
            tls_client_ca: args.tls_client_ca,
            tls_client_roles: args.tls_client_roles,
            max_jobs: args.max_jobs,
            shutdown_grace: args.shutdown_grace,
            reload_poll: std::time::Duration::from_secs(2),
            trigger_rate_per_minute: args.trigger_rate,
            trigger_burst: 5,
            address_rate_per_minute: args.address_rate,
            subject_rate_per_minute: args.subject_rate,
            rate_limit_entries: args.rate_limit_entries,
            metrics_public: args.metrics_public,
            insecure_http: args.insecure_http,
            oidc: args
                .oidc_issuer
                .zip(args.oidc_audience)
                .map(|(issuer, audience)| OidcConfig {
                    issuer,
                    audience,
                    roles_claim: args.oidc_roles_claim,
                }),
        };
        daemon::run(config).await.map_err(daemon_err)?;
        Ok(EXIT_OK)
    }

    /// `lifeboat token hash`: the token from stdin, its file line on stdout.
    pub fn token(&self, action: TokenAction) -> Result<i32> {
        let TokenAction::Hash { roles, subject } = action;
        let mut token = String::new();
        std::io::stdin()
            .lock()
            .take(auth::MAX_TOKEN_LEN as u64 + 1)
            .read_line(&mut token)
            .map_err(|e| CliError::Failed(format!("cannot read the token on standard input: {e}")))?;
        let line = auth::token_line(&roles, &subject, &token).map_err(|why| {
            CliError::BadInput(format!(
                "{why} — pipe a random token of 16+ characters, e.g. `openssl rand -hex 32`"
            ))
        })?;
        if self.json {
            output::json(&serde_json::json!({ "line": line }));
        } else {
            say!("{line}");
        }
        Ok(EXIT_OK)
    }

    pub async fn status(&self, args: StatusArgs) -> Result<i32> {
        let token = match (&args.token_file, &args.token_command) {
            (Some(path), _) => Some(client::read_token(path)),
            (None, Some(cmd)) => Some(client::token_from_command(cmd)),
            (None, None) => None,
        };
        let opts = client::ClientOptions {
            token: token.transpose().map_err(daemon_err)?,
            ca_cert: args.ca_cert,
            identity: args.client_cert.zip(args.client_key),
        };
        let st = client::fetch_status(&args.daemon, &opts).await.map_err(daemon_err)?;
        if self.json {
            output::json(&st);
        } else {
            print_status(&st);
        }
        let troubled = !st.violations.is_empty() || !st.plan_errors.is_empty();
        Ok(if troubled { EXIT_DEGRADED } else { EXIT_OK })
    }
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or("never".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

fn print_dataset(d: &DatasetView) {
    let state = if d.running { ", running" } else { "" };
    say!(
        "  {} [{}] rpo {}s{state}: last {}, next {}",
        d.dataset,
        d.schedule,
        d.rpo_seconds,
        when(d.last_run),
        when(d.next_run)
    );
    if let Some(a) = d.anomaly.as_ref().filter(|a| a.suspect) {
        say!(
            "  !! snapshot {} suspect: {} (score {:.1}) — see `lifeboat anomalies`",
            &a.snapshot[..a.snapshot.len().min(8)],
            a.signal,
            a.score
        );
    }
    for r in &d.regions {
        let mark = if r.lagging || !r.within_rpo { "!!" } else { "ok" };
        let age = r.age_seconds.map_or("no snapshot".into(), |a| format!("{a}s old"));
        let err = r.last_error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default();
        say!("    {mark} {}: {age}{err}", r.region);
    }
}

fn print_status(st: &StatusView) {
    say!(
        "lifeboat daemon {} since {}, {} job(s) running{}",
        st.version,
        when(Some(st.started)),
        st.running_jobs,
        if st.stopping { ", stopping" } else { "" }
    );
    for p in &st.plans {
        let stale = if p.stale {
            " — STALE: the file is invalid, its last valid version is running"
        } else {
            ""
        };
        say!("plan {} ({}){stale}", p.name, p.file);
        p.datasets.iter().for_each(print_dataset);
    }
    for e in &st.plan_errors {
        let kept = if e.previous_kept {
            "; the previous version keeps running"
        } else {
            ""
        };
        say!("refused plan {}{kept}:", e.file);
        e.errors.iter().for_each(|line| say!("  {line}"));
    }
    match (st.violations.is_empty(), st.plan_errors.len()) {
        (true, 0) => say!("all objectives met"),
        (true, n) => say!("objectives met, but {n} plan file(s) refused — fix them (listed above)"),
        _ => {}
    }
    st.violations.iter().for_each(|v| say!("violation: {v}"));
}
