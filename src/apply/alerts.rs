//! Report failures where the plan's `[alerts]` says: a JSON POST to a webhook and/or
//! a command run with `LIFEBOAT_ALERT_*` variables (and only the other variables the
//! plan names in `env`). Delivery problems are returned (and logged by the caller),
//! never turned into the failure being reported; they never show a webhook's
//! credentials, and a webhook read from a secret reference is named by its source.

use std::time::Duration;

use super::session::Session;
use super::verify::{RegionVerify, VerifyRequest, verify_plan};
use super::{child, secrets};
use crate::plan::Alerts;

const TIMEOUT: Duration = Duration::from_secs(15);

/// One thing that went wrong, for the people on call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Alert {
    /// What failed: `verification`, `backup`, `drill`, or `plan` (its file is invalid and
    /// its last valid version runs meanwhile).
    pub kind: String,
    pub plan: String,
    pub dataset: String,
    pub region: String,
    pub message: String,
}

/// Deliver `alert` to every configured hook; returns one line per delivery problem.
pub async fn fire(alerts: &Alerts, alert: &Alert) -> Vec<String> {
    // The message repeats an error, which may quote a URL: hooks get it redacted too.
    let alert = &Alert {
        message: secrets::redact(&alert.message),
        ..alert.clone()
    };
    let mut problems = Vec::new();
    if let Some(source) = &alerts.webhook {
        match secrets::url(source) {
            Ok((url, shown)) => {
                if let Err(e) = post(&url, alert).await {
                    problems.push(format!("alert webhook {shown}: {e}"));
                }
            }
            Err(e) => problems.push(format!("alert webhook: {e}")),
        }
    }
    if let Some(argv) = &alerts.command
        && let Err(e) = run(argv, &alerts.env, alert).await
    {
        problems.push(format!(
            "alert command {}: {e}",
            argv.first().map_or("", |s| s.as_str())
        ));
    }
    problems.iter().map(|p| secrets::redact(p)).collect()
}

async fn post(url: &str, alert: &Alert) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .post(url)
        .json(alert)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", resp.status()))
    }
}

async fn run(argv: &[String], passed: &[String], alert: &Alert) -> Result<(), String> {
    let vars = [
        ("LIFEBOAT_ALERT_KIND", alert.kind.as_str()),
        ("LIFEBOAT_ALERT_PLAN", alert.plan.as_str()),
        ("LIFEBOAT_ALERT_DATASET", alert.dataset.as_str()),
        ("LIFEBOAT_ALERT_REGION", alert.region.as_str()),
        ("LIFEBOAT_ALERT_MESSAGE", alert.message.as_str()),
    ];
    let child = child::command(argv, &vars, passed)?.status();
    match tokio::time::timeout(TIMEOUT, child).await {
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(s)) => Err(format!("exited with {s}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("did not finish within {}s", TIMEOUT.as_secs())),
    }
}

/// Verify as `req` asks, then alert for every region that did not pass: the rows, and
/// one line per alert that could not be delivered. The CLI and the daemon both verify
/// this way.
pub async fn verify_and_alert(
    session: &Session<'_>,
    plan_name: &str,
    req: &VerifyRequest,
) -> (Vec<RegionVerify>, Vec<String>) {
    let plan = session.plan();
    let rows = verify_plan(session, req).await;
    let mut undelivered = Vec::new();
    for alert in verification_alerts(plan_name, &rows) {
        undelivered.extend(fire(&plan.alerts, &alert).await);
    }
    (rows, undelivered)
}

/// Alerts for the failed rows of a verification run.
pub fn verification_alerts(plan_name: &str, rows: &[RegionVerify]) -> Vec<Alert> {
    rows.iter()
        .filter(|r| !r.passed())
        .map(|r| Alert {
            kind: "verification".into(),
            plan: plan_name.to_string(),
            dataset: r.dataset.clone(),
            region: r.region.clone(),
            message: match (&r.report, &r.error) {
                (Some(rep), _) => {
                    let files: Vec<&str> = rep.damaged.iter().map(|d| d.0.as_str()).collect();
                    format!("test restore found damaged files: {}", files.join(", "))
                }
                (None, Some(e)) => format!("test restore could not run: {e}"),
                (None, None) => "test restore failed".into(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::UrlSource;

    #[tokio::test]
    async fn command_hook_receives_the_alert_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("alert.txt");
        let alerts = Alerts {
            webhook: None,
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "echo \"$LIFEBOAT_ALERT_KIND $LIFEBOAT_ALERT_REGION $LIFEBOAT_ALERT_MESSAGE\" > {}",
                    out.display()
                ),
            ]),
            env: Vec::new(),
        };
        let alert = Alert {
            kind: "verification".into(),
            plan: "p".into(),
            dataset: "d".into(),
            region: "b".into(),
            message: "damaged: x at http://h/?token=abc123".into(),
        };
        assert!(fire(&alerts, &alert).await.is_empty());
        assert_eq!(
            std::fs::read_to_string(&out).unwrap().trim(),
            "verification b damaged: x at http://h/?token=***"
        );
    }

    #[tokio::test]
    async fn a_failing_hook_is_reported_not_hidden() {
        let alerts = Alerts {
            webhook: Some(UrlSource::Plain("http://127.0.0.1:9/unreachable?token=abc123".into())),
            command: Some(vec!["false".into()]),
            env: Vec::new(),
        };
        let alert = Alert {
            kind: "verification".into(),
            plan: "p".into(),
            dataset: "d".into(),
            region: "r".into(),
            message: "m".into(),
        };
        let problems = fire(&alerts, &alert).await;
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("http://127.0.0.1:9/unreachable?token=***"),
            "{problems:?}"
        );
        assert!(problems.iter().all(|p| !p.contains("abc123")), "{problems:?}");
    }
}
