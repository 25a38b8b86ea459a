//! A hostile HTTP/1.1 backend: it answers each request with exactly the bytes a script gives —
//! in several writes, with pauses, more than the framing says, or nothing before closing — and
//! records exactly the bytes of every request it received.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One thing the backend does in answer to a request.
#[derive(Clone, Debug)]
pub enum Step {
    Write(Vec<u8>),
    Sleep(Duration),
    /// Close the connection (no further requests are read on it).
    Close,
}

impl Step {
    pub fn write(bytes: impl AsRef<[u8]>) -> Step {
        Step::Write(bytes.as_ref().to_vec())
    }
}

/// A request as received: which connection (0-based, in accept order) and its place on it.
#[derive(Clone, Debug)]
pub struct Received {
    pub connection: usize,
    pub index: usize,
    /// How long the connection sat idle before this request (zero for the first).
    pub idle_for: Duration,
    pub bytes: Vec<u8>,
}

impl Received {
    pub fn request_line(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        text.lines().next().unwrap_or_default().to_owned()
    }
}

type Script = dyn Fn(&Received) -> Vec<Step> + Send + Sync;

pub struct ScriptedBackend {
    pub addr: std::net::SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
}

impl ScriptedBackend {
    /// Starts on a free loopback port. `idle_close`: a connection with no new request for that
    /// long is closed, as gunicorn (2 s), Apache and Node.js (5 s) do.
    pub async fn start(
        idle_close: Option<Duration>,
        script: impl Fn(&Received) -> Vec<Step> + Send + Sync + 'static,
    ) -> ScriptedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let (log, count) = (received.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let connection = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, connection, idle_close, script.clone(), log.clone()));
            }
        });
        ScriptedBackend { addr, received, connections }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut stream: TcpStream,
    connection: usize,
    idle_close: Option<Duration>,
    script: Arc<Script>,
    log: Arc<Mutex<Vec<Received>>>,
) {
    let mut buf = Vec::new();
    let mut idle_since = tokio::time::Instant::now();
    for index in 0.. {
        let next = read_request(&mut stream, &mut buf);
        let bytes = match idle_close {
            Some(limit) if index > 0 => match tokio::time::timeout(limit, next).await {
                Ok(bytes) => bytes,
                Err(_) => return,
            },
            _ => next.await,
        };
        let Some(bytes) = bytes else { return };
        let idle_for = if index == 0 { Duration::ZERO } else { idle_since.elapsed() };
        let request = Received { connection, index, idle_for, bytes };
        log.lock().unwrap().push(request.clone());
        for step in script(&request) {
            match step {
                Step::Write(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Step::Sleep(pause) => tokio::time::sleep(pause).await,
                Step::Close => return,
            }
        }
        idle_since = tokio::time::Instant::now();
    }
}

/// One request: its head, then a content-length or chunked body. `None` at EOF.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let head_end = loop {
        if let Some(at) = find(buf, b"\r\n\r\n") {
            break at + 4;
        }
        fill(stream, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    let end = if let Some(length) = length {
        while buf.len() < head_end + length {
            fill(stream, buf).await?;
        }
        head_end + length
    } else if head.lines().any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked")) {
        loop {
            if let Some(at) = find(&buf[head_end..], b"0\r\n\r\n") {
                break head_end + at + 5;
            }
            fill(stream, buf).await?;
        }
    } else {
        head_end
    };
    Some(buf.drain(..end).collect())
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
