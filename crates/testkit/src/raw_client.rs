//! A raw downstream client: plain TCP to a gateway's HTTP listener. It sends exact bytes,
//! optionally in pieces with pauses, while it reads; it stops at a close, a reset, a deadline, or
//! once the responses it waits for are complete (and a grace period showed whether the gateway
//! closes afterwards). It returns exactly the bytes received, how the connection ended, and a
//! strict parse of the responses, so a test sees framing the way a client on the wire does.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One thing the client does on its side of the connection.
#[derive(Clone, Debug)]
pub enum Piece {
    Bytes(Vec<u8>),
    Pause(Duration),
    /// Half-close: no more request bytes follow (the gateway reads end of file).
    ShutdownWrite,
}

/// How the client's connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The gateway closed it (end of file).
    Closed,
    /// A read failed: a reset by the gateway.
    Reset,
    /// The awaited responses were complete and the gateway kept the connection open through
    /// the grace period.
    Open,
    /// The deadline passed first.
    Deadline,
}

pub struct RawClient {
    addr: SocketAddr,
    pieces: Vec<Piece>,
    deadline: Duration,
    /// Request methods of the responses to wait for, in order (HEAD responses have no body).
    methods: Vec<String>,
    grace: Duration,
}

impl RawClient {
    /// A client of `addr` that, unless told to wait for responses, reads until the gateway
    /// closes or 5 s pass.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, pieces: Vec::new(), deadline: Duration::from_secs(5), methods: Vec::new(), grace: Duration::ZERO }
    }

    pub fn send(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.pieces.push(Piece::Bytes(bytes.as_ref().to_vec()));
        self
    }

    pub fn pause(mut self, pause: Duration) -> Self {
        self.pieces.push(Piece::Pause(pause));
        self
    }

    pub fn pieces(mut self, pieces: impl IntoIterator<Item = Piece>) -> Self {
        self.pieces.extend(pieces);
        self
    }

    pub fn shutdown_write(mut self) -> Self {
        self.pieces.push(Piece::ShutdownWrite);
        self
    }

    /// Stop once final responses to requests with these methods are complete and `grace` has
    /// passed after the last (or the gateway closed first).
    pub fn until_responses(mut self, methods: &[&str], grace: Duration) -> Self {
        self.methods = methods.iter().map(|m| (*m).to_owned()).collect();
        self.grace = grace;
        self
    }

    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    pub async fn run(self) -> RawOutcome {
        let start = Instant::now();
        let stream = TcpStream::connect(self.addr).await.unwrap();
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let writing = Arc::new(Mutex::new(Writing::default()));
        let progress = writing.clone();
        let pieces = self.pieces.clone();
        let write_task = tokio::spawn(async move {
            for piece in pieces {
                let result = match piece {
                    Piece::Bytes(bytes) => writer.write_all(&bytes).await.map(|()| bytes.len()),
                    Piece::Pause(pause) => {
                        tokio::time::sleep(pause).await;
                        Ok(0)
                    }
                    Piece::ShutdownWrite => writer.shutdown().await.map(|()| 0),
                };
                match result {
                    Ok(n) => progress.lock().unwrap().written += n,
                    Err(error) => {
                        progress.lock().unwrap().error = Some(error.kind());
                        return;
                    }
                }
            }
            progress.lock().unwrap().finished_after = Some(start.elapsed());
            // Keep the write half open (dropping it would half-close): the gateway must see
            // only what the pieces say.
            std::future::pending::<()>().await;
        });

        let mut received = Vec::new();
        let mut first_byte = None;
        let mut completed_at = Vec::new();
        let mut grace_until: Option<Instant> = None;
        let deadline = start + self.deadline;
        let end = loop {
            let until = grace_until.map_or(deadline, |g| g.min(deadline));
            let mut chunk = [0u8; 16 * 1024];
            let read = tokio::time::timeout_at(until.into(), reader.read(&mut chunk)).await;
            match read {
                Err(_) if grace_until.is_some_and(|g| Instant::now() >= g) => break End::Open,
                Err(_) => break End::Deadline,
                Ok(Ok(0)) => break End::Closed,
                Ok(Err(_)) => break End::Reset,
                Ok(Ok(n)) => {
                    first_byte.get_or_insert_with(|| start.elapsed());
                    received.extend_from_slice(&chunk[..n]);
                    let finals = parse_responses(&received, &self.methods, false).finals().count();
                    while completed_at.len() < finals {
                        completed_at.push(start.elapsed());
                    }
                    if !self.methods.is_empty() && finals >= self.methods.len() && grace_until.is_none() {
                        grace_until = Some(Instant::now() + self.grace);
                    }
                }
            }
        };
        write_task.abort();
        let writing = writing.lock().unwrap().clone();
        let eof = matches!(end, End::Closed | End::Reset);
        let parsed = parse_responses(&received, &self.methods, eof);
        RawOutcome {
            received,
            end,
            elapsed: start.elapsed(),
            first_byte,
            completed_at,
            written: writing.written,
            write_error: writing.error,
            write_finished: writing.finished_after,
            parsed,
        }
    }
}

#[derive(Clone, Default)]
struct Writing {
    written: usize,
    error: Option<io::ErrorKind>,
    finished_after: Option<Duration>,
}

/// What the client saw.
#[derive(Clone, Debug)]
pub struct RawOutcome {
    /// Exactly the bytes received.
    pub received: Vec<u8>,
    pub end: End,
    pub elapsed: Duration,
    /// When the first byte arrived, from the start.
    pub first_byte: Option<Duration>,
    /// When each final response was complete, from the start.
    pub completed_at: Vec<Duration>,
    /// Request bytes the socket accepted.
    pub written: usize,
    /// Why writing stopped early (the gateway reset or closed the connection), if it did.
    pub write_error: Option<io::ErrorKind>,
    /// When the last piece was sent, if all were.
    pub write_finished: Option<Duration>,
    pub parsed: Parsed,
}

impl RawOutcome {
    /// Whether the gateway ended the connection (close or reset).
    pub fn closed(&self) -> bool {
        matches!(self.end, End::Closed | End::Reset)
    }

    /// The `n`th final (non-1xx) response, if it arrived complete.
    pub fn response(&self, n: usize) -> Option<&RawResponse> {
        self.parsed.finals().nth(n)
    }

    /// Everything received, for failure messages (lossy, truncated).
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.received);
        let text: String = text.chars().take(1500).collect();
        format!("{text:?} ({:?} after {:?})", self.end, self.elapsed)
    }
}

/// How a response's body was delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body by definition (1xx, 204, 304, a response to HEAD).
    NoBody,
    Length(u64),
    Chunked,
    UntilClose,
}

#[derive(Clone, Debug)]
pub struct RawResponse {
    /// Minor version: `HTTP/1.x`.
    pub minor_version: u8,
    pub status: u16,
    /// Names lower-cased, in order, values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body with chunk framing removed.
    pub body: Vec<u8>,
    pub framing: Framing,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<String>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_all(name).next()
    }

    pub fn header_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v.as_slice())
    }

    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The parse of everything received: complete responses (1xx included), then what was left.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub responses: Vec<RawResponse>,
    /// A response cut off: its head arrived, its body did not end (the connection closed or the
    /// client stopped reading first).
    pub cut_off: Option<RawResponse>,
    /// Bytes after the last complete response that do not form a complete head.
    pub rest: Vec<u8>,
    /// The bytes are not HTTP/1.1 responses at all.
    pub error: Option<String>,
}

impl Parsed {
    pub fn finals(&self) -> impl Iterator<Item = &RawResponse> {
        self.responses.iter().filter(|r| !(100..200).contains(&r.status))
    }

    pub fn informational(&self) -> impl Iterator<Item = &RawResponse> {
        self.responses.iter().filter(|r| (100..200).contains(&r.status))
    }
}

/// Parses `bytes` as responses to requests with `methods` (in order; GET beyond the list).
/// `eof`: the connection has ended, which completes a body delimited by the close.
pub fn parse_responses(bytes: &[u8], methods: &[String], eof: bool) -> Parsed {
    let mut parsed = Parsed::default();
    let mut at = 0;
    let mut request = 0;
    while at < bytes.len() {
        let mut fields = [httparse::EMPTY_HEADER; 256];
        let mut head = httparse::Response::new(&mut fields);
        let head_len = match head.parse(&bytes[at..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => break,
            Err(error) => {
                parsed.error = Some(format!("not a response at byte {at}: {error}"));
                break;
            }
        };
        let status = head.code.unwrap_or_default();
        let headers: Vec<(String, Vec<u8>)> =
            head.headers.iter().map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec())).collect();
        let mut response = RawResponse {
            minor_version: head.version.unwrap_or_default(),
            status,
            headers,
            body: Vec::new(),
            framing: Framing::NoBody,
            trailers: Vec::new(),
        };
        let method = methods.get(request).map_or("GET", String::as_str);
        let body_start = at + head_len;
        let chunked = response
            .header_all("transfer-encoding")
            .any(|v| String::from_utf8_lossy(v).to_ascii_lowercase().trim_end().ends_with("chunked"));
        let length = response.header("content-length").and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok());
        let body_end = if (100..200).contains(&status) || status == 204 || status == 304 || method == "HEAD" {
            Some(body_start)
        } else if chunked {
            response.framing = Framing::Chunked;
            dechunk(&bytes[body_start..], &mut response).map(|n| body_start + n)
        } else if let Some(length) = length {
            response.framing = Framing::Length(length);
            let available = bytes.len() - body_start;
            let take = usize::try_from(length).map_or(available, |l| l.min(available));
            response.body = bytes[body_start..body_start + take].to_vec();
            (take as u64 == length).then_some(body_start + take)
        } else {
            response.framing = Framing::UntilClose;
            response.body = bytes[body_start..].to_vec();
            eof.then_some(bytes.len())
        };
        match body_end {
            Some(end) => {
                if !(100..200).contains(&status) {
                    request += 1;
                }
                parsed.responses.push(response);
                at = end;
            }
            None => {
                parsed.cut_off = Some(response);
                return parsed;
            }
        }
    }
    parsed.rest = bytes[at..].to_vec();
    parsed
}

/// Decodes a chunked body into `response`; the length it took when complete.
fn dechunk(bytes: &[u8], response: &mut RawResponse) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = at + crate::scripted_backend::find(&bytes[at..], b"\r\n")?;
        let line = String::from_utf8_lossy(&bytes[at..line_end]);
        let size = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            loop {
                let end = at + crate::scripted_backend::find(&bytes[at..], b"\r\n")?;
                if end == at {
                    return Some(end + 2);
                }
                response.trailers.push(String::from_utf8_lossy(&bytes[at..end]).into_owned());
                at = end + 2;
            }
        }
        let data_end = (at + size).min(bytes.len());
        response.body.extend_from_slice(&bytes[at..data_end]);
        if data_end < at + size || bytes.get(data_end..data_end + 2)? != b"\r\n" {
            return None;
        }
        at = data_end + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn methods(list: &[&str]) -> Vec<String> {
        list.iter().map(|m| (*m).to_owned()).collect()
    }

    #[test]
    fn responses_are_split_by_their_framing() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n\
content-length: 9\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\nHTTP/1.1 2";
        let parsed = parse_responses(wire, &methods(&["POST", "HEAD", "GET"]), false);
        assert_eq!(parsed.responses.len(), 4);
        assert_eq!(parsed.informational().count(), 1);
        let finals: Vec<_> = parsed.finals().collect();
        assert_eq!(finals[0].body, b"hello");
        assert_eq!(finals[1].framing, Framing::NoBody, "a response to HEAD has no body");
        assert_eq!((finals[2].body.as_slice(), finals[2].trailers.len()), (&b"abc"[..], 1));
        assert_eq!(parsed.rest, b"HTTP/1.1 2");
        assert!(parsed.cut_off.is_none());
    }

    #[test]
    fn a_body_that_does_not_end_is_cut_off() {
        let parsed = parse_responses(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nhello", &[], true);
        assert_eq!(parsed.responses.len(), 0);
        assert_eq!(parsed.cut_off.map(|r| r.body), Some(b"hello".to_vec()));
        let parsed = parse_responses(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n", &[], true);
        assert!(parsed.cut_off.is_some(), "no last chunk");
        let parsed = parse_responses(b"HTTP/1.1 200 OK\r\n\r\nuntil close", &[], true);
        assert_eq!(parsed.responses[0].body, b"until close");
        let parsed = parse_responses(b"HTTP/1.1 200 OK\r\n\r\nuntil close", &[], false);
        assert!(parsed.cut_off.is_some(), "not complete while the connection is open");
    }
}
