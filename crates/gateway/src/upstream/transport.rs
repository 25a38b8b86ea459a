//! The byte stream to a backend: plain TCP or TLS over TCP, opened with the upstream's identity.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{Origin, UpstreamError};

/// How long opening the TCP connection may take; the TLS handshake runs under the request's
/// forward-request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    pub(crate) async fn connect(origin: &Origin, tls: &tokio_rustls::TlsConnector) -> Result<Self, UpstreamError> {
        let authority = origin.authority.as_str();
        let connect = TcpStream::connect((origin.host.as_str(), origin.port));
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => return Err(UpstreamError::Connect { authority: authority.to_owned(), source }),
            Err(_) => {
                let source = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                return Err(UpstreamError::Connect { authority: authority.to_owned(), source });
            }
        };
        tcp.set_nodelay(true).map_err(|source| UpstreamError::Connect { authority: authority.to_owned(), source })?;
        let Some(server_name) = &origin.server_name else { return Ok(Transport::Plain(tcp)) };
        match tls.connect(server_name.clone(), tcp).await {
            Ok(stream) => {
                let session = stream.get_ref().1;
                tracing::debug!(
                    backend = authority,
                    version = ?session.protocol_version(),
                    handshake = ?session.handshake_kind(),
                    "backend TLS session established"
                );
                Ok(Transport::Tls(Box::new(stream)))
            }
            Err(source) => Err(UpstreamError::Handshake { authority: authority.to_owned(), source }),
        }
    }

    /// The protocol agreed by ALPN is HTTP/2.
    pub(crate) fn is_http2(&self) -> bool {
        matches!(self, Transport::Tls(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2"))
    }
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
