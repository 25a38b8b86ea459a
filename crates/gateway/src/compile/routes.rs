//! An API, its operations and their composed policies become routes: where each (API,
//! operation) pair goes, and what is done to the request and response on the way.

use std::sync::Arc;
use std::time::Duration;

use certgate_model::{Api, Backend, BackendTls, EntityId, EntityKind, PolicyScope};
use certgate_policy::{BackendRef, CertificateRef, EffectivePolicy, PolicyDocument, SectionKind, Statement, compose};

use super::Context;
use crate::headers::{CannedResponse, CredentialSteps, HeaderStep};
use crate::route::{CompiledApi, CompiledOperation, Forward, RequestStep, ResponseStep, Route};
use crate::telemetry::RouteTelemetry;
use crate::template::UrlTemplate;
use crate::upstream::{Destination, Origin};

impl<'a> Context<'a> {
    /// One API with its operations, each resolved to its route, and what they depend on.
    pub(super) fn api(&mut self, api_id: &EntityId, api: &Api, global: Option<&PolicyDocument>) -> CompiledApi {
        let api_policy = self.policy(&PolicyScope::Api(api_id.clone()));
        let fallback = self.route(api_id, api.service_url.as_deref(), &compose(&[global, api_policy.as_deref()]));
        let fallback_telemetry = telemetry(api_id, None, &fallback);
        let state = self.state;
        let mut operations: Vec<CompiledOperation> = state
            .operations_of(&api_id.key())
            .map(|(op_id, op)| {
                let op_policy = self.policy(&PolicyScope::Operation(api_id.clone(), op_id.clone()));
                let effective = compose(&[global, api_policy.as_deref(), op_policy.as_deref()]);
                let route = self.route(api_id, api.service_url.as_deref(), &effective);
                CompiledOperation {
                    method: (op.method != "*").then(|| op.method.parse().ok()).flatten(),
                    template: UrlTemplate::parse(&op.url_template),
                    telemetry: telemetry(api_id, Some(op_id), &route),
                    route: Arc::new(route),
                }
            })
            .collect();
        operations.sort_by_key(|op| std::cmp::Reverse(op.template.specificity()));
        CompiledApi {
            id: api_id.clone(),
            prefix: if api.path.is_empty() { String::new() } else { format!("/{}", api.path) },
            http: api.protocols.iter().any(|p| p == "http"),
            https: api.protocols.iter().any(|p| p == "https"),
            operations,
            fallback: Arc::new(fallback),
            fallback_telemetry,
            depends_on: std::mem::take(&mut self.depends_on).finish(),
        }
    }

    fn route(&mut self, api: &EntityId, service_url: Option<&str>, policy: &EffectivePolicy) -> Route {
        match self.try_route(service_url, policy) {
            Ok(route) => route,
            Err(reason) => {
                tracing::warn!(api = %api, %reason, "route cannot be served until the configuration is fixed");
                Route::Broken(reason)
            }
        }
    }

    fn try_route(&mut self, service_url: Option<&str>, policy: &EffectivePolicy) -> Result<Route, String> {
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
        let switches = backend.as_ref().map_or_else(BackendTls::default, |(_, b)| b.tls);
        let identity = match certificate {
            Some(reference) => Some(self.certificate(reference)?),
            None => backend.as_ref().map(|(_, b)| self.backend_certificate(b)).transpose()?.flatten(),
        };
        let client_certificate = identity.as_ref().map(|identity| identity.thumbprint().clone());
        let upstream = self.upstream(identity, switches)?;
        Ok(Route::Forward(Box::new(Forward {
            backend: backend.as_ref().map(|(id, _)| id.clone()),
            client_certificate,
            request_steps,
            destination: Destination::new(Origin::new(scheme, authority)?, upstream),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            credentials: backend.map(|(_, b)| CredentialSteps::compile(&b.credentials)).unwrap_or_default(),
            timeout,
            read_timeout: self.backend_read_timeout,
            outbound: response_steps(policy.section(SectionKind::Outbound)),
            on_error: response_steps(policy.section(SectionKind::OnError)),
        })))
    }

    fn backend(&mut self, id: &str) -> Result<(EntityId, &'a Backend), String> {
        let key = id.to_lowercase();
        self.depends_on.reference(EntityKind::Backend, key.clone());
        self.state
            .backends
            .get(&key)
            .map(|(b, backend)| (b.clone(), backend))
            .ok_or_else(|| format!("backend '{id}' does not exist"))
    }
}

/// What a route's requests are counted and logged under.
fn telemetry(api: &EntityId, operation: Option<&EntityId>, route: &Route) -> Arc<RouteTelemetry> {
    let (backend, client_certificate) = match route {
        Route::Forward(forward) => (
            forward.backend.as_ref().map_or_else(|| forward.destination.origin.to_string(), ToString::to_string),
            forward.client_certificate.as_ref().map(ToString::to_string),
        ),
        Route::Respond(_) | Route::Broken(_) => (String::new(), None),
    };
    Arc::new(RouteTelemetry::new(Some(api), operation, backend, client_certificate))
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
