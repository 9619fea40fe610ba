//! `lifeboat daemon` and `lifeboat status`: arguments, one call into `daemon`, rendering.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::CliError;
use super::commands::{Ctx, Result, bad};
use super::output::{self, say};
use super::plan_commands::EXIT_DEGRADED;
use crate::daemon::logging::{self, LogFormat};
use crate::daemon::view::{DatasetView, StatusView};
use crate::daemon::{self, DaemonConfig, DaemonError, client};
use crate::plan::units::parse_duration;

#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// Directory of plan files (`*.toml`), reloaded on SIGHUP and when they change.
    #[arg(long, value_name = "DIR")]
    pub plans: PathBuf,
    /// Directory for the daemon's local state (a cache rebuilt from the repositories).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:7600", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// API tokens, one `viewer TOKEN` or `operator TOKEN` per line.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Serve the API over TLS 1.3 with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Jobs running at once, over all plans.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub max_jobs: usize,
    /// How long running jobs may take to finish after SIGTERM or SIGINT.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub shutdown_grace: String,
    /// Backups the API may trigger per minute (bursts of up to 5).
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub trigger_rate: u32,
    /// Log lines for people (`human`) or collectors (`json`).
    #[arg(long, default_value = "human", value_name = "human|json")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// The daemon's API address.
    #[arg(
        long,
        env = "LIFEBOAT_DAEMON",
        default_value = "http://127.0.0.1:7600",
        value_name = "URL"
    )]
    pub daemon: String,
    /// A file holding a viewer or operator token.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust this PEM certificate for an https:// daemon (e.g. a self-signed one).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

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
            max_jobs: args.max_jobs,
            shutdown_grace: parse_duration(&args.shutdown_grace).map_err(bad)?,
            reload_poll: std::time::Duration::from_secs(2),
            trigger_rate_per_minute: args.trigger_rate,
            trigger_burst: 5,
        };
        daemon::run(config).await.map_err(daemon_err)?;
        Ok(0)
    }

    pub async fn status(&self, args: StatusArgs) -> Result<i32> {
        let token = match &args.token_file {
            Some(path) => Some(client::read_token(path).map_err(daemon_err)?),
            None => None,
        };
        let st = client::fetch_status(&args.daemon, token.as_deref(), args.ca_cert.as_deref())
            .await
            .map_err(daemon_err)?;
        if self.json {
            output::json(&st);
        } else {
            print_status(&st);
        }
        let troubled = !st.violations.is_empty() || !st.plan_errors.is_empty();
        Ok(if troubled { EXIT_DEGRADED } else { 0 })
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
        say!("plan {} ({})", p.name, p.file);
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
    if st.violations.is_empty() {
        say!("all objectives met");
    }
    st.violations.iter().for_each(|v| say!("violation: {v}"));
}
