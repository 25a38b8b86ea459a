//! The byte stream to a backend: plain TCP or TLS over TCP, opened with the upstream's identity.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
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
    Tls(Box<TlsStream<Gulping>>),
}

/// Read size under TLS once a response proves large: rustls asks its socket for 4 KiB at a time
/// (its deframer's read size), which would cost a system call per 4 KiB of a large response.
const GULP: usize = 32 * 1024;

/// The TCP stream under a TLS session. A read goes straight into rustls' buffer until one fills
/// it; from then on the socket is read [`GULP`] bytes at a time into a buffer of our own that
/// rustls takes its pieces from. So a small response costs no buffer and one system call, and a
/// large one a system call per 32 KiB. The buffer is released when the connection goes back to
/// its pool ([`Transport::release_buffers`]), so an idle connection holds none.
///
/// Every read goes through `poll_read`, which tells tokio the socket is drained when a read
/// comes back short: the next poll then waits for epoll instead of paying a `recvfrom` that
/// returns `EAGAIN`.
pub(crate) struct Gulping {
    tcp: TcpStream,
    /// Read from the socket, not yet taken by rustls.
    ahead: BytesMut,
    /// A read filled rustls' buffer: more is likely coming, so read in gulps.
    gulp: bool,
}

impl Gulping {
    fn new(tcp: TcpStream) -> Self {
        Self { tcp, ahead: BytesMut::new(), gulp: false }
    }
}

impl AsyncRead for Gulping {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ahead.is_empty() {
                let n = this.ahead.len().min(buf.remaining());
                buf.put_slice(&this.ahead[..n]);
                this.ahead.advance(n);
                return Poll::Ready(Ok(()));
            }
            if !this.gulp || buf.remaining() >= GULP {
                ready!(Pin::new(&mut this.tcp).poll_read(cx, buf))?;
                this.gulp = buf.remaining() == 0;
                return Poll::Ready(Ok(()));
            }
            this.ahead.reserve(GULP);
            // End of file: nothing is put in `buf`.
            if ready!(tokio_util::io::poll_read_buf(Pin::new(&mut this.tcp), cx, &mut this.ahead))? == 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl AsyncWrite for Gulping {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
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
        match tls.connect(server_name.clone(), Gulping::new(tcp)).await {
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

    /// Frees what the stream buffered, when nothing is left in it: for a connection going idle.
    pub(crate) fn release_buffers(&mut self) {
        if let Transport::Tls(tls) = self
            && tls.get_ref().0.ahead.is_empty()
        {
            let gulping = &mut tls.get_mut().0;
            gulping.ahead = BytesMut::new();
            gulping.gulp = false;
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
