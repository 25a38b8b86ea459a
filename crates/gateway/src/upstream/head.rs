//! HTTP/1.1 message heads, as pure functions over bytes: the request head written to a
//! backend, and the response head parsed off the connection's read buffer with what it says about
//! the body's framing and the connection's reuse (RFC 9112 §§2–6). No IO here; [`super::h1`] does
//! the exchange.

use std::ops::Range;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version, request};

use super::UpstreamError;
use super::decoder::{BodyDecoder, Chunk};
use super::pool::IDLE_TIMEOUT;

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
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    let length = match parsed.parse(buf) {
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
    let count = parsed.headers.len();
    let mut spans = [const { (0..0, 0..0) }; MAX_HEADERS];
    for (span, field) in spans.iter_mut().zip(parsed.headers.iter()) {
        *span = (offsets(buf, field.name.as_bytes()), offsets(buf, field.value));
    }
    let head = Bytes::copy_from_slice(&buf[..length]);
    buf.advance(length);
    let mut headers = HeaderMap::with_capacity(count);
    let mut framing = Framing::default();
    for (name, value) in &spans[..count] {
        let name = HeaderName::from_bytes(&head[name.start as usize..name.end as usize])
            .map_err(|_| UpstreamError::InvalidResponse("invalid header name".into()))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value.start as usize..value.end as usize))
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
    *response.version_mut() = if http11 { Version::HTTP_11 } else { Version::HTTP_10 };
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

/// Where `part` (a slice httparse returned) lies within `buf`.
fn offsets(buf: &[u8], part: &[u8]) -> Range<u32> {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    match start.checked_add(part.len()) {
        // The head is at most MAX_HEAD_BYTES long, so offsets fit in u32.
        Some(end) if !part.is_empty() && end <= buf.len() => start as u32..end as u32,
        _ => 0..0,
    }
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
            // Digits only (RFC 9110 §8.6): Rust's integer parser would also take a sign.
            let digits = value.as_bytes().trim_ascii();
            let length = (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(digits).ok()?.parse::<u64>().ok())
                .flatten()
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

    fn parse(raw: &str, method: Method) -> (Response<()>, BodyDecoder, bool, usize) {
        let (response, decoder, keep, rest) = parse_keep(raw, method);
        (response, decoder, keep != Keep::Close, rest)
    }

    fn parse_keep(raw: &str, method: Method) -> (Response<()>, BodyDecoder, Keep, usize) {
        let mut buf = BytesMut::from(raw.as_bytes());
        loop {
            match parse_head(&mut buf, &method).expect("valid head").expect("complete head") {
                Head::Informational => continue,
                Head::Final(head) => return (head.response, head.decoder, head.keep, buf.len()),
            }
        }
    }

    #[test]
    fn response_heads_choose_the_framing_and_whether_the_connection_is_reused() {
        let (response, decoder, reusable, rest) =
            parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello", Method::GET);
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers().get_all("x-a").iter().count(), 2);
        assert_eq!((decoder, reusable, rest), (BodyDecoder::Length(5), true, 5));

        let (_, decoder, reusable, _) =
            parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", Method::POST);
        assert_eq!((decoder, reusable), (BodyDecoder::Chunked(Chunk::Size), true));

        let (_, decoder, reusable, _) =
            parse("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", Method::GET);
        assert_eq!((decoder, reusable), (BodyDecoder::Length(0), false));

        let (_, decoder, reusable, _) = parse("HTTP/1.0 200 OK\r\n\r\n", Method::GET);
        assert_eq!((decoder, reusable), (BodyDecoder::UntilClose, false));

        let (_, decoder, _, _) = parse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", Method::HEAD);
        assert_eq!(decoder, BodyDecoder::Done);
    }

    #[test]
    fn malformed_heads_are_errors_not_guesses() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "NOT HTTP\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(raw.as_bytes());
            assert!(parse_head(&mut buf, &Method::GET).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn transfer_encoding_overrides_content_length_which_is_removed() {
        let (response, decoder, reusable, _) =
            parse("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n", Method::GET);
        assert_eq!(decoder, BodyDecoder::Chunked(Chunk::Size));
        assert!(response.headers().get(header::CONTENT_LENGTH).is_none(), "never forwarded");
        assert!(!reusable, "an ambiguously framed connection is not kept");
    }

    #[test]
    fn an_announced_keep_alive_timeout_shortens_the_idle_limit() {
        let keep =
            |header: &str| parse_keep(&format!("HTTP/1.1 200 OK\r\n{header}Content-Length: 0\r\n\r\n"), Method::GET).2;
        assert_eq!(keep(""), Keep::Idle(IDLE_TIMEOUT));
        assert_eq!(keep("Keep-Alive: timeout=5, max=100\r\n"), Keep::Idle(Duration::from_secs(4)));
        assert_eq!(keep("Keep-Alive: max=100, TIMEOUT=2\r\n"), Keep::Idle(Duration::from_secs(1)));
        assert_eq!(keep("Keep-Alive: timeout=1\r\n"), Keep::Close, "no time left to reuse it safely");
        assert_eq!(
            keep("Keep-Alive: timeout=600\r\n"),
            Keep::Idle(Duration::from_secs(599)),
            "then capped by the pool"
        );
        assert_eq!(keep("Keep-Alive: timeout=abc\r\n"), Keep::Idle(IDLE_TIMEOUT));
    }

    #[test]
    fn the_head_limit_holds_for_a_head_that_arrives_whole() {
        let raw = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n", "a".repeat(70 * 1024));
        let mut buf = BytesMut::from(raw.as_bytes());
        assert!(parse_head(&mut buf, &Method::GET).is_err());
    }

    #[test]
    fn request_heads_are_written_in_origin_form() {
        let (mut parts, ()) = http::Request::post("/ignored").body(()).expect("valid").into_parts();
        parts.headers.insert("x-one", HeaderValue::from_static("1"));
        let mut out = Vec::new();
        let head = RequestHead { parts: &parts, path_and_query: "/a?b=c", authority: "backend:8443", chunked: true };
        encode_head(&mut out, &head);
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "POST /a?b=c HTTP/1.1\r\nhost: backend:8443\r\nx-one: 1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }
}
