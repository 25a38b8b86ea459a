//! The policy editing table: each document and the exact text that setting or removing one
//! inbound statement makes of it. The outputs are written out whole so a reader sees that every
//! byte outside the statement survives; each document is a `concat!` of its lines.

use certgate_policy::{
    EMPTY_POLICY, InboundElement, InboundElementKind, PolicyError, SectionKind, Statement, parse,
    remove_inbound_element, set_inbound_element,
};

const CERTIFICATE: InboundElement<'static> =
    InboundElement::AuthenticationCertificate { certificate_id: "orders-client" };
const BACKEND: InboundElement<'static> = InboundElement::SetBackendService { backend_id: "orders" };

/// `(what the case shows, document, element written, exact result)`
const SET: &[(&str, &str, InboundElement<'static>, &str)] = &[
    (
        "the empty policy gets the certificate after <base />",
        EMPTY_POLICY,
        CERTIFICATE,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate certificate-id=\"orders-client\" />\n",
            "  </inbound>\n",
            "  <backend>\n",
            "    <base />\n",
            "  </backend>\n",
            "  <outbound>\n",
            "    <base />\n",
            "  </outbound>\n",
            "  <on-error>\n",
            "    <base />\n",
            "  </on-error>\n",
            "</policies>\n",
        ),
    ),
    (
        "the empty policy gets the backend after <base />",
        EMPTY_POLICY,
        BACKEND,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <set-backend-service backend-id=\"orders\" />\n",
            "  </inbound>\n",
            "  <backend>\n",
            "    <base />\n",
            "  </backend>\n",
            "  <outbound>\n",
            "    <base />\n",
            "  </outbound>\n",
            "  <on-error>\n",
            "    <base />\n",
            "  </on-error>\n",
            "</policies>\n",
        ),
    ),
    (
        "comments, odd spacing and quoting stay; a comment after <base /> keeps its line",
        concat!(
            "<policies>\n",
            "<!-- orders API: keep <base/> first -->\n",
            "  <inbound   >\n",
            "     <base/>   <!-- global first -->\n",
            "     <set-header name='X-Env'  exists-action=\"override\"><value>prod</value></set-header>\n",
            "  </inbound>\n",
            "  <backend><forward-request timeout=\"20\"/></backend>\n",
            "</policies>",
        ),
        CERTIFICATE,
        concat!(
            "<policies>\n",
            "<!-- orders API: keep <base/> first -->\n",
            "  <inbound   >\n",
            "     <base/>   <!-- global first -->\n",
            "     <authentication-certificate certificate-id=\"orders-client\" />\n",
            "     <set-header name='X-Env'  exists-action=\"override\"><value>prod</value></set-header>\n",
            "  </inbound>\n",
            "  <backend><forward-request timeout=\"20\"/></backend>\n",
            "</policies>",
        ),
    ),
    (
        "tab indentation is copied from the sibling",
        concat!("<policies>\n", "\t<inbound>\n", "\t\t<base />\n", "\t</inbound>\n", "</policies>\n"),
        BACKEND,
        concat!(
            "<policies>\n",
            "\t<inbound>\n",
            "\t\t<base />\n",
            "\t\t<set-backend-service backend-id=\"orders\" />\n",
            "\t</inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "an empty inbound is indented one step (a tab, seen in <backend>) deeper than itself",
        concat!(
            "<policies>\n",
            "\t<inbound>\n",
            "\t</inbound>\n",
            "\t<backend>\n",
            "\t\t<base />\n",
            "\t</backend>\n",
            "</policies>\n",
        ),
        CERTIFICATE,
        concat!(
            "<policies>\n",
            "\t<inbound>\n",
            "\t\t<authentication-certificate certificate-id=\"orders-client\" />\n",
            "\t</inbound>\n",
            "\t<backend>\n",
            "\t\t<base />\n",
            "\t</backend>\n",
            "</policies>\n",
        ),
    ),
    (
        "CRLF line endings are kept and used for the new line",
        concat!("<policies>\r\n", "  <inbound>\r\n", "    <base />\r\n", "  </inbound>\r\n", "</policies>\r\n"),
        CERTIFICATE,
        concat!(
            "<policies>\r\n",
            "  <inbound>\r\n",
            "    <base />\r\n",
            "    <authentication-certificate certificate-id=\"orders-client\" />\r\n",
            "  </inbound>\r\n",
            "</policies>\r\n",
        ),
    ),
    (
        "the XML declaration and a comment before the root stay",
        concat!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n",
            "<!-- managed by certgate -->\n",
            "<policies>\n",
            "    <inbound>\n",
            "        <base />\n",
            "        <set-backend-service backend-id=\"orders\" />\n",
            "    </inbound>\n",
            "</policies>\n",
        ),
        CERTIFICATE,
        concat!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n",
            "<!-- managed by certgate -->\n",
            "<policies>\n",
            "    <inbound>\n",
            "        <base />\n",
            "        <authentication-certificate certificate-id=\"orders-client\" />\n",
            "        <set-backend-service backend-id=\"orders\" />\n",
            "    </inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "without <base /> the element goes first",
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <set-header name=\"X-Env\"><value>prod</value></set-header>\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
        CERTIFICATE,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <authentication-certificate certificate-id=\"orders-client\" />\n",
            "    <set-header name=\"X-Env\"><value>prod</value></set-header>\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "a self-closing inbound is expanded (no <base /> added: the section replaced its parent's)",
        concat!(
            "<policies>\n",
            "  <inbound />\n",
            "  <backend>\n",
            "    <base />\n",
            "  </backend>\n",
            "</policies>\n"
        ),
        CERTIFICATE,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <authentication-certificate certificate-id=\"orders-client\" />\n",
            "  </inbound>\n",
            "  <backend>\n",
            "    <base />\n",
            "  </backend>\n",
            "</policies>\n",
        ),
    ),
    (
        "a self-closing inbound on a one-line document is expanded inline",
        "<policies><inbound/></policies>",
        BACKEND,
        "<policies><inbound><set-backend-service backend-id=\"orders\" /></inbound></policies>",
    ),
    (
        "without inbound one is added first, with <base /> so the parent's inbound still runs",
        concat!(
            "<policies>\n",
            "  <backend>\n",
            "    <forward-request timeout=\"20\" />\n",
            "  </backend>\n",
            "</policies>\n",
        ),
        CERTIFICATE,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate certificate-id=\"orders-client\" />\n",
            "  </inbound>\n",
            "  <backend>\n",
            "    <forward-request timeout=\"20\" />\n",
            "  </backend>\n",
            "</policies>\n",
        ),
    ),
    (
        "without inbound, in a CRLF document indented by four with a declaration",
        concat!(
            "<?xml version=\"1.0\"?>\r\n",
            "<policies>\r\n",
            "    <outbound>\r\n",
            "        <base />\r\n",
            "    </outbound>\r\n",
            "</policies>",
        ),
        BACKEND,
        concat!(
            "<?xml version=\"1.0\"?>\r\n",
            "<policies>\r\n",
            "    <inbound>\r\n",
            "        <base />\r\n",
            "        <set-backend-service backend-id=\"orders\" />\r\n",
            "    </inbound>\r\n",
            "    <outbound>\r\n",
            "        <base />\r\n",
            "    </outbound>\r\n",
            "</policies>",
        ),
    ),
    (
        "a self-closing <policies /> is expanded on lines when the document has any",
        "<policies />\n",
        CERTIFICATE,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate certificate-id=\"orders-client\" />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "a one-line self-closing <policies/> is expanded inline",
        "<policies/>",
        BACKEND,
        "<policies><inbound><base /><set-backend-service backend-id=\"orders\" /></inbound></policies>",
    ),
    (
        "a one-line document stays on one line",
        "<policies><inbound><base /><set-header name=\"X-Env\"><value>prod</value></set-header></inbound></policies>",
        CERTIFICATE,
        concat!(
            "<policies><inbound><base /><authentication-certificate certificate-id=\"orders-client\" />",
            "<set-header name=\"X-Env\"><value>prod</value></set-header></inbound></policies>",
        ),
    ),
    (
        "inbound's start tag shares its line with a child: the element goes in front of it",
        concat!(
            "<policies>\n",
            "  <inbound><set-header name=\"X-Env\"><value>prod</value></set-header>\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
        BACKEND,
        concat!(
            "<policies>\n",
            "  <inbound><set-backend-service backend-id=\"orders\" /><set-header name=\"X-Env\"><value>prod</value></set-header>\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "an existing element with another id is replaced where it stands",
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <authentication-certificate certificate-id='old-client'/>\n",
            "    <base />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
        CERTIFICATE,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <authentication-certificate certificate-id=\"orders-client\" />\n",
            "    <base />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "the same id written differently is rewritten in our spelling",
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate  certificate-id = 'orders-client' ></authentication-certificate>\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
        CERTIFICATE,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate certificate-id=\"orders-client\" />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "a thumbprint becomes a certificate id",
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate thumbprint=\"AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12\" />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
        CERTIFICATE,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate certificate-id=\"orders-client\" />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "an inline certificate spanning lines is replaced whole",
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate\n",
            "        body=\"MIIKeQIBAzCCCj8GCSqGSIb3DQEHAaCCCjAEggosMIIKKDCCBN8GCSqG\"\n",
            "        password=\"s3cret\" />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
        CERTIFICATE,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate certificate-id=\"orders-client\" />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "a base-url becomes a backend id",
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <set-backend-service base-url=\"https://orders.internal/api\" />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
        BACKEND,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <set-backend-service backend-id=\"orders\" />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "of two copies the first is replaced and the second's line removed",
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate certificate-id=\"first\" />\n",
            "    <set-header name=\"X-Env\"><value>prod</value></set-header>\n",
            "    <authentication-certificate thumbprint=\"AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12\" />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
        CERTIFICATE,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate certificate-id=\"orders-client\" />\n",
            "    <set-header name=\"X-Env\"><value>prod</value></set-header>\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "an element sharing its line is replaced in place, the line's other text stays",
        concat!(
            "<policies>\n",
            "  <inbound><base /><set-backend-service backend-id=\"old\"/><!-- was old --></inbound>\n",
            "</policies>\n",
        ),
        BACKEND,
        concat!(
            "<policies>\n",
            "  <inbound><base /><set-backend-service backend-id=\"orders\" /><!-- was old --></inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "the other sections and a commented-out element are not touched",
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <!-- <set-backend-service backend-id=\"legacy\" /> -->\n",
            "  </inbound>\n",
            "  <backend>\n",
            "    <set-backend-service backend-id=\"fallback\" />\n",
            "    <forward-request />\n",
            "  </backend>\n",
            "</policies>\n",
        ),
        BACKEND,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <set-backend-service backend-id=\"orders\" />\n",
            "    <!-- <set-backend-service backend-id=\"legacy\" /> -->\n",
            "  </inbound>\n",
            "  <backend>\n",
            "    <set-backend-service backend-id=\"fallback\" />\n",
            "    <forward-request />\n",
            "  </backend>\n",
            "</policies>\n",
        ),
    ),
    (
        "the id is escaped",
        EMPTY_POLICY,
        InboundElement::AuthenticationCertificate { certificate_id: "a&b<c>\"d'" },
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate certificate-id=\"a&amp;b&lt;c&gt;&quot;d'\" />\n",
            "  </inbound>\n",
            "  <backend>\n",
            "    <base />\n",
            "  </backend>\n",
            "  <outbound>\n",
            "    <base />\n",
            "  </outbound>\n",
            "  <on-error>\n",
            "    <base />\n",
            "  </on-error>\n",
            "</policies>\n",
        ),
    ),
];

/// `(what the case shows, document, kind removed, exact result)`
const REMOVE: &[(&str, &str, InboundElementKind, &str)] = &[
    (
        "a line of its own goes whole",
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate certificate-id=\"orders-client\" />\n",
            "    <set-backend-service backend-id=\"orders\" />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
        InboundElementKind::AuthenticationCertificate,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <set-backend-service backend-id=\"orders\" />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "with CRLF, trailing blanks and tabs, the whole line goes",
        concat!(
            "<policies>\r\n",
            "\t<inbound>\r\n",
            "\t\t<base />\r\n",
            "\t\t<set-backend-service backend-id=\"orders\" /> \t\r\n",
            "\t</inbound>\r\n",
            "</policies>\r\n",
        ),
        InboundElementKind::SetBackendService,
        concat!("<policies>\r\n", "\t<inbound>\r\n", "\t\t<base />\r\n", "\t</inbound>\r\n", "</policies>\r\n"),
    ),
    (
        "an element spanning lines goes with all of them",
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <authentication-certificate\n",
            "        body=\"MIIKeQIBAzCCCj8GCSqGSIb3DQEHAaCCCjAEggosMIIKKDCCBN8GCSqG\"\n",
            "        password=\"s3cret\" />\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
        InboundElementKind::AuthenticationCertificate,
        concat!("<policies>\n", "  <inbound>\n", "    <base />\n", "  </inbound>\n", "</policies>\n"),
    ),
    (
        "sharing its line, only the element's text goes",
        "<policies><inbound><base /><authentication-certificate certificate-id=\"a\"/><set-backend-service backend-id=\"b\"/></inbound></policies>",
        InboundElementKind::AuthenticationCertificate,
        "<policies><inbound><base /><set-backend-service backend-id=\"b\"/></inbound></policies>",
    ),
    (
        "a comment on the element's line stays, so the line does too",
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <set-backend-service backend-id=\"orders\" /> <!-- orders v2 -->\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
        InboundElementKind::SetBackendService,
        concat!("<policies>\n", "  <inbound>\n", "     <!-- orders v2 -->\n", "  </inbound>\n", "</policies>\n"),
    ),
    (
        "every copy goes, lines of their own and a line of two copies",
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <authentication-certificate certificate-id=\"a\" />\n",
            "    <base />\n",
            "    <authentication-certificate certificate-id=\"b\" /> <authentication-certificate certificate-id=\"c\" />\n",
            "    <set-header name=\"X-Env\"><value>prod</value></set-header>\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
        InboundElementKind::AuthenticationCertificate,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "    <set-header name=\"X-Env\"><value>prod</value></set-header>\n",
            "  </inbound>\n",
            "</policies>\n",
        ),
    ),
    (
        "an absent element leaves the text as it was, the backend section's copy included",
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "  </inbound>\n",
            "  <backend>\n",
            "    <set-backend-service backend-id=\"fallback\" />\n",
            "  </backend>\n",
            "</policies>\n",
        ),
        InboundElementKind::SetBackendService,
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "  </inbound>\n",
            "  <backend>\n",
            "    <set-backend-service backend-id=\"fallback\" />\n",
            "  </backend>\n",
            "</policies>\n",
        ),
    ),
    (
        "without inbound the text is as it was",
        "<?xml version=\"1.0\"?>\n<policies>\n  <backend>\n    <base />\n  </backend>\n</policies>",
        InboundElementKind::AuthenticationCertificate,
        "<?xml version=\"1.0\"?>\n<policies>\n  <backend>\n    <base />\n  </backend>\n</policies>",
    ),
];

/// Setting into these cannot be undone to the byte: the spelling of a self-closing tag is gone
/// once it holds an element, and removal cannot tell an inbound we added from one the user
/// wrote. `(document, what removing what was set gives)`; both kinds give the same.
const ROUND_TRIP_CHANGES: &[(&str, &str)] = &[
    (
        concat!(
            "<policies>\n",
            "  <inbound />\n",
            "  <backend>\n",
            "    <base />\n",
            "  </backend>\n",
            "</policies>\n"
        ),
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "  </inbound>\n",
            "  <backend>\n",
            "    <base />\n",
            "  </backend>\n",
            "</policies>\n",
        ),
    ),
    ("<policies><inbound/></policies>", "<policies><inbound></inbound></policies>"),
    (
        concat!(
            "<policies>\n",
            "  <backend>\n",
            "    <forward-request timeout=\"20\" />\n",
            "  </backend>\n",
            "</policies>\n",
        ),
        concat!(
            "<policies>\n",
            "  <inbound>\n",
            "    <base />\n",
            "  </inbound>\n",
            "  <backend>\n",
            "    <forward-request timeout=\"20\" />\n",
            "  </backend>\n",
            "</policies>\n",
        ),
    ),
    (
        concat!(
            "<?xml version=\"1.0\"?>\r\n",
            "<policies>\r\n",
            "    <outbound>\r\n",
            "        <base />\r\n",
            "    </outbound>\r\n",
            "</policies>",
        ),
        concat!(
            "<?xml version=\"1.0\"?>\r\n",
            "<policies>\r\n",
            "    <inbound>\r\n",
            "        <base />\r\n",
            "    </inbound>\r\n",
            "    <outbound>\r\n",
            "        <base />\r\n",
            "    </outbound>\r\n",
            "</policies>",
        ),
    ),
    ("<policies />\n", concat!("<policies>\n", "  <inbound>\n", "    <base />\n", "  </inbound>\n", "</policies>\n")),
    ("<policies/>", "<policies><inbound><base /></inbound></policies>"),
    (
        "<?xml version=\"1.0\"?>\n<policies>\n  <backend>\n    <base />\n  </backend>\n</policies>",
        "<?xml version=\"1.0\"?>\n<policies>\n  <inbound>\n    <base />\n  </inbound>\n  <backend>\n    <base />\n  </backend>\n</policies>",
    ),
];

/// Documents the parser refuses, for both functions: `(document, element, line, column)`.
const REFUSED: &[(&str, &str, u32, u32)] = &[
    ("<policies>\n<inbound>\n<base>\n</inbound></policies>", "policies", 4, 1),
    ("<policies><inbound><rate-limit calls=\"5\"/></inbound></policies>", "rate-limit", 1, 20),
    (
        "<policies>\n  <inbound>\n    <set-header name=\"x\"><value>@(context.Request.Id)</value></set-header>\n  </inbound>\n</policies>",
        "value",
        3,
        33,
    ),
    ("<policies><inbound/><inbound/></policies>", "inbound", 1, 21),
];

fn id_named(text: &str, kind: InboundElementKind) -> Vec<String> {
    let references = parse(text).expect("the result parses").references();
    match kind {
        InboundElementKind::AuthenticationCertificate => references.certificate_ids,
        InboundElementKind::SetBackendService => references.backend_ids,
    }
}

fn inbound_statements(text: &str, kind: InboundElementKind) -> usize {
    let document = parse(text).expect("the result parses");
    let inbound = document.section(SectionKind::Inbound).unwrap_or_default();
    inbound
        .iter()
        .filter(|statement| match kind {
            InboundElementKind::AuthenticationCertificate => {
                matches!(statement, Statement::AuthenticationCertificate(_))
            }
            InboundElementKind::SetBackendService => matches!(statement, Statement::SetBackendService(_)),
        })
        .count()
}

fn inbound_has(text: &str, kind: InboundElementKind) -> bool {
    inbound_statements(text, kind) > 0
}

#[test]
fn set_writes_exactly_the_expected_text() {
    for (case, input, element, expected) in SET {
        let output = set_inbound_element(input, *element).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(output, *expected, "{case}");
        let kind = element.kind();
        assert_eq!(inbound_statements(&output, kind), 1, "{case}: one of the kind in inbound");
        assert!(id_named(&output, kind).contains(&element.id().to_owned()), "{case}: references name the id");
        assert_eq!(
            set_inbound_element(&output, *element).as_ref(),
            Ok(&output),
            "{case}: setting again changes nothing"
        );
    }
}

#[test]
fn remove_writes_exactly_the_expected_text() {
    for (case, input, kind, expected) in REMOVE {
        let output = remove_inbound_element(input, *kind).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(output, *expected, "{case}");
        assert!(!inbound_has(&output, *kind), "{case}: none left in inbound");
    }
}

/// Removing what was set gives the document back to the byte when it had no such element (and
/// what removing alone gives when it had), except the documents of [`ROUND_TRIP_CHANGES`].
#[test]
fn removing_what_was_set_restores_the_document() {
    let documents: Vec<&str> = SET.iter().map(|case| case.1).chain(REMOVE.iter().map(|case| case.1)).collect();
    let mut exact = 0;
    for document in &documents {
        for element in [
            InboundElement::AuthenticationCertificate { certificate_id: "c" },
            InboundElement::SetBackendService { backend_id: "b" },
        ] {
            let kind = element.kind();
            let set = set_inbound_element(document, element).expect("set");
            let restored = remove_inbound_element(&set, kind).expect("remove");
            let expected = match ROUND_TRIP_CHANGES.iter().find(|(changed, _)| changed == document) {
                Some((_, normalised)) => {
                    let again = set_inbound_element(normalised, element).expect("set");
                    assert_eq!(
                        remove_inbound_element(&again, kind).as_deref(),
                        Ok(*normalised),
                        "exact once normalised"
                    );
                    normalised.to_string()
                }
                None if inbound_has(document, kind) => remove_inbound_element(document, kind).expect("remove"),
                None => {
                    exact += 1;
                    document.to_string()
                }
            };
            assert_eq!(restored, expected, "{document}\nset:\n{set}");
        }
    }
    assert!(
        ROUND_TRIP_CHANGES.iter().all(|(changed, _)| documents.contains(changed)),
        "exceptions are table documents"
    );
    assert!(exact >= 30, "{exact} documents restored to the byte");
}

#[test]
fn a_refused_document_gives_the_parsers_error() {
    for (text, element, line, column) in REFUSED {
        let refusal = parse(text).expect_err(text);
        assert_eq!((refusal.element.as_str(), refusal.line, refusal.column), (*element, *line, *column), "{text}");
        for kind in InboundElementKind::ALL {
            assert_eq!(remove_inbound_element(text, kind), Err(refusal.clone()), "{text}");
        }
        assert_eq!(set_inbound_element(text, CERTIFICATE), Err(refusal.clone()), "{text}");
        assert_eq!(set_inbound_element(text, BACKEND), Err(refusal), "{text}");
    }
}

#[test]
fn an_id_the_parser_refuses_is_refused_where_it_was_written() {
    let refusal = |id| -> PolicyError {
        set_inbound_element(EMPTY_POLICY, InboundElement::SetBackendService { backend_id: id }).expect_err(id)
    };
    let empty = refusal(" ");
    assert_eq!((empty.element.as_str(), empty.line, empty.column), ("set-backend-service", 4, 5), "{empty}");
    assert!(empty.message.contains("must not be empty"), "{empty}");
    let named_value = refusal("{{backend}}");
    assert_eq!((named_value.line, named_value.column), (4, 38), "{named_value}");
}

#[test]
fn kinds_name_their_element_and_attribute() {
    let names = InboundElementKind::ALL.map(|kind| (kind.element(), kind.attribute()));
    assert_eq!(names, [("authentication-certificate", "certificate-id"), ("set-backend-service", "backend-id")]);
    assert_eq!(CERTIFICATE.kind(), InboundElementKind::AuthenticationCertificate);
    assert_eq!(BACKEND.id(), "orders");
}
