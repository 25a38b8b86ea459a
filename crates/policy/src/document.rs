use std::time::Duration;

/// The four sections of a policy document, in execution order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectionKind {
    Inbound,
    Backend,
    Outbound,
    OnError,
}

impl SectionKind {
    pub const ALL: [SectionKind; 4] =
        [SectionKind::Inbound, SectionKind::Backend, SectionKind::Outbound, SectionKind::OnError];

    pub fn element(self) -> &'static str {
        match self {
            SectionKind::Inbound => "inbound",
            SectionKind::Backend => "backend",
            SectionKind::Outbound => "outbound",
            SectionKind::OnError => "on-error",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A parsed, validated policy document of one scope. A section that is absent is `None`
/// (it inherits its parent's section unchanged); a present section without `<base/>` does not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyDocument {
    pub(crate) sections: [Option<Vec<Statement>>; 4],
}

impl PolicyDocument {
    pub fn section(&self, kind: SectionKind) -> Option<&[Statement]> {
        self.sections[kind.index()].as_deref()
    }

    /// Every entity the document names, for save-time checks and delete protection.
    pub fn references(&self) -> References {
        let mut references = References::default();
        for statement in self.sections.iter().flatten().flatten() {
            match statement {
                Statement::AuthenticationCertificate(CertificateRef::Id(id)) => {
                    references.certificate_ids.push(id.clone())
                }
                Statement::AuthenticationCertificate(CertificateRef::Thumbprint(t)) => {
                    references.thumbprints.push(t.clone())
                }
                Statement::SetBackendService(BackendRef::Id(id)) => references.backend_ids.push(id.clone()),
                _ => {}
            }
        }
        references
    }
}

/// Entity names a policy document refers to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    pub certificate_ids: Vec<String>,
    /// Upper-case hex.
    pub thumbprints: Vec<String>,
    pub backend_ids: Vec<String>,
}

/// One supported policy statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// `<base/>`: the parent scope's same section goes here.
    Base,
    /// `<authentication-certificate/>`: the client certificate presented to the backend.
    AuthenticationCertificate(CertificateRef),
    /// `<set-backend-service/>`: where the request goes.
    SetBackendService(BackendRef),
    SetHeader(SetHeader),
    /// `<rewrite-uri template="/x/{id}"/>`: the backend path, with template parameters filled in.
    RewriteUri {
        template: String,
        copy_unmatched_params: bool,
    },
    /// `<forward-request timeout="…"/>`.
    ForwardRequest {
        timeout: Duration,
    },
    ReturnResponse(ReturnResponse),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateRef {
    /// `certificate-id`: a certificate entity (follows rotation).
    Id(String),
    /// `thumbprint`: an uploaded certificate by its SHA-1 (upper-case hex).
    Thumbprint(String),
    /// `body` (base64 PKCS#12) with an optional `password`, inline in the policy.
    Inline { body_base64: String, password: Option<String> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendRef {
    Id(String),
    BaseUrl(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExistsAction {
    Override,
    Skip,
    Append,
    Delete,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetHeader {
    pub name: String,
    pub action: ExistsAction,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnResponse {
    pub status: u16,
    pub reason: Option<String>,
    pub headers: Vec<SetHeader>,
    pub body: Option<String>,
}

pub(crate) const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(300);
