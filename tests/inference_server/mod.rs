//! A tiny inference server for drill tests, run inside the test process: HTTP/1.1,
//! one thread per connection, std only.
//!
//! `GET /healthz` answers `ok`; `POST /v1/predict` answers `{"answer": N, "model":
//! "NAME"}`, where N is FNV-1a (64-bit) over the model file's bytes, cut to 53 bits so
//! every JSON reader holds it exactly. The file is read again whenever its size or
//! modification time changes, so a restored checkpoint is served without a restart. A
//! missing model answers 503. It lives here, not as a binary of the crate, so that
//! installing Lifeboat installs only `lifeboat`.
//!
//! To stand in for a model whose answers drift, `POST /admin/score` with a number as
//! the body makes every later answer also carry `"choices": [{"score": S}]`;
//! [`set_score`] does that from a test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

const MAX_BODY: usize = 1 << 20;

/// FNV-1a, 64-bit, masked to 53 bits: the answer a server gives for `bytes`.
pub fn answer(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h & ((1 << 53) - 1)
}

#[derive(Default)]
struct Model {
    seen: Option<(u64, SystemTime)>,
    answer: u64,
}

struct Server {
    path: PathBuf,
    name: String,
    model: Mutex<Model>,
    /// The score answers carry, as written to `/admin/score`; none until then.
    score: Mutex<Option<String>>,
}

impl Server {
    /// The current answer, re-reading the file when it changed; `None` when it is missing.
    fn answer(&self) -> Option<u64> {
        let meta = std::fs::metadata(&self.path).ok()?;
        let stamp = (meta.len(), meta.modified().ok()?);
        let mut model = self.model.lock().ok()?;
        if model.seen != Some(stamp) {
            let bytes = std::fs::read(&self.path).ok()?;
            model.answer = answer(&bytes);
            model.seen = Some(stamp);
        }
        Some(model.answer)
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length.min(MAX_BODY)];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, path, body })
}

fn respond(mut stream: &TcpStream, status: &str, content_type: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
}

fn handle(server: &Server, stream: TcpStream) {
    let Some(req) = read_request(&stream) else {
        respond(&stream, "400 Bad Request", "text/plain", "bad request\n");
        return;
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/healthz") => respond(&stream, "200 OK", "text/plain", "ok\n"),
        ("POST", "/v1/predict") => match server.answer() {
            Some(a) => respond(&stream, "200 OK", "application/json", &server.prediction(a)),
            None => respond(
                &stream,
                "503 Service Unavailable",
                "application/json",
                "{\"error\": \"model file missing\"}",
            ),
        },
        ("POST", "/admin/score") => {
            let text = String::from_utf8_lossy(&req.body).trim().to_string();
            match text.parse::<f64>() {
                Ok(n) if n.is_finite() => {
                    if let Ok(mut score) = server.score.lock() {
                        *score = Some(text);
                    }
                    respond(&stream, "200 OK", "text/plain", "ok\n")
                }
                _ => respond(&stream, "400 Bad Request", "text/plain", "the body must be a number\n"),
            }
        }
        _ => respond(&stream, "404 Not Found", "text/plain", "not found\n"),
    }
}

impl Server {
    /// The JSON answer for a model whose answer is `a`, with the score when one is set.
    fn prediction(&self, a: u64) -> String {
        let score = self.score.lock().ok().and_then(|s| s.clone());
        match score {
            None => format!("{{\"answer\": {a}, \"model\": {:?}}}", self.name),
            Some(s) => format!(
                "{{\"answer\": {a}, \"model\": {:?}, \"choices\": [{{\"score\": {s}}}]}}",
                self.name
            ),
        }
    }
}

/// Make the server on `port` answer with `score` from now on (its admin endpoint).
#[allow(dead_code)]
pub fn set_score(port: u16, score: &str) {
    let request = format!(
        "POST /admin/score HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{score}",
        score.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the inference server");
    stream.write_all(request.as_bytes()).expect("send the score");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "score {score} refused: {answer}");
}

/// Serve `model` on a free loopback port until the test process ends; returns the port.
pub fn start(model: &Path) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("bound address").port();
    let name = model
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy().to_string());
    let server = Arc::new(Server {
        name,
        path: model.to_path_buf(),
        model: Mutex::new(Model::default()),
        score: Mutex::new(None),
    });
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let server = Arc::clone(&server);
            std::thread::spawn(move || handle(&server, stream));
        }
    });
    port
}

#[test]
fn answer_is_fnv1a_cut_to_53_bits() {
    assert_eq!(answer(b""), 0xcbf2_9ce4_8422_2325 & ((1 << 53) - 1));
    assert_ne!(answer(b"a"), answer(b"b"));
    assert!(answer(b"weights") < 1 << 53);
}
