//! HTTP/1.1 response body framing (RFC 9112 §6, §7.1): content-length, chunked, or until close.
//! Pure: it works on the connection's read buffer and never performs IO, so every split of the
//! input can be tested.

use std::io;

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size or trailer line accepted; anything longer is not a well-formed backend.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyDecoder {
    Length(u64),
    Chunked(Chunk),
    /// No framing: the body ends when the backend closes the connection (not reusable).
    UntilClose,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    Data(Bytes),
    /// The buffer holds no complete piece; read more.
    NeedMore,
    Done,
}

impl BodyDecoder {
    pub(crate) fn is_done(&self) -> bool {
        *self == BodyDecoder::Done
    }

    /// Takes the next piece of body from `buf`, consuming framing bytes on the way.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Decoded> {
        loop {
            match *self {
                BodyDecoder::Done => return Ok(Decoded::Done),
                BodyDecoder::Length(0) => *self = BodyDecoder::Done,
                BodyDecoder::Length(remaining) => {
                    let Some(data) = take(buf, remaining) else { return Ok(Decoded::NeedMore) };
                    *self = BodyDecoder::Length(remaining - data.len() as u64);
                    if remaining == data.len() as u64 {
                        *self = BodyDecoder::Done;
                    }
                    return Ok(Decoded::Data(data));
                }
                BodyDecoder::UntilClose => {
                    return Ok(take(buf, u64::MAX).map_or(Decoded::NeedMore, Decoded::Data));
                }
                BodyDecoder::Chunked(Chunk::Size) => {
                    let Some(size) = line(buf, chunk_size)? else { return Ok(Decoded::NeedMore) };
                    *self = BodyDecoder::Chunked(if size == 0 { Chunk::Trailers } else { Chunk::Data(size) });
                }
                BodyDecoder::Chunked(Chunk::Data(remaining)) => {
                    let Some(data) = take(buf, remaining) else { return Ok(Decoded::NeedMore) };
                    let left = remaining - data.len() as u64;
                    *self = BodyDecoder::Chunked(if left == 0 { Chunk::DataEnd } else { Chunk::Data(left) });
                    return Ok(Decoded::Data(data));
                }
                BodyDecoder::Chunked(Chunk::DataEnd) => {
                    let Some(empty) = line(buf, |l| Ok(l.is_empty()))? else { return Ok(Decoded::NeedMore) };
                    if !empty {
                        return Err(invalid("chunk data longer than its size"));
                    }
                    *self = BodyDecoder::Chunked(Chunk::Size);
                }
                // Trailer fields are dropped: nothing downstream of a proxy relies on them.
                BodyDecoder::Chunked(Chunk::Trailers) => {
                    let Some(empty) = line(buf, |l| Ok(l.is_empty()))? else { return Ok(Decoded::NeedMore) };
                    if empty {
                        *self = BodyDecoder::Done;
                    }
                }
            }
        }
    }

    /// The connection reached end of file: fine only where the close is the framing.
    pub(crate) fn at_eof(&mut self) -> io::Result<()> {
        match self {
            BodyDecoder::UntilClose | BodyDecoder::Done => {
                *self = BodyDecoder::Done;
                Ok(())
            }
            _ => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "backend closed the connection mid-body")),
        }
    }

    /// Exact remaining length, where the framing tells it.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self {
            BodyDecoder::Length(n) => Some(*n),
            BodyDecoder::Done => Some(0),
            _ => None,
        }
    }
}

fn take(buf: &mut BytesMut, at_most: u64) -> Option<Bytes> {
    if buf.is_empty() {
        return None;
    }
    let n = usize::try_from(at_most).map_or(buf.len(), |m| m.min(buf.len()));
    // A copy, so the connection's read buffer is never shared and is reused in place: slicing
    // it would make every later read allocate a fresh buffer while the slice is alive.
    let data = Bytes::copy_from_slice(&buf[..n]);
    buf.advance(n);
    Some(data)
}

/// Reads one CRLF-terminated line with `read` (which sees it without its terminator) and
/// consumes it; `None` until the line is complete.
fn line<T>(buf: &mut BytesMut, read: impl FnOnce(&[u8]) -> io::Result<T>) -> io::Result<Option<T>> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            // A bare CR or LF, NUL or other control byte in a chunk line is where parsers
            // disagree on framing (request smuggling): refused, not skipped.
            if buf[..end].iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f) {
                return Err(invalid("control character in a chunk line"));
            }
            let value = read(&buf[..end])?;
            buf.advance(end + 2);
            Ok(Some(value))
        }
        None if buf.len() > MAX_LINE => Err(invalid("chunk line too long")),
        None => Ok(None),
    }
}

fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(invalid("bad chunk size"));
    }
    digits.iter().try_fold(0u64, |size, &b| {
        let digit = (b as char).to_digit(16).ok_or_else(|| invalid("bad chunk size"))?;
        Ok(size * 16 + u64::from(digit))
    })
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("invalid response body from the backend: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and collects the body, as a connection would.
    fn decode_in_steps(mut decoder: BodyDecoder, input: &[u8], step: usize) -> (Vec<u8>, BodyDecoder, usize) {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf).expect("valid input") {
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::Done => return (body, decoder, buf.len() + input.len() - fed),
                Decoded::NeedMore if fed == input.len() => return (body, decoder, 0),
                Decoded::NeedMore => {
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_boundaries() {
        let input = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: t\r\n\r\nNEXT";
        for step in 1..input.len() {
            let (body, decoder, left) = decode_in_steps(BodyDecoder::Chunked(Chunk::Size), input, step);
            assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            assert!(decoder.is_done());
            assert_eq!(left, 4, "bytes after the body stay unread (step {step})");
        }
    }

    #[test]
    fn content_length_stops_at_the_length() {
        for step in 1..12 {
            let (body, decoder, left) = decode_in_steps(BodyDecoder::Length(10), b"0123456789EXTRA", step);
            assert_eq!(body, b"0123456789");
            assert!(decoder.is_done());
            assert!(left >= 5);
        }
    }

    #[test]
    fn malformed_chunks_and_early_eof_are_errors() {
        for bad in [&b"zz\r\n"[..], b"\r\n", b"3\r\nabcd\r\n", b"ffffffffffffffff\r\n"] {
            let mut buf = BytesMut::from(bad);
            let mut decoder = BodyDecoder::Chunked(Chunk::Size);
            let result = (0..3).try_for_each(|_| decoder.decode(&mut buf).map(drop));
            assert!(result.is_err(), "{:?} must be rejected", String::from_utf8_lossy(bad));
        }
        assert!(BodyDecoder::Length(3).at_eof().is_err());
        assert!(BodyDecoder::Chunked(Chunk::Size).at_eof().is_err());
        assert!(BodyDecoder::UntilClose.at_eof().is_ok());
    }
}
