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

/// The data plane's only input: the current snapshot, replaced as a whole on every change.
pub type SnapshotHandle = Arc<ArcSwap<Snapshot>>;

/// Serves plain HTTP on `listener` until `shutdown` completes, then drains open connections.
pub async fn serve_http(listener: TcpListener, snapshots: SnapshotHandle, shutdown: impl Future<Output = ()>) {
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
        let snapshots = snapshots.clone();
        let downstream = Downstream { peer, https: false };
        let service = service_fn(move |request| {
            // One load per request: the whole request sees one configuration.
            let snapshot = snapshots.load_full();
            async move { Ok::<_, std::convert::Infallible>(proxy::handle(&snapshot, request, downstream).await) }
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
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
