//! Building the typed `Plan` from the parsed TOML, one section per file.
//!
//! Each section builder reads its tables through `Fields`, reports every problem, and
//! returns `None` for anything it could not build. Sections are built in dependency order
//! (regions, datasets, endpoints, then verify and playbooks that refer to them), and a
//! reference to an undefined name is checked against what the plan defines.

mod alerts;
mod anomaly;
mod baseline;
mod checks;
mod datasets;
mod endpoints;
mod key;
mod playbooks;
mod regions;
mod retention;
mod signing;
mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::diagnostic::Diagnostics;
use super::model::Plan;
use super::reader::{At, Fields, did_you_mean, named_tables};

const TOP_KEYS: [&str; 9] = [
    "version",
    "alerts",
    "key",
    "signing",
    "regions",
    "datasets",
    "verify",
    "endpoints",
    "playbooks",
];

/// What every section builder needs: where relative paths start, the names defined so far.
pub struct Ctx<'d, 'src> {
    pub diags: &'d mut Diagnostics<'src>,
    pub base: PathBuf,
    pub regions: BTreeSet<String>,
    pub datasets: BTreeSet<String>,
    /// Endpoint name → the regions it has targets for.
    pub endpoints: BTreeMap<String, BTreeSet<String>>,
    /// Datasets with `sign = true`, with the span of that line.
    pub signed: Vec<(String, std::ops::Range<usize>)>,
}

impl Ctx<'_, '_> {
    /// A path from the plan, made absolute against the plan file's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let joined = self.base.join(path);
        std::path::absolute(&joined).unwrap_or(joined)
    }

    /// Warns when a path the plan relies on does not exist on this machine.
    pub fn warn_if_missing(&mut self, written: &At<String>, resolved: &Path, what: &str) {
        if !resolved.exists() {
            self.diags.warning(
                &written.span,
                format!("{what} `{}` does not exist on this machine", written.value),
                "create it or correct the path (relative paths start at the plan file's folder)",
            );
        }
    }

    /// Reports `name` if it is not among `defined`, suggesting the closest defined name.
    pub fn check_ref(&mut self, what: &str, name: &At<String>, defined: &BTreeSet<String>, context: &str) -> bool {
        if defined.contains(&name.value) {
            return true;
        }
        let fix = match did_you_mean(&name.value, defined.iter().map(String::as_str)) {
            Some(close) => format!("did you mean `{close}`?"),
            None if defined.is_empty() => {
                format!("define it in a [{what}s.{}] section", name.value)
            }
            None => format!(
                "define [{what}s.{}] or use one of: {}",
                name.value,
                defined.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        };
        self.diags.error(
            &name.span,
            format!(
                "{context} names {what} `{}`, which the plan does not define",
                name.value
            ),
            fix,
        );
        false
    }

    /// Reports a section name that is not a valid name.
    pub fn bad_name(&mut self, what: &str, name: &At<String>) {
        self.diags.error(
            &name.span,
            format!("`{}` is not a valid {what} name", name.value),
            "use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit",
        );
    }
}

/// Builds the plan from the parsed document; `None` if any part could not be built.
pub fn build(file: &Path, root: &DeTable, diags: &mut Diagnostics) -> Option<Plan> {
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut ctx = Ctx {
        diags,
        base,
        regions: BTreeSet::new(),
        datasets: BTreeSet::new(),
        endpoints: BTreeMap::new(),
        signed: Vec::new(),
    };
    let top = Fields::new(root, 0..0, "the plan", &TOP_KEYS, ctx.diags);
    let version = version(&top, ctx.diags);
    let key = key::section(&top, &mut ctx);
    let regions = regions::section(&named(&top, "regions", &mut ctx), &mut ctx);
    let datasets = datasets::section(&named(&top, "datasets", &mut ctx), &mut ctx);
    let endpoints = endpoints::section(&named(&top, "endpoints", &mut ctx), &mut ctx);
    let verify = verify::section(&named(&top, "verify", &mut ctx), &mut ctx);
    let playbooks = playbooks::section(&named(&top, "playbooks", &mut ctx), &mut ctx);
    let alerts = alerts::section(&top, &mut ctx);
    let signing = signing::section(&top, &mut ctx);
    signed_datasets_have_a_key(signing.as_ref(), &mut ctx);
    if ctx.diags.has_errors() {
        return None;
    }
    Some(Plan {
        file: file.to_path_buf(),
        version: version?,
        key: key?,
        regions,
        datasets,
        verify,
        endpoints,
        playbooks,
        alerts,
        signing,
    })
}

/// `sign = true` needs a `[signing]` key to sign with and a trusted key to check with.
fn signed_datasets_have_a_key(signing: Option<&crate::plan::Signing>, ctx: &mut Ctx) {
    for (name, span) in std::mem::take(&mut ctx.signed) {
        signed_dataset_has_a_key(&name, &span, signing, ctx);
    }
}

fn signed_dataset_has_a_key(
    name: &str,
    span: &std::ops::Range<usize>,
    signing: Option<&crate::plan::Signing>,
    ctx: &mut Ctx,
) {
    if signing.is_none_or(|s| s.key.is_none()) {
        ctx.diags.error(
            span,
            format!("[datasets.{name}] has `sign = true`, but the plan has no [signing] key to sign with"),
            "add `[signing]` with `key = { file = \"keys/signing.pem\" }` (make one with `lifeboat signing-key generate --out keys/signing.pem`)",
        );
    } else if signing.is_some_and(|s| s.trusted.is_empty()) {
        ctx.diags.error(
            span,
            format!("[datasets.{name}] has `sign = true`, but [signing] trusts no public key to check it with"),
            "add `trusted = [\"keys/signing.pem.pub\"]` to [signing]",
        );
    }
}

type Named<'t, 'i> = Vec<(At<String>, &'t DeTable<'i>, std::ops::Range<usize>)>;

/// The `[section.NAME]` tables of one top-level section.
fn named<'t, 'i>(top: &Fields<'t, 'i>, section: &str, ctx: &mut Ctx) -> Named<'t, 'i> {
    let example = format!("{{ }} or a [{section}.NAME] section");
    top.table(section, &example, ctx.diags)
        .map(|(table, _)| named_tables(table, section, ctx.diags))
        .unwrap_or_default()
}

fn version(top: &Fields, diags: &mut Diagnostics) -> Option<u32> {
    match top.count("version", "1", diags) {
        None if top.get("version").is_some() => None,
        None => Some(1),
        Some(At { value: 1, .. }) => Some(1),
        Some(At { value, span }) => {
            diags.error(
                &span,
                format!("plan version {value} is not supported by this Lifeboat"),
                "write `version = 1`, or upgrade Lifeboat",
            );
            None
        }
    }
}
