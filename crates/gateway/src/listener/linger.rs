//! Lingering close: when the server ends a connection whose client may still be sending, it
//! stops writing, then reads and discards what the client sends for a short while before it
//! closes the socket.
//!
//! Why: closing a TCP socket with unread bytes in its receive buffer makes the kernel send a
//! reset instead of a FIN, and a reset can destroy the client's copy of the response it has not
//! read yet; a client still writing gets `EPIPE` / `ECONNRESET` on its upload and many report
//! that instead of the response. It happens exactly when the server answers before the request
//! body has arrived — an early 413 or 401 from a backend (which the exchange forwards at once),
//! or a 400 for a malformed body — and the server then gives up on the rest of the body and shuts the
//! connection down. nginx (`lingering_close`, `lingering_time` 30 s, `lingering_timeout` 5 s),
//! Apache (`lingering_close`) and HAProxy (`option nolinger` to turn it off) do the same, with
//! the same bounds as here.
//!
//! When: only after the server shut the connection down itself while the client had shown no end —
//! not after the client's EOF or reset, and not after a read failed (the listener's header-read
//! and idle timeouts end a connection that way; a slow or idle client is not given more time).
//! The lingering connection keeps its cap permit until the socket closes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::ClientIo;

/// The longest a connection lingers in all (nginx's `lingering_time`).
const LINGER_TOTAL: Duration = Duration::from_secs(30);
/// The longest it waits for the client's next bytes (nginx's `lingering_timeout`).
const LINGER_READ: Duration = Duration::from_secs(5);

/// What the server has seen of the connection's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Open,
    /// The client sent EOF, or a read failed: nothing more will be read.
    ReadEnded,
    /// The server shut its side down while the client's side was open: linger when dropped.
    ShutDown,
}

/// A client stream that lingers (in a task of its own) when it is dropped after the server shut
/// it down; holds the connection's cap permit until the socket is really closed.
pub(crate) struct Lingering<IO: AsyncRead + Unpin + Send + 'static> {
    /// `None` only once dropped (moved into the lingering task).
    socket: Option<Socket<IO>>,
    end: End,
}

/// What leaves together for the lingering task: the stream and its cap permit.
struct Socket<IO> {
    io: IO,
    _permit: OwnedSemaphorePermit,
}

impl<IO: AsyncRead + Unpin + Send + 'static> Lingering<IO> {
    pub(crate) fn new(io: IO, permit: OwnedSemaphorePermit) -> Self {
        Lingering { socket: Some(Socket { io, _permit: permit }), end: End::Open }
    }

    fn io(&mut self) -> io::Result<&mut IO> {
        self.socket.as_mut().map(|socket| &mut socket.io).ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl<IO: AsyncRead + Unpin + Send + 'static> Drop for Lingering<IO> {
    fn drop(&mut self) {
        if self.end != End::ShutDown {
            return;
        }
        let (Some(socket), Ok(runtime)) = (self.socket.take(), tokio::runtime::Handle::try_current()) else { return };
        runtime.spawn(async move {
            let Socket { io, _permit } = socket;
            let discarded = discard_until_quiet(io).await;
            tracing::debug!(discarded, "lingering close: discarded what the client still sent");
        });
    }
}

/// Reads and drops the client's bytes until it ends or fails, goes quiet for [`LINGER_READ`],
/// or [`LINGER_TOTAL`] has passed; how many bytes it discarded.
async fn discard_until_quiet<IO: AsyncRead + Unpin>(mut io: IO) -> u64 {
    let deadline = Instant::now() + LINGER_TOTAL;
    let mut buf = vec![0u8; 16 * 1024];
    let mut discarded = 0u64;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now()).min(LINGER_READ);
        match tokio::time::timeout(wait, io.read(&mut buf)).await {
            Ok(Ok(read)) if read > 0 => discarded += read as u64,
            _ => return discarded,
        }
    }
}

impl<IO: AsyncRead + Unpin + Send + 'static> AsyncRead for Lingering<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(this.io()?).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => this.end = End::ReadEnded,
            Poll::Ready(Err(_)) => this.end = End::ReadEnded,
            _ => {}
        }
        polled
    }
}

impl<IO: ClientIo> ClientIo for Lingering<IO> {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = self.io()?.poll_read_ready(cx);
        if let Poll::Ready(Err(_)) = polled {
            self.end = End::ReadEnded;
        }
        polled
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Lingering<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().io()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().io()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.as_ref().is_some_and(|socket| socket.io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().io()?).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(this.io()?).poll_shutdown(cx);
        if polled.is_ready() && this.end == End::Open {
            this.end = End::ShutDown;
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::Semaphore;

    use super::*;

    /// A connected pair: the server's side wrapped, and the client's socket; the permit's
    /// semaphore tells when the server's socket is closed.
    async fn pair() -> (Lingering<TcpStream>, TcpStream, Arc<Semaphore>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let permits = Arc::new(Semaphore::new(1));
        let permit = permits.clone().try_acquire_owned().unwrap();
        (Lingering::new(server, permit), client, permits)
    }

    /// The client keeps uploading after the server answered and shut down: with a plain close
    /// its upload would fail with a reset (the server's receive buffer holds unread bytes);
    /// lingering, the whole upload is taken, the answer is read in full, and the client sees a
    /// clean EOF.
    #[tokio::test]
    async fn a_client_still_uploading_after_the_answer_reads_it_and_a_clean_end() {
        let (mut server, client, permits) = pair().await;
        let (mut client_read, mut client_write) = client.into_split();
        let upload = tokio::spawn(async move {
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..32 {
                client_write.write_all(&chunk).await?;
            }
            client_write.shutdown().await
        });
        let mut first = [0u8; 1024];
        server.read_exact(&mut first).await.unwrap();
        server.write_all(b"answer").await.unwrap();
        server.shutdown().await.unwrap();
        drop(server);
        upload.await.unwrap().expect("the upload is taken, not reset");
        let mut answer = Vec::new();
        client_read.read_to_end(&mut answer).await.expect("a clean end, not a reset");
        assert_eq!(answer, b"answer");
        let closed = tokio::time::timeout(Duration::from_secs(5), permits.acquire()).await;
        assert!(closed.is_ok(), "the socket closes (and frees its permit) once the client ends");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_given_the_read_linger_and_no_more() {
        let (mut server, mut client, permits) = pair().await;
        server.shutdown().await.unwrap();
        let shut = Instant::now();
        drop(server);
        let _permit = permits.acquire().await.unwrap();
        assert_eq!(shut.elapsed(), LINGER_READ);
        assert_eq!(client.read(&mut [0u8; 8]).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn no_lingering_after_the_client_ended_or_without_a_shutdown() {
        for client_ended_first in [true, false] {
            let (mut server, mut client, permits) = pair().await;
            if client_ended_first {
                client.shutdown().await.unwrap();
                assert_eq!(server.read(&mut [0u8; 8]).await.unwrap(), 0);
                server.shutdown().await.unwrap();
            }
            drop(server);
            assert!(permits.try_acquire().is_ok(), "closed at once (client ended first: {client_ended_first})");
        }
    }
}
