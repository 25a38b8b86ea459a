//! Life of a request: snapshot → route → inbound steps → backend (pooled per identity) →
//! outbound steps. Only [`crate::failure`] turns errors into responses.

use std::net::SocketAddr;

use bytes::Bytes;
use certgate_policy::{ExistsAction, ReturnResponse, SetHeader};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::failure::{self, Failure, GatewayBody};
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
    let path = request.uri().path().to_owned();
    let Some(matched) = route::find(&snapshot.apis, &path, request.method(), downstream.https) else {
        return failure::not_found();
    };
    match matched.route.as_ref() {
        Route::Broken(reason) => Failure::Configuration(reason.clone()).respond(Some(matched.api.as_str()), None),
        Route::Respond(response) => generated(response),
        Route::Forward(forward) => {
            let params: Vec<(&str, &str)> = matched.params.iter().map(|(k, v)| (*k, *v)).collect();
            let remainder = matched.remainder.to_owned();
            match send(forward, request, &remainder, &params, downstream).await {
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

async fn send(
    forward: &Forward,
    request: Request<Incoming>,
    remainder: &str,
    params: &[(&str, &str)],
    downstream: Downstream,
) -> Result<Response<GatewayBody>, Failure> {
    let (mut parts, body) = request.into_parts();
    let original_host = parts.headers.get(header::HOST).cloned();
    let mut path = remainder.to_owned();
    let mut query = parts.uri.query().map(str::to_owned);
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::HOST);
    for step in &forward.request_steps {
        match step {
            RequestStep::SetHeader(set) => set_header(&mut parts.headers, set),
            RequestStep::RewriteUri { template, copy_unmatched_params } => {
                path = crate::template::fill(template, params);
                if !copy_unmatched_params {
                    query = None;
                }
            }
        }
    }
    if let Some(credentials) = &forward.credentials {
        for (name, values) in &credentials.header {
            let set = SetHeader { name: name.clone(), action: ExistsAction::Override, values: values.clone() };
            set_header(&mut parts.headers, &set);
        }
        for (name, values) in &credentials.query {
            for value in values {
                let pair =
                    format!("{}={}", certgate_model::percent_encode(name), certgate_model::percent_encode(value));
                query = Some(match query {
                    Some(q) if !q.is_empty() => format!("{q}&{pair}"),
                    _ => pair,
                });
            }
        }
        if let Some(authorization) = &credentials.authorization
            && let Ok(value) = HeaderValue::from_str(&format!("{} {}", authorization.scheme, authorization.parameter))
        {
            parts.headers.insert(header::AUTHORIZATION, value);
        }
    }
    add_forwarded(&mut parts.headers, downstream, original_host);

    let mut path_and_query = format!("{}{}", forward.base_path, if path.is_empty() { "/" } else { &path });
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        path_and_query.push('?');
        path_and_query.push_str(&query);
    }
    parts.uri = Uri::builder()
        .scheme(forward.scheme.clone())
        .authority(forward.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| Failure::Configuration(format!("cannot build the backend URL: {e}")))?;
    parts.version = Version::HTTP_11;
    let request = Request::from_parts(parts, body);

    let response = match tokio::time::timeout(forward.timeout, forward.upstream.client.request(request)).await {
        Err(_) => return Err(Failure::BackendTimeout(forward.timeout)),
        Ok(Err(error)) => return Err(failure::classify(&error)),
        Ok(Ok(response)) => response,
    };
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Either::Left(body)))
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

fn set_header(headers: &mut HeaderMap, set: &SetHeader) {
    let Ok(name) = HeaderName::from_bytes(set.name.as_bytes()) else { return };
    let values = set.values.iter().filter_map(|v| HeaderValue::from_str(v).ok());
    match set.action {
        ExistsAction::Delete => {
            headers.remove(&name);
        }
        ExistsAction::Skip if headers.contains_key(&name) => {}
        ExistsAction::Override | ExistsAction::Skip => {
            headers.remove(&name);
            for value in values {
                headers.append(name.clone(), value);
            }
        }
        ExistsAction::Append => {
            for value in values {
                headers.append(name.clone(), value);
            }
        }
    }
}

fn apply_response_steps(mut response: Response<GatewayBody>, steps: &[ResponseStep]) -> Response<GatewayBody> {
    for step in steps {
        match step {
            ResponseStep::SetHeader(set) => set_header(response.headers_mut(), set),
            ResponseStep::Replace(replacement) => response = generated(replacement),
        }
    }
    response
}

/// A `<return-response>`.
fn generated(spec: &ReturnResponse) -> Response<GatewayBody> {
    let body = spec.body.clone().unwrap_or_default();
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = StatusCode::from_u16(spec.status).unwrap_or(StatusCode::OK);
    for set in &spec.headers {
        set_header(response.headers_mut(), set);
    }
    response
}
