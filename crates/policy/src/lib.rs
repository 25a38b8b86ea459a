//! APIM policy documents: `<policies>` XML in, a typed [`PolicyDocument`] out, or a
//! [`PolicyError`] naming the element, line and column at fault. Nothing unsupported passes
//! silently: unknown elements or attributes, policy expressions `@(...)` and named values `{{x}}`
//! are errors. [`compose`] splices scopes (global → API → operation) at their `<base/>` elements.

mod compose;
mod document;
mod parse;

pub use compose::{EffectivePolicy, compose};
pub use document::{
    BackendRef, CertificateRef, ExistsAction, PolicyDocument, References, ReturnResponse, SectionKind, SetHeader,
    Statement,
};
pub use parse::{PolicyError, parse};
