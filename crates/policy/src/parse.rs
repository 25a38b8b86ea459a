use std::time::Duration;

use roxmltree::{Document, Node, NodeType};

use crate::document::DEFAULT_FORWARD_TIMEOUT;
use crate::{
    BackendRef, CertificateRef, ExistsAction, PolicyDocument, ReturnResponse, SectionKind, SetHeader, Statement,
};

/// Why a policy document was refused: which element, where (1-based), and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{element} (line {line}, column {column}): {message}")]
pub struct PolicyError {
    pub element: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Parses and validates a policy document.
pub fn parse(text: &str) -> Result<PolicyDocument, PolicyError> {
    reject_expressions(text)?;
    let document = xml(text)?;
    let parser = Parser { document: &document };
    parser.policies(document.root_element())
}

/// The XML tree alone, for callers that need node ranges of a document `parse` accepted
/// (editing splices the original text instead of writing the tree back).
pub(crate) fn xml(text: &str) -> Result<Document<'_>, PolicyError> {
    Document::parse(text).map_err(|e| {
        let position = e.pos();
        PolicyError {
            element: "policies".into(),
            line: position.row,
            column: position.col,
            message: format!("the policy is not well-formed XML: {e}"),
        }
    })
}

/// Expressions and named values are C#/templating, not XML, and often break XML parsing: find
/// them first so the user learns what is unsupported, not that the XML is malformed.
fn reject_expressions(text: &str) -> Result<(), PolicyError> {
    let found = ["@(", "@{", "{{"].iter().filter_map(|marker| text.find(marker).map(|at| (at, *marker))).min();
    let Some((offset, marker)) = found else { return Ok(()) };
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let element = before
        .rfind('<')
        .map(|open| {
            before[open + 1..].split(|c: char| c.is_whitespace() || c == '>' || c == '/').next().unwrap_or_default()
        })
        .filter(|name| !name.is_empty())
        .unwrap_or("policies");
    let message = if marker == "{{" {
        "named values ({{name}}) are not supported"
    } else {
        "policy expressions (@(...) and @{...}) are not supported"
    };
    Err(PolicyError {
        element: element.to_owned(),
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
        message: message.into(),
    })
}

struct Parser<'a, 'input> {
    document: &'a Document<'input>,
}

impl Parser<'_, '_> {
    fn error(&self, node: Node<'_, '_>, message: impl Into<String>) -> PolicyError {
        let position = self.document.text_pos_at(node.range().start);
        PolicyError {
            element: node.tag_name().name().to_owned(),
            line: position.row,
            column: position.col,
            message: message.into(),
        }
    }

    fn policies(&self, root: Node<'_, '_>) -> Result<PolicyDocument, PolicyError> {
        if root.tag_name().name() != "policies" {
            return Err(self.error(root, "the root element must be <policies>"));
        }
        self.attributes(root, &[])?;
        let mut document = PolicyDocument::default();
        for child in self.elements(root)? {
            let Some(kind) = SectionKind::ALL.into_iter().find(|k| k.element() == child.tag_name().name()) else {
                return Err(self.error(child, "unknown section; expected inbound, backend, outbound or on-error"));
            };
            if document.sections[kind.index()].is_some() {
                return Err(self.error(child, "this section appears twice"));
            }
            self.attributes(child, &[])?;
            let statements =
                self.elements(child)?.into_iter().map(|node| self.statement(kind, node)).collect::<Result<_, _>>()?;
            document.sections[kind.index()] = Some(statements);
        }
        Ok(document)
    }

    /// Child elements; comments are fine, text that is not whitespace is not.
    fn elements<'n, 'i>(&self, node: Node<'n, 'i>) -> Result<Vec<Node<'n, 'i>>, PolicyError> {
        let mut elements = Vec::new();
        for child in node.children() {
            match child.node_type() {
                NodeType::Element => elements.push(child),
                NodeType::Text if child.text().is_some_and(|t| !t.trim().is_empty()) => {
                    return Err(self.error(node, "unexpected text; only elements belong here"));
                }
                _ => {}
            }
        }
        Ok(elements)
    }

    fn attributes(&self, node: Node<'_, '_>, allowed: &[&str]) -> Result<(), PolicyError> {
        match node.attributes().find(|a| !allowed.contains(&a.name())) {
            Some(attribute) if allowed.is_empty() => {
                Err(self.error(node, format!("attribute '{}' is not supported (none are)", attribute.name())))
            }
            Some(attribute) => Err(self.error(
                node,
                format!("attribute '{}' is not supported; supported: {}", attribute.name(), allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    fn required<'n>(&self, node: Node<'n, '_>, name: &str) -> Result<&'n str, PolicyError> {
        node.attribute(name).ok_or_else(|| self.error(node, format!("attribute '{name}' is required")))
    }

    fn statement(&self, section: SectionKind, node: Node<'_, '_>) -> Result<Statement, PolicyError> {
        let name = node.tag_name().name();
        let allowed: &[&str] = match section {
            SectionKind::Inbound => &[
                "base",
                "authentication-certificate",
                "set-backend-service",
                "set-header",
                "rewrite-uri",
                "return-response",
            ],
            SectionKind::Backend => &["base", "forward-request", "set-backend-service"],
            SectionKind::Outbound | SectionKind::OnError => &["base", "set-header", "return-response"],
        };
        const KNOWN: &[&str] = &[
            "base",
            "authentication-certificate",
            "set-backend-service",
            "set-header",
            "rewrite-uri",
            "forward-request",
            "return-response",
        ];
        if !KNOWN.contains(&name) {
            return Err(self.error(node, format!("unknown or unsupported policy element <{name}>")));
        }
        if !allowed.contains(&name) {
            return Err(self.error(node, format!("<{name}> is not allowed in <{}>", section.element())));
        }
        match name {
            "base" => {
                self.attributes(node, &[])?;
                self.no_children(node)?;
                Ok(Statement::Base)
            }
            "authentication-certificate" => self.authentication_certificate(node),
            "set-backend-service" => self.set_backend_service(node),
            "set-header" => self.set_header(node).map(Statement::SetHeader),
            "rewrite-uri" => self.rewrite_uri(node),
            "forward-request" => self.forward_request(node),
            _ => self.return_response(node),
        }
    }

    fn no_children(&self, node: Node<'_, '_>) -> Result<(), PolicyError> {
        match self.elements(node)?.first() {
            Some(child) => Err(self.error(*child, format!("<{}> takes no child elements", node.tag_name().name()))),
            None => Ok(()),
        }
    }

    fn authentication_certificate(&self, node: Node<'_, '_>) -> Result<Statement, PolicyError> {
        self.attributes(node, &["certificate-id", "thumbprint", "body", "password"])?;
        self.no_children(node)?;
        let forms = ["certificate-id", "thumbprint", "body"].iter().filter(|a| node.attribute(**a).is_some()).count();
        if forms != 1 {
            return Err(self.error(node, "give exactly one of certificate-id, thumbprint or body"));
        }
        let password = node.attribute("password");
        if password.is_some() && node.attribute("body").is_none() {
            return Err(self.error(node, "password is only allowed together with body"));
        }
        let reference = if let Some(id) = node.attribute("certificate-id") {
            CertificateRef::Id(self.non_empty(node, "certificate-id", id)?.to_owned())
        } else if let Some(thumbprint) = node.attribute("thumbprint") {
            let thumbprint = thumbprint.trim();
            if thumbprint.len() != 40 || !thumbprint.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(self.error(node, "thumbprint must be 40 hexadecimal digits (SHA-1)"));
            }
            CertificateRef::Thumbprint(thumbprint.to_ascii_uppercase())
        } else {
            let body = self.required(node, "body")?;
            CertificateRef::Inline { body_base64: body.trim().to_owned(), password: password.map(str::to_owned) }
        };
        Ok(Statement::AuthenticationCertificate(reference))
    }

    fn set_backend_service(&self, node: Node<'_, '_>) -> Result<Statement, PolicyError> {
        self.attributes(node, &["backend-id", "base-url"])?;
        self.no_children(node)?;
        match (node.attribute("backend-id"), node.attribute("base-url")) {
            (Some(id), None) => {
                Ok(Statement::SetBackendService(BackendRef::Id(self.non_empty(node, "backend-id", id)?.to_owned())))
            }
            (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(Statement::SetBackendService(BackendRef::BaseUrl(url.trim_end_matches('/').to_owned())))
            }
            (None, Some(_)) => Err(self.error(node, "base-url must be an absolute http:// or https:// URL")),
            _ => Err(self.error(node, "give exactly one of backend-id or base-url")),
        }
    }

    fn set_header(&self, node: Node<'_, '_>) -> Result<SetHeader, PolicyError> {
        self.attributes(node, &["name", "exists-action"])?;
        let name = self.non_empty(node, "name", self.required(node, "name")?)?;
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
            return Err(self.error(node, format!("'{name}' is not a valid header name")));
        }
        let action = match node.attribute("exists-action").unwrap_or("override") {
            "override" => ExistsAction::Override,
            "skip" => ExistsAction::Skip,
            "append" => ExistsAction::Append,
            "delete" => ExistsAction::Delete,
            other => {
                return Err(
                    self.error(node, format!("exists-action '{other}' is not one of override, skip, append, delete"))
                );
            }
        };
        let mut values = Vec::new();
        for child in self.elements(node)? {
            if child.tag_name().name() != "value" {
                return Err(self.error(child, "only <value> elements belong in <set-header>"));
            }
            self.attributes(child, &[])?;
            values.push(child.text().unwrap_or_default().to_owned());
        }
        match (action, values.is_empty()) {
            (ExistsAction::Delete, false) => Err(self.error(node, "exists-action=\"delete\" takes no <value>")),
            (ExistsAction::Delete, true) => Ok(SetHeader { name: name.to_owned(), action, values }),
            (_, true) => Err(self.error(node, "at least one <value> is required")),
            (_, false) => Ok(SetHeader { name: name.to_owned(), action, values }),
        }
    }

    fn rewrite_uri(&self, node: Node<'_, '_>) -> Result<Statement, PolicyError> {
        self.attributes(node, &["template", "copy-unmatched-params"])?;
        self.no_children(node)?;
        let template = self.required(node, "template")?;
        if !template.starts_with('/') {
            return Err(self.error(node, "template must start with '/'"));
        }
        let copy_unmatched_params = self.boolean(node, "copy-unmatched-params", true)?;
        Ok(Statement::RewriteUri { template: template.to_owned(), copy_unmatched_params })
    }

    fn forward_request(&self, node: Node<'_, '_>) -> Result<Statement, PolicyError> {
        self.attributes(node, &["timeout"])?;
        self.no_children(node)?;
        let timeout = match node.attribute("timeout") {
            None => DEFAULT_FORWARD_TIMEOUT,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(seconds @ 1..=3600) => Duration::from_secs(seconds),
                _ => return Err(self.error(node, "timeout must be a whole number of seconds from 1 to 3600")),
            },
        };
        Ok(Statement::ForwardRequest { timeout })
    }

    fn return_response(&self, node: Node<'_, '_>) -> Result<Statement, PolicyError> {
        self.attributes(node, &[])?;
        let mut response = ReturnResponse { status: 200, reason: None, headers: Vec::new(), body: None };
        for child in self.elements(node)? {
            match child.tag_name().name() {
                "set-status" => {
                    self.attributes(child, &["code", "reason"])?;
                    response.status = match self.required(child, "code")?.trim().parse::<u16>() {
                        Ok(code @ 100..=599) => code,
                        _ => return Err(self.error(child, "code must be an HTTP status from 100 to 599")),
                    };
                    response.reason = child.attribute("reason").map(str::to_owned);
                }
                "set-header" => response.headers.push(self.set_header(child)?),
                "set-body" => {
                    self.attributes(child, &[])?;
                    response.body = Some(child.text().unwrap_or_default().to_owned());
                }
                other => {
                    return Err(self.error(
                        child,
                        format!(
                            "<{other}> is not supported in <return-response>; use set-status, set-header, set-body"
                        ),
                    ));
                }
            }
        }
        Ok(Statement::ReturnResponse(response))
    }

    fn non_empty<'t>(&self, node: Node<'_, '_>, name: &str, value: &'t str) -> Result<&'t str, PolicyError> {
        let value = value.trim();
        if value.is_empty() {
            Err(self.error(node, format!("attribute '{name}' must not be empty")))
        } else {
            Ok(value)
        }
    }

    fn boolean(&self, node: Node<'_, '_>, name: &str, default: bool) -> Result<bool, PolicyError> {
        match node.attribute(name).map(str::trim) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(self.error(node, format!("{name} must be true or false, not '{other}'"))),
        }
    }
}
