//! `[alerts]`: where failures are reported — a webhook, a command, or both.
//!
//! A webhook URL often is the credential (a token in its path or query), so it may be
//! a secret reference like any other secret; the command receives only the variables
//! `env` names besides its own `LIFEBOAT_ALERT_*` ones.

use super::Ctx;
use super::checks::{env_names, url_source};
use crate::plan::model::Alerts;
use crate::plan::reader::Fields;

const KEYS: [&str; 3] = ["webhook", "command", "env"];
const EXAMPLE: &str = "{ webhook = \"https://hooks.example.com/lifeboat\" }";

pub fn section(top: &Fields, ctx: &mut Ctx) -> Alerts {
    let Some((table, span)) = top.table("alerts", EXAMPLE, ctx.diags) else {
        return Alerts::default();
    };
    let fields = Fields::new(table, span, "[alerts]", &KEYS, ctx.diags);
    let webhook = url_source(&fields, "webhook", "\"https://hooks.example.com/lifeboat\"", ctx);
    Alerts {
        webhook: webhook.flatten(),
        command: super::key::command(&fields, "command", ctx),
        env: env_names(&fields, ctx).unwrap_or_default(),
    }
}
