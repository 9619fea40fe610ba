//! Redaction of credentials that URLs carry, in any text Lifeboat shows.
//!
//! A plan may quote a URL in a diagnostic, a drill may name the webhook it called, and
//! an HTTP client error repeats the URL it failed on. Any of these can carry a secret:
//! the `user:password@` part or a query value such as `?token=abc`. Every message that
//! can contain a URL passes through `text`, which keeps the scheme, host, path and
//! query names (enough to find the thing) and replaces the rest with `***`. A URL's
//! path is kept: a secret that lives in a path is a secret reference's value, and
//! those are never put into messages at all.

/// What replaces a redacted part.
pub const MASK: &str = "***";

/// `text` with the userinfo, query values and fragment of every URL in it masked.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find("://") {
        let start = scheme_start(&rest[..found]);
        let end = found + 3 + url_len(&rest[found + 3..]);
        out.push_str(&rest[..start]);
        out.push_str(&url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Parts of a query name that make its value a credential (`token`, `api_key`,
/// `X-Amz-Signature`, `password`, `auth`, ...).
const SECRET_NAMES: [&str; 8] = ["token", "key", "secret", "pass", "pwd", "sig", "auth", "cred"];

/// Whether some URL in `text` writes a credential inline: a `user[:password]@` part, a
/// fragment, or a query value whose name says it is one. The options of a repository
/// address (`endpoint`, `region`, `storage_class`, ...) are not credentials.
pub fn holds_credential(text: &str) -> bool {
    let mut rest = text;
    while let Some(found) = rest.find("://") {
        let start = scheme_start(&rest[..found]);
        let end = found + 3 + url_len(&rest[found + 3..]);
        let url = &rest[start..end];
        if has_userinfo(url) || url.contains('#') || secret_query(url) {
            return true;
        }
        rest = &rest[end..];
    }
    false
}

fn secret_query(url: &str) -> bool {
    let Some((_, query)) = url.split_once('?') else {
        return false;
    };
    query.split('&').any(|pair| {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n).to_ascii_lowercase();
        SECRET_NAMES.iter().any(|s| name.contains(s))
    })
}

/// Where the scheme in front of `://` begins (letters, digits, `+`, `-`, `.`).
fn scheme_start(before: &str) -> usize {
    let scheme_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.');
    before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| scheme_char(c))
        .last()
        .map_or(before.len(), |(i, _)| i)
}

/// How far a URL runs: to whitespace or a character that quotes or encloses it, less
/// punctuation that ends the sentence around it (`see http://h/x: refused`).
fn url_len(after_scheme: &str) -> usize {
    let end = after_scheme
        .find(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '`' | '"' | '\'' | '<' | '>' | ')'))
        .unwrap_or(after_scheme.len());
    after_scheme[..end].trim_end_matches(['.', ',', ';', ':', '!']).len()
}

/// One URL, `scheme://` included, redacted.
fn url(url: &str) -> String {
    let Some(split) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_at(split + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("{MASK}{}", &authority[at..]),
        None => authority.to_string(),
    };
    format!("{scheme}{authority}{}", path_and_query(tail))
}

/// The path kept, each query value and the fragment masked.
fn path_and_query(tail: &str) -> String {
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((before, _)) => (before, format!("#{MASK}")),
        None => (tail, String::new()),
    };
    let Some((path, query)) = before_fragment.split_once('?') else {
        return format!("{before_fragment}{fragment}");
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => format!("{name}={MASK}"),
            None if pair.is_empty() => String::new(),
            None => MASK.to_string(),
        })
        .collect();
    format!("{path}?{}{fragment}", pairs.join("&"))
}

/// Whether `url` carries a `user[:password]@` part before its host.
pub fn has_userinfo(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest[..authority_end].contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_masked_and_the_host_kept() {
        assert_eq!(text("s3://KEY:SECRET@bucket/p"), "s3://***@bucket/p");
        assert_eq!(
            text("address `https://u:p@h:8/x` in [regions.a]"),
            "address `https://***@h:8/x` in [regions.a]"
        );
    }

    #[test]
    fn query_values_and_fragments_are_masked_names_kept() {
        assert_eq!(
            text("POST http://h/hook?token=abc&x=1#frag: refused"),
            "POST http://h/hook?token=***&x=***#***: refused"
        );
        assert_eq!(text("see http://h/p?abc."), "see http://h/p?***.");
    }

    #[test]
    fn several_urls_and_plain_text_survive() {
        let got = text("from http://a/?k=1 to (s3://b?endpoint=http://u:p@e:1) done");
        assert_eq!(got, "from http://a/?k=*** to (s3://b?endpoint=***) done");
        assert_eq!(text("no url here: a:b@c"), "no url here: a:b@c");
        assert_eq!(text("naïve ünïcode://x?y=z"), "naïve ünïcode://x?y=***");
    }

    #[test]
    fn userinfo_is_detected_only_before_the_host() {
        assert!(has_userinfo("s3://k:s@bucket/p"));
        assert!(has_userinfo("https://token@hooks.example.com/x"));
        assert!(!has_userinfo("https://hooks.example.com/a@b"));
        assert!(!has_userinfo("s3://bucket/p?endpoint=x"));
    }

    #[test]
    fn credentials_written_in_urls_are_found_and_address_options_are_not() {
        assert!(holds_credential("url = \"http://h/plain?token=abc\""));
        assert!(holds_credential("webhook = \"https://u:p@h/x\""));
        assert!(holds_credential("u = \"https://h/x?X-Amz-Signature=1\""));
        assert!(holds_credential("u = \"https://h/x#frag\""));
        assert!(!holds_credential(
            "address = \"s3://b/p?endpoint=http://127.0.0.1:9000&region=us-east-1&storage_class=STANDARD\""
        ));
        assert!(!holds_credential("address = \"/srv/regions/a\"\n# comment about a key"));
    }
}
