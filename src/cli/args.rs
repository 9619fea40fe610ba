//! Command-line arguments; the help text here is the first documentation users read.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::password::PasswordArgs;

#[derive(Debug, Parser)]
#[command(name = "lifeboat", version, about = "Backup and disaster recovery for AI platforms", long_about = None)]
pub struct Cli {
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(flatten)]
    pub password: PasswordArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the repository is: a path, file:///path, memory://name or s3://bucket/prefix?endpoint=URL&region=NAME.
#[derive(Debug, Clone, clap::Args)]
pub struct RepoArg {
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
        #[arg(long, default_value = "xchacha20-poly1305")]
        cipher: String,
        /// zstd level for compressible data (0 turns compression off).
        #[arg(long, default_value_t = 3)]
        compression: i32,
        /// Target pack size, e.g. 16MiB.
        #[arg(long, default_value = "16MiB")]
        pack_size: String,
    },
    /// Manage the passwords that open a repository.
    Key {
        #[command(subcommand)]
        action: KeyAction,
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
        /// Store data uncompressed (model weights do not compress).
        #[arg(long)]
        no_compression: bool,
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// List snapshots, oldest first.
    Snapshots {
        #[command(flatten)]
        repo: RepoArg,
        #[arg(long)]
        dataset: Option<String>,
    },
    /// List the files in a snapshot.
    Ls {
        #[command(flatten)]
        repo: RepoArg,
        /// Snapshot id (or unique prefix), or `latest`.
        snapshot: String,
    },
    /// Restore a snapshot into a directory, verifying every byte.
    Restore {
        #[command(flatten)]
        repo: RepoArg,
        /// Snapshot id (or unique prefix), or `latest`.
        snapshot: String,
        /// Directory to restore into (created if missing).
        #[arg(long)]
        target: PathBuf,
        /// Restore only paths matching these globs (relative to the snapshot root).
        #[arg(long = "include")]
        include: Vec<String>,
    },
    /// Verify the repository's structure and, optionally, its data.
    Check {
        #[command(flatten)]
        repo: RepoArg,
        /// Download and verify every pack.
        #[arg(long, conflicts_with = "read_data_subset")]
        read_data: bool,
        /// Download and verify this percentage of packs, chosen at random.
        #[arg(long, value_name = "PCT")]
        read_data_subset: Option<f64>,
    },
    /// Remove stale locks left by killed processes.
    Unlock {
        #[command(flatten)]
        repo: RepoArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Add a password; the new one comes from LIFEBOAT_NEW_PASSWORD or --new-password-file.
    Add {
        #[command(flatten)]
        repo: RepoArg,
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
        id: String,
    },
}
