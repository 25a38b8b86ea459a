//! The policy editing table: each document and the exact text that setting or removing one
//! inbound statement makes of it. The outputs are written out whole so a reader sees that every
//! byte outside the statement survives; each document is a `concat!` of its lines.

use certgate_policy::{
    EMPTY_POLICY, InboundElement, InboundElementKind, PolicyError, SectionKind, Statement, parse,
    remove_inbound_element, set_inbound_element,
};

#[path = "edit/cases.rs"]
mod cases;

use cases::{BACKEND, CERTIFICATE, REFUSED, REMOVE, ROUND_TRIP_CHANGES, SET};

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
