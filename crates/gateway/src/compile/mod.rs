//! The compiler: turns the configuration state into a [`Snapshot`]. It runs on the control
//! plane's side (never on a request) but lives here because what it builds are the data
//! plane's own types.
//!
//! - `routes`: an API, its operations and their composed policies become [`Route`]s.
//! - `identities`: client certificates, TLS switches and trusted CAs become connection pools,
//!   one per identity, carried over from the previous snapshot when unchanged.
//! - `dependencies`: what each compiled API depends on, so a change recompiles only the APIs
//!   it concerns.
//! - `policies`: parsed policy documents, kept by text from one compilation to the next.
//!
//! [`Route`]: crate::route::Route

mod dependencies;
mod identities;
mod policies;
mod routes;

#[cfg(test)]
mod tests;

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use certgate_model::{ConfigState, EntityId, EntityKind, PolicyScope, StoredCertificate};
use certgate_pki::ClientIdentity;
use rustls_pki_types::CertificateDer;

use crate::route::{CompiledApi, Dependencies, Router};
use crate::sharded::Sharded;
use crate::snapshot::{HttpsListener, ListenerTls, PoolUse, Snapshot};
use crate::upstream::{Upstream, UpstreamKey};

use identities::Trust;
use policies::PolicyDocuments;

/// What an HTTPS listener serves.
#[derive(Clone, Debug)]
pub enum ListenerCertificate {
    /// A certificate entity, followed across replacements: a new one serves from the next
    /// connection on.
    Entity(EntityId),
    /// A server configuration built once at start from PEM files (`certificate` names them).
    Files { certificate: String, config: Arc<rustls::ServerConfig> },
}

impl std::fmt::Display for ListenerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenerCertificate::Entity(id) => write!(f, "certificate {id}"),
            ListenerCertificate::Files { certificate, .. } => write!(f, "certificate file {certificate}"),
        }
    }
}

/// Compiles snapshots. Holds what does not change between compilations.
pub struct Compiler {
    system_roots: Vec<CertificateDer<'static>>,
    /// What the gateway's HTTPS listener serves (`--https-certificate-id`).
    https_certificate: Option<ListenerCertificate>,
    /// What the management API's HTTPS listener serves (`--admin-https-certificate-id` or PEM files).
    admin_https_certificate: Option<ListenerCertificate>,
    /// The longest a backend may leave a response body without a byte (`--backend-read-timeout`).
    backend_read_timeout: Option<Duration>,
    documents: Mutex<PolicyDocuments>,
}

impl Compiler {
    pub fn new(system_roots: Vec<CertificateDer<'static>>) -> Self {
        Self {
            system_roots,
            https_certificate: None,
            admin_https_certificate: None,
            backend_read_timeout: None,
            documents: Mutex::default(),
        }
    }

    /// Serves the gateway's HTTPS listener with this certificate.
    pub fn with_https_certificate(mut self, certificate: ListenerCertificate) -> Self {
        self.https_certificate = Some(certificate);
        self
    }

    /// Serves the management API's HTTPS listener with this certificate.
    pub fn with_admin_https_certificate(mut self, certificate: ListenerCertificate) -> Self {
        self.admin_https_certificate = Some(certificate);
        self
    }

    /// Aborts a response whose backend sends no body byte for `timeout` (none by default: the
    /// forward-request timeout bounds only the wait for the response head).
    pub fn with_backend_read_timeout(mut self, timeout: Duration) -> Self {
        self.backend_read_timeout = Some(timeout);
        self
    }

    /// The listeners' server configurations; with `changed`, only those whose certificate
    /// changed are built again and the others taken from `previous`.
    fn listener_tls(&self, state: &ConfigState, previous: Option<(&Snapshot, &[(EntityKind, String)])>) -> ListenerTls {
        let build = |certificate: Option<&ListenerCertificate>, listener: HttpsListener| {
            let id = match certificate? {
                ListenerCertificate::Entity(id) => id,
                ListenerCertificate::Files { config, .. } => return Some(config.clone()),
            };
            if let Some((previous, changed)) = previous
                && !changed.contains(&(EntityKind::Certificate, id.key()))
            {
                return previous.https.get(listener);
            }
            listener_config(state, id, listener)
        };
        ListenerTls {
            gateway: build(self.https_certificate.as_ref(), HttpsListener::Gateway),
            admin: build(self.admin_https_certificate.as_ref(), HttpsListener::Admin),
        }
    }

    /// Compiles `state`. Pools of `previous` whose key is unchanged are carried over, so a
    /// configuration change does not drop warm backend connections. A route that cannot be
    /// compiled becomes a `Broken` route (500 + log line) instead of failing the snapshot.
    pub fn compile(&self, state: &ConfigState, previous: Option<&Snapshot>) -> Snapshot {
        let mut documents = self.documents.lock().unwrap_or_else(PoisonError::into_inner);
        documents.start();
        let mut context = Context::new(self, state, previous, &mut documents);
        let global = context.policy(&PolicyScope::Global);
        let apis: Vec<Arc<CompiledApi>> =
            state.apis.values().map(|(id, api)| Arc::new(context.api(id, api, global.as_deref()))).collect();
        let mut upstreams = Sharded::default();
        count_pool_users(&mut upstreams, &context.pools, &apis);
        let next_expiry = context.next_expiry;
        documents.keep_only_used();
        Snapshot {
            revision: state.revision,
            router: Router::new(apis),
            next_expiry,
            upstreams,
            https: self.listener_tls(state, None),
        }
    }

    /// Compiles `state` after the entities `changed` (kind, case-folded record id) changed since
    /// `previous`. When all of them belong to APIs (an API, its operations, their policies), only
    /// those APIs are compiled again and every other compiled API is shared with `previous`;
    /// anything wider (a certificate, backend, CA certificate or the global policy) compiles all.
    pub fn compile_changes(
        &self,
        state: &ConfigState,
        previous: &Snapshot,
        changed: &[(EntityKind, String)],
    ) -> Snapshot {
        let Some(affected) = dependencies::affected_apis(changed, previous) else {
            return self.compile(state, Some(previous));
        };
        let mut documents = self.documents.lock().unwrap_or_else(PoisonError::into_inner);
        documents.start();
        let mut context = Context::new(self, state, Some(previous), &mut documents);
        context.next_expiry = previous.next_expiry;
        let global = context.policy(&PolicyScope::Global);
        // The pools of the APIs compiled again lose those users; a pool no API uses any more
        // is left out (and retired once the snapshot is published).
        let (mut router, mut upstreams) = (previous.router.clone(), previous.upstreams.clone());
        for key in &affected {
            let Some(replaced) = router.remove(key) else { continue };
            for key in &replaced.depends_on.upstreams {
                if let Some(used) = upstreams.get_mut(key) {
                    used.apis -= 1;
                    if used.apis == 0 {
                        upstreams.remove(key);
                    }
                }
            }
        }
        let compiled: Vec<Arc<CompiledApi>> = affected
            .iter()
            .filter_map(|key| state.apis.get(key))
            .map(|(id, api)| Arc::new(context.api(id, api, global.as_deref())))
            .collect();
        count_pool_users(&mut upstreams, &context.pools, &compiled);
        for api in compiled {
            router.insert(api);
        }
        // The documents of the APIs not compiled again stay cached as well: no pruning here.
        Snapshot {
            revision: state.revision,
            router,
            next_expiry: context.next_expiry,
            upstreams,
            https: self.listener_tls(state, Some((previous, changed))),
        }
    }
}

/// The server configuration of `listener` from certificate entity `id`; `None` (and an error
/// line) while it is missing or unusable.
fn listener_config(state: &ConfigState, id: &EntityId, listener: HttpsListener) -> Option<Arc<rustls::ServerConfig>> {
    let Some(stored) = state.certificates.get(&id.key()) else {
        tracing::error!(certificate = %id, ?listener, "the HTTPS listener's certificate does not exist; HTTPS connections are refused");
        return None;
    };
    let identity = ClientIdentity::from_der(&stored.certificate.chain, &stored.private_key);
    certgate_pki::listener_server_config(&identity)
        .map_err(|e| tracing::error!(certificate = %id, ?listener, error = %e, "the HTTPS listener's certificate is unusable"))
        .ok()
}

/// Adds the pools `apis` route to (found in `created`, this compilation's pools) to `upstreams`.
fn count_pool_users(
    upstreams: &mut Sharded<UpstreamKey, PoolUse>,
    created: &HashMap<UpstreamKey, Arc<Upstream>>,
    apis: &[Arc<CompiledApi>],
) {
    for key in apis.iter().flat_map(|api| &api.depends_on.upstreams) {
        let Some(upstream) = created.get(key) else { continue };
        upstreams.get_or_insert_with(key.clone(), || PoolUse { upstream: upstream.clone(), apis: 0 }).apis += 1;
    }
}

/// One compilation: the state's lookups, the pools created or carried over so far, and what
/// the API being compiled depends on.
struct Context<'a> {
    previous: Option<&'a Snapshot>,
    trust: Trust,
    backend_read_timeout: Option<Duration>,
    /// The pools this compilation's routes use.
    pools: HashMap<UpstreamKey, Arc<Upstream>>,
    documents: &'a mut PolicyDocuments,
    /// What the API being compiled depends on; taken when it is done.
    depends_on: Dependencies,
    /// The earliest notAfter among the client certificates in use that have not expired yet.
    next_expiry: Option<i64>,
    /// What is compiled; references resolve by record key in its collections.
    state: &'a ConfigState,
    /// Certificates by upper-case thumbprint, built when a reference first needs it.
    certificates_by_thumbprint: OnceCell<HashMap<String, &'a StoredCertificate>>,
}

impl<'a> Context<'a> {
    fn new(
        compiler: &Compiler,
        state: &'a ConfigState,
        previous: Option<&'a Snapshot>,
        documents: &'a mut PolicyDocuments,
    ) -> Self {
        Self {
            previous,
            trust: Trust::new(compiler.system_roots.clone(), state),
            backend_read_timeout: compiler.backend_read_timeout,
            pools: HashMap::new(),
            documents,
            depends_on: Dependencies::default(),
            next_expiry: None,
            state,
            certificates_by_thumbprint: OnceCell::new(),
        }
    }

    fn certificate_by_thumbprint(&self, thumbprint: &str) -> Option<&'a StoredCertificate> {
        let state = self.state;
        let index = self.certificates_by_thumbprint.get_or_init(|| {
            state.certificates.values().map(|c| (c.certificate.thumbprint.as_str().to_owned(), c)).collect()
        });
        index.get(&thumbprint.to_ascii_uppercase()).copied()
    }
}
