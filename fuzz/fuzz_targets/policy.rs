//! The APIM policy XML parser, and the element splice the CLI and the portal write Gateway
//! credentials with: any text is a document or a PolicyError with a position; a document that
//! parses takes the element and gives it back up, and each result parses.
#![no_main]

use certgate_policy::{
    InboundElement, InboundElementKind, Statement, parse, remove_inbound_element, set_inbound_element,
};

libfuzzer_sys::fuzz_target!(|text: &str| {
    match parse(text) {
        Err(error) => assert!(error.line >= 1 && error.column >= 1, "positions are 1-based: {error:?}"),
        Ok(_) => {
            let element = InboundElement::AuthenticationCertificate { certificate_id: "fuzz-cert" };
            let with = set_inbound_element(text, element).expect("a document that parses can be edited");
            let edited = parse(&with).unwrap_or_else(|e| panic!("the edit does not parse: {e}\n{with}"));
            let inbound = edited.section(certgate_policy::SectionKind::Inbound).unwrap_or_default();
            assert!(
                inbound.iter().any(|s| matches!(s, Statement::AuthenticationCertificate(_))),
                "the element is in the edited inbound section:\n{with}"
            );
            let without = remove_inbound_element(&with, InboundElementKind::AuthenticationCertificate)
                .expect("an edited document can be edited again");
            parse(&without).unwrap_or_else(|e| panic!("the removal does not parse: {e}\n{without}"));
        }
    }
});
