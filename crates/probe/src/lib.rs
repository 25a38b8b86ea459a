//! The backend handshake probe: connects to a backend as the gateway would — the backend's TLS
//! switches, the node's trust, the configured or a candidate client certificate — and reports
//! each step (name resolution, TCP connect, the server's chain and its validation, whether the
//! server asked for a client certificate and from which CAs, what was sent, the handshake's end
//! and the status of a `GET` of the backend's URL), with a one-line hint. It changes nothing and
//! shares no connection with traffic: one fresh connection, no session resumption.
//!
//! The failure `reason` codes are the data plane's ([`certgate_pki::TlsFailure`]), so the probe,
//! the 500's log line and the handshake-failure metric name a cause the same way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certgate_model::BackendTls;
use certgate_pki::{
    BackendTrust, CertificateFacts, ClientIdentity, Observed, TlsFailure, certificate_facts, distinguished_name,
    find_tls_error, observed_backend_client_config,
};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long each network step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of the backend's answer read to find its status line.
const STATUS_LINE_LIMIT: usize = 8 * 1024;

/// What to probe.
pub struct ProbeTarget<'a> {
    /// The backend's URL (`http://` or `https://`); the probe's request is a `GET` of it.
    pub url: &'a str,
    pub switches: BackendTls,
    pub trust: &'a BackendTrust,
    pub certificate: Option<&'a ProbeCertificate>,
}

/// A client certificate to present, with what the report says about it.
pub struct ProbeCertificate {
    pub id: String,
    pub facts: CertificateFacts,
    pub identity: ClientIdentity,
}

/// The steps a probe reports, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepName {
    Resolve,
    Connect,
    ServerCertificate,
    ClientCertificateRequest,
    Handshake,
    Request,
}

impl StepName {
    pub fn as_str(self) -> &'static str {
        match self {
            StepName::Resolve => "resolve",
            StepName::Connect => "connect",
            StepName::ServerCertificate => "serverCertificate",
            StepName::ClientCertificateRequest => "clientCertificateRequest",
            StepName::Handshake => "handshake",
            StepName::Request => "request",
        }
    }
}

/// One step: whether it went as traffic needs it to, and what was seen.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: StepName,
    pub ok: bool,
    pub detail: String,
}

/// What the probe found.
#[derive(Debug, Clone, Default)]
pub struct ProbeReport {
    pub steps: Vec<Step>,
    /// The server's certificates as sent, leaf first.
    pub server_chain: Vec<CertificateFacts>,
    pub client_certificate_requested: bool,
    /// The CA names the server's request listed (empty: any, or not asked).
    pub acceptable_issuers: Vec<String>,
    /// The thumbprint of the certificate sent, if one was.
    pub certificate_sent: Option<String>,
    /// The status of the `GET`, when the backend answered.
    pub http_status: Option<u16>,
    /// Why the connection failed, in the data plane's vocabulary (`unreachable` before TLS).
    pub failure: Option<TlsFailure>,
    /// What to do about it, or what worked, in one line.
    pub hint: String,
}

impl ProbeReport {
    /// The backend answered an HTTP request over a connection made as traffic's would be.
    pub fn succeeded(&self) -> bool {
        self.http_status.is_some() && self.failure.is_none()
    }

    fn step(&mut self, name: StepName, ok: bool, detail: impl Into<String>) {
        self.steps.push(Step { name, ok, detail: detail.into() });
    }

    fn unreachable(mut self, name: StepName, cause: String, hint: String) -> Self {
        self.step(name, false, cause.clone());
        self.failure = Some(TlsFailure { reason: "unreachable", cause });
        self.hint = hint;
        self
    }
}

/// Why the target cannot be probed at all (a URL the probe cannot connect to by its nature).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);

/// The parts of the backend's URL the probe needs.
struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    /// `host[:port]` as the Host header.
    authority: String,
    /// Path and query of the `GET`.
    target: String,
}

impl Endpoint {
    fn parse(raw: &str) -> Result<Self, ProbeError> {
        let url = url::Url::parse(raw).map_err(|e| ProbeError(format!("the backend URL '{raw}' is invalid: {e}")))?;
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(ProbeError(format!("the backend URL's scheme must be http or https, not {other}"))),
        };
        let host =
            url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| ProbeError("the backend URL has no host".into()))?;
        let port = url.port_or_known_default().unwrap_or(if tls { 443 } else { 80 });
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let mut target = url.path().to_owned();
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        // The URL crate keeps IPv6 literals bracketed; a socket address and SNI want them bare.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        Ok(Self { tls, host, port, authority, target })
    }
}

/// Probes `target`: never fails once the URL parses; every failure is a step of the report.
pub async fn probe(target: ProbeTarget<'_>) -> Result<ProbeReport, ProbeError> {
    let endpoint = Endpoint::parse(target.url)?;
    let (config, record) =
        observed_backend_client_config(target.certificate.map(|c| &c.identity), target.switches, target.trust)
            .map_err(|e| ProbeError(e.to_string()))?;
    let mut report = ProbeReport::default();

    let lookup = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port));
    let addresses = match tokio::time::timeout(STEP_TIMEOUT, lookup).await {
        Ok(Ok(found)) => Ok(found.collect::<Vec<SocketAddr>>()),
        Ok(Err(e)) => Err(format!("{} does not resolve: {e}", endpoint.host)),
        Err(_) => Err(format!("{} did not resolve within {} s", endpoint.host, STEP_TIMEOUT.as_secs())),
    };
    let unresolved =
        format!("The backend's host {} has no address here: check the URL and this node's DNS.", endpoint.host);
    let addresses = match addresses {
        Ok(found) if !found.is_empty() => found,
        Ok(_) => {
            return Ok(report.unreachable(StepName::Resolve, format!("{} has no address", endpoint.host), unresolved));
        }
        Err(cause) => return Ok(report.unreachable(StepName::Resolve, cause, unresolved)),
    };
    let listed: Vec<String> = addresses.iter().map(SocketAddr::to_string).collect();
    report.step(StepName::Resolve, true, format!("{} is {}", endpoint.host, listed.join(", ")));

    let (tcp, connected_to, took) = match connect(&addresses).await {
        Ok(connected) => connected,
        Err(cause) => {
            let hint = format!(
                "Nothing accepted a connection at {}: check that the backend listens there and that no firewall is in between.",
                endpoint.authority
            );
            return Ok(report.unreachable(StepName::Connect, cause, hint));
        }
    };
    report.step(StepName::Connect, true, format!("connected to {connected_to} in {} ms", took.as_millis()));

    if !endpoint.tls {
        report.step(StepName::Handshake, true, "the backend's URL is http://: no TLS and no client certificate");
        request(&mut report, tcp, &endpoint, None).await;
        report.hint = plain_hint(&report, &endpoint);
        return Ok(report);
    }

    let server_name = ServerName::try_from(endpoint.host.clone())
        .map_err(|e| ProbeError(format!("'{}' is not a valid TLS server name: {e}", endpoint.host)))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new({
        let mut config = Arc::unwrap_or_clone(config);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }));
    let handshake = tokio::time::timeout(STEP_TIMEOUT, connector.connect(server_name, tcp)).await;
    let observed = record.observed();
    describe_observed(&mut report, &observed, target.certificate);
    match handshake {
        Ok(Ok(tls)) => {
            let version = tls.get_ref().1.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
            report.step(StepName::Handshake, true, format!("handshake complete ({version})"));
            request(&mut report, tls, &endpoint, Some(&record)).await;
        }
        Ok(Err(error)) => {
            let failure = find_tls_error(&error).map(TlsFailure::of).unwrap_or_else(|| TlsFailure {
                reason: "handshake_failed",
                cause: format!("TLS handshake failed: {error}"),
            });
            report.step(StepName::Handshake, false, failure.cause.clone());
            report.failure = Some(failure);
        }
        Err(_) => {
            let cause = format!("the TLS handshake did not finish within {} s", STEP_TIMEOUT.as_secs());
            report.step(StepName::Handshake, false, cause.clone());
            report.failure = Some(TlsFailure { reason: "handshake_failed", cause });
        }
    }
    report.hint = tls_hint(&report, target.certificate, &endpoint);
    Ok(report)
}

/// TCP to the first address that accepts, each within the step timeout.
async fn connect(addresses: &[SocketAddr]) -> Result<(TcpStream, SocketAddr, Duration), String> {
    let mut causes = Vec::new();
    for address in addresses {
        let started = Instant::now();
        match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => return Ok((tcp, *address, started.elapsed())),
            Ok(Err(e)) => causes.push(format!("{address}: {e}")),
            Err(_) => causes.push(format!("{address}: no answer within {} s", STEP_TIMEOUT.as_secs())),
        }
    }
    Err(causes.join("; "))
}

/// The chain, its verdict and the client-certificate exchange, from what the handshake recorded.
fn describe_observed(report: &mut ProbeReport, observed: &Observed, certificate: Option<&ProbeCertificate>) {
    report.server_chain = observed.server_chain.iter().filter_map(|der| certificate_facts(der).ok()).collect();
    if let Some(verdict) = &observed.chain_verdict {
        let chain: Vec<String> =
            report.server_chain.iter().map(|c| format!("{} (issued by {})", c.subject, c.issuer)).collect();
        let detail = match verdict {
            Ok(()) => format!("accepted: {}", chain.join(" ← ")),
            Err(reason) => format!("refused: {reason}; the backend sent {}", chain.join(" ← ")),
        };
        report.step(StepName::ServerCertificate, verdict.is_ok(), detail);
    }
    report.client_certificate_requested = observed.client_certificate_requested;
    report.acceptable_issuers = observed.acceptable_issuers.iter().filter_map(|der| distinguished_name(der)).collect();
    if observed.chain_verdict.as_ref().is_some_and(Result::is_ok) {
        let detail = match (observed.client_certificate_requested, certificate) {
            (false, Some(c)) => format!("the backend did not ask for a client certificate; {} was not sent", c.id),
            (false, None) => "the backend did not ask for a client certificate".to_owned(),
            (true, certificate) => {
                let accepts = match report.acceptable_issuers.as_slice() {
                    [] => "from any CA".to_owned(),
                    names => format!("issued by {}", names.join("; ")),
                };
                let sent = match certificate {
                    Some(c) => format!(
                        "sent {} ({}, issued by {}, thumbprint {})",
                        c.id, c.facts.subject, c.facts.issuer, c.facts.thumbprint
                    ),
                    None => "sent none: no certificate is configured".to_owned(),
                };
                format!("the backend asked for a client certificate {accepts}; {sent}")
            }
        };
        let ok = !observed.client_certificate_requested || observed.certificate_sent;
        report.step(StepName::ClientCertificateRequest, ok, detail);
    }
    if observed.certificate_sent {
        report.certificate_sent = certificate.map(|c| c.facts.thumbprint.to_string());
    }
}

/// `GET` of the backend's URL; reads the status line. A TLS 1.3 server refuses a client
/// certificate only after the handshake, so a TLS alert here is the handshake's verdict.
async fn request<S>(
    report: &mut ProbeReport,
    mut stream: S,
    endpoint: &Endpoint,
    tls: Option<&certgate_pki::HandshakeRecord>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: certgate-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        endpoint.target, endpoint.authority
    );
    let exchange = async {
        stream.write_all(head.as_bytes()).await?;
        stream.flush().await?;
        let mut answer = Vec::new();
        let mut buffer = [0u8; 1024];
        while !answer.contains(&b'\n') && answer.len() < STATUS_LINE_LIMIT {
            let read = stream.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..read]);
        }
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(STEP_TIMEOUT, exchange).await {
        Ok(Ok(answer)) => {
            let line =
                String::from_utf8_lossy(answer.split(|b| *b == b'\n').next().unwrap_or_default()).trim().to_owned();
            match status_of(&line) {
                Some(status) => {
                    report.http_status = Some(status);
                    report.step(StepName::Request, true, format!("GET {} answered {line}", endpoint.target));
                }
                None if line.is_empty() => {
                    report.step(StepName::Request, false, "the backend closed the connection without answering")
                }
                None => report.step(StepName::Request, false, format!("the backend's answer is not HTTP: {line:?}")),
            }
        }
        Ok(Err(error)) => match (tls, find_tls_error(&error)) {
            (Some(_), Some(tls_error)) => {
                let failure = TlsFailure::of(tls_error);
                report.step(StepName::Request, false, failure.cause.clone());
                report.failure = Some(failure);
            }
            _ => report.step(StepName::Request, false, format!("the request failed: {error}")),
        },
        Err(_) => report.step(StepName::Request, false, format!("no answer within {} s", STEP_TIMEOUT.as_secs())),
    }
}

/// The status code of an HTTP/1.x status line.
fn status_of(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("HTTP/1.")?;
    rest.get(1..)?.split_whitespace().next()?.parse().ok()
}

fn plain_hint(report: &ProbeReport, endpoint: &Endpoint) -> String {
    match report.http_status {
        Some(status) => {
            format!("The backend answered {status} over plain HTTP; no client certificate is used for http:// URLs.")
        }
        None => format!("The backend at {} accepted the connection but did not answer HTTP.", endpoint.authority),
    }
}

fn tls_hint(report: &ProbeReport, certificate: Option<&ProbeCertificate>, endpoint: &Endpoint) -> String {
    let leaf = report.server_chain.first();
    match &report.failure {
        Some(failure) => match failure.reason {
            "untrusted_chain" | "expired_certificate" => format!(
                "{} Upload the CA that issued it ({}) as a Root CA certificate, or switch off Validate certificate chain for this backend.",
                failure.cause,
                leaf.map_or("unknown", |l| l.issuer.as_str())
            ),
            "name_mismatch" => format!(
                "{} Use a URL with a name the certificate holds, or switch off Validate certificate name.",
                failure.cause
            ),
            "client_certificate_rejected" => rejected_hint(report, certificate),
            _ => failure.cause.clone(),
        },
        None => match (report.http_status, certificate, report.client_certificate_requested) {
            (Some(status), Some(c), true) => format!("The backend accepted {} and answered {status}.", c.id),
            (Some(status), Some(c), false) => format!(
                "The backend answered {status} but never asked for a client certificate, so {} was not presented: it does not authenticate the gateway.",
                c.id
            ),
            (Some(status), None, _) => format!("The backend answered {status} without a client certificate."),
            (None, _, _) => {
                format!("The TLS handshake with {} succeeded, but the backend did not answer HTTP.", endpoint.authority)
            }
        },
    }
}

/// Why the backend refused the client certificate, as far as its request tells.
fn rejected_hint(report: &ProbeReport, certificate: Option<&ProbeCertificate>) -> String {
    let accepts = report.acceptable_issuers.join("; ");
    match certificate {
        None => format!(
            "The backend requires a client certificate{} and none is configured: give the backend (or the API's policy) a certificate, or probe with certificateId.",
            if accepts.is_empty() { String::new() } else { format!(" issued by {accepts}") }
        ),
        Some(c) if !report.acceptable_issuers.is_empty() && !report.acceptable_issuers.contains(&c.facts.issuer) => {
            format!("The backend accepts certificates issued by {accepts}; {} is issued by {}.", c.id, c.facts.issuer)
        }
        Some(c) => format!(
            "The backend rejected {} ({}, issued by {}): it is not one the backend trusts, or it has expired or been revoked there.",
            c.id, c.facts.subject, c.facts.issuer
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_the_port_path_and_query() {
        let e = Endpoint::parse("https://api.contoso.test:8443/v1/orders?x=1").unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port), (true, "api.contoso.test", 8443));
        assert_eq!((e.authority.as_str(), e.target.as_str()), ("api.contoso.test:8443", "/v1/orders?x=1"));
        let plain = Endpoint::parse("http://[::1]").unwrap();
        assert_eq!((plain.tls, plain.host.as_str(), plain.port, plain.target.as_str()), (false, "::1", 80, "/"));
        assert!(Endpoint::parse("ftp://x").is_err());
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_of("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_of("HTTP/1.0 503"), Some(503));
        assert_eq!(status_of("SSH-2.0-OpenSSH"), None);
        assert_eq!(status_of("HTTP/1.1"), None);
    }
}
