//! What layers above `apply` (the daemon) need from below it, re-exported here so
//! they depend on `apply` alone and never reach into the engine.

/// Live counters of a running backup, polled by the daemon's job list.
pub use crate::engine::Progress;

/// How often a running job's progress is logged (see `engine::progress`).
pub fn progress_interval() -> std::time::Duration {
    crate::engine::progress::line_interval()
}
