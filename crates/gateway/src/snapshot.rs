//! The one bridge between the planes: an immutable snapshot compiled from the configuration
//! state, swapped atomically; a request loads it once and uses that copy to the end.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use certgate_model::{Api, Backend, CaStoreName, ConfigState, EntityId, EntityKind, PolicyScope, StoredCertificate};
use certgate_pki::{BackendTrust, ClientIdentity, TlsSwitches, backend_client_config, import_pkcs12_base64};
use certgate_policy::{BackendRef, CertificateRef, EffectivePolicy, PolicyDocument, SectionKind, Statement, compose};
use rustls_pki_types::CertificateDer;

use crate::headers::{CannedResponse, CredentialSteps, HeaderStep};
use crate::route::{CompiledApi, CompiledOperation, Forward, RequestStep, ResponseStep, Route, Router};
use crate::template::UrlTemplate;
use crate::upstream::{Origin, Upstream, UpstreamKey};

/// The compiled configuration the data plane serves from.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The store revision it was compiled from.
    pub revision: i64,
    pub(crate) router: Router,
    /// Every backend connection pool in use, with how many compiled APIs use it: kept so the
    /// next compilation can reuse them, and retire those no API uses any more.
    pub(crate) upstreams: HashMap<UpstreamKey, PoolUse>,
    /// The HTTPS listener's server configuration; `None` while its certificate is missing.
    pub(crate) https: Option<Arc<rustls::ServerConfig>>,
    /// When the first client certificate in use expires (Unix seconds): the control plane
    /// recompiles at the first instant of that second, and the routes using it then answer 500
    /// (the data plane itself stops presenting it at that instant, see `certgate_pki`).
    pub next_expiry: Option<i64>,
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
        for (key, used) in &self.upstreams {
            let kept = next.upstreams.get(key).is_some_and(|n| Arc::ptr_eq(&n.upstream, &used.upstream));
            if !kept {
                used.upstream.retire();
                retired += 1;
            }
        }
        retired
    }
}

/// Compiles snapshots. Holds what does not change between compilations.
pub struct Compiler {
    system_roots: Vec<CertificateDer<'static>>,
    /// The certificate entity the HTTPS listener serves (`--https-certificate-id`).
    https_certificate: Option<EntityId>,
    /// Parsed policy documents by text, from the last compilation: at 10 000 APIs parsing is
    /// most of a compilation, and one change leaves all the other documents as they were.
    parsed_policies: Mutex<HashMap<String, Arc<PolicyDocument>>>,
}

impl Compiler {
    pub fn new(system_roots: Vec<CertificateDer<'static>>) -> Self {
        Self { system_roots, https_certificate: None, parsed_policies: Mutex::default() }
    }

    /// Serves the HTTPS listener with this certificate entity (followed across replacements).
    pub fn with_https_certificate(mut self, id: EntityId) -> Self {
        self.https_certificate = Some(id);
        self
    }

    fn https_config(&self, state: &ConfigState) -> Option<Arc<rustls::ServerConfig>> {
        let id = self.https_certificate.as_ref()?;
        let Some(stored) = state.certificates.iter().find(|c| c.id.key() == id.key()) else {
            tracing::error!(certificate = %id, "the HTTPS listener's certificate does not exist; HTTPS connections are refused");
            return None;
        };
        let identity = ClientIdentity::from_der(&stored.certificate.chain, &stored.private_key);
        certgate_pki::listener_server_config(&identity)
            .map_err(|e| tracing::error!(certificate = %id, error = %e, "the HTTPS listener's certificate is unusable"))
            .ok()
    }

    /// Compiles `state`. Pools of `previous` whose key is unchanged are carried over, so a
    /// configuration change does not drop warm backend connections. A route that cannot be
    /// compiled becomes a `Broken` route (500 + log line) instead of failing the snapshot.
    pub fn compile(&self, state: &ConfigState, previous: Option<&Snapshot>) -> Snapshot {
        let mut cache = self.parsed_policies.lock().unwrap_or_else(PoisonError::into_inner);
        let mut context = Context::new(self, state, previous, std::mem::take(&mut *cache));
        let operations = operations_by_api(state, |_| true);
        let global = context.policy(&PolicyScope::Global);
        let apis: Vec<Arc<CompiledApi>> =
            state.apis.iter().map(|(id, api)| Arc::new(context.api(id, api, global.as_deref(), &operations))).collect();
        // Only the documents in use stay cached.
        *cache = context.documents_used;
        let mut upstreams = HashMap::new();
        count_pool_users(&mut upstreams, &context.used, &apis);
        Snapshot {
            revision: state.revision,
            router: Router::new(apis),
            next_expiry: context.next_expiry,
            upstreams,
            https: self.https_config(state),
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
        let Some(affected) = affected_apis(changed, previous) else { return self.compile(state, Some(previous)) };
        let mut cache = self.parsed_policies.lock().unwrap_or_else(PoisonError::into_inner);
        let mut context = Context::new(self, state, Some(previous), std::mem::take(&mut *cache));
        context.next_expiry = previous.next_expiry;
        let operations = operations_by_api(state, |api| affected.contains(api));
        let global = context.policy(&PolicyScope::Global);
        // The pools of the APIs compiled again lose those users; a pool no API uses any more
        // is left out (and retired once the snapshot is published).
        let mut upstreams = previous.upstreams.clone();
        let mut apis: Vec<Arc<CompiledApi>> = Vec::with_capacity(previous.router.apis().len());
        for api in previous.router.apis() {
            if !affected.contains(&api.id.key()) {
                apis.push(api.clone());
                continue;
            }
            for key in &api.upstreams {
                if let Some(used) = upstreams.get_mut(key) {
                    used.apis -= 1;
                    if used.apis == 0 {
                        upstreams.remove(key);
                    }
                }
            }
        }
        let mut compiled = Vec::new();
        for (id, api) in state.apis.iter().filter(|(id, _)| affected.contains(&id.key())) {
            compiled.push(Arc::new(context.api(id, api, global.as_deref(), &operations)));
        }
        count_pool_users(&mut upstreams, &context.used, &compiled);
        apis.extend(compiled);
        // The documents of the APIs not compiled again stay cached as well.
        cache.extend(context.documents_before);
        cache.extend(context.documents_used);
        Snapshot {
            revision: state.revision,
            router: Router::new(apis),
            next_expiry: context.next_expiry,
            upstreams,
            https: match &self.https_certificate {
                Some(id) if changed.contains(&(EntityKind::Certificate, id.key())) => self.https_config(state),
                _ => previous.https.clone(),
            },
        }
    }
}

/// Adds the pools `apis` route to (found in `created`, this compilation's pools) to `upstreams`.
fn count_pool_users(
    upstreams: &mut HashMap<UpstreamKey, PoolUse>,
    created: &HashMap<UpstreamKey, Arc<Upstream>>,
    apis: &[Arc<CompiledApi>],
) {
    for key in apis.iter().flat_map(|api| &api.upstreams) {
        let Some(upstream) = created.get(key) else { continue };
        upstreams.entry(key.clone()).or_insert_with(|| PoolUse { upstream: upstream.clone(), apis: 0 }).apis += 1;
    }
}

/// The APIs (by key) that `changed` touches, or `None` when a change reaches every API (a CA
/// certificate, the global policy).
fn affected_apis(changed: &[(EntityKind, String)], previous: &Snapshot) -> Option<HashSet<String>> {
    let mut affected = HashSet::new();
    for (kind, key) in changed {
        match kind {
            EntityKind::Api => drop(affected.insert(key.clone())),
            // `api:op` belongs to one API; a policy's `:` is the global one.
            EntityKind::Operation => drop(affected.insert(api_part(key).to_owned())),
            EntityKind::Policy if key != ":" => drop(affected.insert(api_part(key).to_owned())),
            EntityKind::Certificate | EntityKind::Backend => {
                let users = previous.router.apis().iter().filter(|api| {
                    api.references.iter().any(|(k, r)| k == kind && r == key)
                        || (*kind == EntityKind::Certificate && api.any_certificate)
                });
                affected.extend(users.map(|api| api.id.key()));
            }
            _ => return None,
        }
    }
    Some(affected)
}

fn api_part(key: &str) -> &str {
    key.split_once(':').map_or(key, |(api, _)| api)
}

/// The operations of the APIs `wanted` accepts, by API key.
fn operations_by_api(
    state: &ConfigState,
    wanted: impl Fn(&String) -> bool,
) -> HashMap<String, Vec<&(EntityId, certgate_model::Operation)>> {
    let mut by_api: HashMap<String, Vec<_>> = HashMap::new();
    for operation in &state.operations {
        let api = operation.1.api_id.key();
        if wanted(&api) {
            by_api.entry(api).or_default().push(operation);
        }
    }
    by_api
}

struct Context<'a> {
    previous: Option<&'a Snapshot>,
    trust: BackendTrust,
    trust_hash: u64,
    used: HashMap<UpstreamKey, Arc<Upstream>>,
    parsed: HashMap<PolicyScope, Option<Arc<PolicyDocument>>>,
    /// What the API being compiled depends on (see [`CompiledApi::references`]).
    references: Vec<(EntityKind, String)>,
    /// The pools the API being compiled routes to (see [`CompiledApi::upstreams`]).
    api_upstreams: Vec<UpstreamKey>,
    any_certificate: bool,
    /// Documents parsed by the previous compilation, by text; and those this one uses.
    documents_before: HashMap<String, Arc<PolicyDocument>>,
    documents_used: HashMap<String, Arc<PolicyDocument>>,
    /// The earliest notAfter among the client certificates in use that have not expired yet.
    next_expiry: Option<i64>,
    /// Lookups by case-folded id (and certificates by upper-case thumbprint), built once per
    /// compilation so that resolving references stays linear in the size of the configuration.
    certificates_by_id: HashMap<String, &'a StoredCertificate>,
    certificates_by_thumbprint: HashMap<String, &'a StoredCertificate>,
    backends_by_id: HashMap<String, (&'a EntityId, &'a Backend)>,
    policies_by_scope: HashMap<String, &'a str>,
}

impl<'a> Context<'a> {
    fn new(
        compiler: &Compiler,
        state: &'a ConfigState,
        previous: Option<&'a Snapshot>,
        documents_before: HashMap<String, Arc<PolicyDocument>>,
    ) -> Self {
        let mut roots = compiler.system_roots.clone();
        let mut intermediates = Vec::new();
        let mut hasher = DefaultHasher::new();
        for (_, ca) in &state.ca_certificates {
            ca.thumbprint.hash(&mut hasher);
            ca.store_name.as_str().hash(&mut hasher);
            let der = CertificateDer::from(ca.der.clone());
            match ca.store_name {
                CaStoreName::Root => roots.push(der),
                CaStoreName::CertificateAuthority => intermediates.push(der),
            }
        }
        Self {
            previous,
            trust: BackendTrust::new(roots, intermediates),
            trust_hash: hasher.finish(),
            used: HashMap::new(),
            parsed: HashMap::new(),
            documents_before,
            documents_used: HashMap::new(),
            references: Vec::new(),
            api_upstreams: Vec::new(),
            any_certificate: false,
            next_expiry: None,
            certificates_by_id: state.certificates.iter().map(|c| (c.id.key(), c)).collect(),
            certificates_by_thumbprint: state
                .certificates
                .iter()
                .map(|c| (c.certificate.thumbprint.as_str().to_owned(), c))
                .collect(),
            backends_by_id: state.backends.iter().map(|(id, b)| (id.key(), (id, b))).collect(),
            policies_by_scope: state
                .policies
                .iter()
                .map(|(scope, text)| (scope.record_id().key(), text.as_str()))
                .collect(),
        }
    }

    /// One API with its operations, each resolved to its route, and what they depend on.
    fn api(
        &mut self,
        api_id: &EntityId,
        api: &Api,
        global: Option<&PolicyDocument>,
        operations: &HashMap<String, Vec<&(EntityId, certgate_model::Operation)>>,
    ) -> CompiledApi {
        let api_policy = self.policy(&PolicyScope::Api(api_id.clone()));
        let fallback =
            Arc::new(self.route(api_id, api.service_url.as_deref(), &compose(&[global, api_policy.as_deref()])));
        let mut operations: Vec<CompiledOperation> = operations
            .get(&api_id.key())
            .into_iter()
            .flatten()
            .map(|(op_id, op)| {
                let op_policy = self.policy(&PolicyScope::Operation(api_id.clone(), op_id.clone()));
                let effective = compose(&[global, api_policy.as_deref(), op_policy.as_deref()]);
                CompiledOperation {
                    method: (op.method != "*").then(|| op.method.parse().ok()).flatten(),
                    template: UrlTemplate::parse(&op.url_template),
                    route: Arc::new(self.route(api_id, api.service_url.as_deref(), &effective)),
                }
            })
            .collect();
        operations.sort_by_key(|op| std::cmp::Reverse(op.template.specificity()));
        let mut references = std::mem::take(&mut self.references);
        references.sort();
        references.dedup();
        // A handful per API: a linear dedup (keys have no order).
        let upstreams = std::mem::take(&mut self.api_upstreams).into_iter().fold(Vec::new(), |mut unique, key| {
            if !unique.contains(&key) {
                unique.push(key);
            }
            unique
        });
        CompiledApi {
            id: api_id.clone(),
            prefix: if api.path.is_empty() { String::new() } else { format!("/{}", api.path) },
            http: api.protocols.iter().any(|p| p == "http"),
            https: api.protocols.iter().any(|p| p == "https"),
            operations,
            fallback,
            references,
            upstreams,
            any_certificate: std::mem::take(&mut self.any_certificate),
        }
    }

    /// The parsed policy of a scope (stored documents were validated when saved).
    fn policy(&mut self, scope: &PolicyScope) -> Option<Arc<PolicyDocument>> {
        if let Some(parsed) = self.parsed.get(scope) {
            return parsed.clone();
        }
        let parsed = self.policies_by_scope.get(&scope.record_id().key()).copied().and_then(|text| {
            if let Some(document) = self.documents_used.get(text) {
                return Some(document.clone());
            }
            if let Some(document) = self.documents_before.remove(text) {
                self.documents_used.insert(text.to_owned(), document.clone());
                return Some(document);
            }
            let document = certgate_policy::parse(text)
                .map_err(
                    |e| tracing::error!(scope = %scope.path(), error = %e, "stored policy no longer parses; ignored"),
                )
                .ok()
                .map(Arc::new)?;
            self.documents_used.insert(text.to_owned(), document.clone());
            Some(document)
        });
        self.parsed.insert(scope.clone(), parsed.clone());
        parsed
    }

    fn route(&mut self, api: &EntityId, service_url: Option<&str>, policy: &EffectivePolicy) -> Route {
        match self.try_route(api, service_url, policy) {
            Ok(route) => route,
            Err(reason) => {
                tracing::warn!(api = %api, %reason, "route cannot be served until the configuration is fixed");
                Route::Broken(reason)
            }
        }
    }

    fn try_route(
        &mut self,
        api: &EntityId,
        service_url: Option<&str>,
        policy: &EffectivePolicy,
    ) -> Result<Route, String> {
        let mut request_steps = Vec::new();
        let mut target: Option<&BackendRef> = None;
        let mut certificate: Option<&CertificateRef> = None;
        for statement in policy.section(SectionKind::Inbound) {
            match statement {
                Statement::SetHeader(h) => request_steps.extend(HeaderStep::compile(h).map(RequestStep::SetHeader)),
                Statement::RewriteUri { template, copy_unmatched_params } => {
                    request_steps.push(RequestStep::RewriteUri {
                        template: template.clone(),
                        copy_unmatched_params: *copy_unmatched_params,
                    })
                }
                Statement::SetBackendService(r) => target = Some(r),
                Statement::AuthenticationCertificate(c) => certificate = Some(c),
                Statement::ReturnResponse(r) => return Ok(Route::Respond(CannedResponse::compile(r))),
                Statement::Base | Statement::ForwardRequest { .. } => {}
            }
        }
        let mut timeout = Duration::from_secs(300);
        for statement in policy.section(SectionKind::Backend) {
            match statement {
                Statement::ForwardRequest { timeout: t } => timeout = *t,
                Statement::SetBackendService(r) => target = Some(r),
                _ => {}
            }
        }
        let backend: Option<(EntityId, &Backend)> = match target {
            Some(BackendRef::Id(id)) => Some(self.backend(id)?),
            _ => None,
        };
        let url = match (target, &backend) {
            (Some(BackendRef::BaseUrl(url)), _) => url.as_str(),
            (_, Some((_, backend))) => backend.url.as_str(),
            _ => service_url.ok_or("the API has no serviceUrl and no policy sets a backend")?,
        };
        let uri: http::Uri = url.parse().map_err(|e| format!("backend URL '{url}' is invalid: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned()) else {
            return Err(format!("backend URL '{url}' is not absolute"));
        };
        let switches = backend.as_ref().map_or_else(TlsSwitches::default, |(_, b)| TlsSwitches {
            validate_chain: b.tls.validate_certificate_chain,
            validate_name: b.tls.validate_certificate_name,
        });
        let identity = match certificate {
            Some(reference) => Some(self.certificate(reference)?),
            None => backend.as_ref().map(|(_, b)| self.backend_certificate(b)).transpose()?.flatten(),
        };
        let upstream = self.upstream(identity, switches)?;
        Ok(Route::Forward(Box::new(Forward {
            api: api.clone(),
            backend: backend.as_ref().map(|(id, _)| id.clone()),
            request_steps,
            origin: Origin::new(scheme, authority)?,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            upstream,
            credentials: backend.map(|(_, b)| CredentialSteps::compile(&b.credentials)).unwrap_or_default(),
            timeout,
            outbound: response_steps(policy.section(SectionKind::Outbound)),
            on_error: response_steps(policy.section(SectionKind::OnError)),
        })))
    }

    fn backend(&mut self, id: &str) -> Result<(EntityId, &'a Backend), String> {
        let key = id.to_lowercase();
        self.references.push((EntityKind::Backend, key.clone()));
        self.backends_by_id
            .get(&key)
            .map(|(b, backend)| ((*b).clone(), *backend))
            .ok_or_else(|| format!("backend '{id}' does not exist"))
    }

    fn backend_certificate(&mut self, backend: &Backend) -> Result<Option<Identity>, String> {
        let credentials = &backend.credentials;
        if let Some(id) = credentials.certificate_ids.first() {
            return self.certificate(&CertificateRef::Id(id.to_string())).map(Some);
        }
        match credentials.certificate.first() {
            Some(thumbprint) => self.certificate(&CertificateRef::Thumbprint(thumbprint.to_string())).map(Some),
            None => Ok(None),
        }
    }

    fn certificate(&mut self, reference: &CertificateRef) -> Result<Identity, String> {
        let stored: Option<&StoredCertificate> = match reference {
            CertificateRef::Id(id) => {
                let key = id.to_lowercase();
                self.references.push((EntityKind::Certificate, key.clone()));
                self.certificates_by_id.get(&key).copied()
            }
            CertificateRef::Thumbprint(t) => {
                self.any_certificate = true;
                self.certificates_by_thumbprint.get(&t.to_ascii_uppercase()).copied()
            }
            CertificateRef::Inline { body_base64, password } => {
                let imported = import_pkcs12_base64(body_base64, password.as_deref().unwrap_or(""))
                    .map_err(|e| format!("inline authentication-certificate: {e}"))?;
                return Ok(Identity {
                    not_after: imported.not_after,
                    thumbprint: imported.thumbprint,
                    client: ClientIdentity::from_der(&imported.chain, &imported.private_key),
                });
            }
        };
        let stored = stored.ok_or_else(|| format!("certificate {reference:?} does not exist"))?;
        Ok(Identity {
            not_after: stored.certificate.not_after,
            thumbprint: stored.certificate.thumbprint.clone(),
            client: ClientIdentity::from_der(&stored.certificate.chain, &stored.private_key),
        })
    }

    /// The pool for `identity` with `switches`. A certificate counts as expired from the first
    /// instant of its notAfter second (`not_after <= now`, as the handshake decides it): its
    /// routes are broken from then on, so no request is sent with it.
    fn upstream(&mut self, identity: Option<Identity>, switches: TlsSwitches) -> Result<Arc<Upstream>, String> {
        if let Some(identity) = &identity {
            if identity.not_after <= certgate_model::unix_now() {
                return Err(format!(
                    "the client certificate {} expired at {}; requests are not sent with an expired certificate",
                    identity.thumbprint,
                    certgate_pki::format_utc(identity.not_after)
                ));
            }
            self.next_expiry = Some(self.next_expiry.map_or(identity.not_after, |e| e.min(identity.not_after)));
        }
        let key =
            UpstreamKey { identity: identity.as_ref().map(|i| i.thumbprint.clone()), switches, trust: self.trust_hash };
        self.api_upstreams.push(key.clone());
        if let Some(upstream) = self.used.get(&key) {
            return Ok(upstream.clone());
        }
        let upstream = match self.previous.and_then(|p| p.upstreams.get(&key)) {
            Some(reused) => reused.upstream.clone(),
            None => {
                let usable_until = identity.as_ref().and_then(|i| monotonic_deadline(i.not_after));
                let client = identity.map(|i| i.client.valid_until(i.not_after));
                let config =
                    backend_client_config(client.as_ref(), switches, &self.trust).map_err(|e| e.to_string())?;
                Upstream::new(config, usable_until)
            }
        };
        self.used.insert(key, upstream.clone());
        Ok(upstream)
    }
}

/// The monotonic instant at which the wall clock reaches `unix_seconds` (now, if it has; `None`
/// when that is too far ahead to represent, i.e. never in practice).
fn monotonic_deadline(unix_seconds: i64) -> Option<Instant> {
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(unix_seconds).unwrap_or(0)))?;
    Instant::now().checked_add(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

struct Identity {
    not_after: i64,
    thumbprint: certgate_model::Thumbprint,
    client: ClientIdentity,
}

fn response_steps(statements: &[Statement]) -> Vec<ResponseStep> {
    statements
        .iter()
        .filter_map(|s| match s {
            Statement::SetHeader(h) => HeaderStep::compile(h).map(ResponseStep::SetHeader),
            Statement::ReturnResponse(r) => Some(ResponseStep::Replace(CannedResponse::compile(r))),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> EntityId {
        EntityId::parse(text).expect("valid id")
    }

    /// APIs `api0..count`, each forwarding to its own service URL.
    fn state(count: usize) -> ConfigState {
        let mut state = ConfigState::default();
        for i in 0..count {
            let api = Api {
                display_name: format!("API {i}"),
                path: format!("api{i}"),
                service_url: Some(format!("http://127.0.0.1:9/{i}")),
                protocols: vec!["http".into()],
                subscription_required: false,
            };
            state.apis.push((id(&format!("api{i}")), api));
        }
        state
    }

    fn respond_policy(status: u16) -> String {
        format!(
            r#"<policies><inbound><return-response><set-status code="{status}" /></return-response></inbound></policies>"#
        )
    }

    /// What `path` resolves to: the backend base path, or the status of a canned response.
    fn outcome(snapshot: &Snapshot, path: &str) -> Option<String> {
        let matched = snapshot.router.find(path, &http::Method::GET, false)?;
        Some(match matched.route.as_ref() {
            Route::Forward(forward) => forward.base_path.clone(),
            Route::Respond(response) => response.respond().status().to_string(),
            Route::Broken(reason) => reason.clone(),
        })
    }

    fn shared(a: &Snapshot, b: &Snapshot, api: &str) -> bool {
        let find = |s: &Snapshot| s.router.apis().iter().find(|c| c.id.as_str() == api).cloned();
        matches!((find(a), find(b)), (Some(x), Some(y)) if Arc::ptr_eq(&x, &y))
    }

    #[test]
    fn api_local_changes_compile_only_their_api_and_match_a_full_compilation() {
        let compiler = Compiler::new(Vec::new());
        let mut state = state(4);
        let before = compiler.compile(&state, None);

        state.policies.push((PolicyScope::Api(id("api1")), respond_policy(418)));
        state.apis.retain(|(api, _)| api.as_str() != "api2");
        let changed = [(EntityKind::Policy, "api1".to_owned()), (EntityKind::Api, "api2".to_owned())];
        let after = compiler.compile_changes(&state, &before, &changed);
        let full = compiler.compile(&state, Some(&before));
        for path in ["/api0/x", "/api1/x", "/api2/x", "/api3/x"] {
            assert_eq!(outcome(&after, path), outcome(&full, path), "{path}");
        }
        assert_eq!(outcome(&after, "/api1/x").as_deref(), Some("418 I'm a teapot"));
        assert_eq!(outcome(&after, "/api2/x"), None, "a deleted API is gone");
        assert!(shared(&before, &after, "api0") && shared(&before, &after, "api3"), "untouched APIs are shared");
        assert!(!shared(&before, &after, "api1"));

        // The global policy reaches every API: everything is compiled again.
        state.policies.push((PolicyScope::Global, respond_policy(503)));
        let global = compiler.compile_changes(&state, &after, &[(EntityKind::Policy, ":".to_owned())]);
        assert_eq!(outcome(&global, "/api0/x").as_deref(), Some("503 Service Unavailable"));
        assert!(!shared(&after, &global, "api0"));
    }

    fn backend(url: &str) -> Backend {
        Backend {
            url: url.into(),
            title: None,
            description: None,
            credentials: Default::default(),
            tls: certgate_model::BackendTls { validate_certificate_chain: true, validate_certificate_name: true },
        }
    }

    #[test]
    fn a_backend_change_compiles_the_apis_that_name_it_even_when_it_was_missing() {
        let compiler = Compiler::new(Vec::new());
        let mut state = state(3);
        for (api, target) in [("api0", "b0"), ("api1", "b1"), ("api2", "missing")] {
            let text =
                format!(r#"<policies><inbound><set-backend-service backend-id="{target}" /></inbound></policies>"#);
            state.policies.push((PolicyScope::Api(id(api)), text));
        }
        state.backends.push((id("b0"), backend("http://127.0.0.1:9/b0")));
        state.backends.push((id("b1"), backend("http://127.0.0.1:9/b1")));
        let before = compiler.compile(&state, None);
        assert!(outcome(&before, "/api2/x").is_some_and(|o| o.contains("does not exist")));

        state.backends[0].1.url = "http://127.0.0.1:9/b0-moved".into();
        let after = compiler.compile_changes(&state, &before, &[(EntityKind::Backend, "b0".to_owned())]);
        assert_eq!(outcome(&after, "/api0/x").as_deref(), Some("/b0-moved"));
        assert!(shared(&before, &after, "api1") && shared(&before, &after, "api2"));

        state.backends.push((id("missing"), backend("http://127.0.0.1:9/found")));
        let found = compiler.compile_changes(&state, &after, &[(EntityKind::Backend, "missing".to_owned())]);
        assert_eq!(outcome(&found, "/api2/x").as_deref(), Some("/found"), "a dangling reference is a dependency too");
        assert!(shared(&after, &found, "api0") && shared(&after, &found, "api1"));
    }

    #[test]
    fn an_incremental_compile_drops_the_pools_no_api_uses_and_retires_them_after_the_swap() {
        let compiler = Compiler::new(Vec::new());
        let mut state = state(3);
        for (api, target) in [("api0", "strict"), ("api1", "strict"), ("api2", "lax")] {
            let text =
                format!(r#"<policies><inbound><set-backend-service backend-id="{target}" /></inbound></policies>"#);
            state.policies.push((PolicyScope::Api(id(api)), text));
        }
        state.backends.push((id("strict"), backend("https://127.0.0.1:9/")));
        let mut lax = backend("https://127.0.0.1:9/");
        lax.tls.validate_certificate_chain = false;
        state.backends.push((id("lax"), lax));
        let before = compiler.compile(&state, None);
        assert_eq!(before.upstream_count(), 2, "one pool per set of TLS switches");

        // The lax backend becomes strict: its pool has no user left.
        state.backends[1].1.tls.validate_certificate_chain = true;
        let after = compiler.compile_changes(&state, &before, &[(EntityKind::Backend, "lax".to_owned())]);
        assert_eq!(after.upstream_count(), 1);
        let pool = after.upstreams.values().next().expect("one pool");
        assert_eq!(pool.apis, 3, "all three APIs now share the strict pool");
        let full = compiler.compile(&state, Some(&before));
        assert_eq!(full.upstreams.values().next().map(|p| p.apis), Some(3), "as a full compilation counts");
        assert_eq!(before.retire_pools_unused_by(&after), 1, "the lax pool is retired, the strict one kept");
    }
}
