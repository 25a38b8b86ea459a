//! A hostile HTTP/1.1 backend: it answers each request with exactly the bytes a script gives —
//! in several writes, with pauses, more than the framing says, or nothing before closing or
//! resetting — and records exactly the bytes it received, per request and per connection
//! (including what arrives after an answer), and whether and when the gateway closed each
//! connection. Optionally over TLS, and optionally answering after the request head alone, as a
//! backend does that refuses an upload (401, 413) without reading it.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One thing the backend does in answer to a request.
#[derive(Clone, Debug)]
pub enum Step {
    Write(Vec<u8>),
    Sleep(Duration),
    /// Close the connection (no further requests are read on it); over TLS after a close_notify.
    Close,
    /// Over TLS: close the TCP connection without a close_notify, as a truncation attack would.
    /// Plain TCP: the same as [`Step::Close`].
    CloseWithoutNotify,
    /// Abort the connection with a TCP reset (SO_LINGER 0), discarding anything unsent.
    Reset,
}

impl Step {
    pub fn write(bytes: impl AsRef<[u8]>) -> Step {
        Step::Write(bytes.as_ref().to_vec())
    }

    /// `bytes` in writes of one byte each, `pause` apart (the socket has TCP_NODELAY, so each
    /// write leaves as its own segment).
    pub fn bytewise(bytes: impl AsRef<[u8]>, pause: Duration) -> Vec<Step> {
        bytes.as_ref().iter().flat_map(|&b| [Step::Write(vec![b]), Step::Sleep(pause)]).collect()
    }
}

/// How much of a request the backend reads before it runs the script.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reading {
    /// The head and the body its framing announces (content-length or chunked).
    #[default]
    Whole,
    /// The head only; the body stays unread while the script runs. Afterwards the backend
    /// reads (and records) whatever arrives until the gateway closes: one request per
    /// connection.
    HeadOnly,
}

/// A request as received: which connection (0-based, in accept order) and its place on it.
#[derive(Clone, Debug)]
pub struct Received {
    pub connection: usize,
    pub index: usize,
    /// How long the connection sat idle before this request (zero for the first).
    pub idle_for: Duration,
    /// The head and, unless the backend reads heads only, the body with its framing.
    pub bytes: Vec<u8>,
}

impl Received {
    pub fn request_line(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        text.lines().next().unwrap_or_default().to_owned()
    }

    /// The head, up to and including the empty line.
    pub fn head(&self) -> &[u8] {
        let end = find(&self.bytes, b"\r\n\r\n").map_or(self.bytes.len(), |at| at + 4);
        &self.bytes[..end]
    }

    /// The body bytes as they arrived (with chunk framing, if any).
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.head().len()..]
    }

    /// Header lines other than the request line, each as `name: value` with the name
    /// lower-cased, in the order received.
    pub fn header_lines(&self) -> Vec<String> {
        let head = String::from_utf8_lossy(self.head()).into_owned();
        head.split("\r\n")
            .skip(1)
            .filter(|line| !line.is_empty())
            .map(|line| match line.split_once(':') {
                Some((name, value)) => format!("{}: {}", name.to_ascii_lowercase(), value.trim()),
                None => line.to_owned(),
            })
            .collect()
    }

    /// Values of header `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.header_lines().into_iter().filter_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_owned())).collect()
    }
}

/// What happened on one backend connection.
#[derive(Clone, Debug, Default)]
pub struct ConnectionLog {
    /// Every byte that arrived, in order, including bytes after the last answer.
    pub raw: Vec<u8>,
    /// Requests read on it.
    pub requests: usize,
    /// When the gateway closed it (a read saw end of file or an error), counted from accept.
    pub closed_by_gateway: Option<Duration>,
    /// The gateway's close was a reset (or, over TLS, a close without close_notify).
    pub closed_abruptly: bool,
    /// The backend closed it itself: a script step or the idle limit.
    pub closed_by_backend: bool,
}

impl ConnectionLog {
    pub fn is_closed(&self) -> bool {
        self.closed_by_gateway.is_some() || self.closed_by_backend
    }
}

impl Options {
    /// TLS presenting `server`, requiring a client certificate (any, as long as the client
    /// holds its key), offering only HTTP/1.1.
    pub fn tls_presenting(server: &crate::Identity) -> Arc<rustls::ServerConfig> {
        Arc::new(crate::tls_peer::server_config(server, crate::ClientAuth::AnyCertificate, &[b"http/1.1"]))
    }
}

type Script = dyn Fn(&Received) -> Vec<Step> + Send + Sync;

/// How a [`ScriptedBackend`] behaves apart from its script.
#[derive(Clone, Default)]
pub struct Options {
    /// A connection with no new request for that long is closed, as gunicorn (2 s), Apache and
    /// Node.js (5 s) do.
    pub idle_close: Option<Duration>,
    pub reading: Reading,
    /// Serve TLS with this configuration (the URL becomes `https://127.0.0.1:port`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Hold new connections before their handshake (TLS) or first read.
    pub slow_handshakes: Option<SlowHandshakes>,
}

/// Connections after the first `after` (in accept order) wait `delay` before the backend
/// starts on them: a backend busy streaming to the connections it has answers new ones late.
#[derive(Clone, Copy, Debug)]
pub struct SlowHandshakes {
    pub after: usize,
    pub delay: Duration,
}

pub struct ScriptedBackend {
    pub addr: std::net::SocketAddr,
    tls: bool,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<Mutex<Vec<ConnectionLog>>>,
    accepted: Arc<AtomicUsize>,
}

impl ScriptedBackend {
    /// Starts on a free loopback port, reading whole requests over plain TCP.
    pub async fn start(
        idle_close: Option<Duration>,
        script: impl Fn(&Received) -> Vec<Step> + Send + Sync + 'static,
    ) -> ScriptedBackend {
        Self::start_with(Options { idle_close, ..Options::default() }, script).await
    }

    pub async fn start_with(
        options: Options,
        script: impl Fn(&Received) -> Vec<Step> + Send + Sync + 'static,
    ) -> ScriptedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let tls = options.tls.is_some();
        let shared = Shared { options, script, received: received.clone(), connections: connections.clone() };
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let connection = {
                    let mut logs = shared.connections.lock().unwrap();
                    logs.push(ConnectionLog::default());
                    logs.len() - 1
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, connection, shared.clone()));
            }
        });
        ScriptedBackend { addr, tls, received, connections, accepted }
    }

    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// Every request received so far, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// What happened on each connection so far, in accept order.
    pub fn connection_logs(&self) -> Vec<ConnectionLog> {
        self.connections.lock().unwrap().clone()
    }

    /// Waits up to `limit` until connection `index` is closed by either side; its log then.
    pub async fn wait_closed(&self, index: usize, limit: Duration) -> Option<ConnectionLog> {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.connection_logs().get(index).cloned();
            if log.as_ref().is_some_and(ConnectionLog::is_closed) || Instant::now() >= deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[derive(Clone)]
struct Shared {
    options: Options,
    script: Arc<Script>,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<Mutex<Vec<ConnectionLog>>>,
}

/// One accepted connection, with everything it reads recorded in its log.
struct Conn {
    stream: Stream,
    index: usize,
    accepted: Instant,
    logs: Arc<Mutex<Vec<ConnectionLog>>>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    fn log(&self, update: impl FnOnce(&mut ConnectionLog)) {
        if let Some(log) = self.logs.lock().unwrap().get_mut(self.index) {
            update(log);
        }
    }

    /// Reads more into `buf`; `None` once the gateway closed (end of file or an error).
    async fn fill(&mut self, buf: &mut Vec<u8>) -> Option<()> {
        let mut chunk = [0u8; 16 * 1024];
        let read = match &mut self.stream {
            Stream::Plain(tcp) => tcp.read(&mut chunk).await,
            Stream::Tls(tls) => tls.read(&mut chunk).await,
        };
        let elapsed = self.accepted.elapsed();
        match read {
            Ok(0) => {
                self.log(|log| log.closed_by_gateway = Some(elapsed));
                None
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                self.log(|log| log.raw.extend_from_slice(&chunk[..n]));
                Some(())
            }
            Err(_) => {
                self.log(|log| {
                    log.closed_by_gateway = Some(elapsed);
                    log.closed_abruptly = true;
                });
                None
            }
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(tcp) => tcp.write_all(bytes).await,
            Stream::Tls(tls) => {
                tls.write_all(bytes).await?;
                tls.flush().await
            }
        }
    }

    async fn close(self, step: &Step) {
        self.log(|log| log.closed_by_backend = true);
        match (self.stream, step) {
            (Stream::Plain(tcp), Step::Reset) => {
                let _ = tcp.set_zero_linger();
            }
            (Stream::Tls(tls), Step::Reset) => {
                let _ = tls.get_ref().0.set_zero_linger();
            }
            (Stream::Tls(mut tls), Step::Close) => {
                let _ = tls.shutdown().await;
            }
            // Dropping the TCP stream under the TLS session sends a FIN and no close_notify.
            (Stream::Tls(_), _) | (Stream::Plain(_), _) => {}
        }
    }
}

async fn serve(stream: TcpStream, index: usize, shared: Shared) {
    let _ = stream.set_nodelay(true);
    let accepted = Instant::now();
    if let Some(slow) = shared.options.slow_handshakes.filter(|slow| index >= slow.after) {
        tokio::time::sleep(slow.delay).await;
    }
    let stream = match &shared.options.tls {
        None => Stream::Plain(stream),
        Some(config) => match tokio_rustls::TlsAcceptor::from(config.clone()).accept(stream).await {
            Ok(tls) => Stream::Tls(Box::new(tls)),
            Err(_) => return,
        },
    };
    let mut conn = Conn { stream, index, accepted, logs: shared.connections.clone() };
    let mut buf = Vec::new();
    let mut idle_since = tokio::time::Instant::now();
    let head_only = shared.options.reading == Reading::HeadOnly;
    for request_index in 0.. {
        let next = read_request(&mut conn, &mut buf, head_only);
        let bytes = match shared.options.idle_close {
            Some(limit) if request_index > 0 => match tokio::time::timeout(limit, next).await {
                Ok(bytes) => bytes,
                Err(_) => return conn.close(&Step::Close).await,
            },
            _ => next.await,
        };
        let Some(bytes) = bytes else { return };
        let idle_for = if request_index == 0 { Duration::ZERO } else { idle_since.elapsed() };
        let request = Received { connection: index, index: request_index, idle_for, bytes };
        conn.log(|log| log.requests += 1);
        shared.received.lock().unwrap().push(request.clone());
        for step in (shared.script)(&request) {
            match step {
                Step::Write(bytes) => {
                    if conn.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Step::Sleep(pause) => tokio::time::sleep(pause).await,
                Step::Close | Step::CloseWithoutNotify | Step::Reset => return conn.close(&step).await,
            }
        }
        if head_only {
            // Whatever the gateway still sends (the rest of the body) is recorded until it
            // closes: that is how a test sees whether a refused upload's connection was kept.
            while conn.fill(&mut buf).await.is_some() {}
            return;
        }
        idle_since = tokio::time::Instant::now();
    }
}

/// One request: its head, then (unless `head_only`) a content-length or chunked body. `None`
/// once the gateway closed.
async fn read_request(conn: &mut Conn, buf: &mut Vec<u8>, head_only: bool) -> Option<Vec<u8>> {
    let head_end = loop {
        if let Some(at) = find(buf, b"\r\n\r\n") {
            break at + 4;
        }
        conn.fill(buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    let end = if head_only {
        head_end
    } else if let Some(length) = length {
        while buf.len() < head_end + length {
            conn.fill(buf).await?;
        }
        head_end + length
    } else if head.lines().any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked")) {
        loop {
            if let Some(at) = chunked_end(&buf[head_end..]) {
                break head_end + at;
            }
            conn.fill(buf).await?;
        }
    } else {
        head_end
    };
    Some(buf.drain(..end).collect())
}

/// Where a chunked body at the start of `body` ends (after its last chunk and trailers), if it
/// is complete; walks the chunk sizes so that data containing `0\r\n\r\n` is not mistaken for
/// the end.
fn chunked_end(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = at + find(&body[at..], b"\r\n")?;
        let size_text = String::from_utf8_lossy(&body[at..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or_default().trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailer lines, then the empty line.
            loop {
                let end = at + find(&body[at..], b"\r\n")?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some(at);
                }
            }
        }
        at += size + 2;
        if at > body.len() {
            return None;
        }
    }
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_end_after_the_last_chunk_and_trailers() {
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n\r\nNEXT"), Some(15));
        assert_eq!(chunked_end(b"5\r\n0\r\n\r\n\r\n0\r\n\r\n"), Some(15), "data that looks like an end");
        assert_eq!(chunked_end(b"0\r\nx-t: 1\r\n\r\n"), Some(13));
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n"), None);
        assert_eq!(chunked_end(b"5\r\nhel"), None);
    }
}
