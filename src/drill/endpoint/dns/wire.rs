//! One DNS exchange with one server: sign, send over UDP (again over TCP when the answer
//! is truncated), wait for the answer carrying the same id, check its TSIG.
//!
//! The exchange is done here rather than through hickory's client for two reasons: the
//! client signs only updates and zone transfers, while a preflight must prove the key
//! with a read-only query; and it reports a rejected key as a protocol error about
//! "truncated HMACs", where the server's answer says exactly what was wrong (BADKEY,
//! BADSIG or BADTIME in its TSIG record).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::TSigner;
use hickory_proto::rr::rdata::tsig::TsigError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Where to send and how to sign.
#[derive(Clone)]
pub struct Server {
    pub addr: SocketAddr,
    pub signer: Option<TSigner>,
    /// How long to wait for one answer.
    pub timeout: Duration,
}

/// Why an exchange gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing came back in time: whether the server acted is unknown.
    NoAnswer,
    /// The server rejected the request's TSIG (its answer is unsigned).
    Tsig(TsigError),
    /// The server answered, but not signed with the key, or signed wrongly.
    Unverified(String),
    /// The exchange could not be made or the answer could not be read.
    Transport(String),
}

/// Send `message` and return the server's verified answer.
pub async fn exchange(server: &Server, mut message: Message) -> Result<Message, Failure> {
    let mut verifier = match &server.signer {
        Some(signer) => message
            .finalize(signer, now())
            .map_err(|e| Failure::Transport(format!("cannot sign the request: {e}")))?,
        None => None,
    };
    let bytes = message
        .to_vec()
        .map_err(|e| Failure::Transport(format!("cannot encode the request: {e}")))?;
    let id = message.metadata.id;
    let mut answer = udp(server, &bytes, id).await?;
    if parse(&answer)?.metadata.truncation {
        answer = tcp(server, &bytes, id).await?;
    }
    let reply = parse(&answer)?;
    let Some(verifier) = verifier.as_mut() else {
        return Ok(reply);
    };
    match reply.signature.as_ref().map(|s| s.data.error) {
        Some(Some(error)) => Err(Failure::Tsig(error)),
        None if reply.metadata.response_code != ResponseCode::NoError => Ok(reply),
        None => Err(Failure::Unverified("the answer is not signed".into())),
        Some(None) => verifier
            .verify(&answer)
            .map(|_| reply)
            .map_err(|e| Failure::Unverified(format!("the answer's signature does not verify: {e}"))),
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn parse(bytes: &[u8]) -> Result<Message, Failure> {
    Message::from_vec(bytes).map_err(|e| Failure::Transport(format!("unreadable answer: {e}")))
}

/// The answer's id, if the bytes are long enough to hold a header.
fn answer_id(bytes: &[u8]) -> Option<u16> {
    (bytes.len() >= 12).then(|| u16::from_be_bytes([bytes[0], bytes[1]]))
}

async fn udp(server: &Server, request: &[u8], id: u16) -> Result<Vec<u8>, Failure> {
    let io = |e: std::io::Error| Failure::Transport(format!("UDP to {}: {e}", server.addr));
    let local: SocketAddr = if server.addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(server.addr).await.map_err(io)?;
    socket.send(request).await.map_err(io)?;
    let deadline = tokio::time::Instant::now() + server.timeout;
    let mut buf = vec![0u8; 65_535];
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await;
        let len = match received {
            Err(_) => return Err(Failure::NoAnswer),
            Ok(result) => result.map_err(io)?,
        };
        // Stray datagrams (a late answer to an earlier request) are skipped.
        if answer_id(&buf[..len]) == Some(id) {
            return Ok(buf[..len].to_vec());
        }
    }
}

async fn tcp(server: &Server, request: &[u8], id: u16) -> Result<Vec<u8>, Failure> {
    let io = |e: std::io::Error| Failure::Transport(format!("TCP to {}: {e}", server.addr));
    let exchange = async {
        let mut stream = TcpStream::connect(server.addr).await?;
        let len = u16::try_from(request.len()).map_err(|_| std::io::Error::other("request too long"))?;
        stream.write_all(&len.to_be_bytes()).await?;
        stream.write_all(request).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(server.timeout, exchange)
        .await
        .map_err(|_| Failure::NoAnswer)?
        .map_err(io)?;
    if answer_id(&answer) == Some(id) {
        Ok(answer)
    } else {
        Err(Failure::Transport(format!(
            "TCP to {}: the answer is for another request",
            server.addr
        )))
    }
}
