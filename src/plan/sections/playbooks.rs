//! `[playbooks.NAME]`: ordered recovery steps with a recovery time objective.
//!
//! Steps are an array of tables (`[[playbooks.NAME.steps]]`) because their order is the
//! procedure; each step's `kind` decides which other keys it accepts.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::baseline;
use super::checks::{MAX_STEP_TIME, bounded, env_names, http_url, method, url_source};
use super::key::command;
use super::{Ctx, Named};
use crate::format::names::{DatasetName, RegionName};
use crate::plan::model::{EndpointName, HttpProbe, Playbook, PlaybookName, Probe, Step, StepAction};
use crate::plan::reader::{At, Fields};
use crate::plan::units::format_duration;

const PLAYBOOK_KEYS: [&str; 7] = [
    "description",
    "rto",
    "steps",
    "rollback",
    "primary",
    "standby",
    "drill_schedule",
];
const STEP_COMMON: [&str; 3] = ["kind", "name", "timeout"];
const PROBE_KEYS: [&str; 13] = [
    "url",
    "drill_url",
    "method",
    "body",
    "expect_status",
    "expect_body",
    "expect_json",
    "interval",
    "command",
    "env",
    "record_baseline",
    "compare",
    "tolerance",
];
/// A command probe's pause between attempts when the step does not set `interval`.
const COMMAND_PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How often a probe may try when it sets `interval`: at most once a second, at least
/// once an hour.
const PROBE_INTERVAL: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
/// The longest recovery time objective a playbook may state (a year).
const MAX_RTO: Duration = Duration::from_secs(365 * 86_400);
const KINDS: &str = "restore, probe, repoint, command, wait or notify";

pub fn section(tables: &Named, ctx: &mut Ctx) -> BTreeMap<PlaybookName, Playbook> {
    let mut out = BTreeMap::new();
    for (name, table, span) in tables {
        let Some(playbook_name) = PlaybookName::new(&name.value) else {
            ctx.bad_name("playbook", name);
            continue;
        };
        let context = format!("[playbooks.{}]", name.value);
        let fields = Fields::new(table, span.clone(), context, &PLAYBOOK_KEYS, ctx.diags);
        if let Some(playbook) = playbook(playbook_name.clone(), &fields, ctx) {
            out.insert(playbook_name, playbook);
        }
    }
    out
}

fn playbook(name: PlaybookName, fields: &Fields, ctx: &mut Ctx) -> Option<Playbook> {
    let description = fields
        .string("description", "\"Fail over to us-east\"", ctx.diags)
        .map(|d| d.value);
    let rto = bounded(fields, "rto", "\"1h\"", (Duration::from_secs(1), MAX_RTO), ctx);
    if fields.get("rto").is_none() {
        fields.missing("rto", "\"1h\"", ctx.diags);
    }
    let steps = steps(fields, "steps", ctx);
    if fields.get("steps").is_none() {
        fields.missing(
            "steps",
            "[{ kind = \"restore\", dataset = \"...\", target = \"...\" }]",
            ctx.diags,
        );
    }
    let rollback = steps_or_empty(fields, ctx);
    let primary = region_ref(fields, "primary", ctx);
    let standby = region_ref(fields, "standby", ctx);
    let drill_schedule = match fields.get("drill_schedule") {
        Some(_) => super::datasets::schedule(fields, "drill_schedule", ctx).map(Some),
        None => Some(None),
    };
    let (rto, steps) = (rto?, steps?);
    warn_waits_exceed_rto(&steps, &rto, fields.context(), ctx);
    Some(Playbook {
        name,
        description,
        rto: rto.value,
        steps,
        rollback: rollback?,
        primary: primary?,
        standby: standby?,
        drill_schedule: drill_schedule?,
    })
}

/// An optional region name: `Some(None)` when absent, `None` when wrong (reported).
fn region_ref(fields: &Fields, key: &str, ctx: &mut Ctx) -> Option<Option<RegionName>> {
    let Some(written) = fields.string(key, "\"us-east\"", ctx.diags) else {
        return fields.get(key).is_none().then_some(None);
    };
    let defined = ctx.regions.clone();
    if !ctx.check_ref("region", &written, &defined, fields.context()) {
        return None;
    }
    RegionName::new(&written.value).ok().map(Some)
}

fn steps_or_empty(fields: &Fields, ctx: &mut Ctx) -> Option<Vec<Step>> {
    match fields.get("rollback") {
        None => Some(Vec::new()),
        Some(_) => steps(fields, "rollback", ctx),
    }
}

/// An array of step tables; every step is built so every problem is reported.
fn steps(fields: &Fields, key: &str, ctx: &mut Ctx) -> Option<Vec<Step>> {
    let value = fields.get(key)?;
    let Some(items) = value.get_ref().as_array() else {
        let message = format!("`{key}` in {} must be a list of steps", fields.context());
        let fix = format!(
            "write each step as a [[{}.{key}]] section",
            fields.context().trim_matches(['[', ']'])
        );
        ctx.diags.error(&value.span(), message, fix);
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (index, item) in items.iter().enumerate() {
        let context = format!("{key} #{} of {}", index + 1, fields.context());
        match item.get_ref().as_table() {
            Some(table) => match step(table, item.span(), context, ctx) {
                Some(step) => out.push(step),
                None => ok = false,
            },
            None => {
                ctx.diags.error(
                    &item.span(),
                    format!("{context} is not a table"),
                    "write it as `{ kind = \"wait\", duration = \"30s\" }`",
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn step_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "restore" => &["dataset", "region", "snapshot", "target"],
        "probe" => &PROBE_KEYS,
        "repoint" => &["endpoint", "to"],
        "command" => &["command", "env"],
        "wait" => &["duration"],
        "notify" => &["message", "url"],
        _ => &[
            "dataset",
            "region",
            "snapshot",
            "target",
            "url",
            "drill_url",
            "method",
            "body",
            "expect_status",
            "expect_body",
            "expect_json",
            "interval",
            "command",
            "endpoint",
            "to",
            "duration",
            "message",
            "env",
            "record_baseline",
            "compare",
            "tolerance",
        ],
    }
}

fn step(table: &DeTable, span: std::ops::Range<usize>, context: String, ctx: &mut Ctx) -> Option<Step> {
    let kind = table.get("kind").and_then(|v| v.get_ref().as_str()).unwrap_or("");
    let known: Vec<&str> = STEP_COMMON.iter().chain(step_keys(kind)).copied().collect();
    let fields = Fields::new(table, span, context, &known, ctx.diags);
    let name = fields
        .string("name", "\"restore checkpoints\"", ctx.diags)
        .map(|n| n.value);
    let timeout = bounded(
        &fields,
        "timeout",
        "\"10m\"",
        (Duration::from_secs(1), MAX_STEP_TIME),
        ctx,
    );
    let env = env_names(&fields, ctx);
    let kind = fields.required_string("kind", "\"restore\"", ctx.diags)?;
    let action = match kind.value.as_str() {
        "restore" => restore(&fields, ctx),
        "probe" => probe(&fields, ctx).map(StepAction::Probe),
        "repoint" => repoint(&fields, ctx),
        "command" => required_command(&fields, ctx).map(|command| StepAction::Command { command }),
        "wait" => wait(&fields, ctx),
        "notify" => notify(&fields, ctx),
        other => {
            let message = format!("{} has kind `{other}`, which is not a step kind", fields.context());
            ctx.diags.error(&kind.span, message, format!("use one of: {KINDS}"));
            None
        }
    };
    let action = action?;
    if matches!(&action, StepAction::Probe(Probe::Http(_))) && fields.get("env").is_some() {
        let message = format!("`env` in {} has no effect on an HTTP probe", fields.context());
        let span = fields.get("env").map(|v| v.span()).unwrap_or_default();
        ctx.diags.error(
            &span,
            message,
            "remove it: only command steps and command probes run a program",
        );
        return None;
    }
    Some(Step {
        name,
        timeout: timeout.map(|t| t.value),
        action,
        env: env?,
    })
}

fn restore(fields: &Fields, ctx: &mut Ctx) -> Option<StepAction> {
    let dataset = fields.required_string("dataset", "\"model-checkpoints\"", ctx.diags);
    let region = fields.string("region", "\"us-east\"", ctx.diags);
    let snapshot = fields
        .string("snapshot", "\"latest\"", ctx.diags)
        .map_or("latest".into(), |s| s.value);
    let target = fields.required_string("target", "\"/srv/restore\"", ctx.diags);
    let dataset = dataset?;
    let defined = ctx.datasets.clone();
    let dataset_ok = ctx.check_ref("dataset", &dataset, &defined, fields.context());
    let defined = ctx.regions.clone();
    let region_ok = region
        .as_ref()
        .is_none_or(|r| ctx.check_ref("region", r, &defined, fields.context()));
    if !(dataset_ok && region_ok) {
        return None;
    }
    Some(StepAction::Restore {
        dataset: DatasetName::new(&dataset.value).ok()?,
        region: region.and_then(|r| RegionName::new(&r.value).ok()),
        snapshot,
        target: ctx.resolve(&target?.value),
    })
}

fn probe(fields: &Fields, ctx: &mut Ctx) -> Option<Probe> {
    let url = http_url(fields, "url", "\"https://api.example.com/healthz\"", ctx);
    let status = expect_status(fields, ctx);
    let command = command(fields, "command", ctx);
    match (url, command) {
        (Some(url), None) if fields.get("command").is_none() => http_probe(url.value, status?, fields, ctx),
        (None, Some(argv)) if fields.get("url").is_none() => {
            let interval = probe_interval(fields, COMMAND_PROBE_INTERVAL, ctx);
            let no_baseline = baseline::of_command_probe(fields, ctx);
            no_baseline.then_some(Probe::Command {
                argv,
                interval: interval?,
            })
        }
        (None, _) | (_, None) if fields.get("url").is_some() != fields.get("command").is_some() => None,
        _ => {
            let message = format!("{} needs exactly one of `url` or `command`", fields.context());
            ctx.diags.error(
                &fields.span(),
                message,
                "probe either an HTTP URL or a command, not both or neither",
            );
            None
        }
    }
}

/// A probe's pause between attempts: `default` unless the step sets `interval`.
fn probe_interval(fields: &Fields, default: Duration, ctx: &mut Ctx) -> Option<Duration> {
    match fields.get("interval") {
        None => Some(default),
        Some(_) => bounded(fields, "interval", "\"1s\"", PROBE_INTERVAL, ctx).map(|d| d.value),
    }
}

fn http_probe(url: String, expect_status: Option<u16>, fields: &Fields, ctx: &mut Ctx) -> Option<Probe> {
    let text = |key: &str, example: &str, ctx: &mut Ctx| fields.string(key, example, ctx.diags).map(|v| v.value);
    let drill_url = http_url(fields, "drill_url", "\"http://127.0.0.1:8081/healthz\"", ctx).map(|u| u.value);
    let method = method(fields, "GET", ctx);
    let body = text("body", "'{\"input\": [1, 2, 3]}'", ctx);
    let expect_body = text("expect_body", "\"ok\"", ctx);
    let interval = probe_interval(fields, Duration::from_secs(1), ctx);
    let expect_json = expect_json(fields, ctx);
    let baseline = baseline::of_http_probe(fields, ctx);
    let (method, interval, expect_json, baseline) = (method?, interval?, expect_json?, baseline?);
    if fields.get("drill_url").is_some() && drill_url.is_none() {
        return None;
    }
    Some(Probe::Http(HttpProbe {
        url,
        drill_url,
        method,
        body,
        expect_status,
        expect_body,
        expect_json,
        interval,
        baseline,
    }))
}

/// `expect_json = { "/answer" = 42 }`: JSON pointers and the values found there.
fn expect_json(fields: &Fields, ctx: &mut Ctx) -> Option<BTreeMap<String, serde_json::Value>> {
    json_pointers(fields, "expect_json", ctx)
}

/// `KEY = { "/a/b" = value }`: JSON pointers and scalar values; empty when absent.
pub(super) fn json_pointers(
    fields: &Fields,
    key_name: &str,
    ctx: &mut Ctx,
) -> Option<BTreeMap<String, serde_json::Value>> {
    let example = "{ \"/status\" = \"ok\" }";
    let Some((table, _)) = fields.table(key_name, example, ctx.diags) else {
        return fields.get(key_name).is_none().then(BTreeMap::new);
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, value) in table.iter() {
        let pointer = key.get_ref().to_string();
        let json = scalar_json(value.get_ref());
        match json {
            Some(json) if pointer.is_empty() || pointer.starts_with('/') => {
                out.insert(pointer, json);
            }
            _ => {
                let message = format!(
                    "`{}` in {}: `{pointer}` must be a JSON pointer (\"/a/b\") with a string, number or boolean",
                    key_name,
                    fields.context()
                );
                ctx.diags
                    .error(&key.span(), message, format!("write it like `{key_name} = {example}`"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn scalar_json(value: &DeValue) -> Option<serde_json::Value> {
    match value {
        DeValue::String(s) => Some(serde_json::Value::String(s.to_string())),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok().map(Into::into),
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number),
        DeValue::Boolean(b) => Some(serde_json::Value::Bool(*b)),
        _ => None,
    }
}

/// `Some(None)` when absent, `None` when written wrong (already reported).
pub(super) fn expect_status(fields: &Fields, ctx: &mut Ctx) -> Option<Option<u16>> {
    let Some(written) = fields.count("expect_status", "200", ctx.diags) else {
        return fields.get("expect_status").is_none().then_some(None);
    };
    match u16::try_from(written.value) {
        Ok(code) if (100..=599).contains(&code) => Some(Some(code)),
        _ => {
            let message = format!(
                "`expect_status` in {} is {}, not an HTTP status",
                fields.context(),
                written.value
            );
            ctx.diags
                .error(&written.span, message, "write a status from 100 to 599, e.g. 200");
            None
        }
    }
}

fn repoint(fields: &Fields, ctx: &mut Ctx) -> Option<StepAction> {
    let endpoint = fields.required_string("endpoint", "\"inference-api\"", ctx.diags)?;
    let to = fields.required_string("to", "\"us-east\"", ctx.diags)?;
    let endpoints = ctx.endpoints.keys().cloned().collect();
    if !ctx.check_ref("endpoint", &endpoint, &endpoints, fields.context()) {
        return None;
    }
    let targets = ctx.endpoints.get(&endpoint.value).cloned().unwrap_or_default();
    if !targets.contains(&to.value) {
        let message = format!(
            "{} re-points `{}` to `{}`, but that endpoint has no target there",
            fields.context(),
            endpoint.value,
            to.value
        );
        ctx.diags.error(
            &to.span,
            message,
            format!("add `{}` to `targets` in [endpoints.{}]", to.value, endpoint.value),
        );
        return None;
    }
    Some(StepAction::Repoint {
        endpoint: EndpointName::new(&endpoint.value)?,
        to: RegionName::new(&to.value).ok()?,
    })
}

fn required_command(fields: &Fields, ctx: &mut Ctx) -> Option<Vec<String>> {
    if fields.get("command").is_none() {
        fields.missing("command", "[\"prog\", \"arg\"]", ctx.diags);
    }
    command(fields, "command", ctx)
}

fn wait(fields: &Fields, ctx: &mut Ctx) -> Option<StepAction> {
    if fields.get("duration").is_none() {
        fields.missing("duration", "\"30s\"", ctx.diags);
    }
    let duration = bounded(fields, "duration", "\"30s\"", (Duration::ZERO, MAX_STEP_TIME), ctx)?;
    Some(StepAction::Wait {
        duration: duration.value,
    })
}

fn notify(fields: &Fields, ctx: &mut Ctx) -> Option<StepAction> {
    let message = fields.required_string("message", "\"failover to us-east started\"", ctx.diags);
    let url = url_source(fields, "url", "\"https://hooks.example.com/ops\"", ctx);
    Some(StepAction::Notify {
        message: message?.value,
        url: url?,
    })
}

fn warn_waits_exceed_rto(steps: &[Step], rto: &At<Duration>, context: &str, ctx: &mut Ctx) {
    let waited: Duration = steps
        .iter()
        .filter_map(|s| match s.action {
            StepAction::Wait { duration } => Some(duration),
            _ => None,
        })
        .sum();
    if waited > rto.value {
        ctx.diags.warning(
            &rto.span,
            format!(
                "the waits in {context} add up to {}, longer than its rto of {}",
                format_duration(waited),
                format_duration(rto.value)
            ),
            "shorten the wait steps or raise `rto`",
        );
    }
}
