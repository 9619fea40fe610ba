//! `[key]` and every other secret: references to where a secret lives, never its value.

use toml::de::DeTable;

use super::Ctx;
use crate::plan::model::{KeySource, SecretSource};
use crate::plan::reader::{At, Fields};

/// The longest an environment variable name passed to a child may be.
const MAX_ENV_NAME: usize = 128;
const SOURCE_KEYS: [&str; 3] = ["env", "file", "command"];
const KEY_EXAMPLE: &str = "{ env = \"LIFEBOAT_PASSWORD\" }";

/// The plan's `[key]` section: where the repository password comes from.
pub fn section(top: &Fields, ctx: &mut Ctx) -> Option<KeySource> {
    let Some((table, span)) = top.table("key", KEY_EXAMPLE, ctx.diags) else {
        if top.get("key").is_none() {
            ctx.diags.error(
                &(0..0),
                "the plan has no [key] section saying where the repository password comes from",
                "add `[key]` with `env = \"LIFEBOAT_PASSWORD\"`, `file = \"path\"` or `command = [\"prog\"]`",
            );
        }
        return None;
    };
    sources(table, span, "[key]", ctx)
}

/// A secret reference such as `token = { env = "API_TOKEN" }` inside another table.
/// A literal string was already reported by `Fields` as an inline secret.
pub fn reference(fields: &Fields, key: &str, ctx: &mut Ctx) -> Option<KeySource> {
    let value = fields.get(key)?;
    if value.get_ref().as_str().is_some() {
        return None;
    }
    let (table, span) = fields.table(key, KEY_EXAMPLE, ctx.diags)?;
    sources(table, span, &format!("`{key}` in {}", fields.context()), ctx)
}

fn sources(table: &DeTable, span: std::ops::Range<usize>, context: &str, ctx: &mut Ctx) -> Option<KeySource> {
    let fields = Fields::new(table, span.clone(), context, &SOURCE_KEYS, ctx.diags);
    let mut sources = Vec::new();
    if let Some(var) = fields.string("env", "\"LIFEBOAT_PASSWORD\"", ctx.diags)
        && env_name(&var, context, ctx)
    {
        sources.push(SecretSource::Env(var.value));
    }
    if let Some(path) = fields.string("file", "\"/etc/lifeboat/password\"", ctx.diags) {
        let resolved = ctx.resolve(&path.value);
        ctx.warn_if_missing(&path, &resolved, &format!("{context} file"));
        sources.push(SecretSource::File(resolved));
    }
    if let Some(argv) = command(&fields, "command", ctx) {
        sources.push(SecretSource::Command(argv));
    }
    if sources.is_empty() && table.is_empty() {
        ctx.diags.error(
            &span,
            format!("{context} names no source for the secret"),
            "add `env = \"VAR\"`, `file = \"path\"` or `command = [\"prog\", \"arg\"]`",
        );
    }
    (!sources.is_empty()).then_some(KeySource { sources })
}

/// A program and its arguments: a non-empty array of strings, run without a shell.
pub fn command(fields: &Fields, key: &str, ctx: &mut Ctx) -> Option<Vec<String>> {
    let example = "[\"prog\", \"arg\"]";
    let items = fields.strings(key, example, ctx.diags)?;
    if items.is_empty() {
        let span = fields.get(key).map(|v| v.span()).unwrap_or_default();
        ctx.diags.error(
            &span,
            format!("`{key}` in {} is an empty command", fields.context()),
            format!("name the program and its arguments, e.g. `{key} = {example}`"),
        );
        return None;
    }
    let mut ok = true;
    if let Some(program) = items.first().filter(|p| p.value.trim().is_empty()) {
        ctx.diags.error(
            &program.span,
            format!("`{key}` in {} names an empty program", fields.context()),
            format!("put the program first, e.g. `{key} = {example}`"),
        );
        ok = false;
    }
    for item in items.iter().filter(|i| i.value.contains('\0')) {
        ctx.diags.error(
            &item.span,
            format!("`{key}` in {} has an argument with a NUL character", fields.context()),
            "remove the \\u0000: a program cannot receive it",
        );
        ok = false;
    }
    ok.then(|| items.into_iter().map(|At { value, .. }| value).collect())
}

/// Reports `name` unless it is a portable environment variable name; `true` when it is.
pub fn env_name(name: &At<String>, context: &str, ctx: &mut Ctx) -> bool {
    let mut chars = name.value.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first && name.value.len() <= MAX_ENV_NAME && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return true;
    }
    let message = format!(
        "`env` in {context} names {:?}, which is not an environment variable name",
        name.value
    );
    let fix = "use letters, digits and `_`, not starting with a digit, e.g. \"HTTPS_PROXY\"";
    ctx.diags.error(&name.span, message, fix);
    false
}
