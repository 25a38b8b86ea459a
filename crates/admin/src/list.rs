//! Collection queries: `$top`, `$skip` and the `$filter` subset of OData that APIM accepts.
//!
//! Grammar: `clause (and clause)*`, where a clause is `field op literal` (op: eq ne lt gt le ge)
//! or `fn(field, literal)` (fn: contains startswith endswith). Literals are quoted strings
//! (`''` escapes a quote) or bare words (`true`, numbers, timestamps). Comparison ignores case.

use serde::Deserialize;
use utoipa::IntoParams;

use crate::ApiError;
use crate::envelope::{Page, Resource};

const DEFAULT_TOP: usize = 100;
const MAX_TOP: usize = 1000;

/// Query parameters of every list operation.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// OData filter subset, e.g. `contains(subject,'contoso') and expirationDate lt '2027-01-01'`.
    #[serde(rename = "$filter")]
    #[param(rename = "$filter")]
    pub filter: Option<String>,
    /// Page size (1 to 1000, default 100).
    #[serde(rename = "$top")]
    #[param(rename = "$top")]
    pub top: Option<String>,
    /// Entities to skip (≥ 0).
    #[serde(rename = "$skip")]
    #[param(rename = "$skip")]
    pub skip: Option<String>,
    /// Certificates only: `true` lists the vault references whose last refresh failed.
    #[serde(rename = "isKeyVaultRefreshFailed")]
    #[param(rename = "isKeyVaultRefreshFailed")]
    pub is_key_vault_refresh_failed: Option<bool>,
    /// Accepted and ignored, as in APIM.
    #[allow(dead_code)] // parsed only so that clients sending it are documented, not rejected
    #[serde(rename = "api-version")]
    #[param(rename = "api-version")]
    pub api_version: Option<String>,
}

/// Something a filter can look into: the value of a named field, as text.
pub trait Filterable {
    /// The filterable field names of this collection.
    const FIELDS: &'static [&'static str];
    fn field(&self, name: &str) -> Option<String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    field: String,
    op: Op,
    value: String,
}

/// A parsed `$filter`.
#[derive(Debug, Default)]
pub struct Filter(Vec<Clause>);

impl Filter {
    pub fn parse(text: &str, fields: &[&str]) -> Result<Self, ApiError> {
        let tokens = tokenize(text)?;
        let mut clauses = Vec::new();
        let mut rest = tokens.as_slice();
        loop {
            let (clause, after) = parse_clause(rest)?;
            if !fields.iter().any(|f| f.eq_ignore_ascii_case(&clause.field)) {
                return Err(filter_error(format!(
                    "'{}' cannot be filtered on; filterable fields are: {}",
                    clause.field,
                    fields.join(", ")
                )));
            }
            clauses.push(clause);
            match after {
                [] => break,
                [Token::Word(and), more @ ..] if and.eq_ignore_ascii_case("and") && !more.is_empty() => rest = more,
                _ => return Err(filter_error("clauses must be joined with 'and'".into())),
            }
        }
        Ok(Self(clauses))
    }

    pub fn matches<T: Filterable>(&self, item: &T) -> bool {
        self.0.iter().all(|clause| {
            let Some(actual) = item.field(&canonical(T::FIELDS, &clause.field)) else {
                return clause.op == Op::Ne;
            };
            let (a, b) = (actual.to_lowercase(), clause.value.to_lowercase());
            match clause.op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                Op::Lt => a < b,
                Op::Gt => a > b,
                Op::Le => a <= b,
                Op::Ge => a >= b,
                Op::Contains => a.contains(&b),
                Op::StartsWith => a.starts_with(&b),
                Op::EndsWith => a.ends_with(&b),
            }
        })
    }
}

fn canonical(fields: &[&str], name: &str) -> String {
    fields.iter().find(|f| f.eq_ignore_ascii_case(name)).map_or_else(|| name.to_owned(), |f| (*f).to_owned())
}

impl ListQuery {
    /// Filters, counts and pages `items` (already in collection order) into an APIM list page.
    pub fn page<T: Filterable, P>(
        &self,
        collection: &str,
        items: Vec<T>,
        to_resource: impl Fn(T) -> Resource<P>,
    ) -> Result<Page<P>, ApiError> {
        let filter = match &self.filter {
            Some(text) => Filter::parse(text, T::FIELDS)?,
            None => Filter::default(),
        };
        let top = parse_bound(self.top.as_deref(), "$top", 1, MAX_TOP)?.unwrap_or(DEFAULT_TOP);
        let skip = parse_bound(self.skip.as_deref(), "$skip", 0, usize::MAX)?.unwrap_or(0);
        let matching: Vec<T> = items.into_iter().filter(|item| filter.matches(item)).collect();
        let count = matching.len();
        let next_link = (skip.saturating_add(top) < count).then(|| self.next_link(collection, skip + top, top));
        let value = matching.into_iter().skip(skip).take(top).map(to_resource).collect();
        Ok(Page { value, count, next_link })
    }

    fn next_link(&self, collection: &str, skip: usize, top: usize) -> String {
        let mut link = format!("/{collection}?$top={top}&$skip={skip}");
        if let Some(filter) = &self.filter {
            link.push_str("&$filter=");
            link.push_str(&certgate_model::percent_encode(filter));
        }
        link
    }
}

fn parse_bound(raw: Option<&str>, name: &str, min: usize, max: usize) -> Result<Option<usize>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    match raw.parse::<usize>() {
        Ok(n) if n >= min && n <= max => Ok(Some(n)),
        _ if max == usize::MAX => Err(ApiError::validation(name, format!("{name} must be an integer ≥ {min}"))),
        _ => Err(ApiError::validation(name, format!("{name} must be an integer from {min} to {max}"))),
    }
}

fn filter_error(message: String) -> ApiError {
    ApiError::validation("$filter", message)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<Token>, ApiError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        Some('\'') => break,
                        Some(other) => value.push(other),
                        None => return Err(filter_error("unterminated string literal".into())),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | ',' | '\'') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

fn parse_clause(tokens: &[Token]) -> Result<(Clause, &[Token]), ApiError> {
    let literal = |t: &Token| match t {
        Token::Quoted(v) | Token::Word(v) => Some(v.clone()),
        _ => None,
    };
    match tokens {
        [Token::Word(func), Token::Open, Token::Word(field), Token::Comma, value, Token::Close, rest @ ..] => {
            let op = match func.to_ascii_lowercase().as_str() {
                "contains" => Op::Contains,
                "startswith" => Op::StartsWith,
                "endswith" => Op::EndsWith,
                other => return Err(filter_error(format!("unsupported function '{other}'"))),
            };
            let value = literal(value).ok_or_else(|| filter_error(format!("{func} needs a literal value")))?;
            Ok((Clause { field: field.clone(), op, value }, rest))
        }
        [Token::Word(field), Token::Word(op), value, rest @ ..] => {
            let op = match op.to_ascii_lowercase().as_str() {
                "eq" => Op::Eq,
                "ne" => Op::Ne,
                "lt" => Op::Lt,
                "gt" => Op::Gt,
                "le" => Op::Le,
                "ge" => Op::Ge,
                other => return Err(filter_error(format!("unsupported operator '{other}'"))),
            };
            let value =
                literal(value).ok_or_else(|| filter_error(format!("'{field} {op:?}' needs a literal value")))?;
            Ok((Clause { field: field.clone(), op, value }, rest))
        }
        _ => Err(filter_error("expected 'field op value' or 'function(field, value)'".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(&'static str, &'static str);
    impl Filterable for Item {
        const FIELDS: &'static [&'static str] = &["name", "subject"];
        fn field(&self, name: &str) -> Option<String> {
            match name {
                "name" => Some(self.0.into()),
                "subject" => Some(self.1.into()),
                _ => None,
            }
        }
    }

    fn names(filter: &str) -> Vec<&'static str> {
        let items = [Item("a1", "CN=Alpha, O=Contoso"), Item("b2", "CN=Beta, O=Fabrikam"), Item("c3", "CN=O'Neil")];
        let filter = Filter::parse(filter, Item::FIELDS).expect("valid filter");
        items.iter().filter(|i| filter.matches(*i)).map(|i| i.0).collect()
    }

    #[test]
    fn evaluates_the_supported_subset() {
        assert_eq!(names("name eq 'A1'"), ["a1"]);
        assert_eq!(names("name ne 'a1'"), ["b2", "c3"]);
        assert_eq!(names("contains(subject,'contoso')"), ["a1"]);
    }

    #[test]
    fn evaluates_comparisons_and_conjunctions() {
        assert_eq!(names("name gt 'a1' and name le 'c3'"), ["b2", "c3"]);
        assert_eq!(names("endswith(subject,'o''neil')"), ["c3"]);
        assert_eq!(names("name ge 'b2' and contains(subject, 'fab')"), ["b2"]);
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        for bad in
            ["owner eq 'x'", "name like 'x'", "name eq", "name eq 'x' or name eq 'y'", "name eq 'x", "foo(name,'x')"]
        {
            let err = Filter::parse(bad, Item::FIELDS).err().unwrap_or_else(|| panic!("{bad} should fail"));
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
