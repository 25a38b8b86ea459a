/// The collections of the management model. The store keys every record by (kind, id key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityKind {
    Certificate,
    CaCertificate,
    Token,
    Backend,
    Api,
    /// Keyed by `EntityId::scoped(api, operation)`.
    Operation,
    /// Keyed by `PolicyScope::record_id()`.
    Policy,
}

impl EntityKind {
    pub const ALL: [EntityKind; 7] = [
        EntityKind::Certificate,
        EntityKind::CaCertificate,
        EntityKind::Token,
        EntityKind::Backend,
        EntityKind::Api,
        EntityKind::Operation,
        EntityKind::Policy,
    ];

    /// The inverse of [`EntityKind::collection`].
    pub fn from_collection(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.collection() == name)
    }

    /// The collection name: the first path segment of the management API and the `type` field.
    pub const fn collection(self) -> &'static str {
        match self {
            EntityKind::Certificate => "certificates",
            EntityKind::CaCertificate => "caCertificates",
            EntityKind::Token => "tokens",
            EntityKind::Backend => "backends",
            EntityKind::Api => "apis",
            EntityKind::Operation => "operations",
            EntityKind::Policy => "policies",
        }
    }
}
