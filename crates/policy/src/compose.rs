use crate::{PolicyDocument, SectionKind, Statement};

/// The statements that run for one request, after `<base/>` splicing. No `Base` remains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EffectivePolicy {
    sections: [Vec<Statement>; 4],
}

impl EffectivePolicy {
    pub fn section(&self, kind: SectionKind) -> &[Statement] {
        &self.sections[kind.index()]
    }
}

/// Composes scopes from the outermost (global) to the innermost (operation). A missing scope or
/// section inherits its parent's section as is; `<base/>` splices the parent's statements in
/// place; a present section without `<base/>` replaces its parent's.
pub fn compose(scopes: &[Option<&PolicyDocument>]) -> EffectivePolicy {
    let mut effective = EffectivePolicy::default();
    for kind in SectionKind::ALL {
        let mut inherited: Vec<Statement> = Vec::new();
        for section in scopes.iter().flatten().filter_map(|doc| doc.section(kind)) {
            let mut spliced = Vec::with_capacity(section.len() + inherited.len());
            for statement in section {
                match statement {
                    Statement::Base => spliced.extend(inherited.iter().cloned()),
                    other => spliced.push(other.clone()),
                }
            }
            inherited = spliced;
        }
        effective.sections[kind.index()] = inherited;
    }
    effective
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn doc(inbound: &str) -> PolicyDocument {
        parse(&format!("<policies><inbound>{inbound}</inbound></policies>")).expect("valid")
    }

    fn headers(policy: &EffectivePolicy) -> Vec<String> {
        policy
            .section(SectionKind::Inbound)
            .iter()
            .map(|s| match s {
                Statement::SetHeader(h) => h.values[0].clone(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn header(value: &str) -> String {
        format!(r#"<set-header name="x" exists-action="append"><value>{value}</value></set-header>"#)
    }

    #[test]
    fn base_splices_the_parent_in_place() {
        let global = doc(&header("g"));
        let api = doc(&format!("{}<base />{}", header("a1"), header("a2")));
        let operation = doc(&format!("<base />{}", header("o")));
        let effective = compose(&[Some(&global), Some(&api), Some(&operation)]);
        assert_eq!(headers(&effective), ["a1", "g", "a2", "o"]);
    }

    #[test]
    fn a_section_without_base_replaces_and_a_missing_scope_inherits() {
        let global = doc(&header("g"));
        let api = doc(&header("a"));
        assert_eq!(headers(&compose(&[Some(&global), Some(&api), None])), ["a"]);
        assert_eq!(headers(&compose(&[Some(&global), None, None])), ["g"]);
        let only_backend =
            parse("<policies><backend><forward-request timeout=\"5\"/></backend></policies>").expect("valid");
        assert_eq!(headers(&compose(&[Some(&global), Some(&only_backend)])), ["g"], "absent section inherits");
    }
}
