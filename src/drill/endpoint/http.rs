//! `http`: tell a gateway's admin API about the new target, then read it back.
//!
//! A gateway can answer 200 and not apply the change (a validation it runs later, a
//! config path that names another route, a cluster member that did not get it). So
//! when the endpoint names a `verify_url`, the change is claimed only after a GET of
//! that URL shows the target (`verify_contains`, `verify_json`). The same GET, made
//! before anything changes, is the preflight's authenticated read-only request.

use std::collections::BTreeMap;

use super::Change;
use crate::apply::secrets;
use crate::drill::template::{Vars, render};
use crate::plan::{HttpVerify, Provider};

/// The most of an answer read (for comparing and for error messages).
const MAX_BODY: usize = 1 << 20;
/// The most of an answer shown in a message.
const SHOWN: usize = 300;

struct Settings<'a> {
    url: String,
    method: &'a str,
    token: Option<String>,
    body: Option<String>,
    expect_status: Option<u16>,
    verify: Option<&'a HttpVerify>,
}

fn settings<'a>(change: &'a Change<'_>) -> Result<(Settings<'a>, Vars<'a>), String> {
    let Provider::Http {
        url,
        method,
        token,
        body,
        expect_status,
        verify,
    } = super::provider(change.endpoint, change.route)
    else {
        return Err("not an http endpoint".into());
    };
    let vars = change.vars()?;
    let token = match token {
        Some(t) => {
            let value = secrets::resolve(t).map_err(|e| format!("token for endpoint {}: {e}", change.endpoint.name))?;
            Some(String::from_utf8_lossy(&value).into_owned())
        }
        None => None,
    };
    let settings = Settings {
        url: render(url, &vars),
        method,
        token,
        body: body.as_ref().map(|b| render(b, &vars)),
        expect_status: *expect_status,
        verify: verify.as_ref(),
    };
    Ok((settings, vars))
}

fn shown(text: &str) -> String {
    text.chars().take(SHOWN).collect()
}

/// Read at most `MAX_BODY` bytes of the answer.
async fn bounded_text(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_BODY.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if bytes.len() >= MAX_BODY {
            break;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `GET url` with the token; the status and (bounded) body.
async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> Result<(u16, String), String> {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status().as_u16();
    Ok((status, bounded_text(response).await))
}

/// Send the request; any status other than the expected one (or a 2xx) fails. With a
/// `verify_url`, the change must then show there.
pub async fn call(change: &Change<'_>, client: &reqwest::Client) -> Result<String, String> {
    let (s, vars) = settings(change)?;
    let method = reqwest::Method::from_bytes(s.method.as_bytes())
        .map_err(|_| format!("`{}` is not an HTTP method", s.method))?;
    let url = &s.url;
    let mut request = client.request(method.clone(), url);
    if let Some(body) = &s.body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
    }
    if let Some(token) = &s.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status();
    let ok = s
        .expect_status
        .map_or(status.is_success(), |want| status.as_u16() == want);
    if !ok {
        let text = bounded_text(response).await;
        return Err(format!(
            "{method} {url} answered {} ({})",
            status.as_u16(),
            shown(&text)
        ));
    }
    let done = format!("{method} {url} answered {}", status.as_u16());
    let Some(verify) = s.verify else {
        return Ok(done);
    };
    let seen = read_back(client, verify, &vars, s.token.as_deref())
        .await
        .map_err(|e| format!("{done}, but the change did not show: {e}"))?;
    Ok(format!("{done}; read back from {seen}"))
}

/// GET the verify URL and compare; `Ok` names the URL, `Err` says what differed.
async fn read_back(
    client: &reqwest::Client,
    verify: &HttpVerify,
    vars: &Vars<'_>,
    token: Option<&str>,
) -> Result<String, String> {
    let url = render(&verify.url, vars);
    let (status, body) = get(client, &url, token).await?;
    if !(200..300).contains(&status) {
        return Err(format!("GET {url} answered {status} ({})", shown(&body)));
    }
    if let Some(want) = &verify.contains {
        let want = render(want, vars);
        if !body.contains(&want) {
            return Err(format!("GET {url} does not contain `{want}`: {}", shown(&body)));
        }
    }
    compare_json(&body, &verify.json, vars).map_err(|e| format!("GET {url}: {e}"))?;
    Ok(url)
}

fn expected(value: &serde_json::Value, vars: &Vars<'_>) -> serde_json::Value {
    match value {
        serde_json::Value::String(s) => serde_json::Value::String(render(s, vars)),
        other => other.clone(),
    }
}

fn compare_json(body: &str, json: &BTreeMap<String, serde_json::Value>, vars: &Vars<'_>) -> Result<(), String> {
    if json.is_empty() {
        return Ok(());
    }
    let doc: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("the answer is not JSON ({e}): {}", shown(body)))?;
    for (pointer, want) in json {
        let want = expected(want, vars);
        match doc.pointer(pointer) {
            Some(found) if *found == want => {}
            Some(found) => return Err(format!("{pointer} is {found}, not {want}")),
            None => return Err(format!("the answer has nothing at {pointer}: {}", shown(body))),
        }
    }
    Ok(())
}

/// What the verify URL shows now: the values at the pointers, else the start of the body.
fn current(body: &str, verify: &HttpVerify) -> String {
    let doc: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let values: Vec<String> = verify
        .json
        .keys()
        .filter_map(|p| Some(format!("{p} = {}", doc.as_ref()?.pointer(p)?)))
        .collect();
    if values.is_empty() {
        shown(body.trim())
    } else {
        values.join(", ")
    }
}

/// Preflight: the URL and JSON body are well-formed for this target, the token
/// resolves, and the API answers an authenticated GET (the verify URL when there is
/// one, which must answer 2xx; else the change URL, which must not refuse the token).
pub async fn preflight(change: &Change<'_>, client: &reqwest::Client) -> Result<String, String> {
    let (s, vars) = settings(change)?;
    reqwest::Url::parse(&s.url).map_err(|e| format!("URL `{}` is not valid for this target: {e}", s.url))?;
    if let Some(body) = &s.body {
        serde_json::from_str::<serde_json::Value>(body)
            .map_err(|e| format!("the request body for this target is not JSON ({e}): {}", shown(body)))?;
    }
    if let Some(verify) = s.verify {
        let url = render(&verify.url, &vars);
        let (status, body) = get(client, &url, s.token.as_deref()).await?;
        if !(200..300).contains(&status) {
            return Err(format!("GET {url} answered {status} ({})", shown(&body)));
        }
        return Ok(format!("GET {url} answered {status}; now {}", current(&body, verify)));
    }
    let (status, body) = get(client, &s.url, s.token.as_deref()).await?;
    match status {
        401 | 403 | 407 => Err(format!(
            "GET {} answered {status}: the API refuses the token — check `token` ({})",
            s.url,
            shown(&body)
        )),
        500.. => Err(format!("GET {} answered {status} ({})", s.url, shown(&body))),
        _ => Ok(format!("GET {} answered {status}", s.url)),
    }
}
