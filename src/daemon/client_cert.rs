//! Who a client certificate names (mutual TLS): the Common Name of its subject, and
//! the roles the `--tls-client-roles` file grants that name.
//!
//! The handshake has already checked the certificate against `--tls-client-ca` (chain,
//! validity dates, client-auth usage) before anything here runs, so this only names
//! the caller. The mapping is an explicit file, `ROLES CN=NAME` per line, rather than
//! a convention read from the certificate (an OU meaning a role, say): a CA that
//! issues certificates for other purposes cannot grant API roles by accident, and a
//! certificate whose name is not listed gets no role at all (403), never a default.

use std::collections::HashMap;
use std::path::Path;

use tokio_rustls::rustls::pki_types::CertificateDer;

use super::DaemonConfig;
use super::roles::{Caller, Grant, parse_grants};

/// The verified client certificate of a connection, put on each of its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// The subject's Common Name; `None` when it has none, several, or one that is
    /// not a name (see `usable_name`).
    pub cn: Option<String>,
}

impl PeerCert {
    pub fn from_der(der: &CertificateDer<'_>) -> PeerCert {
        PeerCert { cn: common_name(der) }
    }

    /// The caller's name in logs, audit events and rate limits: `cert:CN=NAME`.
    pub fn subject(&self) -> String {
        match &self.cn {
            Some(cn) => format!("cert:CN={cn}"),
            None => "cert:(no usable CN)".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertRolesError {
    #[error("cannot read client certificate roles file {path}: {source} — check --tls-client-roles")]
    Read { path: String, source: std::io::Error },
    #[error(
        "client certificate roles file {path} line {line}: {why} — write `ROLES CN=NAME`, e.g. `operator:ml,viewer CN=backup-bot`"
    )]
    Line { path: String, line: usize, why: String },
}

/// Grants per certificate Common Name.
#[derive(Debug, Default, Clone)]
pub struct CertRoles {
    by_cn: HashMap<String, Vec<Grant>>,
}

impl CertRoles {
    /// The `--tls-client-roles` file's mapping; none without one.
    pub fn from_config(cfg: &DaemonConfig) -> Result<Self, CertRolesError> {
        match &cfg.tls_client_roles {
            Some(path) => Self::load(path),
            None => Ok(Self::default()),
        }
    }

    pub fn load(path: &Path) -> Result<Self, CertRolesError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CertRolesError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, why)| CertRolesError::Line { path: shown, line, why })
    }

    fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut by_cn = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (cn, grants) = parse_line(line).map_err(|why| (i + 1, why))?;
            if by_cn.insert(cn.clone(), grants).is_some() {
                return Err((i + 1, format!("CN={cn} is listed twice")));
            }
        }
        Ok(Self { by_cn })
    }

    pub fn len(&self) -> usize {
        self.by_cn.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_cn.is_empty()
    }

    /// The caller a certificate names: its grants, or none when it is not listed.
    pub fn caller(&self, cert: &PeerCert) -> Caller {
        let grants = cert
            .cn
            .as_ref()
            .and_then(|cn| self.by_cn.get(cn))
            .cloned()
            .unwrap_or_default();
        Caller {
            subject: cert.subject(),
            grants,
        }
    }
}

fn parse_line(line: &str) -> Result<(String, Vec<Grant>), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [roles, name] = words[..] else {
        return Err("expected two words".into());
    };
    let cn = name
        .strip_prefix("CN=")
        .ok_or_else(|| format!("the second word must be CN=NAME, not {name:?}"))?;
    if !usable_name(cn) {
        return Err(format!("{cn:?} must be 1 to 64 letters, digits or - _ . @"));
    }
    let grants = parse_grants([roles])?;
    if grants.is_empty() {
        return Err("no role given".into());
    }
    Ok((cn.to_string(), grants))
}

/// A name that is safe to log and to compare: 1 to 64 of letters, digits, `-_.@`.
fn usable_name(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.@".contains(c);
    !name.is_empty() && name.len() <= 64 && name.chars().all(ok)
}

/// The one Common Name of the certificate's subject, if it is a usable name.
fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let cert = webpki::EndEntityCert::try_from(der).ok()?;
    let mut names = subject_common_names(cert.subject())?;
    let cn = names.pop()?;
    (names.is_empty() && usable_name(&cn)).then_some(cn)
}

const SET: u8 = 0x31;
const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// UTF8String, PrintableString, IA5String.
const TEXT_TAGS: [u8; 3] = [0x0c, 0x13, 0x16];

/// Every Common Name in a DER Name's contents (its RDN sets, without the outer
/// SEQUENCE header, as webpki gives it); `None` when the bytes are not such a Name.
fn subject_common_names(mut rdns: &[u8]) -> Option<Vec<String>> {
    let mut found = Vec::new();
    while !rdns.is_empty() {
        let (set, rest) = element(rdns, SET)?;
        rdns = rest;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (attribute, rest) = element(attributes, SEQUENCE)?;
            attributes = rest;
            let (oid, value) = element(attribute, OID)?;
            if oid == COMMON_NAME {
                let (&tag, _) = value.split_first()?;
                let (text, _) = element(value, tag).filter(|_| TEXT_TAGS.contains(&tag))?;
                found.push(String::from_utf8(text.to_vec()).ok()?);
            }
        }
    }
    Some(found)
}

/// The contents of the DER element at the start of `input` if its tag is `tag`, and
/// what follows it. Lengths are checked against the input, never trusted.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x83 => {
            let n = usize::from(first & 0x7f);
            let bytes = rest.get(..n)?;
            let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        }
        _ => return None,
    };
    let contents = rest.get(..len)?;
    Some((contents, &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::roles::Level;

    /// A Name's contents with one RDN per (oid, tag, value).
    fn name(attrs: &[(&[u8], u8, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (oid, tag, value) in attrs {
            let mut atv = vec![OID, oid.len() as u8];
            atv.extend_from_slice(oid);
            atv.extend([*tag, value.len() as u8]);
            atv.extend_from_slice(value.as_bytes());
            let mut seq = vec![SEQUENCE, atv.len() as u8];
            seq.extend(atv);
            out.extend([SET, seq.len() as u8]);
            out.extend(seq);
        }
        out
    }

    const ORG: &[u8] = &[0x55, 0x04, 0x0a];

    #[test]
    fn common_names_are_found_among_other_attributes() {
        let n = name(&[(ORG, 0x0c, "Example"), (COMMON_NAME, 0x13, "backup-bot")]);
        assert_eq!(subject_common_names(&n), Some(vec!["backup-bot".to_string()]));
        assert_eq!(subject_common_names(&name(&[(ORG, 0x0c, "x")])), Some(vec![]));
    }

    #[test]
    fn damaged_names_are_refused() {
        let n = name(&[(COMMON_NAME, 0x0c, "backup-bot")]);
        assert_eq!(subject_common_names(&n[..n.len() - 1]), None, "truncated");
        let mut long = n.clone();
        long[1] = 0x84;
        assert_eq!(subject_common_names(&long), None, "4-byte length");
        let binary = name(&[(COMMON_NAME, 0x04, "backup-bot")]);
        assert_eq!(subject_common_names(&binary), None, "not a text type");
    }

    #[test]
    fn listed_names_get_their_roles_and_others_none() {
        let roles = CertRoles::parse("# mTLS\noperator:ml,viewer CN=backup-bot\n\nadmin CN=ops@example\n").unwrap();
        assert_eq!(roles.len(), 2);
        let bot = roles.caller(&PeerCert {
            cn: Some("backup-bot".into()),
        });
        assert_eq!(bot.subject, "cert:CN=backup-bot");
        assert!(bot.may(Level::Operator, Some("ml")) && !bot.may(Level::Operator, Some("web")));
        let stranger = roles.caller(&PeerCert {
            cn: Some("stranger".into()),
        });
        assert!(stranger.grants.is_empty() && !stranger.may(Level::Viewer, None));
        let nameless = roles.caller(&PeerCert { cn: None });
        assert_eq!(nameless.subject, "cert:(no usable CN)");
        assert!(nameless.grants.is_empty());
    }

    #[test]
    fn bad_role_files_name_the_line() {
        for (text, why) in [
            ("viewer backup-bot", "CN=NAME"),
            ("viewer CN=a b", "two words"),
            ("root CN=a", "unknown role"),
            ("viewer CN=a/b", "letters"),
            ("viewer CN=a\nadmin CN=a", "twice"),
        ] {
            let (line, msg) = CertRoles::parse(text).unwrap_err();
            assert!(line >= 1 && msg.contains(why), "{text}: {msg}");
        }
    }
}
