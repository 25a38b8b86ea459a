/// The collections of the management model. The store keys every record by (kind, id key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntityKind {
    Certificate,
    CaCertificate,
    Token,
}

impl EntityKind {
    /// The collection name: the first path segment of the management API and the `type` field.
    pub const fn collection(self) -> &'static str {
        match self {
            EntityKind::Certificate => "certificates",
            EntityKind::CaCertificate => "caCertificates",
            EntityKind::Token => "tokens",
        }
    }

    /// Every kind; the store uses it to validate what it reads back.
    pub const ALL: [EntityKind; 3] = [EntityKind::Certificate, EntityKind::CaCertificate, EntityKind::Token];

    pub fn from_collection(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.collection() == name)
    }
}
