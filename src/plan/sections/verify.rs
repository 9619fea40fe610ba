//! `[verify.NAME]`: scheduled test restores of a sample of files.

use std::collections::BTreeMap;

use super::datasets::{region_refs, schedule};
use super::{Ctx, Named};
use crate::format::names::{DatasetName, RegionName};
use crate::plan::model::{VerifyName, VerifyPolicy};
use crate::plan::reader::Fields;

const VERIFY_KEYS: [&str; 5] = ["schedule", "datasets", "regions", "sample_fraction", "scratch"];
const DEFAULT_SAMPLE: f64 = 0.05;

pub fn section(tables: &Named, ctx: &mut Ctx) -> BTreeMap<VerifyName, VerifyPolicy> {
    let mut out = BTreeMap::new();
    for (name, table, span) in tables {
        let Some(verify_name) = VerifyName::new(&name.value) else {
            ctx.bad_name("verify policy", name);
            continue;
        };
        let context = format!("[verify.{}]", name.value);
        let fields = Fields::new(table, span.clone(), context, &VERIFY_KEYS, ctx.diags);
        if let Some(policy) = policy(verify_name.clone(), &fields, ctx) {
            out.insert(verify_name, policy);
        }
    }
    out
}

fn policy(name: VerifyName, fields: &Fields, ctx: &mut Ctx) -> Option<VerifyPolicy> {
    let schedule = schedule(fields, "schedule", ctx);
    let datasets = datasets(fields, ctx);
    let regions = regions(fields, ctx);
    let sample_fraction = sample_fraction(fields, ctx);
    let scratch = fields.string("scratch", "\"/var/tmp/lifeboat-verify\"", ctx.diags);
    Some(VerifyPolicy {
        name,
        schedule: schedule?,
        datasets: datasets?,
        regions: regions?,
        sample_fraction: sample_fraction?,
        scratch: scratch.map(|s| ctx.resolve(&s.value)),
    })
}

/// The datasets named, or every dataset of the plan when the key is absent.
fn datasets(fields: &Fields, ctx: &mut Ctx) -> Option<Vec<DatasetName>> {
    let Some(written) = fields.strings("datasets", "[\"training-data\"]", ctx.diags) else {
        let all = ctx.datasets.iter().filter_map(|d| DatasetName::new(d).ok()).collect();
        return fields.get("datasets").is_none().then_some(all);
    };
    let defined = ctx.datasets.clone();
    let mut ok = true;
    for name in &written {
        ok &= ctx.check_ref("dataset", name, &defined, fields.context());
    }
    ok.then(|| written.iter().filter_map(|n| DatasetName::new(&n.value).ok()).collect())
}

/// The regions named, or every region of the plan when the key is absent.
fn regions(fields: &Fields, ctx: &mut Ctx) -> Option<Vec<RegionName>> {
    let Some(written) = fields.strings("regions", "[\"eu-west\"]", ctx.diags) else {
        let all = ctx.regions.iter().filter_map(|r| RegionName::new(r).ok()).collect();
        return fields.get("regions").is_none().then_some(all);
    };
    region_refs(&written, fields.context(), ctx)
}

fn sample_fraction(fields: &Fields, ctx: &mut Ctx) -> Option<f64> {
    let Some(written) = fields.number("sample_fraction", "0.05", ctx.diags) else {
        return fields.get("sample_fraction").is_none().then_some(DEFAULT_SAMPLE);
    };
    if written.value > 0.0 && written.value <= 1.0 {
        return Some(written.value);
    }
    ctx.diags.error(
        &written.span,
        format!(
            "`sample_fraction` in {} is {}, outside (0, 1]",
            fields.context(),
            written.value
        ),
        "write a share of files above 0 and at most 1, e.g. 0.05 for 5%",
    );
    None
}
