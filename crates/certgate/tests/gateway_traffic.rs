//! The data plane under concurrency, change and volume.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use certgate_testkit::{
    ClientAuth, HttpsBackend, Identity, KeyKind, https_echo_backend, pattern, self_signed_echo_backend,
};
use serde_json::json;
use support::{Node, expose, must_put, policy, seen_fingerprint, upload_certificate, via_gateway};

/// Two APIs send to the same backend host with different certificates; pooled connections must
/// never cross: every one of the interleaved concurrent responses shows its API's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_interleaved_requests_never_cross_identities() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let api = node.client();
    let backend = self_signed_echo_backend().await;
    let a = upload_certificate(&api, "cert-a", &Identity::self_signed_client("a", KeyKind::EcdsaP256)).await;
    let b = upload_certificate(&api, "cert-b", &Identity::self_signed_client("b", KeyKind::EcdsaP256)).await;
    must_put(
        &api,
        "/backends/shared",
        json!({"properties": {"url": backend.url("localhost"), "tls": {"validateCertificateChain": false}}}),
    )
    .await;
    for (name, cert) in [("alpha", "cert-a"), ("beta", "cert-b")] {
        must_put(&api, &format!("/apis/{name}"), json!({"properties": {"displayName": name, "path": name}})).await;
        must_put(
            &api,
            &format!("/apis/{name}/policies/policy"),
            policy(&format!(
                r#"<set-backend-service backend-id="shared" /><authentication-certificate certificate-id="{cert}" />"#
            )),
        )
        .await;
    }
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let started = Instant::now();
    let total = 10_000;
    let concurrency = 64;
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let (path, expected) = if i % 2 == 0 { ("/alpha/x", a.clone()) } else { ("/beta/x", b.clone()) };
        let url = format!("{}{path}/{i}", node.gateway);
        let http = http.clone();
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let response = http.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            drop(permit);
            (status, seen_fingerprint(&body) == expected)
        }));
    }
    let mut crossed = 0;
    for task in tasks {
        let (status, right) = task.await.unwrap();
        assert_eq!(status, 200);
        crossed += usize::from(!right);
    }
    assert_eq!(crossed, 0, "responses that showed the other API's certificate");
    eprintln!(
        "{total} requests, {concurrency} concurrent, in {:?}; backend TLS connections: {}",
        started.elapsed(),
        backend.connection_count()
    );
    assert!(
        backend.connection_count() <= 2 * concurrency + 2,
        "backend connections are pooled: {}",
        backend.connection_count()
    );
}

/// A change is effective for the next request while a slow request that started before it
/// streams to completion on the old configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_effective_on_the_next_request_and_in_flight_requests_complete() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let api = node.client();
    let backend = self_signed_echo_backend().await;
    let old = upload_certificate(&api, "old", &Identity::self_signed_client("old", KeyKind::EcdsaP256)).await;
    let new = upload_certificate(&api, "new", &Identity::self_signed_client("new", KeyKind::EcdsaP256)).await;
    expose(&api, "live", &backend.url("localhost"), json!({"validateCertificateChain": false}), "old").await;

    let http = reqwest::Client::new();
    let slow = {
        let url = format!("{}/live/slow", node.gateway);
        let http = http.clone();
        tokio::spawn(async move {
            let response = http.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    must_put(
        &api,
        "/apis/live/policies/policy",
        policy(r#"<set-backend-service backend-id="live" /><authentication-certificate certificate-id="new" />"#),
    )
    .await;
    let (status, body) = via_gateway(&http, &node, "/live/now").await;
    assert_eq!((status, seen_fingerprint(&body)), (200, new.clone()), "the next request uses the new certificate");
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(seen_fingerprint(body.trim()), old, "the in-flight request finished on the old one");

    // Replacing the certificate entity itself is just as immediate.
    let replacement = Identity::self_signed_client("new-v2", KeyKind::EcdsaP256);
    let file = certgate_testkit::pfx(&replacement, &[], "p", certgate_testkit::PfxFlavor::Modern);
    must_put(&api, "/certificates/new", support::upload(&file, "p")).await;
    let (_, body) = via_gateway(&http, &node, "/live/now").await;
    assert_eq!(seen_fingerprint(&body), certgate_testkit::sha1_hex(&replacement.cert_der));
}

/// Bodies stream both ways: a 1 GiB upload passes while the node's memory stays flat, and
/// backends that offer HTTP/2 get it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_upload_streams_with_flat_memory_and_http2_is_used_when_offered() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let api = node.client();
    let backend =
        https_echo_backend(&Identity::self_signed_server("localhost"), ClientAuth::AnyCertificate, true).await;
    upload_certificate(&api, "c", &Identity::self_signed_client("c", KeyKind::EcdsaP256)).await;
    expose(&api, "files", &backend.url("localhost"), json!({"validateCertificateChain": false}), "c").await;
    let http = reqwest::Client::new();
    let (_, body) = via_gateway(&http, &node, "/files/probe").await;
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["version"], "HTTP/2.0", "ALPN negotiated HTTP/2 with the backend");

    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 1024;
    let rss_before = node.rss_kib();
    let chunks = futures_stream(CHUNKS, CHUNK);
    let started = Instant::now();
    let response = http
        .post(format!("{}/files/count", node.gateway))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), (CHUNK * CHUNKS).to_string(), "every byte arrived");
    let grown = node.rss_kib().saturating_sub(rss_before);
    eprintln!("1 GiB upload in {:?}; node RSS grew by {grown} KiB", started.elapsed());
    assert!(grown < 64 * 1024, "memory stays flat while streaming: grew {grown} KiB");
}

/// A node whose API `up` forwards, with a client certificate, to an HTTP/1.1-only TLS backend.
async fn http1_tls_backend_at_up() -> (support::Stage, HttpsBackend) {
    let stage = support::Stage::start();
    let backend =
        https_echo_backend(&Identity::self_signed_server("localhost"), ClientAuth::AnyCertificate, false).await;
    upload_certificate(&stage.api, "c", &Identity::self_signed_client("c", KeyKind::EcdsaP256)).await;
    expose(&stage.api, "up", &backend.url("localhost"), json!({"validateCertificateChain": false}), "c").await;
    (stage, backend)
}

/// Responses from a TLS backend over HTTP/1.1, small and large, one after the other on the
/// pooled connection: a small one is read straight into rustls' buffer, a large one switches to
/// 32 KiB reads, and the connection goes back to small reads once pooled. Every byte arrives,
/// in order, and one backend connection carries them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_and_large_responses_alternate_on_one_pooled_tls_connection() {
    let (stage, backend) = http1_tls_backend_at_up().await;
    for length in [10, 3_000_000, 200, 16_384, 1, 700_001, 5] {
        let response = stage.http.get(format!("{}/up/bytes/{length}", stage.node.gateway)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.unwrap();
        assert_eq!(body.len(), length);
        assert!(body[..] == pattern(length)[..], "the {length}-byte response arrived altered");
    }
    assert_eq!(backend.connection_count(), 1, "every exchange reused the pooled connection");
}

/// To an HTTP/1.1 backend, a request body streamed slowly is forwarded as it comes (not held
/// until it ends), and a chunked upload arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_stream_to_http1_backends_as_they_come() {
    let (stage, _backend) = http1_tls_backend_at_up().await;

    // Two small chunks 800 ms apart: the first must reach the backend long before the second.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        tx.send(Ok(bytes::Bytes::from_static(b"first"))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        tx.send(Ok(bytes::Bytes::from_static(b"second"))).await.unwrap();
    });
    let response = stage
        .http
        .post(format!("{}/up/arrivals", stage.node.gateway))
        .body(reqwest::Body::wrap_stream(ChannelStream(rx)))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let (first, last) = text.split_once(' ').unwrap_or_else(|| panic!("backend answered {text:?}"));
    let (first, last): (u64, u64) = (first.parse().unwrap(), last.parse().unwrap());
    assert!(last >= first + 600, "the first chunk was forwarded at once: first {first} ms, last {last} ms");

    let response = stage
        .http
        .post(format!("{}/up/count", stage.node.gateway))
        .body(reqwest::Body::wrap_stream(futures_stream(64, 100_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "6400000", "a chunked upload arrives whole");
}

struct ChannelStream(tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>);

impl futures_core::Stream for ChannelStream {
    type Item = Result<bytes::Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

fn futures_stream(
    chunks: usize,
    size: usize,
) -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    struct Chunks {
        left: usize,
        chunk: bytes::Bytes,
    }
    impl futures_core::Stream for Chunks {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.left == 0 {
                return std::task::Poll::Ready(None);
            }
            self.left -= 1;
            std::task::Poll::Ready(Some(Ok(self.chunk.clone())))
        }
    }
    Chunks { left: chunks, chunk: bytes::Bytes::from(vec![0x5a; size]) }
}

/// The HTTPS listener serves the certificate entity named by --https-certificate-id, and a
/// replaced certificate is served from the next connection on.
#[tokio::test]
async fn the_https_listener_serves_a_certificate_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let node =
        Node::start_with(dir.path(), &["--https-listen", "127.0.0.1:0", "--https-certificate-id", "gateway-tls"], &[]);
    let api = node.client();
    let https = node.wait_for_log("gateway HTTPS listening on https://");
    let address = https.split("https://").nth(1).unwrap().split_whitespace().next().unwrap();
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    let backend = self_signed_echo_backend().await;
    let ca = Identity::ca("Gateway CA");
    let served = ca.server("localhost");
    let file = certgate_testkit::pfx(&served, &[], "p", certgate_testkit::PfxFlavor::Modern);
    must_put(&api, "/certificates/gateway-tls", support::upload(&file, "p")).await;
    upload_certificate(&api, "c", &Identity::self_signed_client("c", KeyKind::EcdsaP256)).await;
    must_put(
        &api,
        "/backends/be",
        json!({"properties": {"url": backend.url("localhost"), "tls": {"validateCertificateChain": false}}}),
    )
    .await;
    must_put(
        &api,
        "/apis/secure",
        json!({"properties": {"displayName": "Secure", "path": "secure", "protocols": ["https"]}}),
    )
    .await;
    must_put(
        &api,
        "/apis/secure/policies/policy",
        policy(r#"<set-backend-service backend-id="be" /><authentication-certificate certificate-id="c" />"#),
    )
    .await;

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = client.get(format!("https://localhost:{port}/secure/x")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let echoed: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(echoed["headers"]["x-forwarded-proto"], "https");
    let (status, _) = via_gateway(&reqwest::Client::new(), &node, "/secure/x").await;
    assert_eq!(status, 404, "an https-only API is not served on the HTTP listener");
}
