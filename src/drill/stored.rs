//! Reading back the drill and failover reports stored in a plan's regions.
//!
//! Report objects come from storage, so anyone with write access to one region can
//! replace one with garbage, a truncation, a huge file, JSON with absurd values, huge
//! strings or deep nesting, or add an object whose name no report has. Each such object
//! is passed over with one line naming its region, object and reason, and every other
//! report is still listed: one bad object never hides the rest, and a region that
//! cannot be opened hides only its own. Objects are read within the bound of one sealed
//! value, JSON within `serde_json`'s nesting limit, and a report is accepted only when
//! its name is the one its own fields give and its text fields are of a sane length.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::report::{Outcome, Report};
use super::{Mode, Result};
use crate::apply::reports;
use crate::apply::session::Session;
use crate::format::names::RegionName;

/// Longest text field of a listed report (plan path, playbook name).
const MAX_FIELD: usize = 4096;

/// What the listing shows of one stored report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredReport {
    pub region: String,
    /// The object name under `reports/`.
    pub name: String,
    pub playbook: String,
    pub mode: Mode,
    pub plan: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub outcome: Outcome,
    pub rto_ms: Option<u64>,
}

/// An object under `reports/` passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedReport {
    pub region: String,
    /// `reports/<name>`, the name quoted and escaped when it is no report name.
    pub object: String,
    pub reason: String,
}

impl std::fmt::Display for SkippedReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "region {}: {}: {}", self.region, self.object, self.reason)
    }
}

/// The reports of a plan's regions, and what was passed over.
#[derive(Debug, Default, Serialize)]
pub struct Stored {
    /// Oldest first within each region, regions in plan order.
    pub reports: Vec<StoredReport>,
    pub skipped: Vec<SkippedReport>,
    /// One line per region that could not be read.
    pub unreachable: Vec<String>,
}

/// The reports stored in `regions` of `plan` (every region when empty).
pub async fn stored_reports(session: &Session<'_>, regions: &[RegionName]) -> Result<Stored> {
    let plan = session.plan();
    let mut out = Stored::default();
    let chosen: Vec<&RegionName> = match regions {
        [] => plan.regions.keys().collect(),
        some => some.iter().collect(),
    };
    for region in chosen {
        let listing = match reports::list(session, region).await {
            Ok(l) => l,
            Err(e) => {
                out.unreachable.push(crate::apply::secrets::redact(&e.to_string()));
                continue;
            }
        };
        let skip = |object: String, reason: String| SkippedReport {
            region: region.to_string(),
            object,
            reason,
        };
        for stranger in listing.strangers {
            out.skipped.push(skip(stranger, "not a report name".into()));
        }
        for name in listing.names.iter().filter(|n| n.ends_with(".json")) {
            match read_one(session, region, name).await {
                Ok(report) => out.reports.push(report),
                Err(why) => out.skipped.push(skip(format!("reports/{name}"), why)),
            }
        }
    }
    Ok(out)
}

async fn read_one(session: &Session<'_>, region: &RegionName, name: &str) -> std::result::Result<StoredReport, String> {
    let bytes = reports::load(session, region, name).await.map_err(|e| e.to_string())?;
    let report: Report = serde_json::from_slice(&bytes).map_err(|e| format!("not a report: {e}"))?;
    summary(region, name, report)
}

/// The listed part of `report`, refused unless it is one Lifeboat could have written
/// under `name`.
fn summary(region: &RegionName, name: &str, report: Report) -> std::result::Result<StoredReport, String> {
    for (field, value) in [("plan", &report.plan), ("playbook", &report.playbook)] {
        if value.len() > MAX_FIELD {
            return Err(format!(
                "its {field} is {} bytes long, more than any plan has",
                value.len()
            ));
        }
    }
    let own = format!("{}.json", report.base_name());
    if own != name {
        return Err(format!("its fields name it {own:?}, not this"));
    }
    Ok(StoredReport {
        region: region.to_string(),
        name: name.to_string(),
        playbook: report.playbook,
        mode: report.mode,
        plan: report.plan,
        started: report.started,
        finished: report.finished,
        outcome: report.outcome,
        rto_ms: report.rto.measured_ms,
    })
}
