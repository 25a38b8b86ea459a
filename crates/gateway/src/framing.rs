//! HTTP/1.1 body framing (RFC 9112 §6, §7.1): content-length, chunked, or until close — of a
//! backend's response and of a client's request alike. Pure: it works on a connection's read
//! buffer and never performs IO, so every split of the input can be tested.

use bytes::{Buf, Bytes, BytesMut};

/// A chunk-size or trailer line (without its CRLF) must be shorter than this, whether it
/// arrives in one read or trickles in; anything longer is not a well-formed peer.
const MAX_LINE: usize = 4096;

/// Why a body could not be decoded; each side of the proxy says whose body it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FramingError {
    #[error("{0}")]
    Malformed(&'static str),
    /// The connection ended where the framing says the body goes on.
    #[error("the connection closed mid-body")]
    Truncated,
}

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
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, FramingError> {
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
    pub(crate) fn at_eof(&mut self) -> Result<(), FramingError> {
        match self {
            BodyDecoder::UntilClose | BodyDecoder::Done => {
                *self = BodyDecoder::Done;
                Ok(())
            }
            _ => Err(FramingError::Truncated),
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
fn line<T>(buf: &mut BytesMut, read: impl FnOnce(&[u8]) -> Result<T, FramingError>) -> Result<Option<T>, FramingError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) if end >= MAX_LINE => Err(invalid("chunk line too long")),
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

fn chunk_size(line: &[u8]) -> Result<u64, FramingError> {
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

fn invalid(what: &'static str) -> FramingError {
    FramingError::Malformed(what)
}

/// Whose message a body belongs to: errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sender {
    Backend,
    Client,
}

impl FramingError {
    /// The failure as the gateway reports it: a backend's broken body makes a 502 or an
    /// aborted response, a client's a 400 when nothing went out yet.
    pub(crate) fn into_io(self, sender: Sender) -> std::io::Error {
        use std::io::{Error, ErrorKind};
        match (self, sender) {
            (FramingError::Malformed(what), Sender::Backend) => {
                Error::new(ErrorKind::InvalidData, format!("invalid response body from the backend: {what}"))
            }
            (FramingError::Malformed(what), Sender::Client) => {
                Error::new(ErrorKind::InvalidData, format!("malformed request body: {what}"))
            }
            (FramingError::Truncated, Sender::Backend) => {
                Error::new(ErrorKind::UnexpectedEof, "backend closed the connection mid-body")
            }
            (FramingError::Truncated, Sender::Client) => {
                Error::new(ErrorKind::UnexpectedEof, "the client closed the connection mid-body")
            }
        }
    }
}

/// A content-length value (one element of a list): digits only (RFC 9110 §8.6), since Rust's
/// integer parser would also take a sign.
pub(crate) fn content_length(digits: &[u8]) -> Option<u64> {
    let digits = digits.trim_ascii();
    (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
        .then(|| std::str::from_utf8(digits).ok()?.parse::<u64>().ok())
        .flatten()
}

/// Where `part` (a slice httparse returned) lies within `buf`, so that it can be taken from a
/// shared copy of the head.
pub(crate) fn offsets(buf: &[u8], part: &[u8]) -> std::ops::Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if !part.is_empty() && end <= buf.len() => start..end,
        _ => 0..0,
    }
}

/// The chunk-size line that goes before `length` bytes of chunked data.
pub(crate) fn chunk_size_line(out: &mut Vec<u8>, length: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (usize::BITS - length.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        out.push(HEX[(length >> (shift * 4)) & 0xf]);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` one read at a time, as a connection would, and collects the body: the
    /// decoder's end state and the bytes it left unread (in the buffer or not yet fed).
    fn feed<'a>(
        mut decoder: BodyDecoder,
        pieces: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(Vec<u8>, BodyDecoder, usize), FramingError> {
        let mut pieces = pieces.into_iter().peekable();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(data) => {
                    assert!(!data.is_empty(), "an empty piece of data is NeedMore, not Data");
                    body.extend_from_slice(&data);
                }
                Decoded::Done => {
                    let unread = buf.len() + pieces.map(<[u8]>::len).sum::<usize>();
                    return Ok((body, decoder, unread));
                }
                Decoded::NeedMore => match pieces.next() {
                    Some(piece) => buf.extend_from_slice(piece),
                    None => return Ok((body, decoder, buf.len())),
                },
            }
        }
    }

    /// The ways a connection could split `input` into reads: two pieces cut at every point
    /// (including an empty first or last read), and pieces of every size — of a few sizes only
    /// for inputs around MAX_LINE long, where a line rescanned after each tiny read is slow.
    fn every_split(input: &[u8]) -> impl Iterator<Item = (String, Vec<&[u8]>)> {
        let sizes: Vec<usize> =
            if input.len() <= 256 { (1..=input.len().max(1)).collect() } else { vec![1, 2, 3, 7, 64, 511, MAX_LINE] };
        let steps = sizes.into_iter().map(|step| (format!("step {step}"), input.chunks(step).collect()));
        let cuts = (0..=input.len()).map(|at| (format!("cut at {at}"), vec![&input[..at], &input[at..]]));
        steps.chain(cuts)
    }

    const CHUNKED: BodyDecoder = BodyDecoder::Chunked(Chunk::Size);

    /// A well-formed body: framing, input, body, end state, bytes left unread.
    type Case<'a> = (BodyDecoder, &'a [u8], &'a [u8], BodyDecoder, usize);

    #[test]
    fn well_formed_bodies_decode_the_same_at_every_split() {
        // The longest line that is accepted at every split: its CR, waiting for the LF, still fits.
        let long_extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(MAX_LINE - 3));
        let fifteen_bytes = "f".repeat(15);
        let fifteen = format!("00000000000000f\r\n{fifteen_bytes}\r\n0\r\n\r\n");
        let table: &[Case] = &[
            (BodyDecoder::Length(0), b"NEXT", b"", BodyDecoder::Done, 4),
            (BodyDecoder::Length(0), b"", b"", BodyDecoder::Done, 0),
            (BodyDecoder::Length(10), b"0123456789EXTRA", b"0123456789", BodyDecoder::Done, 5),
            (BodyDecoder::Length(10), b"0123456789", b"0123456789", BodyDecoder::Done, 0),
            // The connection closed early: the decoder still waits for 6 bytes.
            (BodyDecoder::Length(10), b"0123", b"0123", BodyDecoder::Length(6), 0),
            (BodyDecoder::UntilClose, b"all of it\r\n0\r\n\r\n", b"all of it\r\n0\r\n\r\n", BodyDecoder::UntilClose, 0),
            (BodyDecoder::UntilClose, b"", b"", BodyDecoder::UntilClose, 0),
            (BodyDecoder::Done, b"NEXT", b"", BodyDecoder::Done, 4),
            (
                CHUNKED,
                b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: t\r\n\r\nNEXT",
                b"helloabcdefghijklmnopqrstuvwxyz",
                BodyDecoder::Done,
                4,
            ),
            (CHUNKED, b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", BodyDecoder::Done, 0),
            (CHUNKED, b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789", BodyDecoder::Done, 0),
            (CHUNKED, b"Bc\r\n", b"", BodyDecoder::Chunked(Chunk::Data(0xbc)), 0),
            (CHUNKED, b"fffffffffffffff\r\n", b"", BodyDecoder::Chunked(Chunk::Data(0xfff_ffff_ffff_ffff)), 0),
            (CHUNKED, fifteen.as_bytes(), fifteen_bytes.as_bytes(), BodyDecoder::Done, 0),
            // Whitespace around the size and a tab (the one control byte allowed) are tolerated;
            // the extension is skipped unread, even a quoted `;`.
            (CHUNKED, b" 5 \t;name=\"v;x\"\r\nhello\r\n0\r\n\r\n", b"hello", BodyDecoder::Done, 0),
            (CHUNKED, long_extension.as_bytes(), b"hello", BodyDecoder::Done, 0),
            (CHUNKED, b"0;last\r\n\r\nNEXT", b"", BodyDecoder::Done, 4),
            (CHUNKED, b"000\r\n\r\n", b"", BodyDecoder::Done, 0),
            (CHUNKED, b"0\r\nx-one: 1\r\nx-two: 2\r\nnot even a field\r\n\r\nNEXT", b"", BodyDecoder::Done, 4),
            // Cut short in every state: what is left is what the state still waits for.
            (CHUNKED, b"", b"", CHUNKED, 0),
            (CHUNKED, b"5", b"", CHUNKED, 1),
            (CHUNKED, b"5\r", b"", CHUNKED, 2),
            (CHUNKED, b"5\r\nhel", b"hel", BodyDecoder::Chunked(Chunk::Data(2)), 0),
            (CHUNKED, b"5\r\nhello", b"hello", BodyDecoder::Chunked(Chunk::DataEnd), 0),
            (CHUNKED, b"5\r\nhello\r", b"hello", BodyDecoder::Chunked(Chunk::DataEnd), 1),
            (CHUNKED, b"5\r\nhello\r\n", b"hello", CHUNKED, 0),
            (CHUNKED, b"0\r\n", b"", BodyDecoder::Chunked(Chunk::Trailers), 0),
            (CHUNKED, b"0\r\nx-one: 1\r\nx-tw", b"", BodyDecoder::Chunked(Chunk::Trailers), 4),
            (CHUNKED, b"0\r\n\r", b"", BodyDecoder::Chunked(Chunk::Trailers), 1),
        ];
        for (framing, input, want_body, want_state, want_unread) in table {
            for (split, pieces) in every_split(input) {
                let what = format!("{framing:?} {:?} ({split})", String::from_utf8_lossy(input));
                let (body, state, unread) = feed(*framing, pieces).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(body, *want_body, "{what}");
                assert_eq!((state, unread), (*want_state, *want_unread), "{what}");
            }
        }
    }

    #[test]
    fn malformed_chunked_bodies_are_refused_at_every_split() {
        let too_long = |prefix: &str| format!("{prefix}{}", "x".repeat(MAX_LINE + 1 - prefix.len()));
        let (size_too_long, data_end_too_long, trailer_too_long) =
            (too_long("5;"), format!("1\r\na{}", too_long("")), format!("0\r\n{}", too_long("x: ")));
        // Complete lines, arriving whole or in pieces: the shortest refused, and a far longer one.
        let line_of = |length: usize| format!("5;{}", "x".repeat(length - 2));
        let complete_at_limit = format!("{}\r\nhello\r\n0\r\n\r\n", line_of(MAX_LINE));
        let complete_far_over = format!("{}\r\nhello\r\n0\r\n\r\n", line_of(10_000));
        let trailer_complete = format!("0\r\nx: {}\r\n\r\n", "y".repeat(MAX_LINE - 3));
        let table: &[(&[u8], &str)] = &[
            (b"zz\r\n", "bad chunk size"),
            (b"\r\n", "bad chunk size"),
            (b" \t \r\n", "bad chunk size"),
            (b";ext\r\n", "bad chunk size"),
            (b"5 5\r\n", "bad chunk size"),
            (b"-5\r\n", "bad chunk size"),
            (b"+5\r\n", "bad chunk size"),
            (b"0x5\r\n", "bad chunk size"),
            (b"\xc3\xa9\r\n", "bad chunk size"),
            // Sixteen digits are refused even when the value is small: the limit is on digits.
            (b"ffffffffffffffff\r\n", "bad chunk size"),
            (b"000000000000005\r\nhello\r\n0000000000000005\r\n", "bad chunk size"),
            (b"5\x01\r\n", "control character"),
            (b"5\0\r\n", "control character"),
            (b"5\x7f\r\n", "control character"),
            (b"5\x1b;ext\r\n", "control character"),
            (b"5\r\r\nhello\r\n", "control character"),
            (b"5\nhello\r\n", "control character"),
            (b"5\r\nhello\nX\r\n", "control character"),
            (b"0\r\nx: a\x00b\r\n\r\n", "control character"),
            (b"0\r\nx: a\rb\r\n\r\n", "control character"),
            (b"3\r\nabcd\r\n", "chunk data longer than its size"),
            (b"3\r\nabc0\r\n\r\n", "chunk data longer than its size"),
            (b"3\r\nabc \r\n", "chunk data longer than its size"),
            (size_too_long.as_bytes(), "chunk line too long"),
            (data_end_too_long.as_bytes(), "chunk line too long"),
            (trailer_too_long.as_bytes(), "chunk line too long"),
            (complete_at_limit.as_bytes(), "chunk line too long"),
            (complete_far_over.as_bytes(), "chunk line too long"),
            (trailer_complete.as_bytes(), "chunk line too long"),
        ];
        for (input, reason) in table {
            for (split, pieces) in every_split(input) {
                let what = format!("{:?} ({split})", String::from_utf8_lossy(input));
                let error = feed(CHUNKED, pieces).expect_err(&what);
                assert!(matches!(error, FramingError::Malformed(_)), "{what}");
                assert!(error.to_string().contains(reason), "{what}: {error}");
            }
        }
    }

    #[test]
    fn a_chunk_line_may_wait_up_to_the_limit_for_its_end() {
        for pending in [format!("5;{}", "x".repeat(MAX_LINE - 2)), format!("5;{}\r", "x".repeat(MAX_LINE - 3))] {
            let mut buf = BytesMut::from(pending.as_bytes());
            let mut decoder = CHUNKED;
            assert_eq!(decoder.decode(&mut buf).expect("within the limit"), Decoded::NeedMore);
            assert_eq!((decoder, buf.len()), (CHUNKED, MAX_LINE), "nothing consumed while waiting");
            buf.extend_from_slice(b"x");
            assert!(decoder.decode(&mut buf).is_err(), "one byte more is over the limit");
        }
    }

    #[test]
    fn each_call_returns_one_piece_and_then_done() {
        let mut decoder = BodyDecoder::Length(5);
        let mut buf = BytesMut::new();
        assert_eq!(decoder.decode(&mut buf).expect("empty"), Decoded::NeedMore);
        assert_eq!(decoder, BodyDecoder::Length(5));
        buf.extend_from_slice(b"abc");
        assert_eq!(decoder.decode(&mut buf).expect("part"), Decoded::Data(Bytes::from_static(b"abc")));
        assert_eq!((decoder, decoder.remaining(), decoder.is_done()), (BodyDecoder::Length(2), Some(2), false));
        buf.extend_from_slice(b"deNEXT");
        assert_eq!(decoder.decode(&mut buf).expect("rest"), Decoded::Data(Bytes::from_static(b"de")));
        assert!(decoder.is_done(), "done as soon as the last byte is handed out");
        assert_eq!(decoder.decode(&mut buf).expect("done"), Decoded::Done);
        assert_eq!(&buf[..], b"NEXT", "the next response is left alone");

        // One chunk a call, never merged with the next one.
        let mut decoder = CHUNKED;
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf).expect("first"), Decoded::Data(Bytes::from_static(b"abc")));
        assert_eq!(decoder, BodyDecoder::Chunked(Chunk::DataEnd));
        assert_eq!(decoder.decode(&mut buf).expect("second"), Decoded::Data(Bytes::from_static(b"de")));
        assert_eq!(decoder.decode(&mut buf).expect("end"), Decoded::Done);
        assert!(buf.is_empty());

        // Until close: all that was read, each time there is any.
        let mut decoder = BodyDecoder::UntilClose;
        let mut buf = BytesMut::from(&b"xyz"[..]);
        assert_eq!(decoder.decode(&mut buf).expect("data"), Decoded::Data(Bytes::from_static(b"xyz")));
        assert_eq!(decoder.decode(&mut buf).expect("empty"), Decoded::NeedMore);
        decoder.at_eof().expect("the close ends it");
        assert_eq!(decoder.decode(&mut buf).expect("closed"), Decoded::Done);
    }

    #[test]
    fn end_of_file_ends_only_a_body_framed_by_the_close() {
        let table = [
            (BodyDecoder::UntilClose, true),
            (BodyDecoder::Done, true),
            // Never reached from a connection: decoding turns Length(0) into Done before any read.
            (BodyDecoder::Length(0), false),
            (BodyDecoder::Length(3), false),
            (CHUNKED, false),
            (BodyDecoder::Chunked(Chunk::Data(1)), false),
            (BodyDecoder::Chunked(Chunk::DataEnd), false),
            (BodyDecoder::Chunked(Chunk::Trailers), false),
        ];
        for (mut decoder, fine) in table {
            let before = decoder;
            match decoder.at_eof() {
                Ok(()) => {
                    assert!(fine, "{before:?} must not end at end of file");
                    assert!(decoder.is_done(), "{before:?} ends there");
                }
                Err(error) => {
                    assert!(!fine, "{before:?} ends at end of file");
                    assert_eq!(error, FramingError::Truncated, "{before:?}");
                }
            }
        }
    }

    #[test]
    fn remaining_is_known_only_for_a_length() {
        let table = [
            (BodyDecoder::Length(7), Some(7)),
            (BodyDecoder::Length(0), Some(0)),
            (BodyDecoder::Length(u64::MAX), Some(u64::MAX)),
            (BodyDecoder::Done, Some(0)),
            (BodyDecoder::UntilClose, None),
            (CHUNKED, None),
            (BodyDecoder::Chunked(Chunk::Data(4)), None),
            (BodyDecoder::Chunked(Chunk::DataEnd), None),
            (BodyDecoder::Chunked(Chunk::Trailers), None),
        ];
        for (decoder, remaining) in table {
            assert_eq!(decoder.remaining(), remaining, "{decoder:?}");
            assert_eq!(decoder.is_done(), decoder == BodyDecoder::Done, "{decoder:?}");
        }
    }

    #[test]
    fn chunk_size_lines_are_lower_case_hex() {
        for (length, line) in
            [(1, "1\r\n"), (15, "f\r\n"), (16, "10\r\n"), (16 * 1024, "4000\r\n"), (0xabc_def, "abcdef\r\n")]
        {
            let mut out = Vec::new();
            chunk_size_line(&mut out, length);
            assert_eq!(String::from_utf8(out).unwrap(), line);
        }
    }

    #[test]
    fn offsets_locate_a_slice_of_the_buffer_and_nothing_else() {
        let whole = b"0123456789";
        let buf = &whole[2..8];
        assert_eq!(offsets(buf, &buf[..3]), 0..3);
        assert_eq!(offsets(buf, &buf[4..]), 4..6);
        assert_eq!(offsets(buf, buf), 0..6);
        assert_eq!(offsets(buf, &buf[3..3]), 0..0, "an empty part");
        assert_eq!(offsets(buf, &whole[5..10]), 0..0, "running past the end");
        assert_eq!(offsets(buf, &whole[..1]), 0..0, "before the start");
        assert_eq!(offsets(buf, &whole[..5]), 0..0, "before the start, reaching into it");
        assert_eq!(offsets(buf, b"2345"), 0..0, "equal bytes elsewhere");
    }
}
