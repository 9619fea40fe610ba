//! A probe's model-drift keys: `record_baseline`, `compare` and `tolerance`.
//!
//! `record_baseline = true` makes the probe's answer a baseline that later drills are
//! compared with; `compare` and `tolerance` say how. Each is meaningless without the
//! baseline and on a command probe, so both are plan errors rather than ignored keys.

use toml::de::DeValue;

use super::Ctx;
use crate::plan::json_path::JsonPath;
use crate::plan::model::Baseline;
use crate::plan::reader::Fields;

const TOLERANCE_EXAMPLE: &str = "{ \"$.choices[0].score\" = 0.01 }";

/// An HTTP probe's baseline: `Some(None)` without `record_baseline = true`, `None` when
/// the keys are wrong (reported).
pub fn of_http_probe(fields: &Fields, ctx: &mut Ctx) -> Option<Option<Baseline>> {
    let record = match fields.get("record_baseline") {
        None => false,
        Some(_) => fields.bool("record_baseline", ctx.diags)?,
    };
    let compare = compare(fields, ctx);
    let tolerance = tolerance(fields, ctx);
    if !record {
        return no_comparison_keys(fields, "without `record_baseline = true`", ctx).then_some(None);
    }
    let (compare, tolerance) = (compare?, tolerance?);
    match (compare.as_deref(), tolerance) {
        (Some("exact"), Some(_)) => {
            let span = fields.get("compare").map(|v| v.span()).unwrap_or_default();
            let message = format!(
                "{} has `compare = \"exact\"` and a `tolerance`, which only JSON comparison uses",
                fields.context()
            );
            ctx.diags.error(
                &span,
                message,
                "remove `compare` (a tolerance compares JSON) or the `tolerance`",
            );
            None
        }
        (Some("exact"), None) | (None, None) => Some(Some(Baseline::Exact)),
        (_, tolerance) => Some(Some(Baseline::Json {
            tolerance: tolerance.unwrap_or_default(),
        })),
    }
}

/// A command probe has no answer to keep: any of the keys is an error.
pub fn of_command_probe(fields: &Fields, ctx: &mut Ctx) -> bool {
    let mut ok = no_comparison_keys(fields, "on a command probe", ctx);
    if let Some(value) = fields.get("record_baseline") {
        let message = format!("`record_baseline` in {} is set on a command probe", fields.context());
        ctx.diags.error(
            &value.span(),
            message,
            "baselines keep an HTTP probe's answer: probe the service's `url` instead",
        );
        ok = false;
    }
    ok
}

/// Reports `compare` and `tolerance` as meaningless `why`; `true` when neither is there.
fn no_comparison_keys(fields: &Fields, why: &str, ctx: &mut Ctx) -> bool {
    let mut ok = true;
    for key in ["compare", "tolerance"] {
        if let Some(value) = fields.get(key) {
            let message = format!("`{key}` in {} has no effect {why}", fields.context());
            ctx.diags.error(
                &value.span(),
                message,
                "add `record_baseline = true` to an HTTP probe, or remove the key",
            );
            ok = false;
        }
    }
    ok
}

/// `compare`: `Some(None)` when absent.
fn compare(fields: &Fields, ctx: &mut Ctx) -> Option<Option<String>> {
    let Some(written) = fields.string("compare", "\"exact\"", ctx.diags) else {
        return fields.get("compare").is_none().then_some(None);
    };
    if matches!(written.value.as_str(), "exact" | "json") {
        return Some(Some(written.value));
    }
    let message = format!(
        "`compare` in {} is \"{}\", not a way to compare",
        fields.context(),
        written.value
    );
    ctx.diags.error(
        &written.span,
        message,
        "write `compare = \"exact\"` (the same bytes) or `compare = \"json\"` (the same JSON value)",
    );
    None
}

/// `tolerance = { "$.path" = 0.01 }`: `Some(None)` when absent.
fn tolerance(fields: &Fields, ctx: &mut Ctx) -> Option<Option<Vec<(JsonPath, f64)>>> {
    let Some((table, _)) = fields.table("tolerance", TOLERANCE_EXAMPLE, ctx.diags) else {
        return fields.get("tolerance").is_none().then_some(None);
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (key, value) in table.iter() {
        let text = key.get_ref().to_string();
        let path = JsonPath::parse(&text).map_err(|why| {
            let message = format!("`tolerance` in {}: the path `{text}` {why}", fields.context());
            let fix = "write `$` then dotted keys and `[index]`, e.g. `\"$.choices[0].score\" = 0.01`";
            ctx.diags.error(&key.span(), message, fix);
        });
        let amount = allowed_difference(value.get_ref()).ok_or_else(|| {
            let message = format!(
                "`tolerance` in {}: `{text}` must be a number of at least 0",
                fields.context()
            );
            ctx.diags.error(
                &value.span(),
                message,
                "write the largest difference allowed, e.g. 0.01",
            );
        });
        match (path, amount) {
            (Ok(path), Ok(amount)) => out.push((path, amount)),
            _ => ok = false,
        }
    }
    ok.then_some(Some(out))
}

fn allowed_difference(value: &DeValue) -> Option<f64> {
    let number = match value {
        DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok()?,
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok()? as f64,
        _ => return None,
    };
    (number.is_finite() && number >= 0.0).then_some(number)
}
