//! The policy validation table: every invalid document names its element, line and column.

use std::time::Duration;

use certgate_policy::{BackendRef, CertificateRef, ExistsAction, SectionKind, Statement, parse};

/// `(document, element, line, column, message fragment)`
const INVALID: &[(&str, &str, u32, u32, &str)] = &[
    (
        "<policies><inbound><rate-limit calls=\"5\"/></inbound></policies>",
        "rate-limit",
        1,
        20,
        "unknown or unsupported",
    ),
    (
        "<policies>\n  <inbound>\n    <set-header name=\"x\"><value>@(context.Request.Id)</value></set-header>\n  </inbound>\n</policies>",
        "value",
        3,
        33,
        "expressions",
    ),
    (
        "<policies><inbound><set-header name=\"x\"><value>{{secret}}</value></set-header></inbound></policies>",
        "value",
        1,
        48,
        "named values",
    ),
    (
        "<policies><inbound><authentication-certificate certificate-id=\"c\" thumbprint=\"AA\"/></inbound></policies>",
        "authentication-certificate",
        1,
        20,
        "exactly one",
    ),
    (
        "<policies><inbound><authentication-certificate/></inbound></policies>",
        "authentication-certificate",
        1,
        20,
        "exactly one",
    ),
    (
        "<policies><inbound><authentication-certificate thumbprint=\"XYZ\"/></inbound></policies>",
        "authentication-certificate",
        1,
        20,
        "40 hexadecimal",
    ),
    (
        "<policies><inbound><authentication-certificate certificate-id=\"c\" password=\"p\"/></inbound></policies>",
        "authentication-certificate",
        1,
        20,
        "only allowed together with body",
    ),
    (
        "<policies><outbound><authentication-certificate certificate-id=\"c\"/></outbound></policies>",
        "authentication-certificate",
        1,
        21,
        "not allowed in <outbound>",
    ),
    (
        "<policies><inbound><set-backend-service backend-id=\"b\" base-url=\"http://x\"/></inbound></policies>",
        "set-backend-service",
        1,
        20,
        "exactly one",
    ),
    (
        "<policies><inbound><set-backend-service base-url=\"ftp://x\"/></inbound></policies>",
        "set-backend-service",
        1,
        20,
        "http://",
    ),
    (
        "<policies><inbound><set-backend-service backend-id=\"b\" sf-service-instance-type=\"x\"/></inbound></policies>",
        "set-backend-service",
        1,
        20,
        "sf-service-instance-type",
    ),
    (
        "<policies><inbound><set-header name=\"x\" exists-action=\"replace\"><value>v</value></set-header></inbound></policies>",
        "set-header",
        1,
        20,
        "exists-action",
    ),
    (
        "<policies><inbound><set-header name=\"x\" exists-action=\"delete\"><value>v</value></set-header></inbound></policies>",
        "set-header",
        1,
        20,
        "takes no <value>",
    ),
    ("<policies><inbound><set-header name=\"x\"/></inbound></policies>", "set-header", 1, 20, "at least one <value>"),
    (
        "<policies><inbound><set-header name=\"bad header\"><value>v</value></set-header></inbound></policies>",
        "set-header",
        1,
        20,
        "not a valid header name",
    ),
    (
        "<policies><inbound><set-header name=\"x\"><val>v</val></set-header></inbound></policies>",
        "val",
        1,
        41,
        "only <value>",
    ),
    (
        "<policies><inbound><rewrite-uri template=\"no-slash\"/></inbound></policies>",
        "rewrite-uri",
        1,
        20,
        "start with '/'",
    ),
    ("<policies><inbound><rewrite-uri/></inbound></policies>", "rewrite-uri", 1, 20, "'template' is required"),
    ("<policies><backend><forward-request timeout=\"0\"/></backend></policies>", "forward-request", 1, 20, "1 to 3600"),
    (
        "<policies><backend><forward-request follow-redirects=\"true\"/></backend></policies>",
        "forward-request",
        1,
        20,
        "follow-redirects",
    ),
    (
        "<policies><inbound><return-response><set-status code=\"99\"/></return-response></inbound></policies>",
        "set-status",
        1,
        37,
        "100 to 599",
    ),
    (
        "<policies><inbound><return-response><set-variable name=\"x\"/></return-response></inbound></policies>",
        "set-variable",
        1,
        37,
        "not supported",
    ),
    ("<policies><inbound><base foo=\"1\"/></inbound></policies>", "base", 1, 20, "'foo'"),
    ("<policies><inbound/><inbound/></policies>", "inbound", 1, 21, "twice"),
    ("<policies><inboundx/></policies>", "inboundx", 1, 11, "unknown section"),
    ("<policy><inbound/></policy>", "policy", 1, 1, "root element"),
    ("<policies><inbound>text</inbound></policies>", "inbound", 1, 11, "unexpected text"),
    ("<policies>\n<inbound>\n<base>\n</inbound></policies>", "policies", 4, 1, "not well-formed"),
    (
        "<policies><inbound><set-header name=\"x\"><value>v</value></set-header></inbound><backend><set-header name=\"y\"><value>v</value></set-header></backend></policies>",
        "set-header",
        1,
        89,
        "not allowed in <backend>",
    ),
];

#[test]
fn every_invalid_document_names_element_line_and_column() {
    assert!(INVALID.len() >= 15);
    for (text, element, line, column, fragment) in INVALID {
        let error = parse(text).expect_err(text);
        assert_eq!(
            (error.element.as_str(), error.line, error.column),
            (*element, *line, *column),
            "{text}\n-> {error}"
        );
        assert!(error.message.contains(fragment), "{text}\n-> {error}");
    }
}

#[test]
fn a_full_document_parses_into_typed_statements() {
    let text = r#"<policies>
        <inbound>
            <base />
            <!-- the seed's statement -->
            <authentication-certificate certificate-id="orders-client" />
            <set-backend-service backend-id="orders" />
            <set-header name="X-Env" exists-action="append"><value>prod</value><value>eu</value></set-header>
            <set-header name="X-Debug" exists-action="delete" />
            <rewrite-uri template="/v2/orders/{id}" copy-unmatched-params="false" />
        </inbound>
        <backend><forward-request timeout="20" /></backend>
        <outbound><set-header name="X-Served-By"><value>certgate</value></set-header></outbound>
        <on-error><return-response><set-status code="503" reason="Down"/><set-body>try later</set-body></return-response></on-error>
    </policies>"#;
    let document = parse(text).expect("valid");
    let inbound = document.section(SectionKind::Inbound).expect("inbound");
    assert_eq!(inbound[0], Statement::Base);
    assert_eq!(inbound[1], Statement::AuthenticationCertificate(CertificateRef::Id("orders-client".into())));
    assert_eq!(inbound[2], Statement::SetBackendService(BackendRef::Id("orders".into())));
    assert!(
        matches!(&inbound[3], Statement::SetHeader(h) if h.action == ExistsAction::Append && h.values == ["prod", "eu"])
    );
    assert!(
        matches!(&inbound[5], Statement::RewriteUri { template, copy_unmatched_params: false } if template == "/v2/orders/{id}")
    );
    assert_eq!(
        document.section(SectionKind::Backend).expect("backend"),
        [Statement::ForwardRequest { timeout: Duration::from_secs(20) }]
    );
    assert!(matches!(&document.section(SectionKind::OnError).expect("on-error")[0],
        Statement::ReturnResponse(r) if r.status == 503 && r.body.as_deref() == Some("try later")));
    let references = document.references();
    assert_eq!(references.certificate_ids, ["orders-client"]);
    assert_eq!(references.backend_ids, ["orders"]);
}

#[test]
fn thumbprints_are_normalised_and_reported() {
    let document =
        parse(r#"<policies><inbound><authentication-certificate thumbprint="ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"/></inbound></policies>"#)
            .expect("valid");
    assert_eq!(document.references().thumbprints, ["AB12AB12AB12AB12AB12AB12AB12AB12AB12AB12"]);
}
