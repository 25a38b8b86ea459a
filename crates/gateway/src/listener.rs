use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::proxy::{self, Downstream};
use crate::snapshot::Snapshot;

/// How long in-flight requests may run after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The data plane's only input: the current snapshot, replaced as a whole on every change.
pub type SnapshotHandle = Arc<ArcSwap<Snapshot>>;

/// Serves plain HTTP on `listener` until `shutdown` completes, then drains open connections.
pub async fn serve_http(listener: TcpListener, snapshots: SnapshotHandle, shutdown: impl Future<Output = ()>) {
    serve(listener, snapshots, shutdown, false).await;
}

/// Serves HTTPS with the certificate of the current snapshot (a replaced certificate is used
/// from the next connection on); connections are refused while the snapshot has none.
pub async fn serve_https(listener: TcpListener, snapshots: SnapshotHandle, shutdown: impl Future<Output = ()>) {
    serve(listener, snapshots, shutdown, true).await;
}

async fn serve(listener: TcpListener, snapshots: SnapshotHandle, shutdown: impl Future<Output = ()>, https: bool) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let downstream = Arc::new(Downstream::new(peer, https));
        let service = {
            let snapshots = snapshots.clone();
            service_fn(move |request| {
                // One load per request: the whole request sees one configuration.
                let snapshot = snapshots.load_full();
                let downstream = downstream.clone();
                async move { Ok::<_, std::convert::Infallible>(proxy::handle(&snapshot, request, &downstream).await) }
            })
        };
        if !https {
            let connection = graceful.watch(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, %error, "client connection ended with an error");
                }
            });
            continue;
        }
        let Some(config) = snapshots.load().https.clone() else {
            tracing::warn!(%peer, "HTTPS connection refused: no usable listener certificate");
            continue;
        };
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_rustls::TlsAcceptor::from(config).accept(stream))
                    .await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => return tracing::debug!(%peer, %error, "client TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "client TLS handshake timed out"),
                };
            let connection = watcher.watch(http1::Builder::new().serve_connection(TokioIo::new(tls), service));
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "client connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("gateway connections still open after the drain timeout; closing them");
    }
}
