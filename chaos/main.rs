//! Fault injection: storage failures, torn writes and flipped bytes during real
//! operations; the only forbidden outcome is a repository that is inconsistent or
//! restores wrong data.

mod outages;
mod put_faults;
mod read_faults;
mod support;
#[path = "../tests/support/mod.rs"]
mod tree;
