//! What layers above `apply` (the daemon) need from below it, re-exported here so
//! they depend on `apply` alone and never reach into the engine.

/// Live counters of a running backup, polled by the daemon's job list.
pub use crate::engine::Progress;

/// A reading of those counters with totals, rate and ETA, and how often to log one.
pub use crate::engine::progress::{ProgressReport, line_interval};
