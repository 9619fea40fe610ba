//! `[signing]`: the key that signs snapshot manifests and the public keys trusted to
//! have signed them.
//!
//! The private key is a secret reference like the repository password (`file`, `env`
//! or `command`, whose whole output is the PEM document), never inline. `trusted` lists
//! public key files (PEM); restore, verify, drills and failovers accept a signed
//! dataset's snapshot only when one of them verifies its manifest. A dataset with
//! `sign = true` needs a key here; that is checked by the plan builder once the
//! datasets are known.

use super::Ctx;
use crate::plan::model::Signing;
use crate::plan::reader::Fields;

const KEYS: [&str; 2] = ["key", "trusted"];
const EXAMPLE: &str = "{ key = { file = \"keys/signing.pem\" }, trusted = [\"keys/signing.pem.pub\"] }";

pub fn section(top: &Fields, ctx: &mut Ctx) -> Option<Signing> {
    let (table, span) = top.table("signing", EXAMPLE, ctx.diags)?;
    let fields = Fields::new(table, span, "[signing]", &KEYS, ctx.diags);
    if let Some(text) = fields.get("key").filter(|v| v.get_ref().as_str().is_some()) {
        ctx.diags.error(
            &text.span(),
            "`key` in [signing] holds the private key written inline",
            "keep the key out of the plan: `key = { file = \"keys/signing.pem\" }`, `{ env = ... }` or `{ command = [...] }`",
        );
    }
    let key = super::key::reference(&fields, "key", ctx);
    let written = fields.strings("trusted", "[\"keys/signing.pem.pub\"]", ctx.diags);
    let mut trusted = Vec::new();
    for p in written.unwrap_or_default() {
        let path = ctx.resolve(&p.value);
        ctx.warn_if_missing(&p, &path, "[signing] trusted key");
        trusted.push(path);
    }
    Some(Signing { key, trusted })
}
