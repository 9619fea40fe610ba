//! The client side of `/v1/status`, for `lifeboat status`: where its token comes from
//! (a file, or a command such as an OIDC tool printing an access token) and how it
//! reaches a TLS daemon (a trusted CA, a client certificate for mutual TLS).
//!
//! The token is a secret: a token command runs with a minimal environment (so it
//! cannot pick up, or leak, the rest of the caller's), its output is read only up
//! to a bound, and no error message ever repeats what it printed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::DaemonError;
use super::auth::MAX_TOKEN_LEN;
use super::view::StatusView;

fn client_err(url: &str, e: impl std::fmt::Display) -> DaemonError {
    DaemonError::Client(format!("daemon at {url}: {e}"))
}

fn read_file(path: &Path) -> Result<Vec<u8>, DaemonError> {
    std::fs::read(path).map_err(|source| DaemonError::Io {
        path: path.to_path_buf(),
        source,
    })
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

/// What a token command may see of the caller's environment.
const TOKEN_COMMAND_ENV: [&str; 4] = ["PATH", "HOME", "USER", "LANG"];

fn token_command_err(why: impl std::fmt::Display) -> DaemonError {
    DaemonError::TokenCommand(why.to_string())
}

/// The first line `cmd` (run with `sh -c`) prints: an API token. At most
/// `MAX_TOKEN_LEN` bytes of output are read; the command's stderr goes to ours.
pub fn token_from_command(cmd: &str) -> Result<String, DaemonError> {
    let mut command = Command::new("sh");
    command.arg("-c").arg(cmd).env_clear();
    for name in TOKEN_COMMAND_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| token_command_err(format!("cannot run it: {e}")))?;
    let mut out = Vec::new();
    let read = match child.stdout.take() {
        Some(stdout) => stdout.take(MAX_TOKEN_LEN as u64 + 2).read_to_end(&mut out),
        None => Ok(0),
    };
    // The pipe is closed here, so a command that prints more than the bound ends.
    let status = child.wait().map_err(|e| token_command_err(e.to_string()))?;
    read.map_err(|e| token_command_err(format!("cannot read its output: {e}")))?;
    if out.len() > MAX_TOKEN_LEN + 1 {
        // Cut off, so it may have died of the closed pipe: the size is the fault.
        return first_line_token(&out);
    }
    if !status.success() {
        return Err(token_command_err(format!("it failed ({status})")));
    }
    first_line_token(&out)
}

fn first_line_token(out: &[u8]) -> Result<String, DaemonError> {
    let line = out.split(|&b| b == b'\n').next().unwrap_or_default();
    let token = std::str::from_utf8(line).map(str::trim).unwrap_or_default();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(token_command_err(format!(
            "it printed no usable token (an empty line, not text, or over {MAX_TOKEN_LEN} bytes)"
        )));
    }
    Ok(token.to_string())
}

/// How `lifeboat status` reaches the daemon.
#[derive(Debug, Default, Clone)]
pub struct ClientOptions {
    pub token: Option<String>,
    /// A PEM certificate to trust for an `https://` daemon.
    pub ca_cert: Option<PathBuf>,
    /// A PEM client certificate and its key, for a daemon that requires mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
}

fn http_client(base: &str, opts: &ClientOptions) -> Result<reqwest::Client, DaemonError> {
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if let Some(path) = &opts.ca_cert {
        let cert = reqwest::Certificate::from_pem(&read_file(path)?).map_err(|e| client_err(base, e))?;
        builder = builder.tls_certs_only([cert]);
    }
    if let Some((cert, key)) = &opts.identity {
        let mut pem = read_file(cert)?;
        pem.push(b'\n');
        pem.extend(read_file(key)?);
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            client_err(
                base,
                format!("client certificate {} or key {}: {e}", cert.display(), key.display()),
            )
        })?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(|e| client_err(base, e))
}

/// Fetch the status from the daemon at `base` (`http://` or `https://`).
pub async fn fetch_status(base: &str, opts: &ClientOptions) -> Result<StatusView, DaemonError> {
    let client = http_client(base, opts)?;
    let url = format!("{}/v1/status", base.trim_end_matches('/'));
    let mut request = client.get(&url);
    if let Some(t) = &opts.token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.map_err(|e| client_err(base, e))?;
    match response.status().as_u16() {
        200 => {}
        401 => {
            return Err(client_err(
                base,
                "unauthorized — pass a valid token with --token-file or --token-command, or a client certificate the daemon's roles file lists",
            ));
        }
        403 => {
            return Err(client_err(
                base,
                "forbidden — the caller's role may not read the status",
            ));
        }
        code => return Err(client_err(base, format!("HTTP {code}"))),
    }
    let body = response.bytes().await.map_err(|e| client_err(base, e))?;
    serde_json::from_slice(&body).map_err(|e| client_err(base, format!("unexpected answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_command_output_is_bounded_and_checked() {
        let long = token_from_command("head -c 100000 /dev/zero | tr '\\0' a").unwrap_err();
        assert!(long.to_string().contains("no usable token"), "{long}");
        assert!(!long.to_string().contains("aaaa"));
        let failed = token_from_command("echo secret-but-failing; exit 3").unwrap_err();
        assert!(failed.to_string().contains("failed") && !failed.to_string().contains("secret-but"));
        assert!(token_from_command("true").is_err());
        assert_eq!(token_from_command("printf 'tok-1\\nrest\\n'").unwrap(), "tok-1");
    }
}
