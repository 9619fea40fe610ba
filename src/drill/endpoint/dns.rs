//! `dns`: an RFC 2136 dynamic update of one record, signed with TSIG when configured.
//!
//! The record set is deleted and the new record added, each answered by the server.
//! A rejected key shows up in two ways: `NOTAUTH` from the server, or (hickory 0.26)
//! a protocol error about "truncated HMACs" when the server's unsigned error answer
//! fails verification. Both are reported as an authentication failure.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};

use super::Change;
use crate::apply::secrets;
use crate::plan::{DnsRecordType, KeySource, Provider};

/// Seconds a signed update may be off the server's clock.
const FUDGE: u16 = 300;

fn name(text: &str, what: &str) -> Result<Name, String> {
    let mut n = Name::from_ascii(text).map_err(|e| format!("{what} `{text}` is not a DNS name: {e}"))?;
    n.set_fqdn(true);
    Ok(n)
}

fn rdata(kind: DnsRecordType, target: &str) -> Result<(RecordType, RData), String> {
    let bad = |e: &dyn std::fmt::Display| format!("target `{target}` is not valid for this record: {e}");
    Ok(match kind {
        DnsRecordType::A => (RecordType::A, RData::A(A(target.parse().map_err(|e| bad(&e))?))),
        DnsRecordType::Aaaa => (
            RecordType::AAAA,
            RData::AAAA(AAAA(target.parse().map_err(|e| bad(&e))?)),
        ),
        DnsRecordType::Cname => (RecordType::CNAME, RData::CNAME(CNAME(name(target, "target")?))),
    })
}

fn signer(key_name: Option<&String>, secret: Option<&KeySource>) -> Result<Option<TSigner>, String> {
    let (Some(key_name), Some(secret)) = (key_name, secret) else {
        return Ok(None);
    };
    let secret = secrets::resolve(secret).map_err(|e| format!("TSIG secret of key {key_name}: {e}"))?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(String::from_utf8_lossy(&secret).trim())
        .map_err(|e| format!("TSIG secret of key {key_name} is not base64: {e}"))?;
    let signer = TSigner::new(key, TsigAlgorithm::HmacSha256, name(key_name, "TSIG key name")?, FUDGE)
        .map_err(|e| format!("TSIG key {key_name}: {e}"))?;
    Ok(Some(signer))
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

fn auth_hint(key: Option<&String>) -> String {
    match key {
        Some(k) => {
            format!("authentication failed: the server rejected TSIG key `{k}` — check tsig_key_name and tsig_secret")
        }
        None => "authentication failed: the server wants a signed update — set tsig_key_name and tsig_secret".into(),
    }
}

fn classify(error: impl std::fmt::Display, key: Option<&String>) -> String {
    let text = error.to_string();
    if text.contains("truncated HMAC") || text.contains("BADSIG") || text.contains("BADKEY") || text.contains("NotAuth")
    {
        auth_hint(key)
    } else {
        text
    }
}

fn check(code: ResponseCode, what: &str, key: Option<&String>) -> Result<(), String> {
    match code {
        ResponseCode::NoError => Ok(()),
        ResponseCode::NotAuth | ResponseCode::Refused => Err(format!("{what}: {code}: {}", auth_hint(key))),
        other => Err(format!("{what}: the server answered {other}")),
    }
}

/// Replace the record with the change's target.
pub async fn update(change: &Change<'_>) -> Result<String, String> {
    let Provider::Dns {
        server,
        zone,
        record,
        record_type,
        ttl,
        tsig_key_name,
        tsig_secret,
    } = super::provider(change.endpoint, change.route)
    else {
        return Err("not a dns endpoint".into());
    };
    let target = change.target()?;
    let (rtype, data) = rdata(*record_type, target)?;
    let (zone_name, record_name) = (name(zone, "zone")?, name(record, "record")?);
    if !zone_name.zone_of(&record_name) {
        return Err(format!("record {record} is not in zone {zone}"));
    }
    let key = tsig_key_name.as_ref();
    let stream = UdpClientStream::builder(server_addr(server).await?, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(5)))
        .with_signer(signer(key, tsig_secret.as_ref())?)
        .build();
    let (mut client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    let background = tokio::spawn(background);
    let result = async {
        let delete = client
            .delete_rrset(Record::update0(record_name.clone(), 0, rtype), zone_name.clone())
            .await
            .map_err(|e| format!("delete of {record}: {}", classify(e, key)))?;
        check(delete.metadata.response_code, &format!("delete of {record}"), key)?;
        let ttl = u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX);
        let create = client
            .create(Record::from_rdata(record_name, ttl, data), zone_name)
            .await
            .map_err(|e| format!("update of {record}: {}", classify(e, key)))?;
        check(create.metadata.response_code, &format!("update of {record}"), key)
    }
    .await;
    background.abort();
    result.map(|_| format!("{record} {rtype} now {target} at {server}"))
}
