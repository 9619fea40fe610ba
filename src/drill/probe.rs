//! Probes: is the service up? Retried until they pass or the deadline comes.
//!
//! An HTTP probe checks the status, then optionally that the body contains a text and
//! that JSON values are as expected (a canary inference request whose answer must be the
//! restored model's). Each attempt's latency is measured; the passing one is reported.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::process;
use crate::plan::{HttpProbe, Probe};

/// How a probe ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub attempts: u32,
    /// Latency of the passing attempt (or of the last one when none passed).
    pub latency: Duration,
    /// What the last attempt saw.
    pub detail: String,
    /// The passing HTTP answer's body (for comparing with a baseline).
    pub body: Option<String>,
}

/// The largest answer a probe reads; a canary's answer is far smaller.
const MAX_BODY: usize = 4 << 20;

/// Try `probe` until it passes (`Ok`) or the next attempt would start past `deadline`.
pub async fn run(
    probe: &Probe,
    url_override: Option<&str>,
    client: &reqwest::Client,
    (vars, passed): (&[(&str, &str)], &[String]),
    deadline: Instant,
) -> Result<ProbeResult, ProbeResult> {
    let interval = match probe {
        Probe::Http(h) => h.interval,
        Probe::Command { interval, .. } => *interval,
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let started = Instant::now();
        let remaining = deadline
            .saturating_duration_since(started)
            .max(Duration::from_millis(100));
        let outcome = match probe {
            Probe::Http(h) => attempt_http(h, url_override.unwrap_or(&h.url), client, remaining)
                .await
                .map(|(detail, body)| (detail, Some(body))),
            Probe::Command { argv, .. } => {
                match tokio::time::timeout(remaining, process::run(argv, vars, passed)).await {
                    Ok(r) => r.map(|out| (format!("`{}` exited 0 {out}", argv.join(" ")).trim().to_string(), None)),
                    Err(_) => Err(format!("`{}` did not finish in time", argv.join(" "))),
                }
            }
        };
        let result = |detail, body| ProbeResult {
            attempts,
            latency: started.elapsed(),
            detail,
            body,
        };
        match outcome {
            Ok((detail, body)) => return Ok(result(detail, body)),
            Err(detail) if Instant::now() + interval >= deadline => {
                return Err(result(format!("{detail} (after {attempts} attempt(s))"), None));
            }
            Err(_) => tokio::time::sleep(interval).await,
        }
    }
}

async fn attempt_http(
    probe: &HttpProbe,
    url: &str,
    client: &reqwest::Client,
    limit: Duration,
) -> Result<(String, String), String> {
    let method = reqwest::Method::from_bytes(probe.method.as_bytes())
        .map_err(|_| format!("`{}` is not an HTTP method", probe.method))?;
    let mut request = client.request(method.clone(), url).timeout(limit);
    if let Some(body) = &probe.body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
    }
    let response = request.send().await.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status().as_u16();
    let body = read_body(response)
        .await
        .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    let short: String = body.chars().take(200).collect();
    let status_ok = probe
        .expect_status
        .map_or((200..300).contains(&status), |want| status == want);
    if !status_ok {
        return Err(format!("{method} {url} answered {status}: {short}"));
    }
    check_body(probe, &body).map_err(|why| format!("{method} {url} answered {status} but {why}"))?;
    Ok((format!("{method} {url} answered {status}: {short}"), body))
}

/// The body as text, refused past `MAX_BODY`: the service is not trusted to be small.
async fn read_body(mut response: reqwest::Response) -> Result<String, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(format!("the answer is larger than {} MiB", MAX_BODY >> 20));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The body conditions of `probe`, or what did not hold.
pub fn check_body(probe: &HttpProbe, body: &str) -> Result<(), String> {
    if let Some(text) = &probe.expect_body
        && !body.contains(text.as_str())
    {
        return Err(format!("the body lacks {text:?}"));
    }
    if probe.expect_json.is_empty() {
        return Ok(());
    }
    let json: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    for (pointer, want) in &probe.expect_json {
        match json.pointer(pointer) {
            Some(got) if json_equal(got, want) => {}
            Some(got) => return Err(format!("{pointer} is {got}, expected {want}")),
            None => return Err(format!("{pointer} is missing, expected {want}")),
        }
    }
    Ok(())
}

/// Equal values, or a number that reads as the expected string (for numbers TOML
/// cannot hold, such as u64 above i64::MAX).
fn json_equal(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Number(n), Value::String(s)) => n.to_string() == *s,
        _ => got == want,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn probe(json: &[(&str, Value)], text: Option<&str>) -> HttpProbe {
        HttpProbe {
            url: "http://127.0.0.1/".into(),
            drill_url: None,
            method: "GET".into(),
            body: None,
            expect_status: None,
            expect_body: text.map(str::to_string),
            expect_json: json
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
            interval: Duration::from_millis(10),
            baseline: None,
        }
    }

    #[test]
    fn json_condition_compares_the_value_at_the_pointer() {
        let p = probe(&[("/answer", Value::from(42))], None);
        assert!(check_body(&p, r#"{"answer": 42}"#).is_ok());
        let err = check_body(&p, r#"{"answer": 41}"#).unwrap_err();
        assert!(err.contains("/answer is 41, expected 42"), "{err}");
        assert!(check_body(&p, r#"{"other": 1}"#).unwrap_err().contains("missing"));
    }

    #[test]
    fn a_string_matches_a_large_number_by_its_digits() {
        let p = probe(&[("/answer", Value::from("18446744073709551615"))], None);
        assert!(check_body(&p, r#"{"answer": 18446744073709551615}"#).is_ok());
    }

    #[test]
    fn body_text_condition() {
        let p = probe(&[], Some("ok"));
        assert!(check_body(&p, "all ok").is_ok());
        assert!(check_body(&p, "down").is_err());
    }

    #[tokio::test]
    async fn a_command_probe_waits_its_own_interval_between_attempts() {
        let probe = Probe::Command {
            argv: vec!["false".into()],
            interval: Duration::from_millis(1000),
        };
        let deadline = Instant::now() + Duration::from_millis(2500);
        let client = reqwest::Client::new();
        let failed = run(&probe, None, &client, (&[], &[]), deadline).await.unwrap_err();
        // At 0 s, 1 s and 2 s; a fourth would start past the deadline.
        assert_eq!(failed.attempts, 3, "{failed:?}");
        assert!(failed.detail.contains("after 3 attempt(s)"), "{failed:?}");
    }
}
