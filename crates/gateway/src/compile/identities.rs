//! Client certificates, TLS switches and trusted CAs become connection pools: one
//! [`Upstream`] per (identity, switches, trust), so a connection made with one certificate
//! never carries a request configured for another.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use certgate_model::{Backend, BackendTls, ConfigState, EntityKind, StoredCertificate, Thumbprint};
use certgate_pki::{BackendTrust, ClientIdentity, backend_client_config, import_pkcs12_base64};
use certgate_policy::CertificateRef;
use rustls_pki_types::CertificateDer;

use super::Context;
use crate::upstream::{Upstream, UpstreamKey};

/// The CA certificates backends are validated against: the system's roots plus the uploaded
/// ones, with a hash of the uploaded set that is part of every pool key.
pub(super) struct Trust {
    backend: BackendTrust,
    hash: u64,
}

impl Trust {
    pub(super) fn new(roots: Vec<CertificateDer<'static>>, state: &ConfigState) -> Self {
        let mut hasher = DefaultHasher::new();
        for (_, ca) in state.ca_certificates.values() {
            ca.thumbprint.hash(&mut hasher);
            ca.store_name.as_str().hash(&mut hasher);
        }
        let backend = BackendTrust::with_uploaded(roots, state.ca_certificates.values().map(|(_, ca)| ca));
        Self { backend, hash: hasher.finish() }
    }
}

/// A client certificate a route presents.
pub(super) struct Identity {
    not_after: i64,
    thumbprint: Thumbprint,
    client: ClientIdentity,
}

impl Identity {
    pub(super) fn thumbprint(&self) -> &Thumbprint {
        &self.thumbprint
    }
}

impl Context<'_> {
    /// The certificate a backend entity names: the first by id, else the first by thumbprint.
    pub(super) fn backend_certificate(&mut self, backend: &Backend) -> Result<Option<Identity>, String> {
        let credentials = &backend.credentials;
        if let Some(id) = credentials.certificate_ids.first() {
            return self.certificate(&CertificateRef::Id(id.to_string())).map(Some);
        }
        match credentials.certificate.first() {
            Some(thumbprint) => self.certificate(&CertificateRef::Thumbprint(thumbprint.to_string())).map(Some),
            None => Ok(None),
        }
    }

    /// The certificate an `<authentication-certificate>` names; a reference is a dependency
    /// even when it names nothing (yet).
    pub(super) fn certificate(&mut self, reference: &CertificateRef) -> Result<Identity, String> {
        let stored: Option<&StoredCertificate> = match reference {
            CertificateRef::Id(id) => {
                let key = id.to_lowercase();
                self.depends_on.reference(EntityKind::Certificate, key.clone());
                self.state.certificates.get(&key)
            }
            CertificateRef::Thumbprint(t) => {
                self.depends_on.any_certificate = true;
                self.certificate_by_thumbprint(t)
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
    pub(super) fn upstream(
        &mut self,
        identity: Option<Identity>,
        switches: BackendTls,
    ) -> Result<Arc<Upstream>, String> {
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
            UpstreamKey { identity: identity.as_ref().map(|i| i.thumbprint.clone()), switches, trust: self.trust.hash };
        self.depends_on.upstream(key.clone());
        if let Some(upstream) = self.pools.get(&key) {
            return Ok(upstream.clone());
        }
        let upstream = match self.previous.and_then(|p| p.upstreams.get(&key)) {
            Some(reused) => reused.upstream.clone(),
            None => {
                let usable_until = identity.as_ref().and_then(|i| monotonic_deadline(i.not_after));
                let client = identity.map(|i| i.client.valid_until(i.not_after));
                let config =
                    backend_client_config(client.as_ref(), switches, &self.trust.backend).map_err(|e| e.to_string())?;
                Upstream::new(config, usable_until)
            }
        };
        self.pools.insert(key, upstream.clone());
        Ok(upstream)
    }
}

/// The monotonic instant at which the wall clock reaches `unix_seconds` (now, if it has; `None`
/// when that is too far ahead to represent, i.e. never in practice).
fn monotonic_deadline(unix_seconds: i64) -> Option<Instant> {
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(unix_seconds).unwrap_or(0)))?;
    Instant::now().checked_add(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}
