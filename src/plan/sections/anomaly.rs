//! A dataset's `anomaly` key: `"off"`, or `{ sensitivity = "...", min_history = N }`.
//!
//! Detection is on by default with the medium sensitivity, since a dataset nobody
//! thought to configure is the one ransomware finds unwatched; `"off"` is for data
//! whose churn is meant to look like an attack (a scratch area of encrypted exports).

use super::Ctx;
use crate::format::anomaly::{Policy, Sensitivity};
use crate::plan::reader::Fields;

const KEYS: [&str; 2] = ["sensitivity", "min_history"];
const EXAMPLE: &str = "{ sensitivity = \"medium\", min_history = 10 }";
/// Fewer earlier runs than this give a median of noise.
const LEAST_HISTORY: u32 = 3;
/// The baseline holds at most the last `WINDOW` runs, so more history cannot be had.
const MOST_HISTORY: u32 = crate::format::anomaly::WINDOW as u32;

/// The dataset's policy: `Some(default)` when absent, `None` when `"off"` (or invalid,
/// which is reported).
pub fn of_dataset(dataset: &Fields, ctx: &mut Ctx) -> Option<Policy> {
    let Some(value) = dataset.get("anomaly") else {
        return Some(Policy::default());
    };
    if let Some(word) = value.get_ref().as_str() {
        if word != "off" {
            ctx.diags.error(
                &value.span(),
                format!("`anomaly` in {} is \"{word}\"", dataset.context()),
                format!("write `anomaly = \"off\"` or `anomaly = {EXAMPLE}`"),
            );
        }
        return None;
    }
    let (table, span) = dataset.table("anomaly", EXAMPLE, ctx.diags)?;
    let context = format!("`anomaly` in {}", dataset.context());
    let fields = Fields::new(table, span, context, &KEYS, ctx.diags);
    let threshold = sensitivity(&fields, ctx);
    let min_history = min_history(&fields, ctx);
    Some(Policy {
        threshold: threshold?,
        min_history: min_history?,
    })
}

fn sensitivity(fields: &Fields, ctx: &mut Ctx) -> Option<f64> {
    let Some(word) = fields.string("sensitivity", "\"medium\"", ctx.diags) else {
        return fields.get("sensitivity").is_none().then(|| Policy::default().threshold);
    };
    match Sensitivity::parse(&word.value) {
        Some(s) => Some(s.threshold()),
        None => {
            ctx.diags.error(
                &word.span,
                format!("`sensitivity` in {} is \"{}\"", fields.context(), word.value),
                "write \"low\", \"medium\" or \"high\" (high alerts on smaller departures from the usual)",
            );
            None
        }
    }
}

fn min_history(fields: &Fields, ctx: &mut Ctx) -> Option<usize> {
    let Some(n) = fields.count("min_history", "10", ctx.diags) else {
        return fields
            .get("min_history")
            .is_none()
            .then(|| Policy::default().min_history);
    };
    if !(LEAST_HISTORY..=MOST_HISTORY).contains(&n.value) {
        ctx.diags.error(
            &n.span,
            format!("`min_history` in {} is {}", fields.context(), n.value),
            format!(
                "use {LEAST_HISTORY} to {MOST_HISTORY} earlier backups (the baseline holds the last {MOST_HISTORY})"
            ),
        );
        return None;
    }
    Some(n.value as usize)
}
