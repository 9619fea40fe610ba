//! `[endpoints.NAME]`: how traffic for one service is re-pointed to another region.
//!
//! The keys an endpoint accepts depend on its `provider`, so the provider is read first
//! and decides which keys are known.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::key::{command, reference};
use super::{Ctx, Named};
use crate::format::names::RegionName;
use crate::plan::model::{DnsRecordType, Endpoint, EndpointName, Provider};
use crate::plan::reader::{At, Fields};

const COMMON: [&str; 2] = ["provider", "targets"];
const DNS: [&str; 7] = [
    "server",
    "zone",
    "record",
    "type",
    "ttl",
    "tsig_key_name",
    "tsig_secret",
];
const FILE: [&str; 2] = ["path", "reload"];
const HTTP: [&str; 3] = ["url", "method", "token"];
const COMMAND: [&str; 1] = ["command"];
const ALL: [&str; 13] = [
    "server",
    "zone",
    "record",
    "type",
    "ttl",
    "tsig_key_name",
    "tsig_secret",
    "path",
    "reload",
    "url",
    "method",
    "token",
    "command",
];
const PROVIDERS: &str = "\"dns\", \"file\", \"http\" or \"command\"";

pub fn section(tables: &Named, ctx: &mut Ctx) -> BTreeMap<EndpointName, Endpoint> {
    let mut out = BTreeMap::new();
    for (name, table, span) in tables {
        let Some(endpoint_name) = EndpointName::new(&name.value) else {
            ctx.bad_name("endpoint", name);
            continue;
        };
        let provider = table.get("provider").and_then(|v| v.get_ref().as_str()).unwrap_or("");
        let known: Vec<&str> = COMMON.iter().chain(provider_keys(provider)).copied().collect();
        let context = format!("[endpoints.{}]", name.value);
        let fields = Fields::new(table, span.clone(), context, &known, ctx.diags);
        let targets = targets(&fields, ctx);
        ctx.endpoints.insert(
            name.value.clone(),
            targets.iter().flatten().map(|(r, _)| r.to_string()).collect(),
        );
        let provider = provider_of(&fields, ctx);
        if let (Some(provider), Some(targets)) = (provider, targets) {
            let endpoint = Endpoint {
                name: endpoint_name.clone(),
                provider,
                targets,
            };
            out.insert(endpoint_name, endpoint);
        }
    }
    out
}

fn provider_keys(provider: &str) -> &'static [&'static str] {
    match provider {
        "dns" => &DNS,
        "file" => &FILE,
        "http" => &HTTP,
        "command" => &COMMAND,
        // Unknown provider: accept every provider's keys, so only `provider` is reported.
        _ => &ALL,
    }
}

fn provider_of(fields: &Fields, ctx: &mut Ctx) -> Option<Provider> {
    let kind = fields.required_string("provider", "\"dns\"", ctx.diags)?;
    match kind.value.as_str() {
        "dns" => dns(fields, ctx),
        "file" => {
            let path = fields.required_string("path", "\"/etc/nginx/upstream.conf\"", ctx.diags)?;
            let reload = command(fields, "reload", ctx);
            Some(Provider::File {
                path: ctx.resolve(&path.value),
                reload,
            })
        }
        "http" => {
            let url = fields.required_string("url", "\"https://lb.internal/api/pool\"", ctx.diags)?;
            let method = fields
                .string("method", "\"PUT\"", ctx.diags)
                .map_or("POST".into(), |m| m.value);
            let token = reference(fields, "token", ctx);
            Some(Provider::Http {
                url: url.value,
                method,
                token,
            })
        }
        "command" => command(fields, "command", ctx)
            .or_else(|| {
                if fields.get("command").is_none() {
                    fields.missing("command", "[\"/usr/local/bin/repoint\"]", ctx.diags);
                }
                None
            })
            .map(|command| Provider::Command { command }),
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

fn dns(fields: &Fields, ctx: &mut Ctx) -> Option<Provider> {
    let server = fields.required_string("server", "\"ns1.example.com:53\"", ctx.diags);
    let zone = fields.required_string("zone", "\"example.com.\"", ctx.diags);
    let record = fields.required_string("record", "\"api.example.com.\"", ctx.diags);
    let record_type = record_type(fields, ctx);
    let ttl = fields
        .duration("ttl", "\"60s\"", ctx.diags)
        .map_or(Duration::from_secs(60), |t| t.value);
    let tsig_key_name = fields
        .string("tsig_key_name", "\"lifeboat-key\"", ctx.diags)
        .map(|k| k.value);
    let tsig_secret = reference(fields, "tsig_secret", ctx);
    Some(Provider::Dns {
        server: server?.value,
        zone: zone?.value,
        record: record?.value,
        record_type: record_type?,
        ttl,
        tsig_key_name,
        tsig_secret,
    })
}

fn record_type(fields: &Fields, ctx: &mut Ctx) -> Option<DnsRecordType> {
    let Some(written) = fields.string("type", "\"A\"", ctx.diags) else {
        return fields.get("type").is_none().then_some(DnsRecordType::A);
    };
    match written.value.as_str() {
        "A" => Some(DnsRecordType::A),
        "AAAA" => Some(DnsRecordType::Aaaa),
        "CNAME" => Some(DnsRecordType::Cname),
        other => {
            let message = format!(
                "`type` in {} is `{other}`, not a record type Lifeboat updates",
                fields.context()
            );
            ctx.diags
                .error(&written.span, message, "write \"A\", \"AAAA\" or \"CNAME\"");
            None
        }
    }
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
