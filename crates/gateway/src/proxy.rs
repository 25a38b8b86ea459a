//! Life of a request: snapshot → route → inbound steps → backend (pooled per identity) →
//! outbound steps. Only [`crate::failure`] turns errors into responses.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, request};
use hyper::body::{Body, Frame};

use crate::body::GatewayBody;
use crate::failure::{self, Failure};
use crate::request_body::RequestBody;
use crate::route::{Forward, RequestStep, ResponseStep, Route};
use crate::snapshot::Snapshot;
use crate::telemetry::Exchange;
use crate::upstream::{BoxError, UpstreamBody};

/// Facts about the downstream connection, worked out once per connection.
#[derive(Debug)]
pub(crate) struct Downstream {
    pub https: bool,
    peer: SocketAddr,
    /// The caller's address as an `X-Forwarded-For` element.
    client_ip: HeaderValue,
}

impl Downstream {
    pub(crate) fn new(peer: SocketAddr, https: bool) -> Self {
        let client_ip = HeaderValue::try_from(peer.ip().to_string()).unwrap_or(HeaderValue::from_static("unknown"));
        Self { https, peer, client_ip }
    }

    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_ACTIVITY_ID: HeaderName = HeaderName::from_static("x-activity-id");

/// One request: its [`Exchange`] (activity id, timing) goes with the response body, which ends
/// it; every response carries the activity id in `x-activity-id`.
pub(crate) async fn handle(
    snapshot: &Snapshot,
    request: Request<RequestBody>,
    downstream: &Downstream,
) -> Response<GatewayBody> {
    let mut exchange = Exchange::start(request.method());
    let mut response = respond(snapshot, request, downstream, &mut exchange).await;
    exchange.responded(response.status());
    response.headers_mut().insert(X_ACTIVITY_ID, exchange.activity_id.header_value());
    response.body_mut().carry(exchange);
    response
}

async fn respond(
    snapshot: &Snapshot,
    request: Request<RequestBody>,
    downstream: &Downstream,
    exchange: &mut Exchange,
) -> Response<GatewayBody> {
    // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host; none (in 1.1) or several (in
    // any version) make the target ambiguous, so nothing is forwarded.
    let hosts = request.headers().get_all(header::HOST).iter().count();
    if hosts > 1 || (hosts == 0 && request.version() == http::Version::HTTP_11) {
        return Failure::BadRequest("the request needs exactly one Host header".into()).respond(exchange);
    }
    if let Err(failure) = check_transfer_coding(request.headers()) {
        return failure.respond(exchange);
    }
    // A Uri clone shares its bytes: routing borrows from it while the request moves on.
    let uri = request.uri().clone();
    let Some(matched) = snapshot.router.find(uri.path(), request.method(), downstream.https) else {
        return failure::not_found();
    };
    exchange.routed(matched.telemetry);
    match matched.route.as_ref() {
        Route::Broken(reason) => Failure::Configuration(reason.clone()).respond(exchange),
        Route::Respond(response) => response.respond(),
        Route::Forward(forward) => {
            let target = Target { remainder: matched.remainder, query: uri.query(), params: &matched.params };
            match send(forward, request, target, downstream, exchange).await {
                Ok(response) => apply_response_steps(response, &forward.outbound),
                Err(failure) => apply_response_steps(failure.respond(exchange), &forward.on_error),
            }
        }
    }
}

/// The parts of the downstream URI the backend URI is built from.
pub(crate) struct Target<'a> {
    /// The path below the API prefix.
    pub remainder: &'a str,
    pub query: Option<&'a str>,
    /// Operation template parameters, for `rewrite-uri`.
    pub params: &'a [(&'a str, &'a str)],
}

async fn send(
    forward: &Forward,
    request: Request<RequestBody>,
    target: Target<'_>,
    downstream: &Downstream,
    exchange: &mut Exchange,
) -> Result<Response<GatewayBody>, Failure> {
    let (mut parts, body) = request.into_parts();
    let path_and_query = prepare(forward, &mut parts, &target, downstream)?;
    crate::trace_context::propagate(&mut parts.headers, &exchange.activity_id);
    // The request's start, read once: the backend's timeout and latency count from it (the
    // microseconds of routing and policy before the send are part of both).
    let sent = exchange.started();
    let deadline = sent + forward.timeout;
    let send = forward.destination.send(parts, body, &path_and_query);
    let response = match tokio::time::timeout_at(deadline, send).await {
        Err(_) => return Err(Failure::BackendTimeout(forward.timeout)),
        Ok(Err(error)) => return Err(failure::classify(&error)),
        Ok(Ok(response)) => response,
    };
    exchange.backend_answered(sent.elapsed());
    let (mut parts, mut body) = response.into_parts();
    if let Some(limit) = forward.read_timeout {
        body = body.with_read_timeout(limit);
    }
    strip_hop_by_hop(&mut parts.headers);
    let ahead = read_ahead(&mut body, deadline).await.map_err(|error| {
        let cause = certgate_model::error_chain(error.as_ref());
        Failure::BackendUnreachable(format!("the response broke off before its body: {cause}"))
    })?;
    Ok(Response::from_parts(parts, GatewayBody::backend(ahead, body)))
}

/// How much of a backend body is read before its head goes downstream, when it is ready.
const READ_AHEAD_BYTES: usize = 64 * 1024;

/// Until the head goes downstream a failure can still be a 502 with an activity id, not a
/// response cut short: so the body's first frame is read first (waiting until `deadline` at
/// most: a backend slow to start its body, a stream of events, gets its head through then),
/// and after it whatever is ready at once, so a failure already in the read buffer surfaces
/// here too.
async fn read_ahead(
    body: &mut UpstreamBody,
    deadline: tokio::time::Instant,
) -> Result<VecDeque<Frame<Bytes>>, BoxError> {
    let mut ahead = VecDeque::new();
    if body.is_end_stream() {
        return Ok(ahead);
    }
    let mut next =
        tokio::time::timeout_at(deadline, poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx))).await.ok().flatten();
    let mut bytes = 0;
    while let Some(frame) = next {
        let frame = frame?;
        bytes += frame.data_ref().map_or(0, Bytes::len);
        ahead.push_back(frame);
        next = match bytes < READ_AHEAD_BYTES && !body.is_end_stream() {
            true => match poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await {
                Poll::Ready(next) => next,
                Poll::Pending => None,
            },
            false => None,
        };
    }
    Ok(ahead)
}

/// The connection has decoded a final `chunked` (and refused a request whose last coding is
/// another, see `downstream/head.rs`);
/// any other coding would reach the backend undeclared once the hop-by-hop header is stripped
/// (nginx answers 501 too), and `chunked` twice is not a framing at all (RFC 9112 §6.1).
fn check_transfer_coding(headers: &HeaderMap) -> Result<(), Failure> {
    let mut chunked = 0;
    let codings =
        headers.get_all(header::TRANSFER_ENCODING).iter().flat_map(|value| value.as_bytes().split(|&b| b == b','));
    for coding in codings.map(<[u8]>::trim_ascii).filter(|coding| !coding.is_empty()) {
        if !coding.eq_ignore_ascii_case(b"chunked") {
            let coding = String::from_utf8_lossy(coding);
            return Err(Failure::NotImplemented(format!("transfer coding {coding:?} is not supported")));
        }
        chunked += 1;
    }
    match chunked {
        0 | 1 => Ok(()),
        _ => Err(Failure::BadRequest("chunked transfer coding applied twice".into())),
    }
}

/// Applies the inbound policy to the request head and returns the backend path and query.
pub(crate) fn prepare(
    forward: &Forward,
    parts: &mut request::Parts,
    target: &Target<'_>,
    downstream: &Downstream,
) -> Result<String, Failure> {
    let original_host = parts.headers.remove(header::HOST);
    let mut path = Cow::Borrowed(target.remainder);
    let mut query = target.query;
    strip_hop_by_hop(&mut parts.headers);
    for step in &forward.request_steps {
        match step {
            RequestStep::SetHeader(set) => set.apply(&mut parts.headers),
            RequestStep::RewriteUri { template, copy_unmatched_params } => {
                path = Cow::Owned(crate::template::fill(template, target.params));
                if !copy_unmatched_params {
                    query = None;
                }
            }
        }
    }
    for step in &forward.credentials.headers {
        step.apply(&mut parts.headers);
    }
    add_forwarded(&mut parts.headers, downstream, original_host);

    let mut path_and_query = String::with_capacity(forward.base_path.len() + path.len() + 64);
    path_and_query.push_str(&forward.base_path);
    path_and_query.push_str(if path.is_empty() { "/" } else { &path });
    let extra = forward.credentials.query.as_deref();
    for (i, part) in [query.filter(|q| !q.is_empty()), extra].into_iter().flatten().enumerate() {
        path_and_query.push(if i == 0 { '?' } else { '&' });
        path_and_query.push_str(part);
    }
    // The path comes from a parsed URI or a template filled with parts of one; still, nothing
    // that could break the request line goes out.
    if path_and_query.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Failure::Configuration(format!("cannot build the backend URL from {path_and_query:?}")));
    }
    Ok(path_and_query)
}

/// Connection-level headers must not cross a proxy (RFC 9110 §7.6.1).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none, or only `Connection: keep-alive`: no list is built for them.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.eq_ignore_ascii_case(b"keep-alive") && !token.eq_ignore_ascii_case(b"close"))
        .filter_map(|token| HeaderName::from_bytes(token).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    while let Some(name) = headers.keys().find(|name| is_hop_by_hop(name)).cloned() {
        headers.remove(name);
    }
}

/// A field name is lower case, so a plain comparison of strings decides.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn add_forwarded(headers: &mut HeaderMap, downstream: &Downstream, original_host: Option<HeaderValue>) {
    let client = &downstream.client_ip;
    let forwarded_for = match headers.get(X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
        Some(existing) => HeaderValue::from_bytes(&[existing, b", ", client.as_bytes()].concat()).ok(),
        None => Some(client.clone()),
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR, value);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(if downstream.https { "https" } else { "http" }));
    if let Some(host) = original_host {
        headers.insert(X_FORWARDED_HOST, host);
    }
}

fn apply_response_steps(mut response: Response<GatewayBody>, steps: &[ResponseStep]) -> Response<GatewayBody> {
    for step in steps {
        match step {
            ResponseStep::SetHeader(set) => set.apply(response.headers_mut()),
            ResponseStep::Replace(replacement) => response = replacement.respond(),
        }
    }
    response
}
