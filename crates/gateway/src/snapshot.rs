//! The one bridge between the planes: an immutable snapshot compiled from the configuration
//! state (by [`crate::compile`]), swapped atomically; a request loads it once and uses that
//! copy to the end.

use std::sync::Arc;

use crate::route::Router;
use crate::sharded::Sharded;
use crate::upstream::{Upstream, UpstreamKey};

/// The compiled configuration the data plane serves from.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The store revision it was compiled from.
    pub revision: i64,
    pub(crate) router: Router,
    /// Every backend connection pool in use, with how many compiled APIs use it: kept so the
    /// next compilation can reuse them, and retire those no API uses any more.
    pub(crate) upstreams: Sharded<UpstreamKey, PoolUse>,
    /// The HTTPS listeners' server configurations.
    pub(crate) https: ListenerTls,
    /// When the first client certificate in use expires (Unix seconds): the control plane
    /// recompiles at the first instant of that second, and the routes using it then answer 500
    /// (the data plane itself stops presenting it at that instant, see `certgate_pki`).
    pub next_expiry: Option<i64>,
}

/// The server configuration of each HTTPS listener, built from its certificate entity; `None`
/// while that certificate is missing or unusable (the listener then refuses connections).
#[derive(Debug, Default, Clone)]
pub(crate) struct ListenerTls {
    pub gateway: Option<Arc<rustls::ServerConfig>>,
    pub admin: Option<Arc<rustls::ServerConfig>>,
}

/// Which HTTPS listener a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpsListener {
    /// The gateway's (`--https-listen`).
    Gateway,
    /// The management API's (`--admin-https-listen`).
    Admin,
}

impl ListenerTls {
    pub(crate) fn get(&self, listener: HttpsListener) -> Option<Arc<rustls::ServerConfig>> {
        match listener {
            HttpsListener::Gateway => self.gateway.clone(),
            HttpsListener::Admin => self.admin.clone(),
        }
    }
}

/// A connection pool of a snapshot and the number of its compiled APIs that route to it.
#[derive(Debug, Clone)]
pub(crate) struct PoolUse {
    pub upstream: Arc<Upstream>,
    pub apis: usize,
}

impl Snapshot {
    /// How many distinct TLS identities (connection pools) the snapshot uses.
    pub fn upstream_count(&self) -> usize {
        self.upstreams.len()
    }

    /// Called on the snapshot `next` replaced: retires the pools `next` no longer uses, so their
    /// idle backend connections close now and the busy ones when their exchange ends (requests
    /// still holding this snapshot open fresh connections that are not pooled). Returns how
    /// many were retired.
    pub fn retire_pools_unused_by(&self, next: &Snapshot) -> usize {
        let mut retired = 0;
        // Only shards `next` copied can hold a pool it dropped or replaced.
        for (key, used) in self.upstreams.unshared_with(&next.upstreams) {
            let kept = next.upstreams.get(key).is_some_and(|n| Arc::ptr_eq(&n.upstream, &used.upstream));
            if !kept {
                used.upstream.retire();
                retired += 1;
            }
        }
        retired
    }
}
