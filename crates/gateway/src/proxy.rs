//! Life of a request: snapshot → route → inbound steps → backend (pooled per identity) →
//! outbound steps. Only [`crate::failure`] turns errors into responses.

use std::net::SocketAddr;

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::GatewayBody;
use crate::failure::{self, Failure};
use crate::route::{self, Forward, RequestStep, ResponseStep, Route};
use crate::snapshot::Snapshot;

/// Facts about the downstream connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Downstream {
    pub peer: SocketAddr,
    pub https: bool,
}

pub(crate) async fn handle(
    snapshot: &Snapshot,
    request: Request<Incoming>,
    downstream: Downstream,
) -> Response<GatewayBody> {
    // A Uri clone shares its bytes: routing borrows from it while the request moves on.
    let uri = request.uri().clone();
    let Some(matched) = route::find(&snapshot.apis, uri.path(), request.method(), downstream.https) else {
        return failure::not_found();
    };
    match matched.route.as_ref() {
        Route::Broken(reason) => Failure::Configuration(reason.clone()).respond(Some(matched.api.as_str()), None),
        Route::Respond(response) => response.respond(),
        Route::Forward(forward) => {
            let target = Target { remainder: matched.remainder, query: uri.query(), params: &matched.params };
            match send(forward, request, target, downstream).await {
                Ok(response) => apply_response_steps(response, &forward.outbound),
                Err(failure) => {
                    let response =
                        failure.respond(Some(forward.api.as_str()), forward.backend.as_ref().map(|b| b.as_str()));
                    apply_response_steps(response, &forward.on_error)
                }
            }
        }
    }
}

/// The parts of the downstream URI the backend URI is built from.
struct Target<'a> {
    /// The path below the API prefix.
    remainder: &'a str,
    query: Option<&'a str>,
    /// Operation template parameters, for `rewrite-uri`.
    params: &'a [(&'a str, &'a str)],
}

async fn send(
    forward: &Forward,
    request: Request<Incoming>,
    target: Target<'_>,
    downstream: Downstream,
) -> Result<Response<GatewayBody>, Failure> {
    let (mut parts, body) = request.into_parts();
    let original_host = parts.headers.get(header::HOST).cloned();
    let mut path = Cow::Borrowed(target.remainder);
    let mut query = target.query;
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::HOST);
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
    let send = forward.upstream.send(&forward.origin, parts, body, &path_and_query);
    let response = match tokio::time::timeout(forward.timeout, send).await {
        Err(_) => return Err(Failure::BackendTimeout(forward.timeout)),
        Ok(Err(error)) => return Err(failure::classify(&error)),
        Ok(Ok(response)) => response,
    };
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, body))
}

/// Connection-level headers must not cross a proxy (RFC 9110 §7.6.1).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

fn add_forwarded(headers: &mut HeaderMap, downstream: Downstream, original_host: Option<HeaderValue>) {
    let client = downstream.peer.ip().to_string();
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {client}"),
        None => client,
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(if downstream.https { "https" } else { "http" }));
    if let Some(host) = original_host {
        headers.insert("x-forwarded-host", host);
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
