//! What a probe step keeps about its baseline in the report: the answer recorded, or
//! the report compared with and every difference found (docs/drills.md, "Model drift").
//! Kept apart from the search and comparison (`baseline`) so reports can carry these
//! types without depending on how baselines are found.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest value text shown in a difference.
const MAX_SHOWN: usize = 120;

/// What a probe step did with its baseline, kept in the step's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineNote {
    /// What the probe asked (method, URL path, body): a baseline answers only that.
    pub request: String,
    pub action: BaselineAction,
    /// When recorded: the answer, the baseline from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// When compared: the report holding the baseline, and when that run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<DateTime<Utc>>,
    /// When compared: how the answer differs from the baseline (empty: no drift).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Difference>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineAction {
    Recorded,
    Compared,
}

/// One place where an answer differs from its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// A JSON path (`$.choices[0].score`), or `body` for a body that is not JSON.
    pub path: String,
    /// The baseline's value; `None` when the baseline has none there.
    pub baseline: Option<Value>,
    /// The answer's value; `None` when the answer has none there.
    pub answer: Option<Value>,
    /// The tolerance of this path, when the plan gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |v: &Option<Value>| v.as_ref().map_or("missing".to_string(), show);
        write!(
            f,
            "{} is {}, baseline {}",
            self.path,
            shown(&self.answer),
            shown(&self.baseline)
        )?;
        match (self.tolerance, numbers(&self.baseline, &self.answer)) {
            (Some(t), Some((a, b))) => write!(f, " (differs by {}, tolerance {t})", (a - b).abs()),
            (Some(t), None) => write!(f, " (not two numbers, tolerance {t})"),
            _ => Ok(()),
        }
    }
}

fn numbers(a: &Option<Value>, b: &Option<Value>) -> Option<(f64, f64)> {
    Some((a.as_ref()?.as_f64()?, b.as_ref()?.as_f64()?))
}

fn show(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= MAX_SHOWN {
        return text;
    }
    let cut: String = text.chars().take(MAX_SHOWN).collect();
    format!("{cut}…")
}
