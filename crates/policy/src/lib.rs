//! APIM policy documents: `<policies>` XML in, a typed [`PolicyDocument`] out, or a
//! [`PolicyError`] naming the element, line and column at fault. Nothing unsupported passes
//! silently: unknown elements or attributes, policy expressions `@(...)` and named values `{{x}}`
//! are errors. [`compose`] splices scopes (global → API → operation) at their `<base/>` elements.
//! [`set_inbound_element`] and [`remove_inbound_element`] change one inbound statement of a
//! policy text and leave every other byte as it was.

mod compose;
mod document;
mod edit;
mod parse;

pub use compose::{EffectivePolicy, compose};
pub use document::{
    BackendRef, CertificateRef, ExistsAction, PolicyDocument, References, ReturnResponse, SectionKind, SetHeader,
    Statement,
};
pub use edit::{EMPTY_POLICY, InboundElement, InboundElementKind, remove_inbound_element, set_inbound_element};
pub use parse::{PolicyError, parse};
