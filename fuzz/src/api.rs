//! The daemon's HTTP API as a client sees it: each input is sent as raw bytes on a
//! TCP connection to a real daemon running in this process (no plans, two tokens).
//! The request head is parsed by hyper, the routes, bearer check and trigger path
//! by the daemon; a panic in any of them aborts the fuzzer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use lifeboat::daemon::DaemonConfig;

/// Tokens the daemon accepts; the seeds use them so routes past the check are reached.
pub const VIEWER_TOKEN: &str = "fuzz-viewer-token-0001";
pub const OPERATOR_TOKEN: &str = "fuzz-operator-token-0001";

/// Input: bytes a client sends on one connection.
pub fn api_request(data: &[u8]) {
    let addr = daemon();
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        panic!("the daemon stopped accepting connections");
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.write_all(data);
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    if !answer.is_empty() {
        // hyper answers an HTTP/1.0 request in HTTP/1.0.
        let status = answer
            .strip_prefix(b"HTTP/1.1 ")
            .or_else(|| answer.strip_prefix(b"HTTP/1.0 "));
        let status = status.unwrap_or_else(|| panic!("not an HTTP answer: {:?}", String::from_utf8_lossy(&answer)));
        assert!(!status.starts_with(b"500"), "internal server error");
    }
}

/// The address of the daemon, started on first use on a free loopback port.
fn daemon() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lifeboat-fuzz-api-{}", std::process::id()));
        let cfg = config(&dir);
        let listen = cfg.listen;
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
            if let Err(e) = runtime.block_on(lifeboat::daemon::run(cfg)) {
                panic!("daemon failed: {e}");
            }
        });
        wait_until_listening(listen);
        listen
    })
}

fn config(dir: &std::path::Path) -> DaemonConfig {
    let plans = dir.join("plans");
    std::fs::create_dir_all(&plans).expect("a plans folder");
    let tokens: PathBuf = dir.join("tokens");
    let text = format!("viewer {VIEWER_TOKEN}\noperator {OPERATOR_TOKEN}\n");
    std::fs::write(&tokens, text).expect("a token file");
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    DaemonConfig {
        plans_dir: plans,
        state_dir: dir.join("state"),
        listen,
        tokens: Some(tokens),
        tls_cert: None,
        tls_key: None,
        max_jobs: 1,
        shutdown_grace: Duration::from_secs(1),
        reload_poll: Duration::from_secs(3600),
        trigger_rate_per_minute: 600,
        trigger_burst: 1000,
        address_rate_per_minute: 1_000_000,
        subject_rate_per_minute: 1_000_000,
        ..DaemonConfig::default()
    }
}

fn wait_until_listening(addr: SocketAddr) {
    for _ in 0..200 {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("the daemon did not listen on {addr}");
}
