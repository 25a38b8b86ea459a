//! Client message heads, as pure functions over bytes: the request head parsed off the
//! connection's read buffer with what it says about its body and the connection (RFC 9112
//! §§2–7, RFC 9110 §8.6, §10.1.1), and the response head written back, framed for that client.
//! No IO here; the connection loop does the exchange.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version, request, response};

use crate::framing::{BodyDecoder, Chunk, content_length, offsets};

/// Most request header fields accepted (hyper's 100, with room), and the most bytes a request
/// head may take (nginx allows 32 KiB in its default large header buffers).
const MAX_HEADERS: usize = 128;
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Fields the proxy adds to a forwarded request: X-Forwarded-For, -Proto, -Host, traceparent,
/// and a few set by policy.
const FIELDS_ADDED: usize = 8;

/// A request head, parsed: the request without its body, and what the client asked of the
/// connection.
pub(crate) struct RequestHead {
    pub parts: request::Parts,
    /// How the body that follows the head is framed; `Done` for none.
    pub body: BodyDecoder,
    pub facts: RequestFacts,
    /// The head as read, which the target and the field values are slices of.
    pub bytes: Bytes,
}

/// What the response to a request depends on, besides the response itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RequestFacts {
    /// HEAD: the response's body is not sent.
    pub head_method: bool,
    pub http10: bool,
    /// The client asked to keep the connection (HTTP/1.1 unless `close`; HTTP/1.0 with `keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body: the client waits for an interim
    /// response before it sends the body.
    pub expect_continue: bool,
}

/// A request head the gateway will not serve; the connection closes after the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("request head larger than 64 KiB or with more than 128 fields")]
    HeadTooLarge,
}

impl Refusal {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
            Refusal::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }
}

/// Parses one request head off the front of `buf`; `None` until it is complete.
pub(crate) fn parse_request(buf: &mut BytesMut) -> Result<Option<RequestHead>, Refusal> {
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let length = match parsed.parse_with_uninit_headers(buf, &mut fields) {
        // The limit holds for the whole head, also when it arrived complete in one read.
        Ok(httparse::Status::Complete(length)) if length > MAX_HEAD_BYTES => return Err(Refusal::HeadTooLarge),
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => return Err(Refusal::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::HeadTooLarge),
        Err(error) => return Err(Refusal::Malformed(httparse_reason(error))),
    };
    let method = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes())
        .map_err(|_| Refusal::Malformed("invalid method"))?;
    let version = if parsed.version == Some(1) { Version::HTTP_11 } else { Version::HTTP_10 };
    // Target and values become slices of the head (no copy): the head is split off the read
    // buffer, which is released after the request anyway.
    let target = offsets(buf, parsed.path.unwrap_or_default().as_bytes());
    let spans: Vec<_> =
        parsed.headers.iter().map(|field| (offsets(buf, field.name.as_bytes()), offsets(buf, field.value))).collect();
    let head = match length == buf.len() {
        true => std::mem::take(buf).freeze(),
        false => buf.split_to(length).freeze(),
    };
    let uri = Uri::from_maybe_shared(head.slice(target)).map_err(|_| Refusal::Malformed("invalid request target"))?;
    // Room for the fields the proxy adds (forwarding, trace context) without a regrowth.
    let mut headers = HeaderMap::with_capacity(spans.len() + FIELDS_ADDED);
    let mut framing = Framing::default();
    for (name, value) in &spans {
        let name = HeaderName::from_bytes(&head[name.clone()]).map_err(|_| Refusal::Malformed("invalid field name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value.clone()))
            .map_err(|_| Refusal::Malformed("invalid field value"))?;
        framing.observe(&name, &value)?;
        headers.append(name, value);
    }
    let http10 = version == Version::HTTP_10;
    let body = framing.decoder(http10)?;
    if let (Some(length), true) = (framing.length, framing.length_values > 1) {
        // RFC 9110 §8.6: a list of equal values is replaced by one.
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    let facts = RequestFacts {
        head_method: method == Method::HEAD,
        http10,
        keep_alive: !framing.close && (!http10 || framing.keep_alive),
        expect_continue: !http10 && framing.expect_continue && body != BodyDecoder::Done,
    };
    let mut parts = request::Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(RequestHead { parts, body, facts, bytes: head }))
}

fn httparse_reason(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "invalid field name",
        httparse::Error::HeaderValue => "invalid field value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token in the request line",
        httparse::Error::TooManyHeaders => "too many fields",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// What the request's own fields say about its body and connection.
#[derive(Default)]
struct Framing {
    length: Option<u64>,
    /// Values seen, over all content-length fields: more than one are equal, or refused.
    length_values: usize,
    /// Transfer-Encoding was present; whether its last coding is chunked.
    transfer_encoding: Option<bool>,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl Framing {
    fn observe(&mut self, name: &HeaderName, value: &HeaderValue) -> Result<(), Refusal> {
        let tokens = || value.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty());
        if name == header::CONTENT_LENGTH {
            for digits in value.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                let length = content_length(digits).ok_or(Refusal::Malformed("invalid content-length"))?;
                if self.length.is_some_and(|l| l != length) {
                    return Err(Refusal::Malformed("conflicting content-length values"));
                }
                self.length_values += 1;
                self.length = Some(length);
            }
        } else if name == header::TRANSFER_ENCODING {
            // The last coding of the last field decides; the proxy refuses codings it cannot
            // forward (501) and chunked applied twice, from the fields as they stand.
            if let Some(last) = tokens().next_back() {
                self.transfer_encoding = Some(last.eq_ignore_ascii_case(b"chunked"));
            } else {
                self.transfer_encoding.get_or_insert(false);
            }
        } else if name == header::CONNECTION {
            for token in tokens() {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name == header::EXPECT {
            self.expect_continue |= value.as_bytes().trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }

    /// RFC 9112 §6.3 for requests: chunked last, or a length, or no body.
    fn decoder(&self, http10: bool) -> Result<BodyDecoder, Refusal> {
        match (self.transfer_encoding, self.length) {
            (Some(_), _) if http10 => Err(Refusal::Malformed("transfer-encoding in an HTTP/1.0 request")),
            // §6.1: a server MAY reject both; accepting them is how requests are smuggled.
            (Some(_), Some(_)) => Err(Refusal::Malformed("both content-length and transfer-encoding")),
            (Some(true), None) => Ok(BodyDecoder::Chunked(Chunk::Size)),
            (Some(false), None) => Err(Refusal::Malformed("the last transfer coding is not chunked")),
            (None, Some(0)) | (None, None) => Ok(BodyDecoder::Done),
            (None, Some(length)) => Ok(BodyDecoder::Length(length)),
        }
    }
}

/// How a response body goes to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResponseFraming {
    /// No body is sent (HEAD, 1xx, 204, 304).
    Bodiless,
    Length(u64),
    Chunked,
    /// An HTTP/1.0 client and a body of unknown length: the close ends it.
    UntilClose,
}

/// A response head, framed: how its body follows, and whether the connection stays open after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub framing: ResponseFraming,
    pub keep_alive: bool,
}

/// Writes the response head for a request with `facts`; `body_length` is the body's exact size
/// where known. `keep_alive`: whether the connection may carry another request (not draining,
/// the request body read in full). The fields that frame the message and manage the connection
/// are the gateway's own: whatever the response carries of them is dropped.
pub(crate) fn encode_response(
    out: &mut Vec<u8>,
    parts: &response::Parts,
    facts: RequestFacts,
    body_length: Option<u64>,
    keep_alive: bool,
    date: &[u8],
) -> ResponseHead {
    let status = parts.status;
    let bodiless = facts.head_method
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if bodiless {
        ResponseFraming::Bodiless
    } else if let Some(length) = body_length {
        ResponseFraming::Length(length)
    } else if facts.http10 {
        ResponseFraming::UntilClose
    } else {
        ResponseFraming::Chunked
    };
    let keep_alive = keep_alive && facts.keep_alive && framing != ResponseFraming::UntilClose;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // HEAD and 304 describe the body a GET would get: a backend's content-length stays.
    let keep_length = framing == ResponseFraming::Bodiless && status != StatusCode::NO_CONTENT;
    for (name, value) in &parts.headers {
        let framing_field = *name == header::CONTENT_LENGTH && !keep_length;
        if framing_field || *name == header::TRANSFER_ENCODING || *name == header::CONNECTION {
            continue;
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    match framing {
        ResponseFraming::Length(length) => {
            field(out, b"content-length", decimal(length).as_bytes());
        }
        ResponseFraming::Chunked => field(out, b"transfer-encoding", b"chunked"),
        ResponseFraming::Bodiless | ResponseFraming::UntilClose => {}
    }
    if !parts.headers.contains_key(header::DATE) {
        field(out, b"date", date);
    }
    if !keep_alive {
        field(out, b"connection", b"close");
    } else if facts.http10 {
        field(out, b"connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
    ResponseHead { framing, keep_alive }
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A decimal number in a small stack buffer.
struct Digits {
    bytes: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

fn decimal(mut value: u64) -> Digits {
    let mut digits = Digits { bytes: [0; 20], start: 20 };
    loop {
        digits.start -= 1;
        digits.bytes[digits.start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return digits;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const CHUNKED: BodyDecoder = BodyDecoder::Chunked(Chunk::Size);

    /// What one call of `parse_request` makes of a buffer, reduced to what the table compares.
    #[derive(Debug, PartialEq)]
    enum Want {
        Partial,
        Head { body: BodyDecoder, keep_alive: bool, expect_continue: bool, rest: usize },
        Refused(Refusal),
    }

    fn head(body: BodyDecoder, keep_alive: bool) -> Want {
        Want::Head { body, keep_alive, expect_continue: false, rest: 0 }
    }

    fn parse(raw: &[u8]) -> (Want, Option<request::Parts>) {
        let mut buf = BytesMut::from(raw);
        match parse_request(&mut buf) {
            Ok(None) => {
                assert_eq!(&buf[..], raw, "a partial head is left in the buffer");
                (Want::Partial, None)
            }
            Ok(Some(RequestHead { parts, body, facts, .. })) => {
                let want = Want::Head {
                    body,
                    keep_alive: facts.keep_alive,
                    expect_continue: facts.expect_continue,
                    rest: buf.len(),
                };
                (want, Some(parts))
            }
            Err(refusal) => (Want::Refused(refusal), None),
        }
    }

    #[test]
    fn every_request_head_is_parsed_as_the_table_says() {
        let get = "GET /a HTTP/1.1\r\nHost: h\r\n";
        let big =
            |size: usize| format!("{get}X-Big: {}\r\n\r\n", "a".repeat(size - get.len() - "X-Big: \r\n\r\n".len()));
        let fields = |n: usize| format!("GET /a HTTP/1.1\r\n{}\r\n", "X-F: v\r\n".repeat(n));
        let malformed = |why| Want::Refused(Refusal::Malformed(why));
        #[rustfmt::skip]
        let table: Vec<(String, Want)> = vec![
            (String::new(), Want::Partial),
            ("GET /a HTTP/1.".into(), Want::Partial),
            (get.into(), Want::Partial),
            (format!("{get}\r"), Want::Partial),
            (format!("{get}\r\n"), head(BodyDecoder::Done, true)),
            (format!("\r\n{get}\r\n"), head(BodyDecoder::Done, true)),
            // The limit holds for a head that arrived whole, to the byte, and for one still coming.
            (big(MAX_HEAD_BYTES), head(BodyDecoder::Done, true)),
            (big(MAX_HEAD_BYTES + 1), Want::Refused(Refusal::HeadTooLarge)),
            (format!("{get}X-Big: {}", "a".repeat(MAX_HEAD_BYTES)), Want::Refused(Refusal::HeadTooLarge)),
            (fields(MAX_HEADERS), head(BodyDecoder::Done, true)),
            (fields(MAX_HEADERS + 1), Want::Refused(Refusal::HeadTooLarge)),
            // Request line and fields.
            ("GET /a HTTP/2.0\r\n\r\n".into(), malformed("invalid HTTP version")),
            ("GET /a\r\n\r\n".into(), malformed("invalid token in the request line")),
            ("G@T /a HTTP/1.1\r\n\r\n".into(), malformed("invalid token in the request line")),
            ("GET /a b HTTP/1.1\r\n\r\n".into(), malformed("invalid HTTP version")),
            ("GET /\x7f HTTP/1.1\r\n\r\n".into(), malformed("invalid token in the request line")),
            (format!("{get}X-Fold: one\r\n two\r\n\r\n"), malformed("invalid field name")),
            (format!("{get}X-Space : v\r\n\r\n"), malformed("invalid field name")),
            (format!("{get}X-Nul: a\0b\r\n\r\n"), malformed("invalid field value")),
            (format!("{get}X-Cr: a\rb\r\n\r\n"), malformed("invalid field value")),
            // Content-Length (RFC 9110 §8.6): digits only; equal repeats are one value.
            (format!("{get}Content-Length: 5\r\n\r\nhello"), Want::Head { body: BodyDecoder::Length(5), keep_alive: true, expect_continue: false, rest: 5 }),
            (format!("{get}Content-Length: 0\r\n\r\n"), head(BodyDecoder::Done, true)),
            (format!("{get}Content-Length: 005\r\n\r\n"), head(BodyDecoder::Length(5), true)),
            (format!("{get}Content-Length: 5, 5\r\n\r\n"), head(BodyDecoder::Length(5), true)),
            (format!("{get}Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), head(BodyDecoder::Length(5), true)),
            (format!("{get}Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), malformed("conflicting content-length values")),
            (format!("{get}Content-Length: 5, 6\r\n\r\n"), malformed("conflicting content-length values")),
            (format!("{get}Content-Length: +5\r\n\r\n"), malformed("invalid content-length")),
            (format!("{get}Content-Length: -1\r\n\r\n"), malformed("invalid content-length")),
            (format!("{get}Content-Length: 5 5\r\n\r\n"), malformed("invalid content-length")),
            (format!("{get}Content-Length: \r\n\r\n"), malformed("invalid content-length")),
            (format!("{get}Content-Length: 99999999999999999999\r\n\r\n"), malformed("invalid content-length")),
            // Transfer-Encoding (RFC 9112 §6.1, §6.3): the last coding chunked, never with a length.
            (format!("{get}Transfer-Encoding: chunked\r\n\r\n"), head(CHUNKED, true)),
            (format!("{get}Transfer-Encoding: CHUNKED\r\n\r\n"), head(CHUNKED, true)),
            (format!("{get}Transfer-Encoding: gzip, chunked\r\n\r\n"), head(CHUNKED, true)),
            (format!("{get}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"), head(CHUNKED, true)),
            (format!("{get}Transfer-Encoding: gzip\r\n\r\n"), malformed("the last transfer coding is not chunked")),
            (format!("{get}Transfer-Encoding: chunked, gzip\r\n\r\n"), malformed("the last transfer coding is not chunked")),
            (format!("{get}Transfer-Encoding: chunked\r\nTransfer-Encoding: \r\n\r\n"), head(CHUNKED, true)),
            (format!("{get}Transfer-Encoding: \r\n\r\n"), malformed("the last transfer coding is not chunked")),
            (format!("{get}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), malformed("both content-length and transfer-encoding")),
            (format!("{get}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), malformed("both content-length and transfer-encoding")),
            ("POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".into(), malformed("transfer-encoding in an HTTP/1.0 request")),
            // Connection reuse (RFC 9112 §9.3).
            (format!("{get}Connection: close\r\n\r\n"), head(BodyDecoder::Done, false)),
            (format!("{get}Connection: keep-alive, CLOSE\r\n\r\n"), head(BodyDecoder::Done, false)),
            (format!("{get}Connection: closed\r\n\r\n"), head(BodyDecoder::Done, true)),
            ("GET /a HTTP/1.0\r\n\r\n".into(), head(BodyDecoder::Done, false)),
            ("GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n".into(), head(BodyDecoder::Done, true)),
            ("GET /a HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n".into(), head(BodyDecoder::Done, false)),
            // Expect (RFC 9110 §10.1.1): only for an HTTP/1.1 request with a body.
            (format!("{get}Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n"), Want::Head { body: BodyDecoder::Length(3), keep_alive: true, expect_continue: true, rest: 0 }),
            (format!("{get}Expect: 100-continue\r\n\r\n"), head(BodyDecoder::Done, true)),
            ("POST /a HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n".into(), head(BodyDecoder::Length(3), false)),
            // Pipelined: the next request stays in the buffer.
            (format!("{get}\r\n{get}\r\n"), Want::Head { body: BodyDecoder::Done, keep_alive: true, expect_continue: false, rest: get.len() + 2 }),
        ];
        let wrong: Vec<String> = table
            .into_iter()
            .filter_map(|(raw, want)| {
                let (got, _) = parse(raw.as_bytes());
                (got != want).then(|| format!("{:?}: got {got:?}, want {want:?}", raw.get(..raw.len().min(80))))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn the_request_keeps_its_fields_and_takes_one_content_length() {
        let (_, parts) = parse(
            b"POST http://h.example/a/b?x=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 4, 4\r\n\r\n",
        );
        let parts = parts.expect("a head");
        assert_eq!((parts.method, parts.version), (Method::POST, Version::HTTP_11));
        assert_eq!((parts.uri.path(), parts.uri.query()), ("/a/b", Some("x=1")));
        let values: Vec<_> = parts.headers.get_all("x-a").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(values, ["1", "2"]);
        let lengths: Vec<_> = parts.headers.get_all(header::CONTENT_LENGTH).iter().collect();
        assert_eq!(lengths, [HeaderValue::from_static("4")]);
    }

    fn facts(head_method: bool, http10: bool, keep_alive: bool) -> RequestFacts {
        RequestFacts { head_method, http10, keep_alive, expect_continue: false }
    }

    fn encode(
        status: u16,
        fields: &[(&str, &str)],
        facts: RequestFacts,
        length: Option<u64>,
    ) -> (String, ResponseHead) {
        let mut response = http::Response::new(());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        for (name, value) in fields {
            response.headers_mut().append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        let (parts, ()) = response.into_parts();
        let mut out = Vec::new();
        let head = encode_response(&mut out, &parts, facts, length, true, b"Sun, 06 Dec 2026 21:00:00 GMT");
        (String::from_utf8(out).unwrap(), head)
    }

    /// Status, fields, request, body length; the head written, its framing and reuse.
    type Row<'a> = (u16, Vec<(&'a str, &'a str)>, RequestFacts, Option<u64>, String, ResponseFraming, bool);

    #[test]
    fn every_response_is_framed_for_its_client() {
        let date = "date: Sun, 06 Dec 2026 21:00:00 GMT\r\n";
        let http11 = facts(false, false, true);
        #[rustfmt::skip]
        let table: Vec<Row> = vec![
            (200, vec![], http11, Some(5), format!("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n{date}\r\n"), ResponseFraming::Length(5), true),
            (200, vec![], http11, None, format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n{date}\r\n"), ResponseFraming::Chunked, true),
            // The framing and connection fields are the gateway's own, whatever the response says.
            (200, vec![("content-length", "99"), ("transfer-encoding", "gzip"), ("connection", "upgrade"), ("x-a", "1")], http11, Some(2),
                format!("HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 2\r\n{date}\r\n"), ResponseFraming::Length(2), true),
            (200, vec![("date", "then")], http11, Some(0), "HTTP/1.1 200 OK\r\ndate: then\r\ncontent-length: 0\r\n\r\n".into(), ResponseFraming::Length(0), true),
            // HEAD and 304 keep the length a GET would get; 204 has none.
            (200, vec![("content-length", "7")], facts(true, false, true), Some(0),
                format!("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n{date}\r\n"), ResponseFraming::Bodiless, true),
            (304, vec![("content-length", "7")], http11, None,
                format!("HTTP/1.1 304 Not Modified\r\ncontent-length: 7\r\n{date}\r\n"), ResponseFraming::Bodiless, true),
            (204, vec![("content-length", "7")], http11, Some(0), format!("HTTP/1.1 204 No Content\r\n{date}\r\n"), ResponseFraming::Bodiless, true),
            // HTTP/1.0: no chunked; a body of unknown length ends with the connection.
            (200, vec![], facts(false, true, true), None, format!("HTTP/1.1 200 OK\r\n{date}connection: close\r\n\r\n"), ResponseFraming::UntilClose, false),
            (200, vec![], facts(false, true, true), Some(1), format!("HTTP/1.1 200 OK\r\ncontent-length: 1\r\n{date}connection: keep-alive\r\n\r\n"), ResponseFraming::Length(1), true),
            (200, vec![], facts(false, true, false), Some(1), format!("HTTP/1.1 200 OK\r\ncontent-length: 1\r\n{date}connection: close\r\n\r\n"), ResponseFraming::Length(1), false),
            (200, vec![], facts(false, false, false), Some(1), format!("HTTP/1.1 200 OK\r\ncontent-length: 1\r\n{date}connection: close\r\n\r\n"), ResponseFraming::Length(1), false),
            (599, vec![], http11, Some(0), format!("HTTP/1.1 599 \r\ncontent-length: 0\r\n{date}\r\n"), ResponseFraming::Length(0), true),
        ];
        for (status, fields, facts, length, wire, framing, keep_alive) in table {
            let (got, head) = encode(status, &fields, facts, length);
            assert_eq!(got, wire, "{status} {fields:?} {facts:?}");
            assert_eq!(head, ResponseHead { framing, keep_alive }, "{status} {fields:?} {facts:?}");
        }
    }

    #[test]
    fn a_connection_the_server_will_not_reuse_says_close() {
        let mut out = Vec::new();
        let (parts, ()) = http::Response::new(()).into_parts();
        let head = encode_response(&mut out, &parts, facts(false, false, true), Some(0), false, b"d");
        assert!(!head.keep_alive);
        assert!(String::from_utf8(out).unwrap().ends_with("connection: close\r\n\r\n"));
    }
}
