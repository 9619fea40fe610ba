//! `[endpoints.NAME]`: how traffic for one service is re-pointed to another region.
//!
//! The keys an endpoint accepts depend on its `provider`, so the provider is read first
//! and decides which keys are known. An optional `drill` table holds a drill route: the
//! same provider with some keys overridden (another record, file or URL), so a drill can
//! re-point a route no production traffic uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use toml::de::DeTable;

mod dns;

use super::key::{command, reference};
use super::{Ctx, Named};
use crate::format::names::RegionName;
use crate::plan::diagnostic::Diagnostics;
use crate::plan::model::{Endpoint, EndpointName, HttpVerify, Provider};
use crate::plan::reader::{At, Fields};

const COMMON: [&str; 3] = ["provider", "targets", "drill"];
const FILE: [&str; 5] = ["path", "template", "check", "reload", "env"];
const HTTP: [&str; 8] = [
    "url",
    "method",
    "token",
    "body",
    "expect_status",
    "verify_url",
    "verify_contains",
    "verify_json",
];
const COMMAND: [&str; 3] = ["command", "env", "verify"];
const PROVIDERS: &str = "\"dns\", \"file\", \"http\" or \"command\"";

pub fn section(tables: &Named, ctx: &mut Ctx) -> BTreeMap<EndpointName, Endpoint> {
    let mut out = BTreeMap::new();
    for (name, table, span) in tables {
        let Some(endpoint_name) = EndpointName::new(&name.value) else {
            ctx.bad_name("endpoint", name);
            continue;
        };
        let provider = table.get("provider").and_then(|v| v.get_ref().as_str()).unwrap_or("");
        let known: Vec<&str> = COMMON.iter().copied().chain(provider_keys(provider)).collect();
        let context = format!("[endpoints.{}]", name.value);
        let fields = Fields::new(table, span.clone(), context, &known, ctx.diags);
        let targets = targets(&fields, ctx);
        ctx.endpoints.insert(
            name.value.clone(),
            targets.iter().flatten().map(|(r, _)| r.to_string()).collect(),
        );
        let provider = provider_of(&fields, ctx);
        let drill = drill_route(table, &fields, ctx);
        let env = super::checks::env_names(&fields, ctx);
        let targets = targets.filter(|_| {
            targets_fit(
                &fields,
                [provider.as_ref(), drill.as_ref().and_then(Option::as_ref)],
                ctx,
            )
        });
        if let (Some(provider), Some(targets), Some(drill), Some(env)) = (provider, targets, drill, env) {
            let endpoint = Endpoint {
                name: endpoint_name.clone(),
                provider,
                targets,
                drill,
                env,
            };
            out.insert(endpoint_name, endpoint);
        }
    }
    out
}

/// Whether every target fits each route's record type (DNS routes; others take any text).
fn targets_fit(fields: &Fields, routes: [Option<&Provider>; 2], ctx: &mut Ctx) -> bool {
    let mut kinds: Vec<_> = routes
        .into_iter()
        .flatten()
        .filter_map(|p| match p {
            Provider::Dns { record_type, .. } => Some(*record_type),
            _ => None,
        })
        .collect();
    kinds.dedup();
    kinds.into_iter().all(|kind| dns::check_targets(fields, kind, ctx))
}

fn provider_keys(provider: &str) -> Vec<&'static str> {
    let lists: &[&[&str]] = match provider {
        "dns" => &[&dns::KEYS],
        "file" => &[&FILE],
        "http" => &[&HTTP],
        "command" => &[&COMMAND],
        // Unknown provider: accept every provider's keys, so only `provider` is reported.
        _ => &[&dns::KEYS, &FILE, &HTTP, &COMMAND],
    };
    lists.iter().flat_map(|keys| keys.iter().copied()).collect()
}

/// `drill = { ... }`: the provider's keys to override for drills. `Some(None)` when the
/// endpoint has no drill route, `None` when it is written wrong (already reported).
fn drill_route(table: &DeTable, fields: &Fields, ctx: &mut Ctx) -> Option<Option<Provider>> {
    if fields.get("drill").is_none() {
        return Some(None);
    }
    let example = "{ record = \"drill.api.example.com.\" }";
    let (drill, span) = fields.table("drill", example, ctx.diags)?;
    let provider = table.get("provider").and_then(|v| v.get_ref().as_str()).unwrap_or("");
    let context = format!("`drill` in {}", fields.context());
    let keys = provider_keys(provider);
    Fields::new(drill, span.clone(), context.clone(), &keys, ctx.diags);
    let kept = |key: &str, with_provider: bool| (with_provider && key == "provider") || keys.contains(&key);
    let mut merged = DeTable::new();
    for (key, value) in table.iter().filter(|(k, _)| kept(k.get_ref(), true)) {
        merged.insert(key.clone(), value.clone());
    }
    for (key, value) in drill.iter().filter(|(k, _)| kept(k.get_ref(), false)) {
        merged.insert(key.clone(), value.clone());
    }
    // Every key left is known and was checked above: nothing new to report here.
    let mut seen = Diagnostics::new(Path::new(""), "");
    let known: Vec<&str> = std::iter::once("provider").chain(keys.iter().copied()).collect();
    let merged_fields = Fields::new(&merged, span, context, &known, &mut seen);
    provider_of(&merged_fields, ctx).map(Some)
}

fn provider_of(fields: &Fields, ctx: &mut Ctx) -> Option<Provider> {
    let kind = fields.required_string("provider", "\"dns\"", ctx.diags)?;
    match kind.value.as_str() {
        "dns" => dns::provider(fields, ctx),
        "file" => {
            let path = fields.required_string("path", "\"/etc/nginx/upstream.conf\"", ctx.diags)?;
            let template = fields
                .string("template", "\"upstream api { {target} }\"", ctx.diags)
                .map(|t| t.value);
            let check = command(fields, "check", ctx);
            let reload = command(fields, "reload", ctx);
            Some(Provider::File {
                path: ctx.resolve(&path.value),
                template,
                check,
                reload,
            })
        }
        "http" => {
            let example = "\"https://lb.internal/api/pool\"";
            if fields.get("url").is_none() {
                fields.missing("url", example, ctx.diags);
            }
            let url = super::checks::http_url(fields, "url", example, ctx);
            let method = super::checks::method(fields, "POST", ctx);
            let token = reference(fields, "token", ctx);
            let body = fields
                .string("body", "'{\"backend\": \"{target}\"}'", ctx.diags)
                .map(|b| b.value);
            let expect_status = super::playbooks::expect_status(fields, ctx)?;
            let verify = http_verify(fields, ctx)?;
            Some(Provider::Http {
                url: url?.value,
                method: method?,
                token,
                body,
                expect_status,
                verify,
            })
        }
        "command" => {
            let verify = command(fields, "verify", ctx);
            let bad_verify = fields.get("verify").is_some() && verify.is_none();
            let command = command(fields, "command", ctx).or_else(|| {
                if fields.get("command").is_none() {
                    fields.missing("command", "[\"/usr/local/bin/repoint\"]", ctx.diags);
                }
                None
            })?;
            (!bad_verify).then_some(Provider::Command { command, verify })
        }
        other => {
            let message = format!(
                "`provider` in {} is `{other}`, which Lifeboat does not know",
                fields.context()
            );
            ctx.diags
                .error(&kind.span, message, format!("write one of {PROVIDERS}"));
            None
        }
    }
}

/// `verify_url` with `verify_contains` and/or `verify_json`: the read-back after an
/// `http` change. `Some(None)` when absent, `None` when written wrong (reported).
fn http_verify(fields: &Fields, ctx: &mut Ctx) -> Option<Option<HttpVerify>> {
    let url = super::checks::http_url(fields, "verify_url", "\"http://127.0.0.1:2019/config/apps/http\"", ctx);
    let contains = fields.string("verify_contains", "\"{target}\"", ctx.diags);
    let json = super::playbooks::json_pointers(fields, "verify_json", ctx)?;
    let written_wrong = ["verify_url", "verify_contains"]
        .iter()
        .zip([&url, &contains])
        .any(|(k, v)| fields.get(k).is_some() && v.is_none());
    if written_wrong {
        return None;
    }
    let Some(url) = url else {
        let stray = contains
            .as_ref()
            .map(|c| c.span.clone())
            .or_else(|| (!json.is_empty()).then(|| fields.get("verify_json").map(|v| v.span()).unwrap_or_default()));
        if let Some(span) = stray {
            let message = format!(
                "{}: `verify_contains` and `verify_json` compare what `verify_url` answers, and there is no `verify_url`",
                fields.context()
            );
            ctx.diags.error(
                &span,
                message,
                "add `verify_url = \"…\"`, the URL that shows the current target",
            );
            return None;
        }
        return Some(None);
    };
    if contains.is_none() && json.is_empty() {
        let message = format!(
            "`verify_url` in {} has nothing to compare its answer with",
            fields.context()
        );
        ctx.diags.error(
            &url.span,
            message,
            "add `verify_contains = \"{target}\"` or `verify_json = { \"/0/dial\" = \"{target}\" }`",
        );
        return None;
    }
    Some(Some(HttpVerify {
        url: url.value,
        contains: contains.map(|c| c.value),
        json,
    }))
}

/// `targets = { REGION = "address", ... }`: what the endpoint points at per region.
fn targets(fields: &Fields, ctx: &mut Ctx) -> Option<BTreeMap<RegionName, String>> {
    let example = "{ eu-west = \"10.0.1.10\", us-east = \"10.1.1.10\" }";
    let Some((table, _)) = fields.table("targets", example, ctx.diags) else {
        if fields.get("targets").is_none() {
            fields.missing("targets", example, ctx.diags);
        }
        return None;
    };
    let defined: BTreeSet<String> = ctx.regions.clone();
    let context = format!("`targets` in {}", fields.context());
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, value) in table.iter() {
        let region = At {
            value: key.get_ref().to_string(),
            span: key.span(),
        };
        ok &= ctx.check_ref("region", &region, &defined, &context);
        match (value.get_ref().as_str(), RegionName::new(&region.value)) {
            (Some(target), Ok(name)) => {
                out.insert(name, target.to_string());
            }
            _ => {
                let message = format!("{context}: the target for `{}` must be a string", region.value);
                ctx.diags
                    .error(&value.span(), message, format!("write it like `targets = {example}`"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
