//! HTTP/1.1 message heads, as pure functions over bytes: the request head written to a
//! backend, and the response head parsed off the connection's read buffer with what it says about
//! the body's framing and the connection's reuse (RFC 9112 §§2–6). No IO here; the HTTP/1.1 module does
//! the exchange.

use std::mem::MaybeUninit;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, request};

use super::UpstreamError;
use super::pool::IDLE_TIMEOUT;
use crate::framing::{BodyDecoder, Chunk, content_length, offsets};

/// Most response header fields accepted, and the most bytes a response head may take.
const MAX_HEADERS: usize = 128;
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How much sooner than a backend's announced keep-alive timeout its idle connection is dropped.
const KEEP_ALIVE_MARGIN: Duration = Duration::from_secs(1);

/// What goes on the request line and in the head, besides the downstream request's headers.
pub(crate) struct RequestHead<'a> {
    pub parts: &'a request::Parts,
    /// Already checked to be a valid request target.
    pub path_and_query: &'a str,
    pub authority: &'a str,
    /// The body goes out with chunked framing (it has no content-length).
    pub chunked: bool,
}

pub(crate) enum Head {
    Informational,
    Final(ResponseHead),
}

/// A final response head, parsed: the response without its body, how the body is framed, and
/// what becomes of the connection afterwards.
pub(crate) struct ResponseHead {
    pub response: Response<()>,
    pub decoder: BodyDecoder,
    pub keep: Keep,
}

/// What becomes of the connection once the response has ended cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Back to the pool, idle at most this long.
    Idle(Duration),
    Close,
}

/// Parses one response head off the front of `buf`; `None` until it is complete.
pub(crate) fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, UpstreamError> {
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let length =
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut parsed, buf, &mut fields) {
            // The limit holds for the whole head, also when it arrived complete in one read.
            Ok(httparse::Status::Complete(length)) if length > MAX_HEAD_BYTES => {
                return Err(UpstreamError::InvalidResponse("response head too large".into()));
            }
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(error) => return Err(UpstreamError::InvalidResponse(format!("malformed response head: {error}"))),
        };
    let code = parsed.code.unwrap_or_default();
    let status = StatusCode::from_u16(code)
        .map_err(|_| UpstreamError::InvalidResponse(format!("invalid status code {code}")))?;
    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(UpstreamError::InvalidResponse("unexpected protocol switch".into()));
        }
        let _ = buf.split_to(length);
        return Ok(Some(Head::Informational));
    }
    let http11 = parsed.version == Some(1);
    // Values become slices of one copy of the head (one allocation, not one per header); the
    // read buffer itself is never shared, so later reads reuse it in place.
    let spans: Vec<_> =
        parsed.headers.iter().map(|field| (offsets(buf, field.name.as_bytes()), offsets(buf, field.value))).collect();
    let head = Bytes::copy_from_slice(&buf[..length]);
    buf.advance(length);
    let mut headers = HeaderMap::with_capacity(spans.len());
    let mut framing = Framing::default();
    for (name, value) in &spans {
        let name = HeaderName::from_bytes(&head[name.clone()])
            .map_err(|_| UpstreamError::InvalidResponse("invalid header name".into()))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value.clone()))
            .map_err(|_| UpstreamError::InvalidResponse(format!("invalid value of header {name}")))?;
        framing.observe(&name, &value)?;
        headers.append(name, value);
    }
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, which an intermediary must
    // remove before forwarding; such a backend framed ambiguously, so its connection is not kept.
    let ambiguous = framing.length.is_some() && framing.chunked;
    if ambiguous {
        headers.remove(header::CONTENT_LENGTH);
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    // The version stays the gateway's own (RFC 9110 §6.2): the backend's only decides reuse.
    *response.headers_mut() = headers;
    let decoder = framing.decoder(status, method);
    let keep = match framing.keep_alive_timeout {
        _ if !http11 || framing.close || ambiguous || decoder == BodyDecoder::UntilClose => Keep::Close,
        // A second's margin, so the request never races the backend's own close.
        Some(timeout) => match timeout.checked_sub(KEEP_ALIVE_MARGIN) {
            Some(limit) if !limit.is_zero() => Keep::Idle(limit),
            _ => Keep::Close,
        },
        None => Keep::Idle(IDLE_TIMEOUT),
    };
    Ok(Some(Head::Final(ResponseHead { response, decoder, keep })))
}

/// What the response's own headers say about its body and connection.
#[derive(Default)]
struct Framing {
    length: Option<u64>,
    chunked: bool,
    close: bool,
    /// `Keep-Alive: timeout=N` (RFC 2068 §19.7.1.1): how long the backend keeps it idle.
    keep_alive_timeout: Option<Duration>,
}

impl Framing {
    fn observe(&mut self, name: &HeaderName, value: &HeaderValue) -> Result<(), UpstreamError> {
        if name == header::CONTENT_LENGTH {
            let length = content_length(value.as_bytes())
                .ok_or_else(|| UpstreamError::InvalidResponse("invalid content-length".into()))?;
            if self.length.is_some_and(|l| l != length) {
                return Err(UpstreamError::InvalidResponse("conflicting content-length values".into()));
            }
            self.length = Some(length);
        } else if name == header::TRANSFER_ENCODING {
            // Only chunked, once: the header is hop-by-hop and stripped, so a body still under
            // another coding (gzip, …) would reach the client undeclared. nginx refuses the same.
            for coding in value.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|c| !c.is_empty()) {
                if !coding.eq_ignore_ascii_case(b"chunked") {
                    let coding = String::from_utf8_lossy(coding);
                    return Err(UpstreamError::InvalidResponse(format!("unsupported transfer coding {coding:?}")));
                }
                if self.chunked {
                    return Err(UpstreamError::InvalidResponse("chunked transfer coding applied twice".into()));
                }
                self.chunked = true;
            }
        } else if name.as_str() == "keep-alive" {
            let timeout = value.as_bytes().split(|&b| b == b',').find_map(|param| {
                let (key, seconds) = param.trim_ascii().split_at_checked(8)?;
                key.eq_ignore_ascii_case(b"timeout=").then(|| std::str::from_utf8(seconds).ok()?.parse::<u64>().ok())?
            });
            self.keep_alive_timeout = timeout.map(Duration::from_secs).or(self.keep_alive_timeout);
        } else if name == header::CONNECTION {
            self.close |= value.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        Ok(())
    }

    /// RFC 9112 §6.3, in order.
    fn decoder(&self, status: StatusCode, method: &Method) -> BodyDecoder {
        if method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            BodyDecoder::Done
        } else if self.chunked {
            BodyDecoder::Chunked(Chunk::Size)
        } else if let Some(length) = self.length {
            BodyDecoder::Length(length)
        } else {
            BodyDecoder::UntilClose
        }
    }
}

/// Serialises a request head in origin form. `path_and_query` must already be a valid request
/// target (checked by the caller).
pub(crate) fn encode_head(out: &mut Vec<u8>, head: &RequestHead<'_>) {
    out.extend_from_slice(head.parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(head.authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &head.parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if head.chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Keep = Keep::Idle(IDLE_TIMEOUT);
    const CHUNKED: BodyDecoder = BodyDecoder::Chunked(Chunk::Size);

    fn idle(seconds: u64) -> Keep {
        Keep::Idle(Duration::from_secs(seconds))
    }

    /// What one call of `parse_head` should make of a buffer.
    #[derive(Debug, PartialEq)]
    enum Want {
        Partial,
        Interim { rest: usize },
        Final { status: u16, decoder: BodyDecoder, keep: Keep, rest: usize },
        Invalid(&'static str),
    }

    fn final_(status: u16, decoder: BodyDecoder, keep: Keep) -> Want {
        Want::Final { status, decoder, keep, rest: 0 }
    }

    /// One call of `parse_head`, reduced to what the table compares; checks on the way that a
    /// partial head is left in the buffer.
    fn parse_once(raw: &[u8], method: &Method) -> (Want, Option<Response<()>>) {
        let mut buf = BytesMut::from(raw);
        match parse_head(&mut buf, method) {
            Ok(None) => {
                assert_eq!(&buf[..], raw, "a partial head is left in the buffer");
                (Want::Partial, None)
            }
            Ok(Some(Head::Informational)) => (Want::Interim { rest: buf.len() }, None),
            Ok(Some(Head::Final(head))) => {
                let want = Want::Final {
                    status: head.response.status().as_u16(),
                    decoder: head.decoder,
                    keep: head.keep,
                    rest: buf.len(),
                };
                (want, Some(head.response))
            }
            Err(UpstreamError::InvalidResponse(reason)) => (Want::Invalid(Box::leak(reason.into_boxed_str())), None),
            Err(other) => panic!("only InvalidResponse comes from parsing, got {other}"),
        }
    }

    fn parse(raw: &str, method: Method) -> (Response<()>, BodyDecoder, bool, usize) {
        match parse_once(raw.as_bytes(), &method) {
            (Want::Final { decoder, keep, rest, .. }, Some(response)) => (response, decoder, keep != Keep::Close, rest),
            (other, _) => panic!("{raw:?}: not a final head: {other:?}"),
        }
    }

    #[test]
    fn every_response_head_is_parsed_as_the_table_says() {
        let ok = "HTTP/1.1 200 OK\r\n";
        let big = |size: usize| format!("{ok}X-Big: {}\r\n\r\n", "a".repeat(size - ok.len() - "X-Big: \r\n\r\n".len()));
        let fields = |n: usize| format!("{ok}{}\r\n", "X-F: v\r\n".repeat(n));
        let get = Method::GET;
        #[rustfmt::skip]
        let table: Vec<(String, &Method, Want)> = vec![
            // Incomplete heads wait for more, however long (the caller enforces the limit then).
            (String::new(), &get, Want::Partial),
            ("HTTP/1.".into(), &get, Want::Partial),
            (ok.into(), &get, Want::Partial),
            (format!("{ok}Content-Length: 5\r\n"), &get, Want::Partial),
            (format!("{ok}Content-Length: 5\r\n\r"), &get, Want::Partial),
            (format!("{ok}X-Big: {}", "a".repeat(MAX_HEAD_BYTES * 2)), &get, Want::Partial),
            // The limit holds for a head that arrived whole, to the byte.
            (big(MAX_HEAD_BYTES), &get, final_(200, BodyDecoder::UntilClose, Keep::Close)),
            (big(MAX_HEAD_BYTES + 1), &get, Want::Invalid("response head too large")),
            (format!("{ok}Content-Length: 0\r\n\r\n{}", "b".repeat(MAX_HEAD_BYTES)), &get,
                Want::Final { status: 200, decoder: BodyDecoder::Length(0), keep: IDLE, rest: MAX_HEAD_BYTES }),
            (fields(MAX_HEADERS), &get, final_(200, BodyDecoder::UntilClose, Keep::Close)),
            (fields(MAX_HEADERS + 1), &get, Want::Invalid("malformed response head: too many headers")),
            // Status line.
            ("NOT HTTP\r\n\r\n".into(), &get, Want::Invalid("malformed response head: invalid HTTP version")),
            ("HTTP/2 200 OK\r\n\r\n".into(), &get, Want::Invalid("malformed response head: invalid HTTP version")),
            ("HTTP/1.1 2000 OK\r\n\r\n".into(), &get, Want::Invalid("malformed response head: invalid response status")),
            ("HTTP/1.1 099 Low\r\n\r\n".into(), &get, Want::Invalid("invalid status code 99")),
            ("HTTP/1.1 000 Zero\r\n\r\n".into(), &get, Want::Invalid("invalid status code 0")),
            ("HTTP/1.1 999 High\r\nContent-Length: 0\r\n\r\n".into(), &get, final_(999, BodyDecoder::Length(0), IDLE)),
            ("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n".into(), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            // Interim responses are taken off the buffer; a protocol switch was never asked for.
            ("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n".into(), &get, Want::Interim { rest: 19 }),
            ("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n".into(), &get, Want::Interim { rest: 0 }),
            ("HTTP/1.1 199 Whatever\r\n\r\n".into(), &get, Want::Interim { rest: 0 }),
            ("HTTP/1.0 102 Processing\r\n\r\n".into(), &get, Want::Interim { rest: 0 }),
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n".into(), &get, Want::Invalid("unexpected protocol switch")),
            // Version: only HTTP/1.1 keeps the connection, whatever HTTP/1.0 announces.
            (format!("{ok}Content-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n".into(), &get, final_(200, BodyDecoder::Length(0), Keep::Close)),
            ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n".into(), &get,
                final_(200, BodyDecoder::Length(0), Keep::Close)),
            ("HTTP/1.0 200 OK\r\n\r\n".into(), &get, final_(200, BodyDecoder::UntilClose, Keep::Close)),
            // Connection: the close token, in any case, anywhere in any of the fields.
            (format!("{ok}Connection: close\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), Keep::Close)),
            (format!("{ok}Connection: CLOSE\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), Keep::Close)),
            (format!("{ok}Connection: keep-alive, close\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), Keep::Close)),
            (format!("{ok}Connection: upgrade,close,te\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), Keep::Close)),
            (format!("{ok}Connection: , ,\tclose ,\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), Keep::Close)),
            (format!("{ok}Connection: keep-alive\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), Keep::Close)),
            (format!("{ok}Connection: close\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), Keep::Close)),
            (format!("{ok}Connection: keep-alive\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            (format!("{ok}Connection: closed, x-close\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            (format!("{ok}X-Connection: close\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            // Keep-Alive: the first `timeout=N` that parses, less a second; too short is closed.
            (format!("{ok}Keep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), idle(4))),
            (format!("{ok}keep-alive: max=100, TIMEOUT=2\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), idle(1))),
            (format!("{ok}Keep-Alive:  timeout=3 \r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), idle(2))),
            (format!("{ok}Keep-Alive: timeout=1\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), Keep::Close)),
            (format!("{ok}Keep-Alive: timeout=0\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), Keep::Close)),
            (format!("{ok}Keep-Alive: timeout=600\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), idle(599))),
            (format!("{ok}Keep-Alive: timeout=18446744073709551615\r\nContent-Length: 0\r\n\r\n"), &get,
                final_(200, BodyDecoder::Length(0), idle(u64::MAX - 1))),
            (format!("{ok}Keep-Alive: timeout=abc, timeout=3\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), idle(2))),
            (format!("{ok}Keep-Alive: timeout=3, timeout=7\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), idle(2))),
            (format!("{ok}Keep-Alive: timeout=5\r\nKeep-Alive: max=3\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), idle(4))),
            (format!("{ok}Keep-Alive: timeout=5\r\nKeep-Alive: timeout=10\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), idle(9))),
            (format!("{ok}Keep-Alive: timeout=5\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), Keep::Close)),
            (format!("{ok}Keep-Alive: timeout=5\r\n\r\n"), &get, final_(200, BodyDecoder::UntilClose, Keep::Close)),
            (format!("{ok}Keep-Alive: timeout=abc\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            (format!("{ok}Keep-Alive: timeout=\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            (format!("{ok}Keep-Alive: timeout\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            (format!("{ok}Keep-Alive: timeout = 5\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            (format!("{ok}Keep-Alive: timeout=-5\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            (format!("{ok}Keep-Alive: timeout=18446744073709551616\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            (format!("{ok}Keep-Alive: timeout=\u{e9}\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            (format!("{ok}Keep-Alive: max=5\r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            (format!("{ok}Keep-Alive: \r\nContent-Length: 0\r\n\r\n"), &get, final_(200, BodyDecoder::Length(0), IDLE)),
            // Content-Length: digits only, optional whitespace around them, equal when repeated.
            (format!("{ok}Content-Length: 5\r\n\r\nhello"), &get, Want::Final { status: 200, decoder: BodyDecoder::Length(5), keep: IDLE, rest: 5 }),
            (format!("{ok}Content-Length:007\r\n\r\n"), &get, final_(200, BodyDecoder::Length(7), IDLE)),
            (format!("{ok}Content-Length: \t42 \t\r\n\r\n"), &get, final_(200, BodyDecoder::Length(42), IDLE)),
            (format!("{ok}Content-Length: 18446744073709551615\r\n\r\n"), &get, final_(200, BodyDecoder::Length(u64::MAX), IDLE)),
            (format!("{ok}Content-Length: 5\r\ncontent-length: 5\r\n\r\n"), &get, final_(200, BodyDecoder::Length(5), IDLE)),
            (format!("{ok}Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), &get, Want::Invalid("conflicting content-length values")),
            (format!("{ok}Content-Length: 5\r\nContent-Length: 05\r\n\r\n"), &get, final_(200, BodyDecoder::Length(5), IDLE)),
            (format!("{ok}Content-Length: 18446744073709551616\r\n\r\n"), &get, Want::Invalid("invalid content-length")),
            (format!("{ok}Content-Length: 99999999999999999999999\r\n\r\n"), &get, Want::Invalid("invalid content-length")),
            (format!("{ok}Content-Length: -1\r\n\r\n"), &get, Want::Invalid("invalid content-length")),
            (format!("{ok}Content-Length: +5\r\n\r\n"), &get, Want::Invalid("invalid content-length")),
            (format!("{ok}Content-Length: 5 5\r\n\r\n"), &get, Want::Invalid("invalid content-length")),
            (format!("{ok}Content-Length: 5, 5\r\n\r\n"), &get, Want::Invalid("invalid content-length")),
            (format!("{ok}Content-Length: 0x10\r\n\r\n"), &get, Want::Invalid("invalid content-length")),
            (format!("{ok}Content-Length: \r\n\r\n"), &get, Want::Invalid("invalid content-length")),
            (format!("{ok}Content-Length: \u{0665}\r\n\r\n"), &get, Want::Invalid("invalid content-length")),
            (format!("{ok}Content-Length: 5\r\nContent-Length: x\r\n\r\n"), &get, Want::Invalid("invalid content-length")),
            // Transfer-Encoding: chunked once, in any case; empty list members are no codings.
            (format!("{ok}Transfer-Encoding: chunked\r\n\r\n"), &get, final_(200, CHUNKED, IDLE)),
            (format!("{ok}Transfer-Encoding: CHUNKED\r\n\r\n"), &get, final_(200, CHUNKED, IDLE)),
            (format!("{ok}Transfer-Encoding: , chunked ,\r\n\r\n"), &get, final_(200, CHUNKED, IDLE)),
            (format!("{ok}Transfer-Encoding: \r\nContent-Length: 3\r\n\r\n"), &get, final_(200, BodyDecoder::Length(3), IDLE)),
            (format!("{ok}Transfer-Encoding: ,\r\n\r\n"), &get, final_(200, BodyDecoder::UntilClose, Keep::Close)),
            (format!("{ok}Transfer-Encoding: gzip\r\n\r\n"), &get, Want::Invalid("unsupported transfer coding \"gzip\"")),
            (format!("{ok}Transfer-Encoding: gzip, chunked\r\n\r\n"), &get, Want::Invalid("unsupported transfer coding \"gzip\"")),
            (format!("{ok}Transfer-Encoding: chunked, gzip\r\n\r\n"), &get, Want::Invalid("unsupported transfer coding \"gzip\"")),
            (format!("{ok}Transfer-Encoding: identity\r\n\r\n"), &get, Want::Invalid("unsupported transfer coding \"identity\"")),
            (format!("{ok}Transfer-Encoding: chunked;q=1\r\n\r\n"), &get, Want::Invalid("unsupported transfer coding \"chunked;q=1\"")),
            (format!("{ok}Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), &get, Want::Invalid("unsupported transfer coding \"gzip\"")),
            (format!("{ok}Transfer-Encoding: chunked, chunked\r\n\r\n"), &get, Want::Invalid("chunked transfer coding applied twice")),
            (format!("{ok}Transfer-Encoding: chunked\r\nTransfer-Encoding: Chunked\r\n\r\n"), &get, Want::Invalid("chunked transfer coding applied twice")),
            // Both framings: chunked wins and the connection is not kept; the length is still checked.
            (format!("{ok}Content-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"), &get, final_(200, CHUNKED, Keep::Close)),
            (format!("{ok}Transfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n"), &get, final_(200, CHUNKED, Keep::Close)),
            (format!("{ok}Transfer-Encoding: chunked\r\nContent-Length: -1\r\n\r\n"), &get, Want::Invalid("invalid content-length")),
            (format!("{ok}Transfer-Encoding: chunked\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), &get,
                Want::Invalid("conflicting content-length values")),
            // No body after HEAD, 204 and 304, whatever the framing says (RFC 9112 §6.3 1.).
            (format!("{ok}Content-Length: 9\r\n\r\n"), &Method::HEAD, final_(200, BodyDecoder::Done, IDLE)),
            (format!("{ok}Transfer-Encoding: chunked\r\n\r\n"), &Method::HEAD, final_(200, BodyDecoder::Done, IDLE)),
            (format!("{ok}\r\n"), &Method::HEAD, final_(200, BodyDecoder::Done, IDLE)),
            (format!("{ok}Content-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n"), &Method::HEAD, final_(200, BodyDecoder::Done, Keep::Close)),
            ("HTTP/1.1 204 No Content\r\n\r\n".into(), &get, final_(204, BodyDecoder::Done, IDLE)),
            ("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n".into(), &get, final_(204, BodyDecoder::Done, IDLE)),
            ("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n".into(), &get, final_(304, BodyDecoder::Done, IDLE)),
            ("HTTP/1.0 304 Not Modified\r\n\r\n".into(), &get, final_(304, BodyDecoder::Done, Keep::Close)),
            ("HTTP/1.1 205 Reset Content\r\n\r\n".into(), &get, final_(205, BodyDecoder::UntilClose, Keep::Close)),
            ("HTTP/1.1 200 OK\r\n\r\nbody".into(), &Method::POST, Want::Final { status: 200, decoder: BodyDecoder::UntilClose, keep: Keep::Close, rest: 4 }),
            // Fields httparse refuses.
            (format!("{ok}X Bad: 1\r\n\r\n"), &get, Want::Invalid("malformed response head: invalid header name")),
            (format!("{ok}: v\r\n\r\n"), &get, Want::Invalid("malformed response head: invalid header name")),
            (format!("{ok}X-A: a\x01b\r\n\r\n"), &get, Want::Invalid("malformed response head: invalid header value")),
            (format!("{ok}X-A: a\x7fb\r\n\r\n"), &get, Want::Invalid("malformed response head: invalid header value")),
            (format!("{ok}X-A: a\r\n b\r\n\r\n"), &get, Want::Invalid("malformed response head: invalid header name")),
        ];
        let mismatches: Vec<String> = table
            .into_iter()
            .filter_map(|(raw, method, want)| {
                let (got, _) = parse_once(raw.as_bytes(), method);
                let shown: String = raw.chars().take(120).collect();
                (got != want).then(|| format!("{method} {shown:?}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
        // Bytes that are not UTF-8 (obs-text) are no number either.
        let not_utf8 = b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=\xff5\r\nContent-Length: \xff5\r\n\r\n";
        assert_eq!(parse_once(not_utf8, &get).0, Want::Invalid("invalid content-length"));
        let not_utf8 = b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=\xff5, timeout=4\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_once(not_utf8, &get).0, final_(200, BodyDecoder::Length(0), idle(3)));
    }

    #[test]
    fn fields_are_forwarded_as_received_except_an_overridden_length() {
        let raw = "HTTP/1.0 200 OK\r\nX-A: 1\r\nx-a: 2\r\nX-Empty:\r\nX-Text: caf\u{e9}\t!\r\nContent-Length: 5\r\n\
                   content-length: 5\r\n\r\nhello";
        let (response, _, _, rest) = parse(raw, Method::GET);
        assert_eq!(rest, 5);
        assert_eq!(response.version(), http::Version::HTTP_11, "the version stays the gateway's own");
        let fields: Vec<(&str, &[u8])> = response.headers().iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        let want: &[(&str, &[u8])] = &[
            ("x-a", b"1"),
            ("x-a", b"2"),
            ("x-empty", b""),
            ("x-text", "caf\u{e9}\t!".as_bytes()),
            ("content-length", b"5"),
            ("content-length", b"5"),
        ];
        assert_eq!(fields, want);

        let (response, decoder, reusable, _) = parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-B: b\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::GET,
        );
        assert_eq!(decoder, CHUNKED);
        assert!(response.headers().get(header::CONTENT_LENGTH).is_none(), "never forwarded");
        assert_eq!(response.headers().get(header::TRANSFER_ENCODING).map(HeaderValue::as_bytes), Some(&b"chunked"[..]));
        assert_eq!(response.headers().get("x-b").map(HeaderValue::as_bytes), Some(&b"b"[..]));
        assert!(!reusable, "an ambiguously framed connection is not kept");
    }

    /// The name and value checks after httparse's are a second guard: httparse already refuses
    /// every byte they would, so neither can fail today. This notices if that ever changes.
    #[test]
    fn httparse_refuses_every_field_byte_the_http_types_would() {
        for byte in 0..=u8::MAX {
            let mut name = b"HTTP/1.1 204 No Content\r\nx".to_vec();
            name.extend_from_slice(&[byte, b':', b' ', b'v', b'\r', b'\n', b'\r', b'\n']);
            let mut value = b"HTTP/1.1 204 No Content\r\nx: a".to_vec();
            value.extend_from_slice(&[byte, b'b', b'\r', b'\n', b'\r', b'\n']);
            for (in_name, raw) in [(true, name), (false, value)] {
                match parse_once(&raw, &Method::GET) {
                    (Want::Invalid(reason), _) => {
                        assert!(reason.starts_with("malformed response head"), "byte {byte:#04x}: {reason}");
                    }
                    (Want::Final { .. }, Some(response)) => {
                        let (want_name, want_value) = match (in_name, byte) {
                            (true, b':') => (vec![b'x'], b": v".to_vec()),
                            (true, _) => (vec![b'x', byte.to_ascii_lowercase()], b"v".to_vec()),
                            (false, _) => (vec![b'x'], vec![b'a', byte, b'b']),
                        };
                        let fields: Vec<(&[u8], &[u8])> =
                            response.headers().iter().map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())).collect();
                        assert_eq!(fields, [(&want_name[..], &want_value[..])], "byte {byte:#04x} forwarded as sent");
                    }
                    (other, _) => panic!("byte {byte:#04x}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn request_heads_are_written_in_origin_form() {
        let (mut parts, ()) = http::Request::post("/ignored").body(()).expect("valid").into_parts();
        parts.headers.insert("x-one", HeaderValue::from_static("1"));
        parts.headers.append("x-two", HeaderValue::from_static("a"));
        parts.headers.append("x-two", HeaderValue::from_static(""));
        let encode = |parts: &request::Parts, chunked| {
            let mut out = Vec::new();
            encode_head(&mut out, &RequestHead { parts, path_and_query: "/a?b=c", authority: "backend:8443", chunked });
            String::from_utf8(out).expect("ascii")
        };
        assert_eq!(
            encode(&parts, true),
            "POST /a?b=c HTTP/1.1\r\nhost: backend:8443\r\nx-one: 1\r\nx-two: a\r\nx-two: \r\n\
             transfer-encoding: chunked\r\n\r\n"
        );
        let (mut parts, ()) = http::Request::get("/").body(()).expect("valid").into_parts();
        parts.method = Method::from_bytes(b"PURGE").expect("a token");
        assert_eq!(encode(&parts, false), "PURGE /a?b=c HTTP/1.1\r\nhost: backend:8443\r\n\r\n");
    }
}
