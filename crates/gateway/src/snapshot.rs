//! The one bridge between the planes: an immutable snapshot compiled from the configuration
//! state, swapped atomically; a request loads it once and uses that copy to the end.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use certgate_model::{Api, Backend, CaStoreName, ConfigState, EntityId, EntityKind, PolicyScope, StoredCertificate};
use certgate_pki::{BackendTrust, ClientIdentity, TlsSwitches, backend_client_config, import_pkcs12};
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
    /// Every backend connection pool in use, kept so the next compilation can reuse them.
    pub(crate) upstreams: HashMap<UpstreamKey, Arc<Upstream>>,
    /// The HTTPS listener's server configuration; `None` while its certificate is missing.
    pub(crate) https: Option<Arc<rustls::ServerConfig>>,
    /// When the first client certificate in use expires (Unix seconds): the control plane
    /// recompiles then, so no pooled connection is used past its certificate's notAfter.
    pub next_expiry: Option<i64>,
}

impl Snapshot {
    /// How many distinct TLS identities (connection pools) the snapshot uses.
    pub fn upstream_count(&self) -> usize {
        self.upstreams.len()
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
        let apis =
            state.apis.iter().map(|(id, api)| Arc::new(context.api(id, api, global.as_deref(), &operations))).collect();
        // Only the documents in use stay cached.
        *cache = context.documents_used;
        Snapshot {
            revision: state.revision,
            router: Router::new(apis),
            next_expiry: context.next_expiry,
            upstreams: context.used,
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
        // Pools stay as they were (one no longer used is released by the next full compile).
        context.used = previous.upstreams.clone();
        context.next_expiry = previous.next_expiry;
        let operations = operations_by_api(state, |api| affected.contains(api));
        let global = context.policy(&PolicyScope::Global);
        let mut apis: Vec<Arc<CompiledApi>> =
            previous.router.apis().iter().filter(|api| !affected.contains(&api.id.key())).cloned().collect();
        for (id, api) in state.apis.iter().filter(|(id, _)| affected.contains(&id.key())) {
            apis.push(Arc::new(context.api(id, api, global.as_deref(), &operations)));
        }
        // The documents of the APIs not compiled again stay cached as well.
        cache.extend(context.documents_before);
        cache.extend(context.documents_used);
        Snapshot {
            revision: state.revision,
            router: Router::new(apis),
            next_expiry: context.next_expiry,
            upstreams: context.used,
            https: match &self.https_certificate {
                Some(id) if changed.contains(&(EntityKind::Certificate, id.key())) => self.https_config(state),
                _ => previous.https.clone(),
            },
        }
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
        CompiledApi {
            id: api_id.clone(),
            prefix: if api.path.is_empty() { String::new() } else { format!("/{}", api.path) },
            http: api.protocols.iter().any(|p| p == "http"),
            https: api.protocols.iter().any(|p| p == "https"),
            operations,
            fallback,
            references,
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
                use base64::Engine as _;
                let pfx = zeroize::Zeroizing::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(body_base64)
                        .map_err(|_| "inline authentication-certificate body is not base64".to_owned())?,
                );
                let imported = import_pkcs12(&pfx, password.as_deref().unwrap_or(""))
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

    fn upstream(&mut self, identity: Option<Identity>, switches: TlsSwitches) -> Result<Arc<Upstream>, String> {
        let now = certgate_model::unix_now();
        let expired = identity.as_ref().is_some_and(|i| i.not_after <= now);
        if let Some(i) = identity.as_ref().filter(|i| i.not_after > now) {
            self.next_expiry = Some(self.next_expiry.map_or(i.not_after, |e| e.min(i.not_after)));
        }
        let key = UpstreamKey {
            identity: identity.as_ref().map(|i| i.thumbprint.clone()),
            expired,
            switches,
            trust: self.trust_hash,
        };
        if let Some(upstream) = self.used.get(&key) {
            return Ok(upstream.clone());
        }
        let upstream = match self.previous.and_then(|p| p.upstreams.get(&key)) {
            Some(reused) => reused.clone(),
            None => {
                let config = backend_client_config(identity.as_ref().map(|i| &i.client), switches, &self.trust)
                    .map_err(|e| e.to_string())?;
                Upstream::new(config)
            }
        };
        self.used.insert(key, upstream.clone());
        Ok(upstream)
    }
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
}
