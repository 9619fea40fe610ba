//! `[datasets.NAME]`: what to protect, how often, where to, and the RPO it must meet.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{Ctx, Named, retention};
use crate::format::names::{DatasetName, RegionName};
use crate::plan::model::{Dataset, DatasetKind};
use crate::plan::reader::{At, Fields};
use crate::plan::schedule::Schedule;
use crate::plan::units::format_duration;

/// The longest recovery point objective a dataset may state (ten years).
const MAX_RPO: Duration = Duration::from_secs(3650 * 86_400);
const DATASET_KEYS: [&str; 12] = [
    "paths",
    "include",
    "exclude",
    "kind",
    "schedule",
    "regions",
    "retention",
    "rpo",
    "tags",
    "sign",
    "skip_unchanged",
    "anomaly",
];

pub fn section(tables: &Named, ctx: &mut Ctx) -> BTreeMap<DatasetName, Dataset> {
    let mut out = BTreeMap::new();
    for (name, table, span) in tables {
        let Ok(dataset_name) = DatasetName::new(&name.value) else {
            ctx.bad_name("dataset", name);
            continue;
        };
        ctx.datasets.insert(name.value.clone());
        let context = format!("[datasets.{}]", name.value);
        let fields = Fields::new(table, span.clone(), context, &DATASET_KEYS, ctx.diags);
        if let Some(dataset) = dataset(dataset_name.clone(), &fields, ctx) {
            out.insert(dataset_name, dataset);
        }
    }
    out
}

fn dataset(name: DatasetName, fields: &Fields, ctx: &mut Ctx) -> Option<Dataset> {
    let paths = paths(fields, ctx);
    let include = globs(fields, "include", ctx);
    let exclude = globs(fields, "exclude", ctx);
    let kind = kind(fields, ctx);
    let schedule = schedule(fields, "schedule", ctx);
    let regions = regions(fields, ctx);
    let retention = retention::of_dataset(fields, schedule.as_ref(), ctx);
    let rpo = super::checks::bounded(fields, "rpo", "\"6h\"", (Duration::from_secs(1), MAX_RPO), ctx);
    if fields.get("rpo").is_none() {
        fields.missing("rpo", "\"6h\"", ctx.diags);
    }
    let tags = super::checks::tags(fields, "tags", ctx);
    let sign = fields.bool("sign", ctx.diags).unwrap_or(false);
    if sign {
        let span = fields.get("sign").map(|v| v.span()).unwrap_or_default();
        ctx.signed.push((name.to_string(), span));
    }
    let skip_unchanged = fields.bool("skip_unchanged", ctx.diags).unwrap_or(false);
    let anomaly = super::anomaly::of_dataset(fields, ctx);
    let (schedule, rpo) = (schedule?, rpo?);
    check_rpo(&schedule, &rpo, fields.context(), ctx);
    Some(Dataset {
        name,
        paths: paths?,
        include,
        exclude,
        kind: kind?,
        schedule,
        regions: regions?,
        retention: retention?,
        rpo: rpo.value,
        tags,
        sign,
        skip_unchanged,
        anomaly,
    })
}

fn paths(fields: &Fields, ctx: &mut Ctx) -> Option<Vec<PathBuf>> {
    let example = "[\"data/train\"]";
    let Some(written) = fields.strings("paths", example, ctx.diags) else {
        if fields.get("paths").is_none() {
            fields.missing("paths", example, ctx.diags);
        }
        return None;
    };
    if written.is_empty() {
        let span = fields.get("paths").map(|v| v.span()).unwrap_or_default();
        ctx.diags.error(
            &span,
            format!("`paths` in {} is empty", fields.context()),
            format!("list the folders or files to back up, e.g. `paths = {example}`"),
        );
        return None;
    }
    let what = format!("{} path", fields.context());
    let resolved = written.iter().map(|p| {
        let path = ctx.resolve(&p.value);
        ctx.warn_if_missing(p, &path, &what);
        path
    });
    Some(resolved.collect())
}

fn globs(fields: &Fields, key: &str, ctx: &mut Ctx) -> Vec<String> {
    let written = fields.strings(key, "[\"**/*.tmp\"]", ctx.diags).unwrap_or_default();
    let mut out = Vec::new();
    for glob in written {
        match globset::Glob::new(&glob.value) {
            Ok(_) => out.push(glob.value),
            Err(err) => ctx.diags.error(
                &glob.span,
                format!("`{key}` in {} has an invalid glob: {}", fields.context(), err.kind()),
                "fix the pattern: `*` matches within a folder, `**` across folders, `[abc]` one of",
            ),
        }
    }
    out
}

fn kind(fields: &Fields, ctx: &mut Ctx) -> Option<DatasetKind> {
    let Some(written) = fields.string("kind", "\"files\"", ctx.diags) else {
        return fields.get("kind").is_none().then_some(DatasetKind::Files);
    };
    match written.value.as_str() {
        "files" => Some(DatasetKind::Files),
        "model" => Some(DatasetKind::Model),
        other => {
            ctx.diags.error(
                &written.span,
                format!(
                    "`kind` in {} is `{other}`, which is not a dataset kind",
                    fields.context()
                ),
                "write `kind = \"files\"` or `kind = \"model\"` (model checkpoints)",
            );
            None
        }
    }
}

/// A required cron schedule; shared with `[verify.NAME]`.
pub fn schedule(fields: &Fields, key: &str, ctx: &mut Ctx) -> Option<Schedule> {
    let written = fields.required_string(key, "\"0 */6 * * *\"", ctx.diags)?;
    Schedule::parse(&written.value)
        .map_err(|err| {
            let message = format!("`{key}` in {}: {err}", fields.context());
            ctx.diags.error(&written.span, message, err.hint());
        })
        .ok()
}

fn regions(fields: &Fields, ctx: &mut Ctx) -> Option<Vec<RegionName>> {
    let example = "[\"eu-west\", \"us-east\"]";
    let Some(written) = fields.strings("regions", example, ctx.diags) else {
        if fields.get("regions").is_none() {
            fields.missing("regions", example, ctx.diags);
        }
        return None;
    };
    if written.is_empty() {
        let span = fields.get("regions").map(|v| v.span()).unwrap_or_default();
        ctx.diags.error(
            &span,
            format!(
                "`regions` in {} is empty, so nothing would be backed up",
                fields.context()
            ),
            format!("name at least one region, e.g. `regions = {example}`"),
        );
        return None;
    }
    region_refs(&written, fields.context(), ctx)
}

/// Region names that must be defined in the plan; `None` if any is not.
pub fn region_refs(written: &[At<String>], context: &str, ctx: &mut Ctx) -> Option<Vec<RegionName>> {
    let defined = ctx.regions.clone();
    let mut ok = true;
    let mut out = Vec::new();
    for name in written {
        ok &= ctx.check_ref("region", name, &defined, context);
        out.extend(RegionName::new(&name.value).ok());
    }
    ok.then_some(out)
}

fn check_rpo(schedule: &Schedule, rpo: &At<std::time::Duration>, context: &str, ctx: &mut Ctx) {
    let gap = schedule.max_interval();
    if rpo.value < gap {
        ctx.diags.error(
            &rpo.span,
            format!(
                "rpo {} in {context} cannot be met: schedule \"{schedule}\" leaves up to {} between backups",
                format_duration(rpo.value),
                format_duration(gap)
            ),
            format!(
                "raise `rpo` to at least \"{}\" or run the schedule more often",
                format_duration(gap)
            ),
        );
    }
}
