//! The client side of `/v1/status`, for `lifeboat status`.

use std::path::Path;

use super::DaemonError;
use super::view::StatusView;

fn client_err(url: &str, e: impl std::fmt::Display) -> DaemonError {
    DaemonError::Client(format!("daemon at {url}: {e}"))
}

/// The token in `path`: its first non-empty line, or that line's last word, so a
/// line copied from the daemon's token file (`viewer TOKEN`) works as it is.
pub fn read_token(path: &Path) -> Result<String, DaemonError> {
    let text = std::fs::read_to_string(path).map_err(|source| DaemonError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .find_map(|l| l.split_whitespace().last())
        .map(str::to_string)
        .ok_or_else(|| DaemonError::Client(format!("token file {} is empty", path.display())))
}

/// Fetch the status from the daemon at `base` (`http://` or `https://`).
pub async fn fetch_status(base: &str, token: Option<&str>, ca_cert: Option<&Path>) -> Result<StatusView, DaemonError> {
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).map_err(|source| DaemonError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| client_err(base, e))?;
        builder = builder.tls_certs_only([cert]);
    }
    let client = builder.build().map_err(|e| client_err(base, e))?;
    let url = format!("{}/v1/status", base.trim_end_matches('/'));
    let mut request = client.get(&url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.map_err(|e| client_err(base, e))?;
    match response.status().as_u16() {
        200 => {}
        401 => return Err(client_err(base, "unauthorized — pass a valid token with --token-file")),
        403 => return Err(client_err(base, "forbidden — the token's role may not read the status")),
        code => return Err(client_err(base, format!("HTTP {code}"))),
    }
    let body = response.bytes().await.map_err(|e| client_err(base, e))?;
    serde_json::from_slice(&body).map_err(|e| client_err(base, format!("unexpected answer: {e}")))
}
