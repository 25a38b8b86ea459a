//! The listeners under hostile clients, against the real `certgate server` over real sockets:
//! slow request heads are cut at the header-read timeout without slowing anyone else, idle
//! keep-alive connections at the idle timeout (and not earlier, and never while a request is in
//! flight), the gateway's connection cap queues new connections while the management API keeps
//! answering, accept errors are backed off and logged at most once a second, the open-file limit
//! is raised and the listen backlog is `somaxconn`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certgate_testkit::{Received, ScriptedBackend, Step};
use serde_json::json;
use support::{Node, must_put};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How late a close may come: the timer, the scheduler and a loaded shared machine.
const MARGIN: Duration = Duration::from_millis(1500);
/// How much earlier than its limit a close may be seen when the client's clock starts after the
/// server's (after a response: the client reads its end a little after the server wrote it).
const EARLY: Duration = Duration::from_millis(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_are_cut_at_the_header_timeout_and_do_not_slow_other_requests() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--header-read-timeout", "2s"], &[]);
    let gateway = addr(&node.gateway);

    let without = latencies(gateway, Duration::from_secs(3)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let closes = Arc::new(Mutex::new(Vec::new()));
    let attackers: Vec<_> = (0..500)
        .map(|_| tokio::spawn(slowloris(gateway, Duration::from_millis(700), stop.clone(), closes.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Over two generations of attackers: the first cut at 2 s, their replacements at 4 s.
    let with = latencies(gateway, Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);
    for attacker in attackers {
        attacker.await.unwrap();
    }

    let closes = closes.lock().unwrap().clone();
    let (p99_without, p99_with) = (p99(&without), p99(&with));
    let (min, median, max) = spread(&closes);
    eprintln!(
        "normal requests: p99 {p99_without:?} alone ({} requests), {p99_with:?} beside 500 slow heads ({} requests); \
         slow heads cut after {min:?} / {median:?} / {max:?} (min / median / max of {})",
        without.len(),
        with.len(),
        closes.len()
    );
    assert!(closes.len() >= 500, "every slow head of the first generation is cut: {}", closes.len());
    assert!(min >= HEADER_TIMEOUT, "none before the timeout: {min:?}");
    assert!(max <= HEADER_TIMEOUT + MARGIN, "all by the timeout + {MARGIN:?}: {max:?}");
    assert!(
        p99_with <= p99_without * 5 + Duration::from_millis(50),
        "slow heads must not slow other requests: p99 {p99_with:?} vs {p99_without:?} alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_at_the_idle_timeout_on_both_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--header-read-timeout", "1s", "--idle-timeout", "3s"], &[]);
    let (header, idle) = (Duration::from_secs(1), Duration::from_secs(3));
    let mut cases = Vec::new();
    for (listener, path) in [(addr(&node.gateway), "/nothing-here"), (addr(&node.admin), "/health")] {
        // Idle after a response: closed at the idle timeout, well after the header timeout (hyper's
        // own header timer would have cut it at 1 s), and the clock restarts with every response.
        cases.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(listener).await.unwrap();
            exchange(&mut stream, path).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            exchange(&mut stream, path).await;
            let closed = closed_within(&mut stream, idle + MARGIN).await.expect("closed when idle");
            assert!(closed >= idle - EARLY && closed <= idle + MARGIN, "{listener}: idle close after {closed:?}");
            format!("{listener}: idle keep-alive closed {closed:?} after its last response")
        }));
        // After an idle wait the first byte starts the header clock: a head begun but not
        // finished is cut one header timeout later.
        cases.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(listener).await.unwrap();
            exchange(&mut stream, path).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            stream.write_all(b"GET / HT").await.unwrap();
            let closed = closed_within(&mut stream, header + MARGIN).await.expect("closed mid-head");
            assert!(closed >= header - EARLY, "{listener}: {closed:?}");
            format!("{listener}: head begun after 1.5 s idle cut {closed:?} after its first byte")
        }));
        // A new connection trickling its head: cut at the header timeout.
        cases.push(tokio::spawn(async move {
            let opened = Instant::now();
            let mut stream = TcpStream::connect(listener).await.unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let closes = Arc::new(Mutex::new(Vec::new()));
            slowloris_once(&mut stream, opened, Duration::from_millis(300), &stop, &closes).await;
            let closed = closes.lock().unwrap()[0];
            assert!(closed >= header && closed <= header + MARGIN, "{listener}: {closed:?}");
            format!("{listener}: trickled head cut after {closed:?}")
        }));
    }
    for case in cases {
        eprintln!("{}", case.await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_outlives_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--header-read-timeout", "1s", "--idle-timeout", "2s"], &[]);
    // A backend slow to answer (nothing for 3 s), then slow to finish its body (3 s mid-body).
    let backend = ScriptedBackend::start(None, |request: &Received| {
        let body = "first half|second half";
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        if request.request_line().contains("/slow-head") {
            vec![Step::Sleep(Duration::from_secs(3)), Step::write(format!("{head}{body}"))]
        } else {
            vec![
                Step::write(format!("{head}first half|")),
                Step::Sleep(Duration::from_secs(3)),
                Step::write("second half"),
            ]
        }
    })
    .await;
    let api = node.client();
    must_put(
        &api,
        "/apis/slow",
        json!({"properties": {"displayName": "slow", "path": "slow", "serviceUrl": backend.url()}}),
    )
    .await;

    let mut stream = TcpStream::connect(addr(&node.gateway)).await.unwrap();
    let started = Instant::now();
    let (status, body) = exchange(&mut stream, "/slow/slow-head").await;
    assert_eq!((status, body.as_str()), (200, "first half|second half"));
    let (status, body) = exchange(&mut stream, "/slow/slow-body").await;
    assert_eq!((status, body.as_str()), (200, "first half|second half"));
    assert!(started.elapsed() >= Duration::from_secs(6), "both waited on the backend: {:?}", started.elapsed());
    // …and once nothing is in flight the idle clock runs again.
    let closed = closed_within(&mut stream, Duration::from_secs(2) + MARGIN).await.expect("closed when idle");
    assert!(closed >= Duration::from_secs(2) - EARLY, "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_new_connections_wait_and_the_management_api_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--max-connections", "50", "--admin-max-connections", "5"], &[]);
    let (gateway, admin) = (addr(&node.gateway), addr(&node.admin));

    let mut held = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(gateway).await.unwrap();
        exchange(&mut stream, "/held").await;
        held.push(stream);
    }
    // Past the cap the kernel still completes the handshake (the backlog), but nothing reads.
    let mut waiting = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(gateway).await.unwrap();
        stream.write_all(request("/waiting").as_bytes()).await.unwrap();
        waiting.push(stream);
    }
    assert_eq!(answered_within(&mut waiting, Duration::from_secs(1)).await.len(), 0, "served past the cap");
    node.wait_for_log("connection cap reached");

    let started = Instant::now();
    let health = reqwest::get(format!("{}/health", node.admin)).await.unwrap();
    assert_eq!(health.status(), 200);
    eprintln!("/health answered in {:?} with the gateway at its cap", started.elapsed());

    drop(held.pop());
    let served = answered_within(&mut waiting, Duration::from_secs(3)).await;
    assert_eq!(served.len(), 1, "one freed place, one served");
    eprintln!("a waiting connection was served {:?} after a held one closed", served[0].1);

    // The management API's own cap works the same way.
    let mut admin_held = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(admin).await.unwrap();
        exchange(&mut stream, "/health").await;
        admin_held.push(stream);
    }
    let mut admin_waiting = vec![TcpStream::connect(admin).await.unwrap()];
    admin_waiting[0].write_all(request("/health").as_bytes()).await.unwrap();
    assert_eq!(answered_within(&mut admin_waiting, Duration::from_secs(1)).await.len(), 0);
    drop(admin_held.pop());
    assert_eq!(answered_within(&mut admin_waiting, Duration::from_secs(3)).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_errors_are_backed_off_and_logged_once_a_second() {
    let dir = tempfile::tempdir().unwrap();
    // Few descriptors and a cap above them: accept itself runs out (EMFILE).
    let node = Node::start_under(&["prlimit", "--nofile=64:64", "--"], dir.path(), &["--max-connections", "1000"], &[]);
    let gateway = addr(&node.gateway);
    let mut flood = Vec::new();
    for _ in 0..100 {
        flood.push(TcpStream::connect(gateway).await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failures: Vec<String> =
        node.logs().lines().filter(|line| line.contains("accept failed")).map(str::to_owned).collect();
    eprintln!("{} accept-failure lines in 3 s:\n{}", failures.len(), failures.join("\n"));
    assert!(!failures.is_empty(), "the flood ran the node out of descriptors:\n{}", node.logs());
    assert!(failures.len() <= 4, "at most one line a second");
    assert!(failures.iter().skip(1).any(|line| !line.contains("suppressed=0")), "held-back lines are counted");
    drop(flood);
    // Once descriptors are free again the listener serves at once (the pause is at most 1 s).
    let mut stream = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let mut stream = TcpStream::connect(gateway).await.unwrap();
            stream.write_all(request("/after").as_bytes()).await.unwrap();
            let answer = tokio::time::timeout(Duration::from_millis(1500), stream.peek(&mut [0u8; 1])).await;
            if matches!(answer, Ok(Ok(1))) {
                return stream;
            }
        }
    })
    .await
    .expect("served again after the flood");
    assert_eq!(read_response(&mut stream).await.0, 404);
}

#[test]
fn the_open_file_limit_is_raised_and_the_backlog_is_somaxconn() {
    let hard = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(4).map(str::to_owned))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_under(&["prlimit", &format!("--nofile=1024:{hard}"), "--"], dir.path(), &[], &[]);
    let line = node.wait_for_log("open-file limit");
    if hard == "1024" {
        assert!(line.contains("already the hard limit"), "{line}");
    } else {
        assert!(line.contains("from=1024") && line.contains(&format!("to={hard}")), "{line}");
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", node.pid())).unwrap();
    let open_files = limits.lines().find(|line| line.starts_with("Max open files")).unwrap();
    assert_eq!(open_files.split_whitespace().nth(3), Some(hard.as_str()), "{open_files}");

    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
    for listener in [&node.gateway, &node.admin] {
        assert_eq!(listen_queue_size(addr(listener).port()), somaxconn, "{listener}");
    }
    assert!(node.logs().contains("connection caps and timeouts"), "{}", node.logs());
}

/// `http://127.0.0.1:1234` → the socket address.
fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

fn request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// Sends a keep-alive GET and reads its response: status and body.
async fn exchange(stream: &mut TcpStream, path: &str) -> (u16, String) {
    stream.write_all(request(path).as_bytes()).await.unwrap();
    read_response(stream).await
}

/// Reads one response framed by Content-Length.
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before a response: {:?}", String::from_utf8_lossy(&bytes));
        bytes.extend_from_slice(&buf[..n]);
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no Content-Length: {head}"));
    while bytes.len() < head_end + length {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed mid-body");
        bytes.extend_from_slice(&buf[..n]);
    }
    (status, String::from_utf8_lossy(&bytes[head_end..head_end + length]).into_owned())
}

/// How long until the server closes `stream` (EOF or reset), if it does within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    match tokio::time::timeout(limit, stream.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => Some(start.elapsed()),
        Ok(Ok(n)) => panic!("unexpected bytes instead of a close: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(_) => None,
    }
}

/// Those of `streams` that receive a response within `limit`, taken out of `streams` and kept
/// open (closing one would free its place at the cap for the next).
/// With each, how long it waited from the call.
async fn answered_within(streams: &mut Vec<TcpStream>, limit: Duration) -> Vec<(TcpStream, Duration)> {
    let start = Instant::now();
    let mut reads = tokio::task::JoinSet::new();
    for (index, stream) in std::mem::take(streams).into_iter().enumerate() {
        reads.spawn(async move {
            let mut byte = [0u8; 1];
            let answered = matches!(tokio::time::timeout(limit, stream.peek(&mut byte)).await, Ok(Ok(1)));
            (index, answered.then(|| start.elapsed()), stream)
        });
    }
    let (mut answered, mut rest) = (Vec::new(), Vec::new());
    while let Some(result) = reads.join_next().await {
        let (index, waited, stream) = result.unwrap();
        if let Some(waited) = waited {
            answered.push((stream, waited));
        } else {
            rest.push((index, stream));
        }
    }
    rest.sort_by_key(|(index, _)| *index);
    *streams = rest.into_iter().map(|(_, stream)| stream).collect();
    answered
}

/// Fresh-connection requests one after another for `duration`: each one's latency.
async fn latencies(gateway: SocketAddr, duration: Duration) -> Vec<Duration> {
    let until = Instant::now() + duration;
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let start = Instant::now();
        let mut stream = TcpStream::connect(gateway).await.unwrap();
        let (status, _) = exchange(&mut stream, "/nothing-here").await;
        assert_eq!(status, 404);
        latencies.push(start.elapsed());
    }
    latencies
}

/// Keeps one slow-head connection open until `stop`: opens it, sends a partial head and one
/// more header byte every `trickle`; when the server closes it, records after how long and
/// opens the next.
async fn slowloris(target: SocketAddr, trickle: Duration, stop: Arc<AtomicBool>, closes: Arc<Mutex<Vec<Duration>>>) {
    while !stop.load(Ordering::SeqCst) {
        // Before connecting: the server's clock starts at its accept, later than this, so a
        // close seen sooner than the timeout after this instant is a close before the timeout.
        let opened = Instant::now();
        let Ok(mut stream) = TcpStream::connect(target).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        slowloris_once(&mut stream, opened, trickle, &stop, &closes).await;
    }
}

async fn slowloris_once(
    stream: &mut TcpStream,
    opened: Instant,
    trickle: Duration,
    stop: &AtomicBool,
    closes: &Mutex<Vec<Duration>>,
) {
    if stream.write_all(b"GET /slow HTTP/1.1\r\nHost: slow\r\nX-Slow: ").await.is_err() {
        closes.lock().unwrap().push(opened.elapsed());
        return;
    }
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    closes.lock().unwrap().push(opened.elapsed());
                    return;
                }
                Ok(n) => panic!("a response to an unfinished head: {:?}", String::from_utf8_lossy(&buf[..n])),
            },
            () = tokio::time::sleep(trickle) => {
                // A failed write is a close the next read reports.
                let _ = stream.write_all(b"x").await;
            }
        }
    }
}

fn p99(latencies: &[Duration]) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)]
}

fn spread(durations: &[Duration]) -> (Duration, Duration, Duration) {
    let mut sorted = durations.to_vec();
    sorted.sort();
    (sorted[0], sorted[sorted.len() / 2], sorted[sorted.len() - 1])
}

/// A listening socket's backlog, as `ss` shows it (Send-Q of its LISTEN line).
fn listen_queue_size(port: u16) -> u32 {
    let output = std::process::Command::new("ss")
        .args(["-lnt", &format!("sport = :{port}")])
        .output()
        .expect("the `ss` command (iproute2) runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|line| line.starts_with("LISTEN")).unwrap_or_else(|| panic!("no listener: {text}"));
    line.split_whitespace().nth(2).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no Send-Q: {line}"))
}
