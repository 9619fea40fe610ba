//! `http`: tell a gateway's admin API about the new target.

use super::Change;
use crate::apply::secrets;
use crate::drill::template::render;
use crate::plan::Provider;

/// Send the request; any status other than the expected one (or a 2xx) fails.
pub async fn call(change: &Change<'_>, client: &reqwest::Client) -> Result<String, String> {
    let Provider::Http {
        url,
        method,
        token,
        body,
        expect_status,
    } = super::provider(change.endpoint, change.route)
    else {
        return Err("not an http endpoint".into());
    };
    let vars = change.vars()?;
    let url = render(url, &vars);
    let method =
        reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| format!("`{method}` is not an HTTP method"))?;
    let mut request = client.request(method.clone(), &url);
    if let Some(body) = body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(render(body, &vars));
    }
    if let Some(token) = token {
        let token = secrets::resolve(token).map_err(|e| format!("token for endpoint {}: {e}", change.endpoint.name))?;
        request = request.bearer_auth(String::from_utf8_lossy(&token));
    }
    let response = request.send().await.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status();
    let ok = expect_status.map_or(status.is_success(), |want| status.as_u16() == want);
    if ok {
        return Ok(format!("{method} {url} answered {}", status.as_u16()));
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(300).collect();
    Err(format!("{method} {url} answered {} ({text})", status.as_u16()))
}
