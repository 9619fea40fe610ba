//! `dns`: re-point one record with an atomic RFC 2136 update, then read it back.
//!
//! The record is read first, then replaced by one UPDATE message whose prerequisite is
//! the value just read (see `message`), so the server applies all of it or nothing and
//! two failovers cannot interleave: a name never goes without a record, and a late copy
//! of the message cannot undo a later change. The server's word is not taken for it:
//! after every change the record is read back from the server (BIND answers NOERROR to
//! a CNAME beside other records and ignores it), and from `verify_resolvers` when the
//! plan lists them, and the step fails unless they hold the target. When the answer to
//! an update is lost, that read-back decides what happened.

mod message;
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm as HmacAlgorithm, TsigError};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, RecordType, TSigner};

use super::Change;
use crate::apply::secrets;
use crate::plan::{DnsRecordType, Provider, TsigAlgorithm};
use message::text;
use wire::{Failure, Server};

/// Seconds a signed message may be off the server's clock.
const FUDGE: u16 = 300;
/// How long one answer is awaited.
const ANSWER_WAIT: Duration = Duration::from_secs(3);
/// How long the server may take to show an accepted change.
const SERVER_READBACK: Duration = Duration::from_secs(3);
/// How long listed resolvers may take to show it.
const RESOLVER_READBACK: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(200);

/// One DNS route, ready to talk to its server.
struct Route<'a> {
    server: Server,
    server_text: &'a str,
    zone: Name,
    name: Name,
    record: &'a str,
    rtype: RecordType,
    kind: DnsRecordType,
    ttl: u32,
    key: Option<(&'a str, TsigAlgorithm)>,
    resolvers: &'a [SocketAddr],
}

fn name(text: &str, what: &str) -> Result<Name, String> {
    let mut n = Name::from_ascii(text).map_err(|e| format!("{what} `{text}` is not a DNS name: {e}"))?;
    n.set_fqdn(true);
    Ok(n)
}

fn rtype(kind: DnsRecordType) -> RecordType {
    match kind {
        DnsRecordType::A => RecordType::A,
        DnsRecordType::Aaaa => RecordType::AAAA,
        DnsRecordType::Cname => RecordType::CNAME,
    }
}

fn rdata(kind: DnsRecordType, target: &str) -> Result<RData, String> {
    let bad = |what: &str| format!("target `{target}` is not {what}");
    Ok(match kind {
        DnsRecordType::A => RData::A(A(target.parse().map_err(|_| bad("an IPv4 address (type A)"))?)),
        DnsRecordType::Aaaa => RData::AAAA(AAAA(target.parse().map_err(|_| bad("an IPv6 address (type AAAA)"))?)),
        DnsRecordType::Cname if !target.ends_with('.') => {
            return Err(bad("a fully-qualified name with its trailing dot (type CNAME)"));
        }
        DnsRecordType::Cname => RData::CNAME(CNAME(name(target, "target")?)),
    })
}

fn algorithm(a: TsigAlgorithm) -> HmacAlgorithm {
    match a {
        TsigAlgorithm::HmacSha256 => HmacAlgorithm::HmacSha256,
        TsigAlgorithm::HmacSha384 => HmacAlgorithm::HmacSha384,
        TsigAlgorithm::HmacSha512 => HmacAlgorithm::HmacSha512,
    }
}

fn signer(key_name: &str, secret: &crate::plan::KeySource, alg: TsigAlgorithm) -> Result<TSigner, String> {
    let secret = secrets::resolve(secret).map_err(|e| format!("TSIG secret of key {key_name}: {e}"))?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(String::from_utf8_lossy(&secret).trim())
        .map_err(|e| format!("TSIG secret of key {key_name} is not base64: {e}"))?;
    TSigner::new(key, algorithm(alg), name(key_name, "TSIG key name")?, FUDGE)
        .map_err(|e| format!("TSIG key {key_name}: {e}"))
}

async fn server_addr(server: &str) -> Result<SocketAddr, String> {
    let has_port = server.contains("]:") || (!server.starts_with('[') && server.matches(':').count() == 1);
    let with_port = if has_port {
        server.to_string()
    } else {
        format!("{server}:53")
    };
    tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| format!("cannot resolve DNS server {server}: {e}"))?
        .next()
        .ok_or_else(|| format!("DNS server {server} has no address"))
}

async fn route<'a>(change: &'a Change<'_>) -> Result<Route<'a>, String> {
    let Provider::Dns {
        server,
        zone,
        record,
        record_type,
        ttl,
        tsig_key_name,
        tsig_secret,
        tsig_algorithm,
        verify_resolvers,
    } = super::provider(change.endpoint, change.route)
    else {
        return Err("not a dns endpoint".into());
    };
    let (zone_name, record_name) = (name(zone, "zone")?, name(record, "record")?);
    if !zone_name.zone_of(&record_name) {
        return Err(format!("record {record} is not in zone {zone}"));
    }
    let (signer, key) = match (tsig_key_name, tsig_secret) {
        (Some(k), Some(s)) => (
            Some(signer(k, s, *tsig_algorithm)?),
            Some((k.as_str(), *tsig_algorithm)),
        ),
        _ => (None, None),
    };
    Ok(Route {
        server: Server {
            addr: server_addr(server).await?,
            signer,
            timeout: ANSWER_WAIT,
        },
        server_text: server,
        zone: zone_name,
        name: record_name,
        record,
        rtype: rtype(*record_type),
        kind: *record_type,
        ttl: u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX),
        key,
        resolvers: verify_resolvers,
    })
}

impl Route<'_> {
    fn key_text(&self) -> String {
        self.key
            .map_or("(none)".into(), |(k, a)| format!("`{k}` ({})", a.as_str()))
    }

    /// What a failed exchange means, in the operator's terms.
    fn failure(&self, failure: &Failure) -> String {
        let key = self.key_text();
        match failure {
            Failure::NoAnswer => format!("no answer from {} within {}s", self.server_text, ANSWER_WAIT.as_secs()),
            Failure::Tsig(TsigError::BadKey) => format!(
                "authentication failed: {} does not know TSIG key {key} (BADKEY) — tsig_key_name and tsig_algorithm must match the key as the server defines it",
                self.server_text
            ),
            Failure::Tsig(TsigError::BadSig) => format!(
                "authentication failed: {} rejected the signature of TSIG key {key} (BADSIG) — tsig_secret is not that key's secret",
                self.server_text
            ),
            Failure::Tsig(TsigError::BadTime) => format!(
                "authentication failed: {} says the signature time is off by more than {FUDGE}s (BADTIME) — fix the clock (NTP) here or on the server",
                self.server_text
            ),
            Failure::Tsig(other) => format!(
                "authentication failed: {} answered TSIG error {other:?}",
                self.server_text
            ),
            Failure::Unverified(why) => format!(
                "authentication failed: {why}, so {} does not share key {key} — check tsig_secret and tsig_algorithm",
                self.server_text
            ),
            Failure::Transport(why) => why.clone(),
        }
    }

    /// What an error answer to an update means.
    fn rejected(&self, code: ResponseCode) -> String {
        let (record, zone, server) = (self.record, &self.zone, self.server_text);
        match code {
            ResponseCode::Refused => format!(
                "{server} refused the update of {record} (REFUSED) — its update policy does not let key {} change this record; grant it (BIND update-policy, Knot acl with action update)",
                self.key_text()
            ),
            ResponseCode::NotAuth => format!(
                "{server} is not authoritative for zone {zone} or wants a signed update (NOTAUTH) — check `server` and `zone`, and set tsig_key_name and tsig_secret"
            ),
            ResponseCode::NotZone => format!("{server} says {record} is not in zone {zone} (NOTZONE) — check `zone`"),
            ResponseCode::NXRRSet | ResponseCode::YXRRSet | ResponseCode::NXDomain | ResponseCode::YXDomain => format!(
                "the record changed since it was read — another failover? {server} found {record} {} no longer as read ({code}); nothing was changed",
                self.rtype
            ),
            ResponseCode::ServFail => {
                format!("{server} failed to apply the update of {record} (SERVFAIL) — see the server's log")
            }
            other => format!("{server} rejected the update of {record} ({other})"),
        }
    }

    /// The record's values as `server` answers now.
    async fn read(&self, server: &Server) -> Result<Vec<RData>, String> {
        let reply = wire::exchange(server, message::query(&self.name, self.rtype))
            .await
            .map_err(|f| self.failure(&f))?;
        match reply.metadata.response_code {
            ResponseCode::NoError => Ok(message::values(&reply, &self.name, self.rtype)),
            ResponseCode::NXDomain => Ok(Vec::new()),
            code => Err(format!(
                "{} answered {code} to a query for {} {}",
                server.addr, self.record, self.rtype
            )),
        }
    }

    /// Read from `server` until it holds exactly `want` or `limit` passes; what it last held.
    async fn read_until(&self, server: &Server, want: &[RData], limit: Duration) -> Result<Vec<RData>, String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let found = self.read(server).await;
            if Self::holds(&found, want) || tokio::time::Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn holds(found: &Result<Vec<RData>, String>, want: &[RData]) -> bool {
        matches!(found, Ok(v) if v.as_slice() == want)
    }

    fn found_text(found: &Result<Vec<RData>, String>) -> String {
        match found {
            Ok(v) if v.is_empty() => "no record".into(),
            Ok(v) => text(v),
            Err(e) => format!("nothing readable ({e})"),
        }
    }

    /// Read the change back from the server, then from every listed resolver.
    /// `answered`: whether the server said it applied the update.
    async fn verify(&self, want: &[RData], target: &str, answered: bool) -> Result<String, String> {
        let found = self.read_until(&self.server, want, SERVER_READBACK).await;
        if !Self::holds(&found, want) {
            let hint = match (self.kind, answered) {
                (_, false) => " — the update did not take effect",
                (DnsRecordType::Cname, true) => {
                    " — a CNAME cannot stand beside other records of the name (BIND ignores it); remove them or use their type"
                }
                (_, true) => " — the server answered NOERROR but did not apply it; see its log",
            };
            return Err(format!(
                "{} reads back from {} as {}, not {target}{hint}",
                self.record,
                self.server_text,
                Self::found_text(&found)
            ));
        }
        let mut checked = vec![self.server_text.to_string()];
        for addr in self.resolvers {
            let resolver = Server {
                addr: *addr,
                signer: None,
                timeout: ANSWER_WAIT,
            };
            let found = self.read_until(&resolver, want, RESOLVER_READBACK).await;
            if !Self::holds(&found, want) {
                return Err(format!(
                    "{} reads back from resolver {addr} as {}, not {target}, after {}s",
                    self.record,
                    Self::found_text(&found),
                    RESOLVER_READBACK.as_secs()
                ));
            }
            checked.push(addr.to_string());
        }
        Ok(format!("read back from {}", checked.join(", ")))
    }
}

/// Replace the record with the change's target, atomically, and verify it by reading it
/// back. `Ok` says what changed and where it was read back.
pub async fn update(change: &Change<'_>) -> Result<String, String> {
    let route = route(change).await?;
    let target = change.target()?;
    let want = [rdata(route.kind, target)?];
    replace(&route, change.previous.as_deref(), &want, target).await
}

/// Put the record back to exactly `value`, as [`preflight`] read it before the run
/// changed it (values joined by ", "; empty: the name had no record of the type, which
/// is then deleted), atomically and read back like [`update`]. Only a record holding
/// `value` or one of `ours` (the targets this run set) is touched: any other value was
/// written by someone else since, and is left for them.
pub async fn restore(change: &Change<'_>, value: &str, ours: &[&str]) -> Result<String, String> {
    let route = route(change).await?;
    let want = values_of(route.kind, value)?;
    let shown = if value.is_empty() { "no record" } else { value };
    let current = route.read(&route.server).await?;
    let set_by_run = ours
        .iter()
        .map(|t| rdata(route.kind, t))
        .collect::<Result<Vec<_>, _>>()?;
    let known = current == want || set_by_run.iter().any(|r| current.as_slice() == std::slice::from_ref(r));
    if !known {
        return Err(format!(
            "{} {} holds `{}`, neither its value before the run (`{shown}`) nor a target this run set — another failover? It is left as it is",
            route.record,
            route.rtype,
            text(&current)
        ));
    }
    replace(&route, Some(&text(&current)), &want, shown).await
}

/// The record values a text from [`preflight`] names, sorted as an answer's are.
fn values_of(kind: DnsRecordType, value: &str) -> Result<Vec<RData>, String> {
    let mut out = value
        .split(", ")
        .filter(|v| !v.is_empty())
        .map(|v| rdata(kind, v))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(ToString::to_string);
    out.dedup();
    Ok(out)
}

/// One atomic UPDATE from what the record holds now to `want`, then the read-back.
/// `previous`: what the record must still hold (else nothing is sent); `shown`: `want`
/// in words.
async fn replace(route: &Route<'_>, previous: Option<&str>, want: &[RData], shown: &str) -> Result<String, String> {
    let (record, rtype, server) = (route.record, route.rtype, route.server_text);
    let current = route.read(&route.server).await?;
    if let Some(previous) = previous.filter(|p| *p != text(&current)) {
        return Err(format!(
            "the record changed since it was read — another failover? {record} {rtype} was `{previous}` and is now `{}`; nothing was changed",
            text(&current)
        ));
    }
    if current.as_slice() == want {
        let verified = route.verify(want, shown, true).await?;
        return Ok(format!("{record} {rtype} already {shown} at {server}; {verified}"));
    }
    let update = message::update(&route.zone, &route.name, rtype, &current, want, route.ttl);
    let note = match wire::exchange(&route.server, update).await {
        Ok(reply) if reply.metadata.response_code == ResponseCode::NoError => String::new(),
        Ok(reply) => return Err(route.rejected(reply.metadata.response_code)),
        Err(failure @ Failure::Tsig(_)) => return Err(route.failure(&failure)),
        // The server may have acted: the read-back below decides.
        Err(failure) => format!(" (the update got no usable answer: {})", route.failure(&failure)),
    };
    let answered = note.is_empty();
    let verified = route
        .verify(want, shown, answered)
        .await
        .map_err(|e| format!("{e}{note}"))?;
    Ok(format!(
        "{record} {rtype} now {shown} (was {}) at {server}; {verified}{note}",
        Route::found_text(&Ok(current))
    ))
}

/// Prove, without changing anything, that the server answers for the zone and accepts
/// the key (a signed query when a key is set), and that every target fits the record
/// type. `Ok` is the record's current value as `update` compares it with
/// `Change::previous`: the values joined by ", ", empty when the name has none.
pub async fn preflight(change: &Change<'_>) -> Result<String, String> {
    let route = route(change).await?;
    for (region, target) in &change.endpoint.targets {
        rdata(route.kind, target).map_err(|e| format!("endpoint {} for region {region}: {e}", change.endpoint.name))?;
    }
    let reply = wire::exchange(&route.server, message::query(&route.name, route.rtype))
        .await
        .map_err(|f| route.failure(&f))?;
    let code = reply.metadata.response_code;
    if !matches!(code, ResponseCode::NoError | ResponseCode::NXDomain) {
        return Err(format!(
            "{} answered {code} to a query for {} — is it the zone's primary server?",
            route.server_text, route.record
        ));
    }
    if !reply.metadata.authoritative {
        return Err(format!(
            "{} is not authoritative for zone {} — set `server` to the zone's primary",
            route.server_text, route.zone
        ));
    }
    Ok(text(&message::values(&reply, &route.name, route.rtype)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_by_preflight_parses_back_to_the_same_values() {
        let read = "10.0.0.1, 10.0.0.9";
        let values = values_of(DnsRecordType::A, read).unwrap();
        assert_eq!(text(&values), read);
        assert!(values_of(DnsRecordType::A, "").unwrap().is_empty(), "no record");
        let cname = values_of(DnsRecordType::Cname, "svc-a.example.test.").unwrap();
        assert_eq!(text(&cname), "svc-a.example.test.");
        assert!(values_of(DnsRecordType::Aaaa, "10.0.0.1").is_err());
    }
}
