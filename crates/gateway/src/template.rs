//! URL templates such as `/orders/{id}`: matching a request path and filling in a rewrite.

/// A parsed operation template: literal segments and `{param}` segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlTemplate {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl UrlTemplate {
    pub(crate) fn parse(template: &str) -> Self {
        let path = template.split('?').next().unwrap_or_default();
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_owned()),
                None => Segment::Literal(s.to_owned()),
            })
            .collect();
        Self { segments }
    }

    /// The parameters if `path` (below the API prefix) matches; literals compare case-insensitively.
    pub(crate) fn matches<'p>(&self, path: &'p str) -> Option<Vec<(&str, &'p str)>> {
        let mut parts = path.split('/').filter(|s| !s.is_empty());
        let mut params = Vec::new();
        for segment in &self.segments {
            let part = parts.next()?;
            match segment {
                Segment::Literal(literal) if literal.eq_ignore_ascii_case(part) => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.as_str(), part)),
            }
        }
        parts.next().is_none().then_some(params)
    }

    /// Number of literal segments: more literals = more specific, tried first.
    pub(crate) fn specificity(&self) -> (usize, usize) {
        let literals = self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
        (literals, self.segments.len())
    }
}

/// Fills `{name}` in a rewrite template from matched parameters; unknown names stay as written.
pub(crate) fn fill(template: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                let name = &rest[open + 1..open + close];
                match params.iter().find(|(n, _)| *n == name) {
                    Some((_, value)) => out.push_str(value),
                    None => out.push_str(&rest[open..=open + close]),
                }
                rest = &rest[open + close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_literals_and_parameters() {
        let template = UrlTemplate::parse("/orders/{id}/lines/{line}");
        assert_eq!(template.matches("/orders/42/lines/7"), Some(vec![("id", "42"), ("line", "7")]));
        assert_eq!(template.matches("/ORDERS/42/lines/7"), Some(vec![("id", "42"), ("line", "7")]));
        assert_eq!(template.matches("/orders/42/lines"), None);
        assert_eq!(template.matches("/orders/42/lines/7/extra"), None);
        assert_eq!(UrlTemplate::parse("/").matches("/"), Some(vec![]));
    }

    #[test]
    fn fills_rewrite_templates() {
        assert_eq!(fill("/v2/orders/{id}", &[("id", "42")]), "/v2/orders/42");
        assert_eq!(fill("/v2/{unknown}/x", &[("id", "42")]), "/v2/{unknown}/x");
    }
}
