//! Fault injection: storage failures, torn writes and flipped bytes during real
//! operations; the only forbidden outcome is a repository that is inconsistent or
//! restores wrong data.

mod support;
