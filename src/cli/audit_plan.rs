//! `lifeboat audit log|verify|export --plan`: the trails of a plan's regions, merged by
//! time (or one region with `--region`), each checked against the copies the other
//! regions keep of it; lagging copies are caught up on the way (`apply::trails`).

use std::path::{Path, PathBuf};

use super::audit_commands::{ExportLine, event_line, memory_dir, write_lines};
use super::context::Ctx;
use super::error::{EXIT_DAMAGE, EXIT_DEGRADED, EXIT_OK, Result, bad};
use super::output::{self, note, say};
use crate::apply::session::Regions;
use crate::apply::signing::trusted_keys;
use crate::apply::trails::{CopyRow, PlanTrails, review_plan};
use crate::engine::audit::signed::SignedCheck;
use crate::format::audit::Event;
use crate::format::names::RegionName;

impl Ctx {
    /// Read, judge and cross-check the trails of the plan's regions `regions`.
    async fn plan_trails(&self, path: &Path, regions: &[String]) -> Result<PlanTrails> {
        let plan = self.load_plan(path)?;
        let names = regions
            .iter()
            .map(|r| RegionName::new(r))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(bad)?;
        if let Some(unknown) = names.iter().find(|n| !plan.regions.contains_key(*n)) {
            return Err(bad(format!(
                "the plan {} has no region {unknown} — name one of its [regions]",
                path.display()
            )));
        }
        let trusted = trusted_keys(&plan).map_err(bad)?;
        let session = self.session(&plan, Regions::Existing).await?;
        let trails = review_plan(&session, &names, memory_dir().as_deref(), &trusted).await;
        for w in trails.regions.iter().filter_map(|r| r.warning.as_ref()) {
            note!("warning: {w}");
        }
        Ok(trails)
    }

    pub(super) async fn audit_plan_log(&self, path: &Path, regions: &[String]) -> Result<i32> {
        let trails = self.plan_trails(path, regions).await?;
        if self.json {
            output::json(&trails);
        } else {
            for (region, event) in merged(&trails) {
                say!("{region:<12} {}", event_line(event));
            }
            print_regions(&trails);
        }
        Ok(self.plan_code(&trails))
    }

    pub(super) async fn audit_plan_verify(&self, path: &Path, regions: &[String]) -> Result<i32> {
        let trails = self.plan_trails(path, regions).await?;
        if self.json {
            output::json(&trails);
        } else {
            print_regions(&trails);
            print_copies(&trails.copies);
        }
        Ok(self.plan_code(&trails))
    }

    pub(super) async fn audit_plan_export(&self, path: &Path, regions: &[String], out: Option<PathBuf>) -> Result<i32> {
        let trails = self.plan_trails(path, regions).await?;
        let address = |region: &str| {
            let found = trails.regions.iter().find(|r| r.region.as_str() == region);
            found
                .and_then(|r| r.trail.as_ref())
                .map(|t| t.repository.as_str())
                .unwrap_or("")
        };
        let lines = merged(&trails).into_iter().map(|(region, event)| ExportLine {
            region: Some(region),
            repository: address(region),
            event,
        });
        write_lines(lines, out.as_deref())?;
        if !self.json {
            for p in trails.problems() {
                note!("damage: {p}");
            }
        }
        Ok(self.plan_code(&trails))
    }

    /// Exit 3 naming the first problem; else 4 when a region or copy could not be read.
    fn plan_code(&self, trails: &PlanTrails) -> i32 {
        if let Some(first) = trails.problems().next() {
            note!("error: {first} — see docs/security.md, \"Audit trail\", for what to do");
            return EXIT_DAMAGE;
        }
        for r in &trails.regions {
            if let Some(e) = &r.error {
                note!("warning: region {}: its audit trail could not be read: {e}", r.region);
            }
        }
        if trails.degraded() {
            note!("error: some trails or copies could not be read or caught up — see the lines above");
            return EXIT_DEGRADED;
        }
        EXIT_OK
    }
}

/// Every region's events, oldest first; regions in plan order at equal times.
fn merged(trails: &PlanTrails) -> Vec<(&str, &Event)> {
    let mut all: Vec<(&str, &Event)> = Vec::new();
    for r in &trails.regions {
        let events = r.trail.iter().flat_map(|t| &t.events);
        all.extend(events.map(|e| (r.region.as_str(), e)));
    }
    all.sort_by_key(|(_, e)| e.record.time);
    all
}

/// Each region's trail in one line, and its problems.
fn print_regions(trails: &PlanTrails) {
    for r in &trails.regions {
        let Some(t) = &r.trail else { continue };
        say!(
            "region {}: {} event(s), head {} ({})",
            r.region,
            t.checkpoint.size,
            t.checkpoint.head.short(),
            t.repository
        );
        if let Some(SignedCheck::Agrees { size, signer }) = &r.signed {
            let key = &signer[..signer.len().min(16)];
            say!(
                "region {}: agrees with its checkpoint at {size} event(s) signed by key {key}",
                r.region
            );
        }
        for p in &t.problems {
            say!("damage: {p}");
        }
    }
}

/// How each region's trail compares with the copies the other regions keep of it.
pub(super) fn print_copies(rows: &[CopyRow]) {
    for row in rows {
        let c = &row.check;
        let copy = format!("region {}'s copy of region {}'s trail", row.kept_in, row.region);
        if let Some(e) = &row.error {
            say!("warning: {copy} could not be read: {e}");
            continue;
        }
        if c.caught_up > 0 {
            say!(
                "{copy} was {} event(s) behind (lagging): caught up, {} segment(s) copied",
                c.events.saturating_sub(c.copied_before),
                c.caught_up
            );
        } else if c.problems.is_empty() && c.copied_before == c.events {
            say!("{copy} agrees with it ({} event(s))", c.events);
        }
        for p in &c.problems {
            say!("damage: {p}");
        }
        if let Some(w) = &c.warning {
            say!("warning: {w}");
        }
    }
}
