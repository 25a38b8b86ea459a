//! Entry points for the fuzz targets (`fuzz/`, built with the `fuzzing` feature): the HTTP/1.1
//! head parsers of both sides (a backend's response, a client's request) with the body decoder
//! each selects, and URL templates. Not an API.
//! Each takes arbitrary bytes and panics only on a broken invariant.

use bytes::BytesMut;
use http::Method;

use crate::downstream::fuzzing::{MAX_HEAD_BYTES, parse_request};
use crate::framing::{BodyDecoder, Decoded};
use crate::template::{UrlTemplate, fill};
use crate::upstream::fuzzing::{Head, parse_head};

/// A backend's bytes as reads deliver them: the first byte sets the read size (so every split
/// of the rest is reachable), its low bit the request method (a HEAD response has no body).
pub fn backend_response(input: &[u8]) {
    let Some((&control, bytes)) = input.split_first() else { return };
    let method = if control & 1 == 0 { Method::GET } else { Method::HEAD };
    let mut reads = bytes.chunks(usize::from(control >> 1).max(1));
    let mut buf = BytesMut::new();
    let head = loop {
        match parse_head(&mut buf, &method) {
            Ok(Some(Head::Final(head))) => break head,
            Ok(Some(Head::Informational)) => continue,
            Ok(None) => match reads.next() {
                Some(read) => buf.extend_from_slice(read),
                None => return,
            },
            Err(_) => return,
        }
    };
    let mut decoder = head.decoder;
    let mut body = 0;
    if let BodyEnd::ReadsRanOut = read_body(&mut decoder, &mut buf, &mut reads, &mut body) {
        let _ = decoder.at_eof();
    }
    assert!(body <= bytes.len(), "more body than bytes received");
}

/// A client's bytes as reads deliver them (the first byte sets the read size): request heads,
/// pipelined, each with the body its framing announces, until the bytes run out or a head is
/// refused.
pub fn client_request(input: &[u8]) {
    let Some((&control, bytes)) = input.split_first() else { return };
    let mut reads = bytes.chunks(usize::from(control).max(1));
    let mut buf = BytesMut::new();
    let mut body = 0;
    loop {
        let head = match parse_request(&mut buf) {
            Ok(Some(head)) => head,
            Ok(None) => {
                assert!(buf.len() <= MAX_HEAD_BYTES, "an incomplete head past the limit is refused");
                match reads.next() {
                    Some(read) => {
                        buf.extend_from_slice(read);
                        continue;
                    }
                    None => break,
                }
            }
            Err(_) => break,
        };
        assert!(head.body != BodyDecoder::UntilClose, "a request body is never framed by the close");
        let mut decoder = head.body;
        if !matches!(read_body(&mut decoder, &mut buf, &mut reads, &mut body), BodyEnd::Done) {
            break;
        }
    }
    assert!(body <= bytes.len(), "more body than bytes received");
}

/// How [`read_body`] stopped.
enum BodyEnd {
    Done,
    ReadsRanOut,
    Refused,
}

/// Decodes one body off `buf`, fed from `reads`, adding its length to `body`.
fn read_body<'a>(
    decoder: &mut BodyDecoder,
    buf: &mut BytesMut,
    reads: &mut impl Iterator<Item = &'a [u8]>,
    body: &mut usize,
) -> BodyEnd {
    loop {
        match decoder.decode(buf) {
            Ok(Decoded::Data(data)) => {
                assert!(!data.is_empty(), "an empty piece of body would spin the copy loop");
                *body += data.len();
            }
            Ok(Decoded::NeedMore) => match reads.next() {
                Some(read) => buf.extend_from_slice(read),
                None => return BodyEnd::ReadsRanOut,
            },
            Ok(Decoded::Done) => return BodyEnd::Done,
            Err(_) => return BodyEnd::Refused,
        }
    }
}

/// A template and a path, separated by the first newline.
pub fn url_template(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let (template, path) = text.split_once('\n').unwrap_or((&text, "/"));
    let parsed = UrlTemplate::parse(template);
    let _ = parsed.specificity();
    if let Some(params) = parsed.matches(path) {
        let _ = fill(template, &params);
    }
}
