//! The keys of a `provider = "dns"` endpoint, and what can be known about them before a
//! failover: the record lies inside its zone, each target fits the record type (an IPv4
//! address for A, IPv6 for AAAA, a fully-qualified name for CNAME), the TSIG algorithm is
//! one the servers speak, the resolvers to verify with are socket addresses, and the TTL
//! is one a failover can live with. A plan that passes `validate` cannot fail on these at
//! 3 a.m. in the middle of an incident.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::super::Ctx;
use super::super::key::reference;
use crate::plan::model::{DnsRecordType, Provider, TsigAlgorithm};
use crate::plan::reader::{At, Fields};
use crate::plan::units::format_duration;

/// The TTL written when the plan sets none.
const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// The longest TTL accepted. Resolvers may answer with the old target for a whole TTL
/// after a failover, so a longer one defeats the endpoint; RFC 2181 (§8) would allow up
/// to 2^31-1 s, which no failover record wants.
const MAX_TTL: Duration = Duration::from_secs(86_400);

/// The keys a DNS endpoint (and its drill route) accepts.
pub const KEYS: [&str; 9] = [
    "server",
    "zone",
    "record",
    "type",
    "ttl",
    "tsig_key_name",
    "tsig_secret",
    "tsig_algorithm",
    "verify_resolvers",
];

pub fn provider(fields: &Fields, ctx: &mut Ctx) -> Option<Provider> {
    let server = fields.required_string("server", "\"ns1.example.com:53\"", ctx.diags);
    let zone = fields.required_string("zone", "\"example.com.\"", ctx.diags);
    let record = fields.required_string("record", "\"api.example.com.\"", ctx.diags);
    let record_type = record_type(fields, ctx);
    let ttl = ttl(fields, ctx);
    let tsig_key_name = fields
        .string("tsig_key_name", "\"lifeboat-key\"", ctx.diags)
        .map(|k| k.value);
    let tsig_secret = reference(fields, "tsig_secret", ctx);
    let tsig_algorithm = tsig_algorithm(fields, ctx);
    let verify_resolvers = resolvers(fields, ctx);
    // A record outside its zone is reported; the endpoint is still built so that its
    // targets are checked too (any error keeps the plan from being used).
    if let (Some(zone), Some(record)) = (&zone, &record) {
        record_in_zone(record, zone, ctx);
    }
    Some(Provider::Dns {
        server: server?.value,
        zone: zone?.value,
        record: record?.value,
        record_type: record_type?,
        ttl,
        tsig_key_name,
        tsig_secret,
        tsig_algorithm,
        verify_resolvers,
    })
}

/// `ttl`: from 1 s (0 would tell resolvers not to cache, which some ignore) to [`MAX_TTL`].
fn ttl(fields: &Fields, ctx: &mut Ctx) -> Duration {
    let Some(written) = fields.duration("ttl", "\"60s\"", ctx.diags) else {
        return DEFAULT_TTL;
    };
    let ttl = written.value;
    if ttl.is_zero() || ttl > MAX_TTL {
        let message = format!(
            "`ttl` in {} is {}, outside 1s to {}: resolvers keep a record's old target for up to its TTL after a failover",
            fields.context(),
            format_duration(ttl),
            format_duration(MAX_TTL)
        );
        ctx.diags.error(
            &written.span,
            message,
            "write a TTL from \"1s\" to \"1d\", e.g. \"60s\"",
        );
    }
    ttl
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

/// The algorithm written, else (absent or reported as wrong) the default.
fn tsig_algorithm(fields: &Fields, ctx: &mut Ctx) -> TsigAlgorithm {
    let Some(written) = fields.string("tsig_algorithm", "\"hmac-sha256\"", ctx.diags) else {
        return TsigAlgorithm::default();
    };
    let all = [
        TsigAlgorithm::HmacSha256,
        TsigAlgorithm::HmacSha384,
        TsigAlgorithm::HmacSha512,
    ];
    let found = all
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(&written.value));
    if found.is_none() {
        ctx.diags.error(
            &written.span,
            format!(
                "`tsig_algorithm` is `{}`, not a TSIG algorithm Lifeboat signs with",
                written.value
            ),
            "write \"hmac-sha256\", \"hmac-sha384\" or \"hmac-sha512\", as the server's key says",
        );
    }
    found.unwrap_or_default()
}

/// `verify_resolvers = ["ip:port", ...]`: the items that are socket addresses (each
/// other item is reported).
fn resolvers(fields: &Fields, ctx: &mut Ctx) -> Vec<SocketAddr> {
    let items = fields
        .strings("verify_resolvers", "[\"10.0.0.53:53\"]", ctx.diags)
        .unwrap_or_default();
    let mut out = Vec::new();
    for item in items {
        match item.value.parse::<SocketAddr>() {
            Ok(addr) => out.push(addr),
            Err(_) => {
                ctx.diags.error(
                    &item.span,
                    format!(
                        "resolver `{}` in `verify_resolvers` is not an address and port",
                        item.value
                    ),
                    "write it as \"10.0.0.53:53\" or \"[2001:db8::53]:53\"",
                );
            }
        }
    }
    out
}

/// The labels of a name, lower case, without the root.
fn labels(name: &str) -> Vec<String> {
    name.trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Reports a record or zone that is not a name, or a record outside its zone.
fn record_in_zone(record: &At<String>, zone: &At<String>, ctx: &mut Ctx) {
    for name in [record, zone] {
        if let Err(why) = check_name(&name.value) {
            let message = format!("`{}` is not a DNS name: {why}", name.value);
            ctx.diags
                .error(&name.span, message, "write a name such as \"api.example.com.\"");
            return;
        }
    }
    let (r, z) = (labels(&record.value), labels(&zone.value));
    if r.len() < z.len() || r[r.len() - z.len()..] != z[..] {
        ctx.diags.error(
            &record.span,
            format!("record `{}` is not inside zone `{}`", record.value, zone.value),
            "name a record that ends with the zone, or the zone that holds the record",
        );
    }
}

/// Whether `name` is a well-formed host or domain name (RFC 1035 lengths; letters,
/// digits, `-` and `_`).
fn check_name(name: &str) -> Result<(), String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() || bare.len() > 253 {
        return Err("it must have 1 to 253 characters".into());
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err("it has an empty label (two dots in a row, or a leading dot)".into());
        }
        if label.len() > 63 {
            return Err(format!("label `{label}` is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("label `{label}` holds `{c}`"));
        }
    }
    Ok(())
}

/// Why `target` cannot be written into a record of `kind`, if it cannot.
pub fn target_problem(kind: DnsRecordType, target: &str) -> Option<(String, &'static str)> {
    match kind {
        DnsRecordType::A => target.parse::<Ipv4Addr>().is_err().then(|| {
            let what = if target.parse::<Ipv6Addr>().is_ok() {
                "an IPv6 address, but the record type is A"
            } else {
                "not an IPv4 address, which an A record holds"
            };
            (
                what.to_string(),
                "write an address like \"10.0.1.10\", or set `type = \"AAAA\"` for IPv6",
            )
        }),
        DnsRecordType::Aaaa => target.parse::<Ipv6Addr>().is_err().then(|| {
            let what = if target.parse::<Ipv4Addr>().is_ok() {
                "an IPv4 address, but the record type is AAAA"
            } else {
                "not an IPv6 address, which an AAAA record holds"
            };
            (
                what.to_string(),
                "write an address like \"2001:db8::10\", or set `type = \"A\"` for IPv4",
            )
        }),
        DnsRecordType::Cname => cname_problem(target).map(|why| {
            (
                why,
                "write the full name with its trailing dot, e.g. \"api.eu.example.com.\"",
            )
        }),
    }
}

fn cname_problem(target: &str) -> Option<String> {
    if let Err(why) = check_name(target) {
        return Some(format!("not a DNS name ({why})"));
    }
    (!target.ends_with('.')).then(|| "a relative name: without the trailing dot it is not fully qualified".to_string())
}

/// Every target of a DNS endpoint checked against its record type, at the target's span.
pub fn check_targets(fields: &Fields, kind: DnsRecordType, ctx: &mut Ctx) -> bool {
    let Some(table) = fields.get("targets").and_then(|t| t.get_ref().as_table()) else {
        return true;
    };
    let mut ok = true;
    for (region, value) in table.iter() {
        let Some(target) = value.get_ref().as_str() else {
            continue;
        };
        if let Some((what, fix)) = target_problem(kind, target) {
            let message = format!("target `{target}` for `{}` is {what}", region.get_ref());
            ctx.diags.error(&value.span(), message, fix);
            ok = false;
        }
    }
    ok
}
