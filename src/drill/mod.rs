//! Drills and failovers: run a playbook's steps, re-point endpoints, probe, report.
//!
//! A playbook is run by [`run::run_playbook`] in one of two modes. A *drill* does
//! everything for real (restore, bring-up, probes, re-points) and then puts every
//! re-pointed endpoint back on the primary, or re-points only the endpoint's drill route
//! when it has one. A *failover* leaves traffic on the standby when it succeeds. In both
//! modes a failing step undoes the re-points made so far, newest first, then runs the
//! playbook's own rollback steps. [`preview::preview`] describes what a run would do
//! without doing it. Every run ends in a [`report::Report`] (JSON and Markdown) kept in a
//! state folder and in the repositories.
//!
//! This module reaches repositories only through `apply` (restores, report uploads).

pub mod baseline;
pub mod drift;
pub mod endpoint;
pub mod preflight;
pub mod preview;
pub mod probe;
mod process;
pub mod report;
pub mod run;
pub mod runner;
pub mod stored;
mod template;

use crate::apply::ApplyError;

pub use report::{Outcome, Report, StepRecord};
pub use run::{RunOptions, run_playbook, run_playbook_in};

/// Drill or failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Rehearse: leave production traffic where it was afterwards.
    Drill,
    /// Move traffic to the standby for real, and keep it there on success.
    Failover,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Drill => "drill",
            Mode::Failover => "failover",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// The playbook or its settings cannot be run as asked.
    #[error("{0}")]
    BadInput(String),
    /// Saving the report failed (the run itself is described in it).
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A preflight check failed: the run stopped before changing anything.
    #[error("{message}")]
    Preflight {
        message: String,
        /// A missing secret, wrong password or plan mistake, rather than an outage.
        bad_input: bool,
        /// A snapshot the run relies on is not trusted.
        damage: bool,
    },
}

pub type Result<T> = std::result::Result<T, DrillError>;
