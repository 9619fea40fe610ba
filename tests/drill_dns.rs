//! DNS re-points against real authoritative servers (BIND 9 and Knot), through a relay
//! written here that sits between Lifeboat and the server and drops or delays chosen
//! messages. Each case runs the real `lifeboat failover --confirm` and then asks the
//! server itself what the record holds.
//!
//! Proves: a re-point is one UPDATE message that the server applies whole or not at all,
//! read back afterwards; a lost UPDATE fails the step and leaves the old record (never
//! no record); a lost answer is settled by the read-back and rollback restores the old
//! value; a late copy of an UPDATE cannot undo the change; a CNAME that BIND ignores
//! fails the step; wrong keys and other algorithms stop the run in its preflight (a
//! signed query), update policy is named. Rollback puts back exactly the value the
//! preflight read, even when the playbook's primary target is another, and leaves a
//! value someone else wrote during the run.
//!
//! The servers come from `tests/run.sh` (`LIFEBOAT_TEST_NAMED`, `LIFEBOAT_TEST_TSIG_KEYGEN`,
//! `LIFEBOAT_TEST_KNOTD`, `LIFEBOAT_TEST_KEYMGR`) or the PATH. Missing servers skip the
//! tests, except under `LIFEBOAT_REQUIRE_SERVERS=1`, where they fail.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use hickory_proto::rr::RecordType;

mod servers;
mod support_drill;

use support_drill::{Procs, ZONE, free_port, infer, lookup, spawn, start_knot, tools, wait_answering};

const PASSWORD: &str = "drill-dns-password";
const OLD: &str = "127.0.0.10";
const NEW: &str = "127.0.0.20";
/// A primary target the record does not hold: rollback must not go there.
const ELSEWHERE: &str = "127.0.0.30";
/// A value someone else sets during a run.
const OTHER: &str = "127.0.0.40";

/// A TSIG secret printed by `tsig-keygen -a ALG NAME`.
fn bind_key(keygen: &Path, dir: &Path, name: &str, alg: &str) -> String {
    let out = Command::new(keygen).args(["-a", alg, name]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    std::fs::write(dir.join(format!("{name}.key")), &text).unwrap();
    let secret = text.split("secret \"").nth(1).and_then(|s| s.split('"').next());
    secret.expect("tsig-keygen prints a secret").to_string()
}

/// The keys a server knows: name → secret.
struct Keys {
    ddns: String,
    sha512: String,
    limited: String,
}

/// BIND serving `example.test`: `ddns-key` and `sha512-key` may change anything,
/// `limited-key` only `other.example.test.`.
fn start_bind(procs: &mut Procs, named: &Path, keygen: &Path, dir: &Path) -> (u16, Keys) {
    std::fs::create_dir_all(dir).unwrap();
    let keys = Keys {
        ddns: bind_key(keygen, dir, "ddns-key", "hmac-sha256"),
        sha512: bind_key(keygen, dir, "sha512-key", "hmac-sha512"),
        limited: bind_key(keygen, dir, "limited-key", "hmac-sha256"),
    };
    std::fs::write(dir.join("example.test.zone"), ZONE).unwrap();
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; session-keyfile \"{d}/session.key\";\n\
         listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; }};\n\
         controls {{ }};\n\
         include \"{d}/ddns-key.key\"; include \"{d}/sha512-key.key\"; include \"{d}/limited-key.key\";\n\
         zone \"example.test\" {{ type primary; file \"example.test.zone\";\n\
           update-policy {{ grant ddns-key zonesub ANY; grant sha512-key zonesub ANY; grant limited-key name other.example.test. A; }}; }};\n"
    );
    std::fs::write(dir.join("named.conf"), conf).unwrap();
    let conf = dir.join("named.conf").display().to_string();
    spawn(procs, named, &["-g", "-c", &conf], &dir.join("named.log"), "TERM");
    wait_answering(port, &dir.join("named.log"));
    (port, keys)
}

/// What the relay does with the messages it carries.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    Pass,
    /// UPDATE requests never reach the server.
    DropUpdates,
    /// UPDATE requests reach the server; its answers never come back.
    DropUpdateAnswers,
    /// UPDATE requests pass, and a copy of each reaches the server again this much later.
    ReplayUpdatesAfter(Duration),
}

/// A UDP relay on loopback in front of one DNS server, with a changeable policy and a
/// log of what it did.
struct Relay {
    port: u16,
    policy: Arc<Mutex<Policy>>,
    /// UPDATE requests seen, and the rcodes the server gave to replayed copies.
    updates: Arc<Mutex<usize>>,
    replay_rcodes: Arc<Mutex<Vec<u8>>>,
}

fn is_update(bytes: &[u8]) -> bool {
    bytes.len() > 2 && (bytes[2] >> 3) & 0x0f == 5
}

/// Send `request` to the server from a fresh socket; its answer, if one comes.
async fn ask(server: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.ok()?;
    socket.send_to(request, server).await.ok()?;
    let mut buf = vec![0u8; 65_535];
    let len = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(len);
    Some(buf)
}

impl Relay {
    fn start(server_port: u16) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let relay = Relay {
            port: front.local_addr().unwrap().port(),
            policy: Arc::new(Mutex::new(Policy::Pass)),
            updates: Arc::default(),
            replay_rcodes: Arc::default(),
        };
        let (policy, updates, replays) = (relay.policy.clone(), relay.updates.clone(), relay.replay_rcodes.clone());
        let server: SocketAddr = ([127, 0, 0, 1], server_port).into();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                front.set_nonblocking(true).unwrap();
                let front = Arc::new(tokio::net::UdpSocket::from_std(front).unwrap());
                let mut buf = vec![0u8; 65_535];
                loop {
                    let Ok((len, client)) = front.recv_from(&mut buf).await else {
                        return;
                    };
                    let request = buf[..len].to_vec();
                    let policy = *policy.lock().unwrap();
                    let update = is_update(&request);
                    if update {
                        *updates.lock().unwrap() += 1;
                    }
                    if update && policy == Policy::DropUpdates {
                        continue;
                    }
                    let front = front.clone();
                    tokio::spawn(async move {
                        let answer = ask(server, &request).await;
                        if let (Some(answer), false) = (answer, update && policy == Policy::DropUpdateAnswers) {
                            let _ = front.send_to(&answer, client).await;
                        }
                    });
                    if let (true, Policy::ReplayUpdatesAfter(delay)) = (update, policy) {
                        let (request, replays) = (buf[..len].to_vec(), replays.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            if let Some(answer) = ask(server, &request).await {
                                replays.lock().unwrap().push(answer[3] & 0x0f);
                            }
                        });
                    }
                }
            });
        });
        relay
    }

    fn set(&self, policy: Policy) {
        *self.policy.lock().unwrap() = policy;
    }

    fn updates(&self) -> usize {
        *self.updates.lock().unwrap()
    }
}

/// A DNS endpoint section; `extra` holds more keys (algorithm, type, ...).
fn endpoint(
    name: &str,
    port: u16,
    record: &str,
    key: &str,
    secret: &Path,
    extra: &str,
    targets: (&str, &str),
) -> String {
    format!(
        "[endpoints.{name}]\nprovider = \"dns\"\nserver = \"127.0.0.1:{port}\"\nzone = \"example.test.\"\nrecord = \"{record}\"\nttl = \"30s\"\ntsig_key_name = \"{key}\"\ntsig_secret = {{ file = \"{}\" }}\n{extra}targets = {{ primary = \"{}\", standby = \"{}\" }}\n\n",
        secret.display(),
        targets.0,
        targets.1
    )
}

fn playbook(name: &str, steps: &[&str]) -> String {
    format!(
        "[playbooks.{name}]\nrto = \"5m\"\nprimary = \"primary\"\nstandby = \"standby\"\nsteps = [\n  {}\n]\n\n",
        steps.join(",\n  ")
    )
}

fn repoint(endpoint: &str, to: &str) -> String {
    format!("{{ kind = \"repoint\", endpoint = \"{endpoint}\", to = \"{to}\" }}")
}

/// A plan with two folder regions, a small dataset (so reports can be stored), the
/// given endpoints and the playbooks every case uses.
struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    plan: PathBuf,
}

impl World {
    fn new(endpoints: &str, extra_playbooks: &str) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/file.txt"), b"checkpoint").unwrap();
        let d = dir.display();
        let fail = "{ kind = \"command\", command = [\"/bin/false\"] }";
        let timed_out = "{ kind = \"repoint\", endpoint = \"dns-elsewhere\", to = \"standby\", timeout = \"1s\" }";
        let playbooks = [
            playbook("move", &[&repoint("dns", "standby")]),
            playbook("back", &[&repoint("dns", "primary")]),
            playbook("move-then-fail", &[&repoint("dns", "standby"), fail]),
            playbook("elsewhere-times-out", &[timed_out]),
        ]
        .concat();
        let plan = format!(
            "[key]\nenv = \"LIFEBOAT_PASSWORD\"\n\n[regions.primary]\naddress = \"{d}/repo-primary\"\ncreate = true\n\n\
             [regions.standby]\naddress = \"{d}/repo-standby\"\ncreate = true\n\n\
             [datasets.files]\npaths = [\"{d}/src\"]\nschedule = \"@hourly\"\nregions = [\"primary\", \"standby\"]\nrpo = \"1h\"\nretention = {{ keep_last = 3 }}\n\n\
             {endpoints}{playbooks}{extra_playbooks}"
        );
        let world = World {
            plan: dir.join("plan.toml"),
            dir,
            _tmp: tmp,
        };
        std::fs::write(&world.plan, plan).unwrap();
        let (code, out, err) = world.lifeboat(&["apply", &world.plan.display().to_string()]);
        assert_eq!(code, 0, "apply: {out}{err}");
        world
    }

    fn lifeboat(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::cargo_bin("lifeboat")
            .unwrap()
            .args(args)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .current_dir(&self.dir)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    /// `failover --confirm PLAYBOOK` with its exit code and JSON report.
    fn failover(&self, playbook: &str) -> (i32, serde_json::Value) {
        let plan = self.plan.display().to_string();
        let (code, out, err) = self.lifeboat(&["--json", "failover", "--plan", &plan, "--confirm", playbook]);
        let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}{err}"));
        (code, report)
    }

    /// `failover --confirm PLAYBOOK` that its preflight stops: the exit code and the error.
    fn stopped(&self, playbook: &str) -> (i32, String) {
        let plan = self.plan.display().to_string();
        let (code, out, err) = self.lifeboat(&["failover", "--plan", &plan, "--confirm", playbook]);
        assert!(out.is_empty(), "{playbook} ran steps: {out}{err}");
        assert!(
            err.starts_with(&format!("error: preflight of playbook {playbook} failed")),
            "{err}"
        );
        (code, err)
    }
}

type Entry = (String, String, String, String);

/// `(phase, name, status, detail)` of every entry of a report.
fn entries(report: &serde_json::Value) -> Vec<Entry> {
    let field = |s: &serde_json::Value, k: &str| s[k].as_str().unwrap_or_default().to_string();
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                field(s, "phase"),
                field(s, "name"),
                field(s, "status"),
                field(s, "detail"),
            )
        })
        .collect()
}

/// The entries after the preflight's checks, which all passed.
fn steps(report: &serde_json::Value) -> Vec<Entry> {
    let (pre, rest): (Vec<Entry>, Vec<Entry>) = entries(report).into_iter().partition(|e| e.0 == "preflight");
    assert!(!pre.is_empty() && pre.iter().all(|e| e.2 == "passed"), "{pre:?}");
    rest
}

fn first_detail(report: &serde_json::Value) -> String {
    steps(report)[0].3.clone()
}

/// Every answer to a lookup of the record, sampled while a change runs.
type Samples = Vec<Result<Vec<String>, String>>;

/// Samples the record every 10 ms from another thread until `stop` is set.
fn sample(port: u16, stop: Arc<Mutex<bool>>) -> std::thread::JoinHandle<Samples> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !*stop.lock().unwrap() {
            seen.push(infer(port));
            std::thread::sleep(Duration::from_millis(10));
        }
        seen
    })
}

/// The cases both servers must pass, through the relay in front of `server_port`.
fn atomic_cases(world: &World, relay: &Relay, server_port: u16) {
    let old = vec![OLD.to_string()];
    let new = vec![NEW.to_string()];

    // A plain change: one UPDATE, read back, the name never without its record.
    let stop = Arc::new(Mutex::new(false));
    let sampler = sample(server_port, stop.clone());
    let before = relay.updates();
    let (code, report) = world.failover("move");
    *stop.lock().unwrap() = true;
    assert_eq!(code, 0, "{report:#}");
    let checked = entries(&report);
    assert!(
        checked
            .iter()
            .any(|e| e.1 == "endpoint dns to standby" && e.3.ends_with(&format!("holds {OLD}"))),
        "the preflight read the record: {checked:?}"
    );
    let detail = first_detail(&report);
    assert!(
        detail.contains(&format!("now {NEW} (was {OLD})")) && detail.contains("read back from 127.0.0.1:"),
        "{detail}"
    );
    assert_eq!(relay.updates() - before, 1, "the re-point is one UPDATE message");
    assert_eq!(infer(server_port), Ok(new.clone()));
    let seen = sampler.join().unwrap();
    assert!(seen.len() > 5, "sampled {} times", seen.len());
    assert!(
        seen.iter().all(|s| *s == Ok(old.clone()) || *s == Ok(new.clone())),
        "the record was missing or odd during the change: {seen:?}"
    );
    let (code, report) = world.failover("back");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(infer(server_port), Ok(old.clone()));

    // (a) The UPDATE is lost: the step fails and the old record stays.
    relay.set(Policy::DropUpdates);
    let (code, report) = world.failover("move");
    assert_eq!(code, 1, "{report:#}");
    let detail = first_detail(&report);
    assert!(
        detail.contains("no answer from") && detail.contains(&format!("as {OLD}, not {NEW}")),
        "{detail}"
    );
    assert_eq!(
        infer(server_port),
        Ok(old.clone()),
        "never NXDOMAIN, never the new value"
    );

    // (b) The answer is lost: the read-back finds the change; the failing step after it
    // rolls it back, again without answers, again settled by reading back.
    relay.set(Policy::DropUpdateAnswers);
    let (code, report) = world.failover("move-then-fail");
    assert_eq!(code, 1, "{report:#}");
    let all = steps(&report);
    assert_eq!(all[0].2, "passed", "{all:?}");
    assert!(
        all[0].3.contains(&format!("now {NEW}")) && all[0].3.contains("no usable answer"),
        "{all:?}"
    );
    let rollback: Vec<_> = all.iter().filter(|s| s.0 == "rollback").collect();
    assert_eq!(rollback.len(), 1, "{all:?}");
    assert_eq!(
        (rollback[0].1.as_str(), rollback[0].2.as_str()),
        ("dns back to primary", "passed")
    );
    assert_eq!(infer(server_port), Ok(old.clone()));

    // (c) A copy of the UPDATE arrives after the change: its prerequisite (the old
    // value) no longer holds, so it changes nothing.
    relay.set(Policy::ReplayUpdatesAfter(Duration::from_millis(1500)));
    let (code, report) = world.failover("move");
    assert_eq!(code, 0, "{report:#}");
    std::thread::sleep(Duration::from_millis(2500));
    let replays = relay.replay_rcodes.lock().unwrap().clone();
    // 7 YXRRSET, 8 NXRRSET: the prerequisite failed.
    assert!(
        !replays.is_empty() && replays.iter().all(|c| *c == 7 || *c == 8),
        "{replays:?}"
    );
    assert_eq!(infer(server_port), Ok(new), "the late copy left the new record");
    relay.set(Policy::Pass);
    let (code, report) = world.failover("back");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(infer(server_port), Ok(old.clone()));

    // (d) A re-point whose outcome is unknown (its answer lost, the step timed out while
    // waiting) is rolled back to the value the preflight read, not to the primary's
    // target (127.0.0.30 here): the name ends as it was before the run.
    relay.set(Policy::DropUpdateAnswers);
    let (code, report) = world.failover("elsewhere-times-out");
    assert_eq!(code, 1, "{report:#}");
    let all = steps(&report);
    assert!(all[0].2 == "failed" && all[0].3.contains("timed out"), "{all:?}");
    assert_eq!(
        (all[1].0.as_str(), all[1].1.as_str(), all[1].2.as_str()),
        ("rollback", "dns-elsewhere back to primary", "passed"),
        "{all:?}"
    );
    assert!(all[1].3.contains(&format!("now {OLD} (was {NEW})")), "{all:?}");
    assert_eq!(infer(server_port), Ok(old));
    relay.set(Policy::Pass);

    // The dry run asks the server too, and changes nothing.
    let plan = world.plan.display().to_string();
    let (code, out, err) = world.lifeboat(&["failover", "--plan", &plan, "--dry-run", "move"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "preflight ok: endpoint dns to standby: 127.0.0.1:{} answers",
            relay.port
        )) && out.contains(&format!("holds {OLD}")),
        "{out}"
    );
    assert_eq!(infer(server_port), Ok(vec![OLD.to_string()]));
}

#[test]
fn bind_repoints_are_atomic_read_back_and_name_their_failures() {
    let wanted = [
        ("named", "LIFEBOAT_TEST_NAMED"),
        ("tsig-keygen", "LIFEBOAT_TEST_TSIG_KEYGEN"),
        ("nsupdate", "LIFEBOAT_TEST_NSUPDATE"),
    ];
    let Some(t) = tools("drill_dns", &wanted, "apt-get install bind9 bind9-dnsutils") else {
        return;
    };
    let mut procs = Procs::default();
    let tmp = tempfile::tempdir().unwrap();
    let (port, keys) = start_bind(&mut procs, &t[0], &t[1], &tmp.path().join("bind"));
    let relay = Relay::start(port);
    let secrets = tmp.path();
    let write = |name: &str, s: &str| {
        let p = secrets.join(name);
        std::fs::write(&p, format!("{s}\n")).unwrap();
        p
    };
    let (ddns, sha512, limited) = (
        write("ddns.secret", &keys.ddns),
        write("sha512.secret", &keys.sha512),
        write("limited.secret", &keys.limited),
    );
    let wrong = write("wrong.secret", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    // What another operator's tool does mid-run: set the record to OTHER.
    let other_change = write(
        "other.nsupdate",
        &format!(
            "server 127.0.0.1 {port}\nzone example.test.\nupdate delete infer.example.test. A\nupdate add infer.example.test. 30 A {OTHER}\nsend"
        ),
    );
    let overwrite = format!(
        "{{ kind = \"command\", command = [\"sh\", \"-c\", \"{} -k {} {} && exit 1\"] }}",
        t[2].display(),
        tmp.path().join("bind/ddns-key.key").display(),
        other_change.display()
    );
    let infer = "infer.example.test.";
    let both = (OLD, NEW);
    let endpoints = [
        endpoint("dns", relay.port, infer, "ddns-key", &ddns, "", both),
        endpoint(
            "dns-elsewhere",
            relay.port,
            infer,
            "ddns-key",
            &ddns,
            "",
            (ELSEWHERE, NEW),
        ),
        endpoint("wrong-secret", port, infer, "ddns-key", &wrong, "", both),
        endpoint("sha512-unsaid", port, infer, "sha512-key", &sha512, "", both),
        endpoint(
            "sha512",
            port,
            infer,
            "sha512-key",
            &sha512,
            "tsig_algorithm = \"hmac-sha512\"\n",
            both,
        ),
        endpoint("limited", port, infer, "limited-key", &limited, "", both),
        endpoint(
            "web-cname",
            port,
            "web.example.test.",
            "ddns-key",
            &ddns,
            "type = \"CNAME\"\n",
            ("svc-a.example.test.", "svc-b.example.test."),
        ),
    ]
    .concat();
    let extra = [
        playbook("wrong-secret", &[&repoint("wrong-secret", "standby")]),
        playbook("sha512-unsaid", &[&repoint("sha512-unsaid", "standby")]),
        playbook(
            "sha512",
            &[&repoint("sha512", "standby"), &repoint("sha512", "primary")],
        ),
        playbook("limited", &[&repoint("limited", "standby")]),
        playbook("cname", &[&repoint("web-cname", "standby")]),
        playbook("overwritten", &[&repoint("dns", "standby"), &overwrite]),
    ]
    .concat();
    let world = World::new(&endpoints, &extra);

    atomic_cases(&world, &relay, port);

    // Someone else changes the record while the run is on it (the command step, which
    // then fails): rollback leaves their value instead of putting the old one back.
    let (code, report) = world.failover("overwritten");
    assert_eq!(code, 1, "{report:#}");
    let rollback: Vec<Entry> = steps(&report).into_iter().filter(|s| s.0 == "rollback").collect();
    assert_eq!(rollback.len(), 1, "{rollback:?}");
    assert_eq!(rollback[0].2, "failed", "{rollback:?}");
    assert!(
        rollback[0].3.contains(&format!("holds `{OTHER}`")) && rollback[0].3.contains("another failover?"),
        "{rollback:?}"
    );
    assert_eq!(self::infer(port), Ok(vec![OTHER.to_string()]));
    let (code, report) = world.failover("back");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(self::infer(port), Ok(vec![OLD.to_string()]));

    // A key the server does not take stops the run in its preflight's signed query.
    let expect_stopped = |playbook: &str, wanted: &[&str]| {
        let (code, err) = world.stopped(playbook);
        assert_eq!(code, 1, "{playbook}: {err}");
        assert!(wanted.iter().all(|w| err.contains(w)), "{playbook}: {err}");
        assert_eq!(self::infer(port), Ok(vec![OLD.to_string()]));
    };
    expect_stopped(
        "wrong-secret",
        &[
            "endpoint wrong-secret to standby",
            "authentication failed",
            "BADSIG",
            "tsig_secret",
        ],
    );
    expect_stopped(
        "sha512-unsaid",
        &["authentication failed", "BADKEY", "tsig_algorithm", "hmac-sha256"],
    );
    // Policy and a CNAME BIND ignores show only when the change is made: the step fails
    // and is rolled back.
    let expect_failure = |playbook: &str, wanted: &[&str]| {
        let (code, report) = world.failover(playbook);
        assert_eq!(code, 1, "{playbook}: {report:#}");
        let detail = first_detail(&report);
        assert!(wanted.iter().all(|w| detail.contains(w)), "{playbook}: {detail}");
        let rollback = steps(&report)
            .into_iter()
            .filter(|s| s.0 == "rollback")
            .collect::<Vec<_>>();
        assert!(rollback.len() == 1 && rollback[0].2 == "passed", "{rollback:?}");
        assert_eq!(
            self::infer(port),
            Ok(vec![OLD.to_string()]),
            "{playbook} changed the record"
        );
    };
    expect_failure("limited", &["REFUSED", "update policy", "limited-key"]);
    expect_failure(
        "cname",
        &[
            "web.example.test. reads back",
            "no record, not svc-b.example.test.",
            "CNAME cannot stand beside",
        ],
    );
    assert_eq!(
        lookup(port, "web.example.test.", RecordType::A),
        Ok(vec![OLD.to_string()])
    );

    // The right algorithm named in the plan: both re-points pass and are read back.
    let (code, report) = world.failover("sha512");
    assert_eq!(code, 0, "{report:#}");
    let all = steps(&report);
    assert!(all[0].3.contains(&format!("now {NEW}")), "{all:?}");
    assert!(all[1].3.contains(&format!("now {OLD}")), "{all:?}");
}

#[test]
fn knot_repoints_are_atomic_and_read_back() {
    let wanted = [("knotd", "LIFEBOAT_TEST_KNOTD"), ("keymgr", "LIFEBOAT_TEST_KEYMGR")];
    let Some(t) = tools("drill_dns", &wanted, "apt-get install knot knot-dnsutils") else {
        return;
    };
    let mut procs = Procs::default();
    let tmp = tempfile::tempdir().unwrap();
    let (port, secret) = start_knot(&mut procs, &t[0], &t[1], &tmp.path().join("knot"));
    let relay = Relay::start(port);
    let secret_file = tmp.path().join("ddns.secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let wrong = tmp.path().join("wrong.secret");
    std::fs::write(&wrong, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
    let infer = "infer.example.test.";
    let endpoints = [
        endpoint("dns", relay.port, infer, "ddns-key", &secret_file, "", (OLD, NEW)),
        endpoint(
            "dns-elsewhere",
            relay.port,
            infer,
            "ddns-key",
            &secret_file,
            "",
            (ELSEWHERE, NEW),
        ),
        endpoint("wrong-secret", port, infer, "ddns-key", &wrong, "", (OLD, NEW)),
    ]
    .concat();
    let extra = playbook("wrong-secret", &[&repoint("wrong-secret", "standby")]);
    let world = World::new(&endpoints, &extra);

    atomic_cases(&world, &relay, port);

    let (code, err) = world.stopped("wrong-secret");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("authentication failed") && err.contains("BADSIG"), "{err}");
    assert_eq!(self::infer(port), Ok(vec![OLD.to_string()]));
}
