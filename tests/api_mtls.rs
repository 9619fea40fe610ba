//! Mutual TLS on the real daemon, with certificates `openssl` makes in the test and
//! `curl` and `lifeboat status` as clients: a good certificate's name maps to its roles
//! (and only those), an unlisted one gets none, expired and untrusted certificates and
//! clients without one are refused in the handshake; bearer tokens beside certificates;
//! the server certificate reloaded on SIGHUP while the listener stays; `/metrics` off
//! loopback; and `lifeboat status` with a client certificate or a token command.

mod servers;
mod support_api;
mod support_daemon;
mod support_pki;

use std::process::{Command, Output};
use std::time::Duration;

use support_api::routes::audit_actors;
use support_api::{BIN, Daemon, PASSWORD, Site, poll, token_of};
use support_pki::{Pair, Pki};

/// The roles file: the backup robot operates plan `ml`, the monitor views all.
const ROLES: &str = "# ROLES CN=NAME\noperator:ml CN=backup-bot\nviewer CN=monitor\n";

/// A site with a server certificate, a client CA and client certificates.
struct Mtls {
    site: Site,
    pki: Pki,
    server: Pair,
    ca: Pair,
    bot: Pair,
    monitor: Pair,
    stranger: Pair,
}

impl Mtls {
    /// `None` (after reporting the skip) when `openssl` or `curl` is missing.
    fn new(test: &str) -> Option<Mtls> {
        if !support_pki::tools_available() {
            servers::missing(test, "openssl or curl is not on PATH");
            return None;
        }
        let site = Site::new();
        let pki = Pki::new(&site.path("pki"));
        let server = pki.server("server", "lifeboat-one");
        let ca = pki.ca("clients");
        let bot = pki.client(&ca, "bot", "backup-bot", None);
        let monitor = pki.client(&ca, "monitor", "monitor", None);
        let stranger = pki.client(&ca, "stranger", "stranger", None);
        std::fs::write(site.path("cert-roles"), ROLES).expect("roles file");
        Some(Mtls {
            site,
            pki,
            server,
            ca,
            bot,
            monitor,
            stranger,
        })
    }

    /// The daemon's TLS flags: the server pair (copied to files a test may replace),
    /// the client CA and the roles file.
    fn flags(&self) -> Vec<String> {
        std::fs::copy(&self.server.cert, self.site.path("live.pem")).expect("copy cert");
        std::fs::copy(&self.server.key, self.site.path("live.key")).expect("copy key");
        let p = |rel: &str| self.site.path(rel).display().to_string();
        vec![
            "--tls-cert".into(),
            p("live.pem"),
            "--tls-key".into(),
            p("live.key"),
            "--tls-client-ca".into(),
            self.ca.cert_str().into(),
            "--tls-client-roles".into(),
            p("cert-roles"),
            "--address-rate".into(),
            "100000".into(),
        ]
    }

    /// Start a daemon on `host` with mutual TLS and `extra` flags; wait until the
    /// monitor's certificate gets an answer from `/healthz`.
    fn start(&self, host: &str, extra: &[&str]) -> Daemon {
        let port = support_api::free_port();
        let log = self.site.path(&format!("daemon-{port}.log"));
        let mut flags = self.flags();
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let child = self.site.spawn(&format!("{host}:{port}"), &log, &flags);
        let d = Daemon { child, port, log };
        let up = poll(Duration::from_secs(30), || {
            self.curl(&d, Some(&self.monitor), None, "GET", "/healthz").0 == Some(200)
        });
        assert!(up, "daemon did not answer over mutual TLS; log:\n{}", d.log());
        d
    }

    /// One request with curl: (HTTP status, or `None` when no answer came; body).
    fn curl(
        &self,
        d: &Daemon,
        cert: Option<&Pair>,
        token: Option<&str>,
        method: &str,
        path: &str,
    ) -> (Option<u16>, String) {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--max-time",
            "10",
            "-X",
            method,
            "--cacert",
            self.server.cert_str(),
        ]);
        if let Some(c) = cert {
            cmd.args(["--cert", c.cert_str(), "--key", c.key_str()]);
        }
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        cmd.args(["-w", "\n%{http_code}", &format!("https://127.0.0.1:{}{path}", d.port)]);
        let out = cmd.output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let code = code.trim().parse().ok().filter(|c| *c != 0 && out.status.success());
        (code, body.to_string())
    }

    fn status(&self, d: &Daemon, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(BIN)
            .args(["status", "--json", "--daemon", &format!("https://127.0.0.1:{}", d.port)])
            .args(["--ca-cert", self.server.cert_str()])
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("run lifeboat status")
    }
}

fn plan_names(status: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_str(status).unwrap_or_default();
    doc["plans"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["name"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[test]
fn a_client_certificate_gets_the_roles_its_name_is_mapped_to_and_no_other() {
    let Some(m) = Mtls::new("a_client_certificate_gets_the_roles_its_name_is_mapped_to_and_no_other") else {
        return;
    };
    let d = m.start("127.0.0.1", &[]);
    let (code, body) = m.curl(&d, Some(&m.bot), None, "GET", "/v1/status");
    assert_eq!(code, Some(200), "{body}");
    assert_eq!(plan_names(&body), ["ml"], "operator:ml sees only its plan");
    let (code, body) = m.curl(&d, Some(&m.monitor), None, "GET", "/v1/status");
    assert_eq!((code, plan_names(&body)), (Some(200), vec!["ml".into(), "web".into()]));

    let (code, body) = m.curl(&d, Some(&m.bot), None, "POST", "/v1/datasets/ml/docs/backup");
    assert_eq!(code, Some(202), "{body}");
    let (code, _) = m.curl(&d, Some(&m.bot), None, "POST", "/v1/datasets/web/docs/backup");
    assert_eq!(code, Some(403), "another plan's backup");
    let (code, _) = m.curl(&d, Some(&m.monitor), None, "POST", "/v1/datasets/ml/docs/backup");
    assert_eq!(code, Some(403), "a viewer may not trigger");
    let (code, _) = m.curl(&d, Some(&m.stranger), None, "GET", "/v1/status");
    assert_eq!(code, Some(403), "a trusted but unlisted name has no role");

    let log = d.log();
    assert!(log.contains("subject=cert:CN=backup-bot"), "{log}");
    assert!(
        log.contains("subject=cert:CN=stranger") && log.contains("status=403"),
        "{log}"
    );
    let repo = m.site.path("regions/ml-a");
    let audited = poll(Duration::from_secs(60), || {
        audit_actors(&repo)
            .iter()
            .any(|a| a.starts_with("api:cert:CN=backup-bot via "))
    });
    assert!(audited, "actors: {:?}; log:\n{}", audit_actors(&repo), d.log());
}

#[test]
fn expired_untrusted_and_missing_client_certificates_are_refused_in_the_handshake() {
    let Some(m) = Mtls::new("expired_untrusted_and_missing_client_certificates_are_refused_in_the_handshake") else {
        return;
    };
    let expired = m.pki.client(
        &m.ca,
        "expired",
        "backup-bot",
        Some(("20200101000000Z", "20200102000000Z")),
    );
    let other_ca = m.pki.ca("other");
    let untrusted = m.pki.client(&other_ca, "untrusted", "backup-bot", None);
    let d = m.start("127.0.0.1", &[]);
    let admin = token_of("admin-all");
    for (what, cert) in [
        ("no", None),
        ("an expired", Some(&expired)),
        ("an untrusted", Some(&untrusted)),
    ] {
        for path in ["/healthz", "/v1/status"] {
            let (code, body) = m.curl(&d, cert, Some(&admin), "GET", path);
            assert_eq!(code, None, "{what} certificate got an answer on {path}: {body}");
        }
    }
    assert!(
        !d.log().contains("/v1/status"),
        "a refused client reached the API: {}",
        d.log()
    );
    // The same curl, with the good certificate, is answered: the refusals above are the
    // server's, not a broken client.
    assert_eq!(m.curl(&d, Some(&m.bot), None, "GET", "/v1/status").0, Some(200));
}

#[test]
fn a_bearer_token_names_the_caller_beside_a_certificate() {
    let Some(m) = Mtls::new("a_bearer_token_names_the_caller_beside_a_certificate") else {
        return;
    };
    let d = m.start("127.0.0.1", &[]);
    let viewer = token_of("viewer-all");
    let (code, body) = m.curl(&d, Some(&m.stranger), Some(&viewer), "GET", "/v1/status");
    assert_eq!((code, plan_names(&body)), (Some(200), vec!["ml".into(), "web".into()]));
    let (code, _) = m.curl(&d, Some(&m.bot), Some("not-a-known-token-at-all"), "GET", "/v1/status");
    assert_eq!(code, Some(401), "an unknown token is no one, whatever the certificate");
    let (code, _) = m.curl(&d, Some(&m.bot), Some(&viewer), "POST", "/v1/datasets/ml/docs/backup");
    assert_eq!(
        code,
        Some(403),
        "the token's viewer role, not the certificate's operator role"
    );
    assert!(d.log().contains("subject=viewer-all"), "{}", d.log());
}

/// The subject of the certificate the daemon on `port` serves.
fn served_subject(m: &Mtls, port: u16) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-cert", m.monitor.cert_str(), "-key", m.monitor.key_str()])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run s_client");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn sighup_reloads_the_server_certificate_and_a_broken_one_keeps_the_old() {
    let Some(m) = Mtls::new("sighup_reloads_the_server_certificate_and_a_broken_one_keeps_the_old") else {
        return;
    };
    let d = m.start("127.0.0.1", &[]);
    assert!(served_subject(&m, d.port).contains("lifeboat-one"));
    let second = m.pki.server("server-two", "lifeboat-two");
    std::fs::copy(&second.cert, m.site.path("live.pem")).expect("replace cert");
    std::fs::copy(&second.key, m.site.path("live.key")).expect("replace key");
    assert!(served_subject(&m, d.port).contains("lifeboat-one"), "not before SIGHUP");
    d.signal("HUP");
    let swapped = poll(Duration::from_secs(10), || {
        served_subject(&m, d.port).contains("lifeboat-two")
    });
    assert!(swapped, "the new certificate is not served; log:\n{}", d.log());
    assert!(d.log().contains("TLS certificate reloaded"));

    std::fs::write(m.site.path("live.pem"), "not a certificate\n").expect("break cert");
    d.signal("HUP");
    let refused = poll(Duration::from_secs(10), || {
        d.log().contains("TLS certificate not reloaded")
    });
    assert!(refused, "{}", d.log());
    let line = d.log().lines().filter(|l| l.contains("not reloaded")).count();
    assert_eq!(line, 1, "one error line: {}", d.log());
    assert!(
        served_subject(&m, d.port).contains("lifeboat-two"),
        "the previous certificate stays"
    );
    let ok = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            second.cert_str(),
            "--cert",
            m.bot.cert_str(),
            "--key",
            m.bot.key_str(),
        ])
        .arg(format!("https://127.0.0.1:{}/v1/status", d.port))
        .output()
        .expect("run curl");
    assert!(ok.status.success() && ok.stdout.starts_with(b"{"), "{ok:?}");
}

#[test]
fn sighup_reloads_the_client_roles_file() {
    let Some(m) = Mtls::new("sighup_reloads_the_client_roles_file") else {
        return;
    };
    let d = m.start("127.0.0.1", &[]);
    assert_eq!(m.curl(&d, Some(&m.stranger), None, "GET", "/v1/status").0, Some(403));
    std::fs::write(m.site.path("cert-roles"), format!("{ROLES}viewer:web CN=stranger\n")).expect("roles");
    d.signal("HUP");
    let granted = poll(Duration::from_secs(10), || {
        let (code, body) = m.curl(&d, Some(&m.stranger), None, "GET", "/v1/status");
        code == Some(200) && plan_names(&body) == ["web"]
    });
    assert!(granted, "{}", d.log());
    std::fs::write(m.site.path("cert-roles"), "viewer stranger\n").expect("roles");
    d.signal("HUP");
    let kept = poll(Duration::from_secs(10), || {
        d.log().contains("client certificate roles not reloaded")
    });
    assert!(kept && d.log().contains("line 1"), "{}", d.log());
    assert_eq!(m.curl(&d, Some(&m.stranger), None, "GET", "/v1/status").0, Some(200));
}

#[test]
fn status_presents_a_client_certificate_and_runs_a_token_command_in_a_minimal_environment() {
    let Some(m) = Mtls::new("status_presents_a_client_certificate_and_runs_a_token_command_in_a_minimal_environment")
    else {
        return;
    };
    let d = m.start("127.0.0.1", &[]);
    let bot = ["--client-cert", m.bot.cert_str(), "--client-key", m.bot.key_str()];
    let out = m.status(&d, &bot, &[]);
    assert!(out.status.code().is_some_and(|c| c == 0 || c == 4), "{out:?}");
    assert_eq!(plan_names(&String::from_utf8_lossy(&out.stdout)), ["ml"]);

    let without = m.status(&d, &[], &[]);
    assert_eq!(without.status.code(), Some(1), "{without:?}");
    assert!(String::from_utf8_lossy(&without.stderr).starts_with("error: daemon at https://"));

    let viewer = token_of("viewer-all");
    let stranger = [
        "--client-cert",
        m.stranger.cert_str(),
        "--client-key",
        m.stranger.key_str(),
    ];
    let printed = format!("printf '%s\\n' {viewer}");
    let mut args = stranger.to_vec();
    args.extend(["--token-command", &printed]);
    let out = m.status(&d, &args, &[]);
    assert_eq!(
        plan_names(&String::from_utf8_lossy(&out.stdout)),
        ["ml", "web"],
        "{out:?}"
    );

    // The command does not see the caller's environment: a token in a variable is not
    // passed on, and the failure does not show what the command printed.
    let mut args = stranger.to_vec();
    args.extend(["--token-command", "printf '%s\\n' \"$LIFEBOAT_TEST_TOKEN\""]);
    let out = m.status(&d, &args, &[("LIFEBOAT_TEST_TOKEN", &viewer)]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("token command") && err.contains("no usable token"),
        "{err}"
    );
    let out = m.status(&d, &["--token-command", "echo leaked-output; exit 3"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("leaked-output"));
    assert!(!d.log().contains(&viewer), "a token reached the log");
}

#[test]
fn metrics_off_loopback_need_a_viewer_certificate_or_token_unless_public() {
    let Some(m) = Mtls::new("metrics_off_loopback_need_a_viewer_certificate_or_token_unless_public") else {
        return;
    };
    let d = m.start("0.0.0.0", &[]);
    let (code, body) = m.curl(&d, Some(&m.monitor), None, "GET", "/metrics");
    assert_eq!(code, Some(200), "{body}");
    assert!(body.contains("lifeboat_rpo_seconds{plan=\"web\""), "{body}");
    let (code, body) = m.curl(&d, Some(&m.bot), None, "GET", "/metrics");
    assert_eq!(code, Some(200));
    assert!(
        !body.contains("plan=\"web\""),
        "a scoped certificate sees only its plan: {body}"
    );
    assert_eq!(m.curl(&d, Some(&m.stranger), None, "GET", "/metrics").0, Some(403));
    drop(d);

    let public = m.start("0.0.0.0", &["--metrics-public"]);
    let (code, body) = m.curl(&public, Some(&m.stranger), None, "GET", "/metrics");
    assert_eq!(code, Some(200), "{body}");
    assert!(body.contains("plan=\"web\"") && body.contains("plan=\"ml\""), "{body}");
    assert_eq!(
        m.curl(&public, Some(&m.stranger), None, "GET", "/v1/status").0,
        Some(403)
    );
}

#[test]
fn plain_metrics_off_loopback_are_open_only_with_metrics_public() {
    let site = Site::new();
    let d = site.start("0.0.0.0", &["--insecure-http", "--metrics-public"]);
    let (code, body) = d.call("GET", "/metrics", None, "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("plan=\"web\"") && body.contains("plan=\"ml\""), "{body}");
    assert_eq!(d.call("GET", "/v1/status", None, "").0, 401, "only /metrics is public");
    drop(d);
    let closed = site.start("0.0.0.0", &["--insecure-http"]);
    assert_eq!(closed.call("GET", "/metrics", None, "").0, 401);
    drop(closed);
    let on_loopback = site.start("127.0.0.1", &[]);
    assert_eq!(on_loopback.call("GET", "/metrics", None, "").0, 200);
}

#[test]
fn mutual_tls_flags_and_roles_files_are_checked_at_start() {
    let Some(m) = Mtls::new("mutual_tls_flags_and_roles_files_are_checked_at_start") else {
        return;
    };
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args(["daemon", "--plans"])
            .arg(m.site.path("plans"))
            .arg("--state")
            .arg(m.site.path("state"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .output()
            .expect("run the daemon")
    };
    let ca = ["--tls-client-ca", m.ca.cert_str()];
    let tls = ["--tls-cert", m.server.cert_str(), "--tls-key", m.server.key_str()];
    let out = run(&[&tls[..], &ca[..]].concat());
    assert_eq!(out.status.code(), Some(2), "a CA without a roles file: {out:?}");
    std::fs::write(m.site.path("bad-roles"), "viewer CN=ok\nadmin monitor\n").expect("roles");
    let (bad_roles, good_roles) = (m.site.path("bad-roles"), m.site.path("cert-roles"));
    let roles = ["--tls-client-roles", bad_roles.to_str().unwrap()];
    let out = run(&[&tls[..], &ca[..], &roles[..]].concat());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: client certificate roles file") && last.contains("line 2"),
        "{err}"
    );
    let not_ca = ["--tls-client-ca", good_roles.to_str().unwrap()];
    let roles = ["--tls-client-roles", good_roles.to_str().unwrap()];
    let out = run(&[&tls[..], &not_ca[..], &roles[..]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no certificate in"),
        "{out:?}"
    );
}
