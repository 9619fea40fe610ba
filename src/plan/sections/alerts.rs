//! `[alerts]`: where failures are reported — a webhook, a command, or both.

use super::Ctx;
use crate::plan::model::Alerts;
use crate::plan::reader::Fields;

const KEYS: [&str; 2] = ["webhook", "command"];
const EXAMPLE: &str = "{ webhook = \"https://hooks.example.com/lifeboat\" }";

pub fn section(top: &Fields, ctx: &mut Ctx) -> Alerts {
    let Some((table, span)) = top.table("alerts", EXAMPLE, ctx.diags) else {
        return Alerts::default();
    };
    let fields = Fields::new(table, span, "[alerts]", &KEYS, ctx.diags);
    let webhook = fields.string("webhook", "\"https://hooks.example.com/lifeboat\"", ctx.diags);
    if let Some(w) = &webhook
        && !(w.value.starts_with("http://") || w.value.starts_with("https://"))
    {
        ctx.diags.error(
            &w.span,
            format!("[alerts] webhook `{}` is not an http(s) URL", w.value),
            "write the full URL, e.g. \"https://hooks.example.com/lifeboat\"",
        );
    }
    Alerts {
        webhook: webhook.map(|w| w.value),
        command: super::key::command(&fields, "command", ctx),
    }
}
