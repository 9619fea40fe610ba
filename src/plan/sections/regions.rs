//! `[regions.NAME]`: repository addresses and how each may be used.

use std::collections::BTreeMap;

use super::{Ctx, Named, checks, key};
use crate::format::names::RegionName;
use crate::plan::model::{KeySource, Region, RegionCredentials, RepoAddress};
use crate::plan::reader::{At, Fields};
use crate::plan::redact;

const REGION_KEYS: [&str; 5] = ["address", "storage_class", "immutable_days", "create", "credentials"];
const CREDENTIAL_KEYS: [&str; 3] = ["profile", "access_key_id", "secret_access_key"];
const CREDENTIALS_EXAMPLE: &str = "{ profile = \"west\" }";
const KEYS_EXAMPLE: &str =
    "{ access_key_id = { env = \"WEST_KEY_ID\" }, secret_access_key = { env = \"WEST_SECRET\" } }";
const MAX_PROFILE_NAME: usize = 128;
const MAX_LOCK_DAYS: u32 = 36_500;
const CREDENTIALS_FIX: &str = "remove the `user:password@` part: S3 credentials come from the AWS \
     environment or profile, or from the region's `credentials = { ... }` references, never from the address";
const ADDRESS_FIX: &str =
    "write a folder path, file:///path, s3://bucket/prefix?endpoint=URL&region=NAME or memory://name";

pub fn section(tables: &Named, ctx: &mut Ctx) -> BTreeMap<RegionName, Region> {
    let mut out = BTreeMap::new();
    for (name, table, span) in tables {
        let Ok(region_name) = RegionName::new(&name.value) else {
            ctx.bad_name("region", name);
            continue;
        };
        ctx.regions.insert(name.value.clone());
        let context = format!("[regions.{}]", name.value);
        let fields = Fields::new(table, span.clone(), context, &REGION_KEYS, ctx.diags);
        if let Some(region) = region(region_name.clone(), &fields, ctx) {
            out.insert(region_name, region);
        }
    }
    out
}

fn region(name: RegionName, fields: &Fields, ctx: &mut Ctx) -> Option<Region> {
    let storage_class = storage_class(fields, ctx);
    let immutable = immutable_days(fields, ctx);
    let create = fields.bool("create", ctx.diags).unwrap_or(false);
    let credentials = credentials(fields, ctx);
    let written = fields.required_string("address", "\"s3://bucket/prefix\"", ctx.diags)?;
    let address = parse_address(&written, fields.context(), ctx)?;
    let credentials = credentials?;
    if let (RepoAddress::Local(path), false) = (&address, create)
        && !path.exists()
    {
        ctx.diags.warning(
            &written.span,
            format!(
                "repository folder `{}` does not exist and `create` is false",
                written.value
            ),
            "run `lifeboat init`, or set `create = true` so apply initialises it",
        );
    }
    if let (Some(days), false) = (&immutable, matches!(address, RepoAddress::S3 { .. })) {
        ctx.diags.warning(
            &days.span,
            format!(
                "`immutable_days` in {} has no effect: only S3 regions support Object Lock",
                fields.context()
            ),
            "remove it, or move the region to an S3 bucket with Object Lock enabled",
        );
    }
    if let (Some(value), false) = (fields.get("credentials"), matches!(address, RepoAddress::S3 { .. })) {
        ctx.diags.warning(
            &value.span(),
            format!(
                "`credentials` in {} has no effect: only S3 regions sign requests",
                fields.context()
            ),
            "remove it, or move the region to an S3 bucket",
        );
    }
    Some(Region {
        name,
        address,
        storage_class,
        immutable_days: immutable.map(|d| d.value),
        create,
        credentials,
    })
}

/// `credentials = { profile = "NAME" }` or a key pair of secret references; without the
/// key, the AWS CLI's chain. `None` when what is written is wrong (already reported).
fn credentials(fields: &Fields, ctx: &mut Ctx) -> Option<RegionCredentials> {
    if fields.get("credentials").is_none() {
        return Some(RegionCredentials::Chain);
    }
    let (table, span) = fields.table("credentials", CREDENTIALS_EXAMPLE, ctx.diags)?;
    let context = format!("`credentials` in {}", fields.context());
    let inner = Fields::new(table, span.clone(), context, &CREDENTIAL_KEYS, ctx.diags);
    let keys = table
        .iter()
        .filter(|(k, _)| CREDENTIAL_KEYS.contains(&k.get_ref().as_ref()))
        .count();
    let has_profile = inner.get("profile").is_some();
    if has_profile && keys > 1 {
        let message = format!("{} names both a profile and keys", inner.context());
        let fix = "keep one: `profile = \"NAME\"`, or `access_key_id` with `secret_access_key`";
        ctx.diags.error(&span, message, fix);
        return None;
    }
    if has_profile {
        return profile(&inner, ctx).map(RegionCredentials::Profile);
    }
    key_pair(&inner, &span, ctx)
}

/// A profile name as the AWS config files write it: no spaces, brackets or controls.
fn profile(fields: &Fields, ctx: &mut Ctx) -> Option<String> {
    let name = fields.string("profile", "\"west\"", ctx.diags)?;
    let valid = |c: char| !c.is_whitespace() && !c.is_control() && !matches!(c, '[' | ']');
    if !name.value.is_empty() && name.value.len() <= MAX_PROFILE_NAME && name.value.chars().all(valid) {
        return Some(name.value);
    }
    let message = format!(
        "`profile` in {} is {:?}, not a profile name",
        fields.context(),
        name.value
    );
    ctx.diags.error(
        &name.span,
        message,
        "write the name of a profile in ~/.aws/config, e.g. \"west\"",
    );
    None
}

/// Both halves of an access key pair, each a secret reference.
fn key_pair(fields: &Fields, span: &std::ops::Range<usize>, ctx: &mut Ctx) -> Option<RegionCredentials> {
    let id = key_reference(fields, "access_key_id", ctx);
    let secret = key_reference(fields, "secret_access_key", ctx);
    let written = |k: &str| fields.get(k).is_some();
    if !written("access_key_id") || !written("secret_access_key") {
        let message = format!(
            "{} needs both `access_key_id` and `secret_access_key`, or a `profile`",
            fields.context()
        );
        ctx.diags
            .error(span, message, format!("write e.g. credentials = {KEYS_EXAMPLE}"));
        return None;
    }
    Some(RegionCredentials::Keys {
        access_key_id: id?,
        secret_access_key: secret?,
    })
}

/// A secret reference under `name`; a literal string is refused with the fix.
fn key_reference(fields: &Fields, name: &str, ctx: &mut Ctx) -> Option<KeySource> {
    let value = fields.get(name)?;
    if value.get_ref().as_str().is_some() && !crate::plan::reader::is_secret_key(name) {
        let message = format!("`{name}` in {} is written inline", fields.context());
        let fix = format!(
            "reference it instead: {name} = {{ env = \"VAR\" }}, {{ file = \"path\" }} or {{ command = [\"prog\"] }}"
        );
        ctx.diags.error(&value.span(), message, fix);
        return None;
    }
    key::reference(fields, name, ctx)
}

/// An S3 storage class: capitals, digits and `_` only, since it travels inside the
/// region's address (`?storage_class=CLASS`) and must not add options of its own.
fn storage_class(fields: &Fields, ctx: &mut Ctx) -> Option<String> {
    let class = fields.string("storage_class", "\"STANDARD_IA\"", ctx.diags)?;
    let valid = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    if !class.value.is_empty() && class.value.len() <= 64 && class.value.chars().all(valid) {
        return Some(class.value);
    }
    let message = format!(
        "`storage_class` in {} is {:?}, not an S3 storage class",
        fields.context(),
        class.value
    );
    ctx.diags.error(
        &class.span,
        message,
        "write a class such as \"STANDARD\", \"STANDARD_IA\" or \"GLACIER_IR\"",
    );
    None
}

/// Object Lock retention in days: the range S3 storage accepts (1 to 36500).
fn immutable_days(fields: &Fields, ctx: &mut Ctx) -> Option<At<u32>> {
    let days = fields.count("immutable_days", "30", ctx.diags)?;
    if (1..=MAX_LOCK_DAYS).contains(&days.value) {
        return Some(days);
    }
    let message = format!(
        "`immutable_days` in {} is {}, outside 1 to {MAX_LOCK_DAYS}",
        fields.context(),
        days.value
    );
    let fix = "write the Object Lock retention in days, e.g. 30, or remove the key for mutable storage";
    ctx.diags.error(&days.span, message, fix);
    None
}

fn parse_address(written: &At<String>, context: &str, ctx: &mut Ctx) -> Option<RepoAddress> {
    let text = written.value.as_str();
    if redact::has_userinfo(text) {
        let message = format!("address `{text}` in {context} carries credentials");
        ctx.diags.error(&written.span, message, CREDENTIALS_FIX);
        return None;
    }
    let result = if text.contains("://") {
        parse_url(text)
    } else if text.is_empty() {
        Err("is empty".to_string())
    } else {
        Ok(RepoAddress::Local(ctx.resolve(text)))
    };
    result
        .map_err(|why| {
            let message = format!("address `{text}` in {context} {why}");
            ctx.diags.error(&written.span, message, ADDRESS_FIX);
        })
        .ok()
}

fn parse_url(text: &str) -> Result<RepoAddress, String> {
    let url = url::Url::parse(text).map_err(|e| format!("is not a valid URL ({e})"))?;
    match url.scheme() {
        "file" => url
            .to_file_path()
            .map(RepoAddress::Local)
            .map_err(|()| "is not an absolute file path".to_string()),
        "memory" => {
            let name = format!("{}{}", url.host_str().unwrap_or(""), url.path());
            Ok(RepoAddress::Memory(name.trim_matches('/').to_string()))
        }
        "s3" => parse_s3(&url),
        other => Err(format!("uses unknown scheme `{other}`")),
    }
}

fn parse_s3(url: &url::Url) -> Result<RepoAddress, String> {
    let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or("names no bucket")?;
    let (mut endpoint, mut region) = (None, None);
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "endpoint" => match checks::http_url_problem(&value) {
                None => endpoint = Some(value.into_owned()),
                Some(why) => return Err(format!("has an endpoint that {why}")),
            },
            "region" => region = Some(value.into_owned()),
            other => {
                return Err(format!("has unknown option `{other}` (known: endpoint, region)"));
            }
        }
    }
    Ok(RepoAddress::S3 {
        bucket: bucket.to_string(),
        prefix: url.path().trim_matches('/').to_string(),
        endpoint,
        region,
    })
}

#[cfg(test)]
mod tests {
    use crate::plan::{KeySource, RegionCredentials, SecretSource};

    fn credentials_of(region_lines: &str) -> RegionCredentials {
        let source = format!(
            "[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\n[regions.west]\naddress = \"s3://bkt/repo\"\n{region_lines}\n\n\
             [datasets.data]\npaths = [\"/srv\"]\nschedule = \"@hourly\"\nregions = [\"west\"]\nrpo = \"2h\"\n\
             retention = {{ keep_last = 3 }}\n"
        );
        let (plan, diags) = crate::plan::validate_source(std::path::Path::new("/plans/p.toml"), &source);
        let plan = plan.unwrap_or_else(|| panic!("{diags:?}"));
        plan.regions.values().next().unwrap().credentials.clone()
    }

    #[test]
    fn a_region_without_credentials_uses_the_chain() {
        assert_eq!(credentials_of(""), RegionCredentials::Chain);
    }

    #[test]
    fn a_region_names_a_profile_or_a_key_pair_of_references() {
        let profile = credentials_of("credentials = { profile = \"west-backup\" }");
        assert_eq!(profile, RegionCredentials::Profile("west-backup".into()));
        let keys = credentials_of(
            "credentials = { access_key_id = { env = \"WEST_ID\" }, secret_access_key = { command = [\"pass\", \"west\"] } }",
        );
        let expected = RegionCredentials::Keys {
            access_key_id: KeySource {
                sources: vec![SecretSource::Env("WEST_ID".into())],
            },
            secret_access_key: KeySource {
                sources: vec![SecretSource::Command(vec!["pass".into(), "west".into()])],
            },
        };
        assert_eq!(keys, expected);
    }
}
