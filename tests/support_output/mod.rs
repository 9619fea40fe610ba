//! What a finished `lifeboat` run printed, as text, for assertions. `support_s3`
//! includes it (and re-exports it); other test files declare it beside `support_plan`.
#![allow(dead_code)]

use std::process::Output;

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Both streams, for assertion messages and "names the region" checks.
pub fn both(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// The exit code, -1 for a run ended by a signal.
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}
