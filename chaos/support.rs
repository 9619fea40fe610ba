//! Shared helpers for the fault scenarios.
