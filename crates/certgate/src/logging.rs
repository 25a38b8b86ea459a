//! Log lines on stderr, as text or JSON. The access log (target `certgate::access`, a line per
//! gateway request) is formatted here, in the same shape as the other lines, and gathered in a
//! 64 KiB buffer written out when full, every second, and before any other line: a write per
//! buffer instead of a write per request (as nginx's `access_log … buffer= flush=`), and no
//! general-purpose formatter on the request path. Every other line is written at once. A process
//! killed outright can lose up to a second of access lines, never another line.

use std::io::{BufWriter, Stderr, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

const ACCESS_TARGET: &str = "certgate::access";
const ACCESS_BUFFER_BYTES: usize = 64 * 1024;
const ACCESS_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Installs the log subscriber; returns the access log, to hand the gateway when it is on.
pub fn init(format: LogFormat) -> BufferedAccessLog {
    let filter = EnvFilter::try_from_env("CERTGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = LogWriter::new();
    let access = BufferedAccessLog { buffer: writer.access.clone(), format, second: Mutex::default() };
    let flusher = writer.access.clone();
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
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
    }
    access
}

/// Whether `CERTGATE_LOG` lets access lines through (`certgate::access=off` stops them).
pub fn access_log_enabled() -> bool {
    tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO)
}

/// The gateway's access log: each request formatted straight into the shared buffer.
pub struct BufferedAccessLog {
    buffer: Arc<Mutex<BufWriter<Stderr>>>,
    format: LogFormat,
    /// The formatted date and time of the last second a line was written in.
    second: Mutex<(u64, String)>,
}

impl BufferedAccessLog {
    /// `2026-12-02T17:50:00.123456Z`, reformatting the date only when the second changes.
    fn timestamp(&self, line: &mut Vec<u8>) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let mut second = self.second.lock().unwrap_or_else(PoisonError::into_inner);
        if second.0 != now.as_secs() || second.1.is_empty() {
            let text = certgate_pki::format_utc(i64::try_from(now.as_secs()).unwrap_or(i64::MAX));
            *second = (now.as_secs(), text.trim_end_matches('Z').to_owned());
        }
        let _ = write!(line, "{}.{:06}Z", second.1, now.subsec_micros());
    }
}

impl certgate_gateway::AccessLog for BufferedAccessLog {
    /// Built by appending, not through `format!`: this runs once per request.
    fn record(&self, r: &certgate_gateway::AccessRecord<'_>) {
        let mut line = Vec::with_capacity(320);
        let (json, text) = (self.format == LogFormat::Json, self.format == LogFormat::Text);
        if json {
            line.extend_from_slice(b"{\"timestamp\":\"");
        }
        self.timestamp(&mut line);
        let fields: [(&str, Field<'_>); 9] = [
            ("activity_id", Field::Bare(&r.activity_id.hex())),
            ("method", Field::Bare(r.method.as_str().as_bytes())),
            ("api", Field::Text(r.api)),
            ("operation", Field::Text(r.operation)),
            ("backend", Field::Text(r.backend)),
            ("status", Field::Number(u64::from(r.status))),
            ("bytes", Field::Number(r.bytes)),
            ("duration_ms", Field::Millis(u64::try_from(r.duration.as_micros()).unwrap_or(u64::MAX))),
            ("client_certificate", Field::Text(r.client_certificate)),
        ];
        if text {
            line.extend_from_slice(b"  INFO certgate::access: request");
        } else {
            line.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\"");
        }
        for (name, value) in fields {
            line.extend_from_slice(if json { b",\"" } else { b" " });
            line.extend_from_slice(name.as_bytes());
            line.extend_from_slice(if json { b"\":" } else { b"=" });
            match value {
                Field::Bare(bytes) if json => {
                    line.push(b'"');
                    line.extend_from_slice(bytes);
                    line.push(b'"');
                }
                Field::Bare(bytes) => line.extend_from_slice(bytes),
                Field::Text(text) => quoted(&mut line, text, json),
                Field::Number(number) => {
                    let _ = write!(line, "{number}");
                }
                Field::Millis(micros) => {
                    let _ = write!(line, "{}.{:03}", micros / 1000, micros % 1000);
                }
            }
        }
        if json {
            line.extend_from_slice(b",\"target\":\"certgate::access\"}");
        }
        line.push(b'\n');
        let _ = lock(&self.buffer).write_all(&line);
    }
}

/// One access log value.
enum Field<'a> {
    /// Known to need no quoting (hex digits, a method token); quoted in JSON only.
    Bare(&'a [u8]),
    /// Quoted, and escaped when it has to be.
    Text(&'a str),
    Number(u64),
    /// Microseconds, written as milliseconds with three decimals.
    Millis(u64),
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

fn lock(buffer: &Mutex<BufWriter<Stderr>>) -> MutexGuard<'_, BufWriter<Stderr>> {
    buffer.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Chooses, per event, the access buffer or stderr itself.
struct LogWriter {
    access: Arc<Mutex<BufWriter<Stderr>>>,
}

impl LogWriter {
    fn new() -> Self {
        Self { access: Arc::new(Mutex::new(BufWriter::with_capacity(ACCESS_BUFFER_BYTES, std::io::stderr()))) }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter::Direct(lock(&self.access))
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        match meta.target() == ACCESS_TARGET {
            true => EventWriter::Access(lock(&self.access)),
            false => EventWriter::Direct(lock(&self.access)),
        }
    }
}

/// Where one event's line goes. `Direct` holds the access buffer too, and empties it first, so
/// lines keep their order.
enum EventWriter<'a> {
    Access(MutexGuard<'a, BufWriter<Stderr>>),
    Direct(MutexGuard<'a, BufWriter<Stderr>>),
}

impl Write for EventWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            EventWriter::Access(buffer) => buffer.write(bytes),
            EventWriter::Direct(buffer) => {
                buffer.flush()?;
                buffer.get_mut().write(bytes)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            EventWriter::Access(_) => Ok(()),
            EventWriter::Direct(buffer) => buffer.flush(),
        }
    }
}
