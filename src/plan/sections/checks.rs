//! Checks shared by several sections: URLs, HTTP methods, environment names, bounded
//! durations, and URLs that may come from a secret reference.
//!
//! A plan is read as an attacker would write it: every value that reaches a network
//! request, a child process or a timer is bounded here, so execution never meets a
//! `file://` probe, a method with a line break, an interval of zero or a wait that
//! overflows a clock.

use std::time::Duration;

use super::Ctx;
use super::key::{env_name, reference};
use crate::format::names::Tag;
use crate::plan::model::UrlSource;
use crate::plan::reader::{At, Fields};
use crate::plan::redact;
use crate::plan::units::format_duration;

/// The longest a probe may pause between attempts, a wait may last, or a step may run.
pub const MAX_STEP_TIME: Duration = Duration::from_secs(7 * 86_400);
const CREDENTIALS_FIX: &str = "remove the `user:password@` part and reference the secret instead: \
     { env = \"VAR\" }, { file = \"path\" } or { command = [\"prog\", \"arg\"] }";

/// Why `url` is not an http(s) URL Lifeboat will call, if it is not.
/// Placeholders such as `{target}` are allowed, so the URL is checked by its parts.
pub fn http_url_problem(url: &str) -> Option<&'static str> {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("http://").or_else(|| lower.strip_prefix("https://")) else {
        return Some("is not an http:// or https:// URL");
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("contains spaces or control characters");
    }
    if redact::has_userinfo(url) {
        return Some("carries credentials (`user:password@`)");
    }
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (host_end == 0).then_some("names no host")
}

/// An http(s) URL under `key`; reported and `None` when it is anything else.
pub fn http_url(fields: &Fields, key: &str, example: &str, ctx: &mut Ctx) -> Option<At<String>> {
    let url = fields.string(key, example, ctx.diags)?;
    report_url(&url, key, fields.context(), ctx).then_some(url)
}

/// Reports `url` if it is not an http(s) URL; `true` when it is fine.
fn report_url(url: &At<String>, key: &str, context: &str, ctx: &mut Ctx) -> bool {
    let Some(why) = http_url_problem(&url.value) else {
        return true;
    };
    let fix = if redact::has_userinfo(&url.value) {
        CREDENTIALS_FIX.to_string()
    } else {
        format!("write the full URL, e.g. `{key} = \"https://hooks.example.com/lifeboat\"`")
    };
    let message = format!("`{key}` in {context} `{}` {why}", url.value);
    ctx.diags.error(&url.span, message, fix);
    false
}

/// A URL written inline or read from a secret reference (`{ env = "HOOK_URL" }`).
/// `Some(None)` when absent, `None` when written wrong (reported).
pub fn url_source(fields: &Fields, key: &str, example: &str, ctx: &mut Ctx) -> Option<Option<UrlSource>> {
    let Some(value) = fields.get(key) else {
        return Some(None);
    };
    if value.get_ref().as_str().is_some() {
        return http_url(fields, key, example, ctx).map(|u| Some(UrlSource::Plain(u.value)));
    }
    reference(fields, key, ctx).map(|secret| Some(UrlSource::Secret(secret)))
}

/// An HTTP method: an RFC 9110 token of at most 32 characters, `default` when absent.
pub fn method(fields: &Fields, default: &str, ctx: &mut Ctx) -> Option<String> {
    let Some(written) = fields.string("method", "\"POST\"", ctx.diags) else {
        return fields.get("method").is_none().then(|| default.to_string());
    };
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !written.value.is_empty() && written.value.len() <= 32 && written.value.chars().all(token) {
        return Some(written.value);
    }
    let message = format!(
        "`method` in {} is {:?}, not an HTTP method",
        fields.context(),
        written.value
    );
    ctx.diags.error(
        &written.span,
        message,
        "write a method such as \"GET\", \"POST\" or \"PUT\"",
    );
    None
}

/// `env = ["NAME", ...]`: variables of Lifeboat's own environment passed to a child.
/// Empty when absent; `None` when a name is not a valid variable name (reported).
pub fn env_names(fields: &Fields, ctx: &mut Ctx) -> Option<Vec<String>> {
    let Some(written) = fields.strings("env", "[\"HTTPS_PROXY\"]", ctx.diags) else {
        return fields.get("env").is_none().then(Vec::new);
    };
    let mut ok = true;
    for name in &written {
        ok &= env_name(name, fields.context(), ctx);
    }
    ok.then(|| written.into_iter().map(|n| n.value).collect())
}

/// A duration under `key` that must lie in `min..=max`; reported when outside.
pub fn bounded(
    fields: &Fields,
    key: &str,
    example: &str,
    (min, max): (Duration, Duration),
    ctx: &mut Ctx,
) -> Option<At<Duration>> {
    let written = fields.duration(key, example, ctx.diags)?;
    if (min..=max).contains(&written.value) {
        return Some(written);
    }
    let message = format!(
        "`{key}` in {} is {}, outside {} to {}",
        fields.context(),
        format_duration(written.value),
        format_duration(min),
        format_duration(max)
    );
    let fix = format!(
        "write a duration from {} to {}",
        format_duration(min),
        format_duration(max)
    );
    ctx.diags.error(&written.span, message, fix);
    None
}

/// Tags such as `keep_tags` or `tags`; invalid ones are reported and dropped.
pub fn tags(fields: &Fields, key: &str, ctx: &mut Ctx) -> Vec<Tag> {
    let written = fields.strings(key, "[\"release\"]", ctx.diags).unwrap_or_default();
    let mut out = Vec::new();
    for tag in written {
        match Tag::new(&tag.value) {
            Ok(t) => out.push(t),
            Err(_) => ctx.bad_name("tag", &tag),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_with_a_host_pass() {
        assert_eq!(http_url_problem("https://h/x?t={target}"), None);
        assert_eq!(http_url_problem("HTTP://h"), None);
        for bad in [
            "file:///etc/passwd",
            "https://",
            "https:///x",
            "http://u:p@h/",
            "http://h/a b",
            "http://h/\r\nX: y",
            "gopher://h",
        ] {
            assert!(http_url_problem(bad).is_some(), "{bad}");
        }
    }
}
