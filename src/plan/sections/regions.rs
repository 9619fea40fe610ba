//! `[regions.NAME]`: repository addresses and how each may be used.

use std::collections::BTreeMap;

use super::{Ctx, Named, checks};
use crate::format::names::RegionName;
use crate::plan::model::{Region, RepoAddress};
use crate::plan::reader::{At, Fields};
use crate::plan::redact;

const REGION_KEYS: [&str; 4] = ["address", "storage_class", "immutable_days", "create"];
const MAX_LOCK_DAYS: u32 = 36_500;
const CREDENTIALS_FIX: &str = "remove the `user:password@` part: S3 credentials come from \
     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in Lifeboat's environment, never from the plan";
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
    let written = fields.required_string("address", "\"s3://bucket/prefix\"", ctx.diags)?;
    let address = parse_address(&written, fields.context(), ctx)?;
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
    Some(Region {
        name,
        address,
        storage_class,
        immutable_days: immutable.map(|d| d.value),
        create,
    })
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
