//! Command-line arguments; the help text here is the first documentation users read.
//!
//! Every argument struct lives here, and every value is parsed here (clap value enums
//! and value parsers), so a command function receives typed values and a malformed one
//! is a usage error (exit 2) before anything is opened.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser, Subcommand};

use crate::daemon::logging::LogFormat;
use crate::format::crypto::Cipher;
use crate::plan::units::{UnitError, parse_duration, parse_size};

#[derive(Debug, Parser)]
#[command(name = "lifeboat", version, about = "Backup and disaster recovery for AI platforms", long_about = None)]
pub struct Cli {
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Log what happens on stderr, with the full cause of storage and network errors
    /// (RUST_LOG, when set, chooses the level instead).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(flatten)]
    pub password: PasswordArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The repository a command works on.
#[derive(Debug, Clone, clap::Args)]
pub struct RepoArg {
    /// Where the repository is: a path, file:///path, memory://name or
    /// s3://bucket/prefix?endpoint=URL&region=NAME.
    #[arg(long, short = 'r', env = "LIFEBOAT_REPO", value_name = "URL")]
    pub repo: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a repository.
    Init {
        #[command(flatten)]
        repo: RepoArg,
        /// Cipher for all data: xchacha20-poly1305 (default) or aes-256-gcm.
        #[arg(long, value_enum, default_value = "xchacha20-poly1305", hide_possible_values = true)]
        cipher: CipherArg,
        /// zstd level for compressible data (0 turns compression off; default 1, see docs/decisions/0013).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(0..=19))]
        compression: i32,
        /// Target pack size, e.g. 16MiB.
        #[arg(long, default_value = "16MiB", value_parser = pack_size)]
        pack_size: u32,
    },
    /// Manage the passwords that open a repository.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Manage the keys that sign snapshot manifests.
    SigningKey {
        #[command(subcommand)]
        action: SigningKeyAction,
    },
    /// Signed snapshot manifests: export a model folder's signature.
    Manifest {
        #[command(subcommand)]
        action: ManifestAction,
    },
    /// Back up files and directories into a new snapshot.
    Backup {
        #[command(flatten)]
        repo: RepoArg,
        /// Tag the snapshot (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Leave out matching files: a name glob (`*.tmp`) or a path glob (`cache/**`).
        #[arg(long = "exclude")]
        excludes: Vec<String>,
        /// Record the snapshot under this dataset name.
        #[arg(long)]
        dataset: Option<String>,
        /// Host name to record instead of this machine's.
        #[arg(long)]
        host: Option<String>,
        /// Read every file even when the previous snapshot shows it unchanged.
        #[arg(long)]
        force: bool,
        /// Store data uncompressed (by default it is compressed when that saves space; float tensors of safetensors and GGUF checkpoints as byte planes).
        #[arg(long)]
        no_compression: bool,
        /// Files and directories to back up.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// List snapshots, oldest first.
    Snapshots {
        #[command(flatten)]
        repo: RepoArg,
        /// Only snapshots of this dataset.
        #[arg(long)]
        dataset: Option<String>,
        /// Check each snapshot's signature against this public key (PEM; repeatable);
        /// without it, only whether a snapshot is signed and by whom it claims is shown.
        #[arg(long = "trusted", value_name = "KEY.pub")]
        trusted: Vec<PathBuf>,
    },
    /// List the files in a snapshot.
    Ls {
        #[command(flatten)]
        repo: RepoArg,
        /// Snapshot id (or unique prefix), or `latest`.
        snapshot: String,
    },
    /// Restore a snapshot into a directory, verifying every byte.
    ///
    /// Either from one repository (`--repo URL SNAPSHOT`) or by plan
    /// (`--plan P --dataset D [--region R] [--snapshot S]`), which picks a reachable
    /// region holding the newest snapshot unless told otherwise.
    Restore {
        /// The repository to restore from (a path or URL, as for every repository command).
        #[arg(
            long,
            short = 'r',
            env = "LIFEBOAT_REPO",
            value_name = "URL",
            conflicts_with = "plan"
        )]
        repo: Option<String>,
        /// Snapshot id (or unique prefix), or `latest`.
        #[arg(value_name = "SNAPSHOT")]
        snapshot_arg: Option<String>,
        /// Restore by plan: the plan whose regions hold the dataset.
        #[arg(long, value_name = "PLAN.toml", requires = "dataset")]
        plan: Option<PathBuf>,
        /// With --plan: the dataset to restore.
        #[arg(long, requires = "plan")]
        dataset: Option<String>,
        /// With --plan: restore from this region only.
        #[arg(long, requires = "plan")]
        region: Option<String>,
        /// With --plan: this snapshot (id, unique prefix or `latest`) instead of the newest.
        #[arg(long, requires = "plan")]
        snapshot: Option<String>,
        /// Directory to restore into (created if missing); it must be empty unless --overwrite.
        #[arg(long)]
        target: PathBuf,
        /// Restore only paths matching these globs (relative to the snapshot root).
        #[arg(long = "include")]
        include: Vec<String>,
        /// Restore into a non-empty target, replacing the entries the snapshot holds
        /// (a symlink or file in the way is removed, never followed); others are kept.
        #[arg(long)]
        overwrite: bool,
        /// With --plan: restore a signed dataset's snapshot even when its signature is
        /// missing, untrusted or does not match (the verdict is still reported).
        #[arg(long, requires = "plan")]
        allow_unsigned: bool,
        /// Make the target exactly the snapshot: restore into it (as --overwrite), then
        /// remove every entry the snapshot does not hold. Symlinks in the target are
        /// removed, never followed; nothing outside the target is touched.
        #[arg(long, conflicts_with = "include")]
        delete: bool,
        /// With --delete: restore nothing, only list what would be removed.
        #[arg(long, requires = "delete")]
        dry_run: bool,
        /// With --repo: require a manifest signed by one of these public keys (PEM;
        /// repeatable), checked before anything is written; restored files are then
        /// compared with its digests.
        #[arg(long = "trusted", value_name = "KEY.pub", conflicts_with = "plan")]
        trusted: Vec<PathBuf>,
    },
    /// Verify the repository's structure and, optionally, its data.
    Check {
        #[command(flatten)]
        repo: RepoArg,
        /// Download and verify every pack.
        #[arg(long, conflicts_with = "read_data_subset")]
        read_data: bool,
        /// Download and verify this percentage of packs, chosen at random.
        #[arg(long, value_name = "PCT", value_parser = percentage)]
        read_data_subset: Option<f64>,
    },
    /// Remove snapshots by retention policy (grouped by dataset, host and paths).
    Forget {
        #[command(flatten)]
        repo: RepoArg,
        /// Keep the newest N snapshots of each group.
        #[arg(long, default_value_t = 0, value_name = "N")]
        keep_last: u32,
        /// Keep the newest snapshot of each of the last N hours that have one.
        #[arg(long, default_value_t = 0, value_name = "N")]
        keep_hourly: u32,
        /// Keep the newest snapshot of each of the last N days that have one.
        #[arg(long, default_value_t = 0, value_name = "N")]
        keep_daily: u32,
        /// Keep the newest snapshot of each of the last N weeks that have one.
        #[arg(long, default_value_t = 0, value_name = "N")]
        keep_weekly: u32,
        /// Keep the newest snapshot of each of the last N months that have one.
        #[arg(long, default_value_t = 0, value_name = "N")]
        keep_monthly: u32,
        /// Keep the newest snapshot of each of the last N years that have one.
        #[arg(long, default_value_t = 0, value_name = "N")]
        keep_yearly: u32,
        /// Keep everything younger than this (relative to the newest snapshot), e.g. 7d.
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        keep_within: Option<Duration>,
        /// Keep every snapshot with this tag (repeatable).
        #[arg(long = "keep-tag")]
        keep_tags: Vec<String>,
        /// Only consider snapshots of this dataset.
        #[arg(long)]
        dataset: Option<String>,
        /// Only consider snapshots with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// List what would be kept and removed, and why; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Prune right after forgetting.
        #[arg(long)]
        prune: bool,
    },
    /// Delete data no snapshot uses; safe while backups run.
    Prune {
        #[command(flatten)]
        repo: RepoArg,
        /// Repack packs with more than this percentage of unused bytes.
        #[arg(long, default_value_t = 20.0, value_parser = percentage)]
        max_unused: f64,
        /// Wait at least this long between taking data out of the index and deleting it.
        #[arg(long, default_value = "0s", value_parser = duration)]
        grace: Duration,
        /// Report what would be deleted and repacked; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check plan files and report every problem at once.
    Validate {
        /// A plan file, or a directory whose `*.toml` files are all checked.
        #[arg(value_name = "PLAN.toml|DIR")]
        path: PathBuf,
    },
    /// Show what a plan would do now: due backups, lagging regions, RPO violations.
    Plan {
        /// The plan file.
        #[arg(value_name = "PLAN.toml")]
        path: PathBuf,
    },
    /// Do a plan's due work now: back up, apply retention, prune.
    Apply {
        /// The plan file.
        #[arg(value_name = "PLAN.toml")]
        path: PathBuf,
        /// Only this dataset.
        #[arg(long)]
        dataset: Option<String>,
        /// Back up even datasets that are not due.
        #[arg(long)]
        force: bool,
    },
    /// Test-restore each dataset's latest snapshot from each region and compare every byte.
    ///
    /// By plan (`--plan P`), or one repository without a plan (`--repo R --trusted
    /// KEY.pub`): every snapshot's signature is checked against the given keys, then each
    /// dataset's newest accepted snapshot is test-restored.
    #[command(group(ArgGroup::new("source").required(true).args(["plan", "repo"])))]
    Verify {
        /// The plan whose datasets and regions are verified.
        #[arg(long, value_name = "PLAN.toml")]
        plan: Option<PathBuf>,
        /// Instead, this one repository (a path or URL, as for every repository command).
        #[arg(long, short = 'r', value_name = "URL", conflicts_with = "plan")]
        repo: Option<String>,
        /// With --repo: require every snapshot's manifest to be signed by one of these
        /// public keys (PEM; repeatable); without any, signatures are only listed.
        #[arg(long = "trusted", value_name = "KEY.pub", requires = "repo")]
        trusted: Vec<PathBuf>,
        /// Only this dataset.
        #[arg(long)]
        dataset: Option<String>,
        /// With --plan: only this region.
        #[arg(long, requires = "plan")]
        region: Option<String>,
        /// Share of files to restore, in (0, 1]; overrides the plan's policy.
        #[arg(long)]
        sample: Option<f64>,
        /// Verify a signed dataset's snapshot (with --repo: any snapshot) even when its
        /// signature is missing, untrusted or does not match (the verdict is still reported).
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// Bring lagging regions of a plan up to date, copying packs byte for byte.
    Sync {
        /// The plan whose regions are brought level.
        #[arg(long, value_name = "PLAN.toml")]
        plan: PathBuf,
        /// Only this dataset's snapshots.
        #[arg(long)]
        dataset: Option<String>,
    },
    /// Copy snapshots to a repository with a different key (re-encrypts).
    Copy {
        #[command(flatten)]
        repo: RepoArg,
        /// Destination repository; its password comes from LIFEBOAT_TO_PASSWORD or --to-password-file.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Read the destination's password from this file (first line).
        #[arg(long, value_name = "FILE")]
        to_password_file: Option<PathBuf>,
        /// Re-sign the copies of signed snapshots with this plan's [signing] key, after
        /// checking their signatures against its trusted keys; without it, copies carry
        /// the original signature over.
        #[arg(long, value_name = "PLAN.toml")]
        plan: Option<PathBuf>,
        /// Snapshot ids (or prefixes) to copy; all when none.
        snapshots: Vec<String>,
    },
    /// Keep every plan's objectives met: run due backups, reload plans, serve an API.
    Daemon(DaemonArgs),
    /// API tokens for the daemon's `--tokens` file.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Show a running daemon's status: plans, datasets, regions, violations.
    Status(StatusArgs),
    /// Rehearse a playbook for real against the standby: restore, bring up, probe,
    /// re-point (then back to the primary, or only the drill route), and report.
    Drill {
        /// The plan holding the playbook.
        #[arg(long, value_name = "PLAN.toml")]
        plan: PathBuf,
        /// Where reports are kept (also stored in every region under `reports/`).
        #[arg(long, value_name = "DIR", default_value = "./.lifeboat-state")]
        state: PathBuf,
        /// The playbook to rehearse (a `[playbooks.NAME]` of the plan).
        #[arg(value_name = "PLAYBOOK")]
        playbook: String,
        /// Record the answers of probes with `record_baseline = true` as their new
        /// baselines instead of comparing them with the recorded ones.
        #[arg(long)]
        record_baseline: bool,
    },
    /// List the plan's suspect snapshots (backups that changed unlike their dataset's
    /// history, as ransomware does); `ack ID` closes one.
    Anomalies {
        /// The plan whose regions hold the snapshots.
        #[arg(long, value_name = "PLAN.toml", global = true)]
        plan: Option<PathBuf>,
        /// Only this dataset.
        #[arg(long, value_name = "NAME")]
        dataset: Option<String>,
        #[command(subcommand)]
        action: Option<AnomalyAction>,
    },
    /// List the drill and failover reports stored in the plan's regions.
    Reports {
        /// The plan whose regions hold the reports.
        #[arg(long, value_name = "PLAN.toml")]
        plan: PathBuf,
        /// Only this region (repeatable); all of the plan's by default.
        #[arg(long, value_name = "REGION")]
        region: Vec<String>,
    },
    /// Fail over to the standby for real: `--dry-run` shows every action, `--confirm`
    /// does them and leaves traffic on the standby when all steps pass.
    #[command(group(ArgGroup::new("mode").required(true).args(["dry_run", "confirm"])))]
    Failover {
        /// The plan holding the playbook.
        #[arg(long, value_name = "PLAN.toml")]
        plan: PathBuf,
        /// Where reports are kept (also stored in every region under `reports/`).
        #[arg(long, value_name = "DIR", default_value = "./.lifeboat-state")]
        state: PathBuf,
        /// Print what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Really move traffic.
        #[arg(long)]
        confirm: bool,
        /// The playbook to run (a `[playbooks.NAME]` of the plan).
        #[arg(value_name = "PLAYBOOK")]
        playbook: String,
    },
    /// Remove stale locks left by killed processes.
    Unlock {
        #[command(flatten)]
        repo: RepoArg,
    },
    /// Put a repository's metadata right from what its packs hold.
    Repair {
        #[command(subcommand)]
        what: RepairWhat,
    },
    /// The audit trail: who did what to the repository, and whether it still agrees.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Print a shell completion script: `source <(lifeboat completions bash)`.
    Completions {
        /// The shell to complete for.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of lifeboat, or of one command: `lifeboat man | man -l -`.
    Man {
        /// A command to show the page of, e.g. `backup` or `repair index`.
        #[arg(value_name = "COMMAND")]
        command: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RepairWhat {
    /// Rebuild the index from pack headers: replaces damaged index objects, indexes
    /// packs an interrupted backup left unindexed, drops packs gone from storage.
    Index {
        #[command(flatten)]
        repo: RepoArg,
        /// Read the header of every pack, not only of packs no index describes.
        #[arg(long)]
        read_all_packs: bool,
        /// Report what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyAction {
    /// Make an ECDSA P-256 key pair: FILE (private, PKCS#8 PEM, mode 0600) and
    /// FILE.pub (public, PEM); the public key is also printed.
    Generate {
        /// Where to write the private key; never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ManifestAction {
    /// Write the OpenSSF model signature of one model folder of a snapshot, for
    /// `model_signing verify key --signature FILE --public_key KEY.pub DIR` after a restore.
    Export {
        /// The repository holding the snapshot.
        #[arg(
            long,
            short = 'r',
            env = "LIFEBOAT_REPO",
            value_name = "URL",
            conflicts_with = "plan"
        )]
        repo: Option<String>,
        /// Snapshot id (or unique prefix), or `latest`.
        #[arg(value_name = "SNAPSHOT")]
        snapshot_arg: Option<String>,
        /// By plan: the plan whose regions hold the dataset; the signature is checked
        /// against its trusted keys first.
        #[arg(long, value_name = "PLAN.toml", requires = "dataset")]
        plan: Option<PathBuf>,
        /// With --plan: the model dataset.
        #[arg(long, requires = "plan")]
        dataset: Option<String>,
        /// With --plan: this snapshot instead of the newest.
        #[arg(long, requires = "plan")]
        snapshot: Option<String>,
        /// The model folder: the name of one of the dataset's source folders, as it
        /// appears at the snapshot's root.
        #[arg(long, value_name = "P")]
        path: String,
        /// Where to write the signature bundle (JSON).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AnomalyAction {
    /// Close the anomaly of a suspect snapshot (its id or a unique prefix): recorded in
    /// every region's audit trail with who did it; its pinned snapshot is then released
    /// to retention.
    Ack {
        /// The suspect snapshot's id, as `lifeboat anomalies` lists it.
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// List the trail's events, oldest first (with --json: the trail and its problems).
    Log {
        #[command(flatten)]
        source: AuditSource,
    },
    /// Check the trail is whole (nothing missing, altered, reordered or rolled back)
    /// and agrees with the snapshots; exit 3 naming the first problem.
    Verify {
        #[command(flatten)]
        source: AuditSource,
    },
    /// Write every event as one JSON object per line, for a SIEM.
    Export {
        #[command(flatten)]
        source: AuditSource,
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Whose trail an `audit` command reads: one repository's, or every region's of a plan.
#[derive(Debug, Clone, clap::Args)]
#[command(group(ArgGroup::new("source").required(true).args(["repo", "plan"])))]
pub struct AuditSource {
    /// Where the repository is: a path, file:///path, memory://name or
    /// s3://bucket/prefix?endpoint=URL&region=NAME.
    #[arg(
        long,
        short = 'r',
        env = "LIFEBOAT_REPO",
        value_name = "URL",
        conflicts_with = "plan"
    )]
    pub repo: Option<String>,
    /// Instead, every region of this plan: each region's trail, merged by time, and
    /// checked against the copies the other regions keep of it.
    #[arg(long, value_name = "PLAN.toml")]
    pub plan: Option<PathBuf>,
    /// With --plan: only this region (repeatable); all of the plan's by default.
    #[arg(long, value_name = "REGION", requires = "plan")]
    pub region: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Read a token on standard input and print its line for the daemon's token file
    /// (`ROLES SUBJECT sha256:HASH`): the file keeps the hash, never the token.
    Hash {
        /// Roles, comma-separated, each optionally scoped to a plan: `viewer`,
        /// `operator:ml-platform`, `admin`.
        #[arg(long, value_name = "ROLES")]
        roles: String,
        /// Who holds the token, as access logs and audit events will name them.
        #[arg(long, value_name = "NAME")]
        subject: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Add a password; the new one comes from LIFEBOAT_NEW_PASSWORD or --new-password-file.
    Add {
        #[command(flatten)]
        repo: RepoArg,
        /// Read the new password from this file (first line).
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
        /// A note to tell keys apart.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List the keys.
    List {
        #[command(flatten)]
        repo: RepoArg,
    },
    /// Remove a key by id (or unique prefix); the key in use cannot be removed.
    Remove {
        #[command(flatten)]
        repo: RepoArg,
        /// The key's id or a unique prefix of it (see `lifeboat key list`).
        id: String,
    },
}

/// The password sources a command accepts (`password.rs` resolves them).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PasswordArgs {
    /// Read the repository password from this file (first line).
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use its first output line as the password.
    #[arg(long, global = true, value_name = "CMD")]
    pub password_command: Option<String>,
}

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
    /// API tokens, one `ROLES SUBJECT sha256:HASH` line each (`lifeboat token hash`);
    /// reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Serve the API over TLS 1.3 with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates issued by this PEM CA (mutual TLS); needs --tls-cert
    /// and --tls-client-roles. Reloaded on SIGHUP.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_client_roles"])]
    pub tls_client_ca: Option<PathBuf>,
    /// Roles of client certificates, one `ROLES CN=NAME` line each (e.g.
    /// `operator:ml,viewer CN=backup-bot`); unlisted names get no role. Reloaded on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_client_ca")]
    pub tls_client_roles: Option<PathBuf>,
    /// Jobs running at once, over all plans.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub max_jobs: usize,
    /// How long running jobs may take to finish after SIGTERM or SIGINT.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// Backups, verifications and drills each API subject may start per minute
    /// (bursts of up to 5).
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub trigger_rate: u32,
    /// API requests per minute from one client address, checked before authentication
    /// (bursts of a tenth of it).
    #[arg(long, default_value_t = 1200, value_name = "N")]
    pub address_rate: u32,
    /// API requests per minute of one subject (bursts of a tenth of it).
    #[arg(long, default_value_t = 600, value_name = "N")]
    pub subject_rate: u32,
    /// Client addresses (and subjects) each rate-limit table remembers at most; the
    /// least recently seen is forgotten first.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub rate_limit_entries: usize,
    /// Serve `/metrics` without a token on a non-loopback address too.
    #[arg(long)]
    pub metrics_public: bool,
    /// Allow plain HTTP on a non-loopback address (e.g. behind a TLS proxy).
    #[arg(long)]
    pub insecure_http: bool,
    /// Also accept JWT bearer tokens from this OpenID Connect provider (its `iss`;
    /// keys from its discovery document).
    #[arg(long, value_name = "URL", requires = "oidc_audience")]
    pub oidc_issuer: Option<String>,
    /// The audience (`aud`) the provider's tokens must name for this daemon.
    #[arg(long, value_name = "AUD", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
    /// The token claim holding the caller's roles (`viewer`, `operator:PLAN`, ...).
    #[arg(long, value_name = "NAME", default_value = "lifeboat_roles")]
    pub oidc_roles_claim: String,
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
    /// A file holding an API token (its first line, or that line's last word).
    #[arg(long, value_name = "FILE", conflicts_with = "token_command")]
    pub token_file: Option<PathBuf>,
    /// A command (run with `sh -c`, with only PATH, HOME, USER and LANG in its
    /// environment) whose first line of output is the API token, e.g. one that prints a
    /// fresh access token.
    #[arg(long, value_name = "CMD")]
    pub token_command: Option<String>,
    /// Trust this PEM certificate for an https:// daemon (e.g. a self-signed one).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Present this PEM client certificate to a daemon that requires mutual TLS
    /// (needs --client-key).
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The PEM private key for --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

/// The ciphers `init` offers, spelled as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CipherArg {
    #[value(name = "xchacha20-poly1305")]
    XChaCha20Poly1305,
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
}

impl From<CipherArg> for Cipher {
    fn from(c: CipherArg) -> Cipher {
        match c {
            CipherArg::XChaCha20Poly1305 => Cipher::XChaCha20Poly1305,
            CipherArg::Aes256Gcm => Cipher::Aes256Gcm,
        }
    }
}

/// A duration such as `30s`, `6h` or `1h30m` (the plan's notation).
fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| format!("{e} — {}", UnitError::duration_hint()))
}

/// A pack size: a plain byte count, a size in the plan's notation (`16MiB`, `64MB`),
/// or the binary shorthands `K`, `M`, `G`; between 1 MiB and 1 GiB.
fn pack_size(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let bytes = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<u64>().map_err(|_| format!("{t:?} is too large"))?
    } else {
        let spelled = match t.strip_suffix(['K', 'M', 'G']) {
            Some(n) => format!("{n}{}iB", &t[n.len()..]),
            None => t.to_string(),
        };
        parse_size(&spelled).map_err(|e| format!("{e} — {}", UnitError::size_hint()))?
    };
    u32::try_from(bytes)
        .ok()
        .filter(|b| (1 << 20..=1 << 30).contains(b))
        .ok_or_else(|| format!("pack size {t:?} must be between 1MiB and 1GiB"))
}

/// A percentage between 0 and 100.
fn percentage(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=100.0).contains(p))
        .ok_or_else(|| format!("{text} is not a percentage between 0 and 100"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_size_reads_every_accepted_spelling() {
        assert_eq!(pack_size("16MiB"), Ok(16 << 20));
        assert_eq!(pack_size("1048576"), Ok(1 << 20));
        assert_eq!(pack_size("2M"), Ok(2 << 20));
        assert_eq!(pack_size("1G"), Ok(1 << 30));
        assert_eq!(pack_size("8MB"), Ok(8_000_000));
        assert!(pack_size("512KiB").unwrap_err().contains("between 1MiB and 1GiB"));
        assert!(pack_size("2GiB").unwrap_err().contains("between 1MiB and 1GiB"));
        assert!(pack_size("16 furlongs").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn percentages_and_durations_are_checked_when_parsed() {
        assert_eq!(percentage("12.5"), Ok(12.5));
        assert!(percentage("101").is_err());
        assert!(percentage("-1").is_err());
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(duration("soon").unwrap_err().contains("e.g."));
    }

    #[test]
    fn cipher_names_map_to_the_format_ciphers() {
        use clap::ValueEnum;
        for c in CipherArg::value_variants() {
            let name = c.to_possible_value().map(|v| v.get_name().to_string());
            assert_eq!(name.as_deref(), Some(Cipher::from(*c).name()));
        }
    }
}
