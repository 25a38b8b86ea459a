//! Reference checks: names used by backends and policies must exist when saved, and an entity
//! that something still names cannot be deleted (409 listing every referrer).

use certgate_model::{Backend, Certificate, EntityId, EntityKind, Policy, PolicyScope, Thumbprint};
use certgate_store::{Precondition, Unchanged};

use crate::error::ErrorDetail;
use crate::resource::Loaded;
use crate::{AdminState, ApiError};

/// Resolves the certificates and backends a write names, and remembers them: the write then
/// commits only while they still exist ([`References::precondition`]). Ids are one keyed read
/// each; thumbprints have no index, so the first one reads the certificates once (then kept).
pub(crate) struct References<'s> {
    state: &'s AdminState,
    all: Option<Vec<Loaded<Certificate>>>,
    /// The entities found by id, as stored.
    found: Vec<(EntityKind, EntityId)>,
}

impl<'s> References<'s> {
    /// The kinds whose writes may race a write that resolved names here: what its
    /// `without_races` watches (and [`References::precondition`] keeps only when needed).
    pub(crate) const RACED_BY: &'static [EntityKind] = &[EntityKind::Certificate];

    pub(crate) fn new(state: &'s AdminState) -> Self {
        Self { state, all: None, found: Vec::new() }
    }

    /// The certificate's id as stored, or APIM's 400 `Certificate with id '<id>' not found.`
    pub(crate) async fn certificate(&mut self, target: &str, raw: &str) -> Result<EntityId, ApiError> {
        self.by_id(EntityKind::Certificate, raw)
            .await?
            .ok_or_else(|| ApiError::validation(target, format!("Certificate with id '{raw}' not found.")))
    }

    /// The backend's id as stored, or a 400 `Backend with id '<id>' not found.`
    pub(crate) async fn backend(&mut self, target: &str, raw: &str) -> Result<EntityId, ApiError> {
        self.by_id(EntityKind::Backend, raw)
            .await?
            .ok_or_else(|| ApiError::validation(target, format!("Backend with id '{raw}' not found.")))
    }

    async fn by_id(&mut self, kind: EntityKind, raw: &str) -> Result<Option<EntityId>, ApiError> {
        let Ok(id) = EntityId::parse(raw) else { return Ok(None) };
        let Some(record) = self.state.store.get(kind, &id).await? else { return Ok(None) };
        self.found.push((kind, record.id.clone()));
        Ok(Some(record.id))
    }

    /// An uploaded certificate by thumbprint (any case), normalised to upper case.
    pub(crate) async fn certificate_by_thumbprint(&mut self, target: &str, raw: &str) -> Result<Thumbprint, ApiError> {
        let wanted = Thumbprint::from_hex(raw.trim());
        if self.all.is_none() {
            self.all = Some(self.state.load_all(EntityKind::Certificate).await?);
        }
        match self.all.iter().flatten().find(|c| c.entity.thumbprint == wanted) {
            // A vault certificate's thumbprint changes with every rotation.
            Some(c) if c.entity.source.is_vault() => Err(ApiError::validation(
                target,
                format!(
                    "Certificate '{}' is stored in a vault and cannot be referenced by thumbprint. Please reference it with certificate-id '{}'.",
                    c.id, c.id
                ),
            )),
            Some(_) => Ok(wanted),
            None => Err(ApiError::validation(target, format!("Certificate with thumbprint '{raw}' not found."))),
        }
    }

    /// What the write asserts when it commits: every entity found by id still exists and, only
    /// when a thumbprint was resolved, `unchanged` ([`References::RACED_BY`]: any certificate
    /// change may move a thumbprint). Otherwise it is raced and checked again; writes of
    /// unrelated entities never make it retry.
    pub(crate) fn precondition(self, unchanged: Unchanged) -> Precondition {
        Precondition {
            unchanged: self.all.is_some().then_some(unchanged),
            present: self.found,
            ..Precondition::default()
        }
    }
}

/// An entity about to be deleted.
pub(crate) enum Target<'a> {
    Certificate(&'a EntityId, &'a Thumbprint),
    Backend(&'a EntityId),
}

/// 409 Conflict listing every policy and backend that still names `target`.
pub(crate) async fn refuse_if_referenced(state: &AdminState, target: Target<'_>) -> Result<(), ApiError> {
    let (what, name) = match &target {
        Target::Certificate(id, _) => ("Certificate", *id),
        Target::Backend(id) => ("Backend", *id),
    };
    let referrers = referrers(state, target).await?;
    if referrers.is_empty() {
        return Ok(());
    }
    let details = referrers
        .iter()
        .map(|r| ErrorDetail {
            code: "Conflict".into(),
            target: r.clone(),
            message: format!("{r} references '{name}'"),
        })
        .collect();
    Err(ApiError::conflict(
        format!(
            "{what} '{name}' is in use by {} and cannot be deleted; remove those references first.",
            referrers.join(", ")
        ),
        details,
    ))
}

/// The management paths of every policy and backend that names `target`.
pub(crate) async fn referrers(state: &AdminState, target: Target<'_>) -> Result<Vec<String>, ApiError> {
    let same = |a: &str, b: &EntityId| a.to_lowercase() == b.key();
    let policies: Vec<Loaded<Policy>> = state.load_all(EntityKind::Policy).await?;
    let mut referrers: Vec<String> = Vec::new();
    match target {
        Target::Certificate(id, thumbprint) => {
            // A thumbprint reference stays satisfied while another certificate has the same one.
            let thumbprint_unique = state
                .load_all::<Certificate>(EntityKind::Certificate)
                .await?
                .iter()
                .all(|c| c.id.key() == id.key() || &c.entity.thumbprint != thumbprint);
            let by_thumbprint = |t: &str| thumbprint_unique && t.eq_ignore_ascii_case(thumbprint.as_str());
            for backend in state.load_all::<Backend>(EntityKind::Backend).await? {
                let credentials = &backend.entity.credentials;
                if credentials.certificate_ids.iter().any(|c| c.key() == id.key())
                    || credentials.certificate.iter().any(|t| by_thumbprint(t.as_str()))
                {
                    referrers.push(format!("/backends/{}", backend.id));
                }
            }
            for policy in &policies {
                if policy.entity.certificate_ids.iter().any(|c| same(c, id))
                    || policy.entity.thumbprints.iter().any(|t| by_thumbprint(t))
                {
                    referrers.push(policy_path(&policy.id));
                }
            }
        }
        Target::Backend(id) => {
            for policy in &policies {
                if policy.entity.backend_ids.iter().any(|b| same(b, id)) {
                    referrers.push(policy_path(&policy.id));
                }
            }
        }
    }
    Ok(referrers)
}

fn policy_path(record_id: &EntityId) -> String {
    PolicyScope::from_record_id(record_id).map_or_else(|| record_id.to_string(), |scope| scope.path())
}
