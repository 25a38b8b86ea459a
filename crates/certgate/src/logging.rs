//! Log lines on stderr, as text or JSON. The access log (target `certgate::access`, a line per
//! gateway request) is formatted here, in the same shape as the other lines, and gathered in a
//! 64 KiB buffer written out when full, every second, and before any other line: a write per
//! buffer instead of a write per request (as nginx's `access_log … buffer= flush=`), and no
//! general-purpose formatter on the request path. Every other line is written at once. A process
//! killed outright can lose up to a second of access lines, never another line.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

const ACCESS_TARGET: &str = "certgate::access";
const ACCESS_BUFFER_BYTES: usize = 64 * 1024;
const ACCESS_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Installs the log subscriber; returns the access log, to hand the gateway when it is on.
pub fn init(format: LogFormat) -> BufferedAccessLog {
    let filter = EnvFilter::try_from_env("CERTGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let buffer = Arc::new(Mutex::new(AccessBuffer::new()));
    let flusher = buffer.clone();
    std::thread::Builder::new()
        .name("access-log-flush".into())
        .spawn(move || {
            loop {
                std::thread::sleep(ACCESS_FLUSH_EVERY);
                let _ = lock(&flusher).flush();
            }
        })
        .ok();
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(LogWriter { access: buffer.clone() });
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
    }
    BufferedAccessLog { buffer, format }
}

/// Whether `CERTGATE_LOG` lets access lines through (`certgate::access=off` stops them): they
/// are written here, not as `tracing` events, but the filter is the one operators know.
pub fn access_log_enabled() -> bool {
    tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO)
}

/// Access lines not yet written, and what their timestamps are made of.
struct AccessBuffer {
    lines: Vec<u8>,
    /// A monotonic instant and the wall-clock time at it, read together at most once a second:
    /// a line's time is its request's end (already read for its duration) mapped through it.
    clock: Option<(Instant, SystemTime)>,
    /// The Unix second `date` shows.
    second: u64,
    /// `2026-12-02T17:50:00`, without fraction and zone; empty until the first line.
    date: String,
}

impl AccessBuffer {
    fn new() -> Self {
        AccessBuffer { lines: Vec::with_capacity(ACCESS_BUFFER_BYTES), clock: None, second: 0, date: String::new() }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.lines.is_empty() {
            let written = std::io::stderr().write_all(&self.lines);
            self.lines.clear();
            written?;
        }
        Ok(())
    }

    /// Room for one more line: written out first when the buffer is full.
    fn make_room(&mut self) {
        if self.lines.len() + MAX_LINE_ESTIMATE > ACCESS_BUFFER_BYTES {
            let _ = self.flush();
        }
    }

    /// `2026-12-02T17:50:00.123456Z` for `at`.
    fn timestamp(&mut self, at: Instant) {
        let clock = match self.clock {
            Some((instant, wall)) if at.saturating_duration_since(instant) < CLOCK_REREAD => (instant, wall),
            _ => *self.clock.insert((Instant::now(), SystemTime::now())),
        };
        let wall = clock.1 + at.saturating_duration_since(clock.0);
        let since_epoch = wall.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        if self.second != since_epoch.as_secs() || self.date.is_empty() {
            let text = certgate_pki::format_utc(i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX));
            self.date = text.trim_end_matches('Z').to_owned();
            self.second = since_epoch.as_secs();
        }
        self.lines.extend_from_slice(self.date.as_bytes());
        self.lines.push(b'.');
        push_padded(&mut self.lines, u64::from(since_epoch.subsec_micros()), 6);
        self.lines.push(b'Z');
    }
}

/// How long a monotonic-to-wall-clock mapping is used before it is read again: well below what
/// a clock adjustment (NTP slews by at most 0.5 ms a second) could make visible in a log line.
const CLOCK_REREAD: Duration = Duration::from_secs(1);

/// What a line is expected to take at most; a longer one only makes a write come earlier.
const MAX_LINE_ESTIMATE: usize = 1024;

/// The gateway's access log: each request formatted straight into the shared buffer.
pub struct BufferedAccessLog {
    buffer: Arc<Mutex<AccessBuffer>>,
    format: LogFormat,
}

impl certgate_gateway::AccessLog for BufferedAccessLog {
    /// `api=… operation=… backend=… client_certificate=…`, quoted (and escaped where needed)
    /// once per route.
    fn route_fields(&self, route: &certgate_gateway::RouteFields<'_>) -> Box<[u8]> {
        let json = self.format == LogFormat::Json;
        let mut line = Vec::new();
        let fields = [
            ("api", route.api),
            ("operation", route.operation),
            ("backend", route.backend),
            ("client_certificate", route.client_certificate),
        ];
        for (name, value) in fields {
            field_name(&mut line, name, json);
            quoted(&mut line, value, json);
        }
        line.into_boxed_slice()
    }

    /// Appended into the buffer under its one lock, without `core::fmt` or an allocation: this
    /// runs once per request (`bench/instructions-per-request` counts it).
    fn record(&self, r: &certgate_gateway::AccessRecord<'_>) {
        let json = self.format == LogFormat::Json;
        let mut buffer = lock(&self.buffer);
        buffer.make_room();
        if json {
            buffer.lines.extend_from_slice(b"{\"timestamp\":\"");
        }
        buffer.timestamp(r.finished);
        let line = &mut buffer.lines;
        if json {
            line.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\"");
        } else {
            line.extend_from_slice(b"  INFO certgate::access: request");
        }
        field_name(line, "activity_id", json);
        bare(line, &r.activity_id.hex(), json);
        field_name(line, "method", json);
        bare(line, r.method.as_str().as_bytes(), json);
        line.extend_from_slice(r.route_fields);
        field_name(line, "status", json);
        push_padded(line, u64::from(r.status), 1);
        field_name(line, "bytes", json);
        push_padded(line, r.bytes, 1);
        field_name(line, "duration_ms", json);
        let micros = u64::try_from(r.duration.as_micros()).unwrap_or(u64::MAX);
        push_padded(line, micros / 1000, 1);
        line.push(b'.');
        push_padded(line, micros % 1000, 3);
        if json {
            line.extend_from_slice(b",\"target\":\"certgate::access\"}");
        }
        line.push(b'\n');
    }
}

/// ` name=` in text, `,"name":` in JSON.
fn field_name(line: &mut Vec<u8>, name: &str, json: bool) {
    line.extend_from_slice(if json { b",\"" } else { b" " });
    line.extend_from_slice(name.as_bytes());
    line.extend_from_slice(if json { b"\":" } else { b"=" });
}

/// A value known to need no quoting (hex digits, a method token): quoted in JSON only.
fn bare(line: &mut Vec<u8>, value: &[u8], json: bool) {
    if json {
        line.push(b'"');
        line.extend_from_slice(value);
        line.push(b'"');
    } else {
        line.extend_from_slice(value);
    }
}

/// `number` in decimal, with leading zeros to at least `width` digits.
fn push_padded(line: &mut Vec<u8>, mut number: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while number > 0 || start == digits.len() {
        start -= 1;
        digits[start] = b'0' + (number % 10) as u8;
        number /= 10;
    }
    line.extend_from_slice(&digits[start.min(digits.len().saturating_sub(width))..]);
}

/// `"text"`: as is when nothing in it needs escaping (ids do not), else escaped as a JSON string
/// or a Rust string literal (what the text format prints for every other line).
fn quoted(line: &mut Vec<u8>, text: &str, json: bool) {
    if !text.bytes().any(|b| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b)) {
        line.push(b'"');
        line.extend_from_slice(text.as_bytes());
        line.push(b'"');
    } else if json {
        let _ = serde_json::to_writer(&mut *line, text);
    } else {
        let _ = write!(line, "{text:?}");
    }
}

fn lock(buffer: &Mutex<AccessBuffer>) -> MutexGuard<'_, AccessBuffer> {
    buffer.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes every other line to stderr at once, after the access lines gathered before it, so
/// lines keep their order.
struct LogWriter {
    access: Arc<Mutex<AccessBuffer>>,
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter(lock(&self.access))
    }
}

/// One event's line; holds the access buffer meanwhile, so no access line comes in between.
struct EventWriter<'a>(MutexGuard<'a, AccessBuffer>);

impl Write for EventWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.flush()?;
        std::io::stderr().write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_in_decimal_padded_to_their_width() {
        let text = |number, width| {
            let mut line = Vec::new();
            push_padded(&mut line, number, width);
            String::from_utf8(line).unwrap_or_default()
        };
        assert_eq!(text(0, 1), "0");
        assert_eq!(text(7, 3), "007");
        assert_eq!(text(204, 1), "204");
        assert_eq!(text(123_456, 6), "123456");
        assert_eq!(text(42, 6), "000042");
        assert_eq!(text(u64::MAX, 1), u64::MAX.to_string());
        assert_eq!(text(1234, 3), "1234");
    }

    #[test]
    fn a_line_is_stamped_with_the_wall_clock_time_of_its_requests_end() {
        let mut buffer = AccessBuffer::new();
        let ended = Instant::now();
        buffer.timestamp(ended);
        buffer.lines.push(b' ');
        // Mapped through the clock read for the first line, not read again.
        buffer.timestamp(ended + Duration::from_millis(250));
        let text = String::from_utf8(buffer.lines.clone()).unwrap_or_default();
        let stamps: Vec<&str> = text.split(' ').collect();
        let micros = |stamp: &str| {
            let (seconds, fraction) = stamp.trim_end_matches('Z').split_once('.').unwrap_or_default();
            let seconds = certgate_pki::parse_utc(&format!("{seconds}Z")).unwrap_or_default();
            seconds * 1_000_000 + fraction.parse::<i64>().unwrap_or_default()
        };
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let now = i64::try_from(now.as_micros()).unwrap_or_default();
        assert!((now - micros(stamps[0])).abs() < 1_000_000, "{text}");
        // 250 ms apart, less the moment between `ended` and the clock read the first line made.
        assert!((249_000..=250_000).contains(&(micros(stamps[1]) - micros(stamps[0]))), "{text}");
    }
}
