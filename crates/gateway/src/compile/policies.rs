//! Parsed policy documents, by text, kept from one compilation to the next: at 10 000 APIs
//! parsing is most of a compilation, and one change leaves all the other documents as they were.

use std::collections::HashMap;
use std::sync::Arc;

use certgate_model::PolicyScope;
use certgate_policy::PolicyDocument;

use super::Context;

#[derive(Default)]
pub(super) struct PolicyDocuments {
    by_text: HashMap<String, Cached>,
    /// Counts compilations; a document used by the current one carries its number.
    compilation: u64,
}

struct Cached {
    document: Arc<PolicyDocument>,
    last_used: u64,
}

impl PolicyDocuments {
    /// Begins a compilation.
    pub(super) fn start(&mut self) {
        self.compilation += 1;
    }

    /// The document `text` parses to; `None` (and an error line naming `scope`) when it no
    /// longer parses, which only a parser change can cause: stored documents were validated.
    fn parsed(&mut self, text: &str, scope: &PolicyScope) -> Option<Arc<PolicyDocument>> {
        if let Some(cached) = self.by_text.get_mut(text) {
            cached.last_used = self.compilation;
            return Some(cached.document.clone());
        }
        let document = certgate_policy::parse(text)
            .map_err(|e| tracing::error!(scope = %scope.path(), error = %e, "stored policy no longer parses; ignored"))
            .ok()
            .map(Arc::new)?;
        self.by_text.insert(text.to_owned(), Cached { document: document.clone(), last_used: self.compilation });
        Some(document)
    }

    /// After a full compilation: forgets the documents it did not use.
    pub(super) fn keep_only_used(&mut self) {
        let compilation = self.compilation;
        self.by_text.retain(|_, cached| cached.last_used == compilation);
    }
}

impl Context<'_> {
    /// The parsed policy of a scope, if it has one.
    pub(super) fn policy(&mut self, scope: &PolicyScope) -> Option<Arc<PolicyDocument>> {
        let (_, text) = self.state.policies.get(&scope.record_id().key())?;
        self.documents.parsed(text, scope)
    }
}
