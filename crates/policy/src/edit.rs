//! Writing or removing one inbound statement in a stored policy text, shared by the CLI and the
//! portal. The text is the user's: it must come back as they wrote it except where the statement
//! is, so we splice the original at roxmltree's node ranges and never serialise the tree (that
//! would lose comments, attribute quoting, whitespace, line endings and the XML declaration).
//! Inserted lines follow the document's own indentation and line ending, and an inserted line is
//! exactly what removal takes away again, so removing what was set gives the original back. Not
//! quite where the insertion had to create structure: a self-closing `<inbound />` stays
//! expanded, and an `<inbound>` we added stays with its `<base />` (which means what the absent
//! section meant), since removal cannot tell it from one the user wrote.

use std::ops::Range;

use roxmltree::{Document, Node};

use crate::parse::{PolicyError, parse, xml};

/// The document to start from when an API has no policy: every section inherits its parent's.
pub const EMPTY_POLICY: &str = "<policies>\n  <inbound>\n    <base />\n  </inbound>\n  <backend>\n    <base />\n  </backend>\n  <outbound>\n    <base />\n  </outbound>\n  <on-error>\n    <base />\n  </on-error>\n</policies>\n";

/// Which inbound statement to remove, or which one an [`InboundElement`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InboundElementKind {
    AuthenticationCertificate,
    SetBackendService,
}

impl InboundElementKind {
    pub const ALL: [InboundElementKind; 2] =
        [InboundElementKind::AuthenticationCertificate, InboundElementKind::SetBackendService];

    pub fn element(self) -> &'static str {
        match self {
            InboundElementKind::AuthenticationCertificate => "authentication-certificate",
            InboundElementKind::SetBackendService => "set-backend-service",
        }
    }

    /// The attribute that carries the entity id when we write the element.
    pub fn attribute(self) -> &'static str {
        match self {
            InboundElementKind::AuthenticationCertificate => "certificate-id",
            InboundElementKind::SetBackendService => "backend-id",
        }
    }
}

/// The inbound statement to write: always the by-id form, so it follows the entity (rotation,
/// a changed backend URL) instead of copying its current value into the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundElement<'a> {
    AuthenticationCertificate { certificate_id: &'a str },
    SetBackendService { backend_id: &'a str },
}

impl InboundElement<'_> {
    pub fn kind(&self) -> InboundElementKind {
        match self {
            InboundElement::AuthenticationCertificate { .. } => InboundElementKind::AuthenticationCertificate,
            InboundElement::SetBackendService { .. } => InboundElementKind::SetBackendService,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            InboundElement::AuthenticationCertificate { certificate_id: id }
            | InboundElement::SetBackendService { backend_id: id } => id,
        }
    }

    fn to_xml(self) -> String {
        let kind = self.kind();
        format!("<{} {}=\"{}\" />", kind.element(), kind.attribute(), escape_attribute(self.id()))
    }
}

/// Writes `element` as a direct child of `<inbound>`: it replaces the first element of its name
/// there (whatever its attributes, inline certificate forms included) and any further copies are
/// removed; otherwise it goes after inbound's first `<base />`, or first. Without an `<inbound>`
/// one is added as the first section, holding `<base />` too so the parent scope's inbound
/// statements still run, as they did while the section was absent.
///
/// `text` must be a document [`parse`] accepts; its error is returned unchanged otherwise. The
/// result is parsed as well, so an id the parser refuses (empty, `{{…}}`) is refused with the
/// parser's error, whose line and column are in the written text.
pub fn set_inbound_element(text: &str, element: InboundElement<'_>) -> Result<String, PolicyError> {
    parse(text)?;
    let document = xml(text)?;
    let layout = Layout::of(text, &document);
    let written = element.to_xml();
    let policies = document.root_element();
    let edits = match section(policies, "inbound") {
        Some(inbound) => match children_named(inbound, element.kind()).split_first() {
            Some((first, further)) => {
                let mut edits = vec![Edit { range: first.range(), text: written }];
                edits.extend(removals(text, further));
                edits
            }
            None => {
                let base = inbound.children().find(|child| child.is_element() && child.tag_name().name() == "base");
                vec![layout.insert_child(inbound, base, &[(0, &written)])]
            }
        },
        None => {
            let block: [(usize, &str); 4] = [(0, "<inbound>"), (1, "<base />"), (1, &written), (0, "</inbound>")];
            vec![layout.insert_child(policies, None, &block)]
        }
    };
    let result = apply(text, edits);
    parse(&result)?;
    Ok(result)
}

/// Removes every direct child of `<inbound>` of this kind; a line that held nothing else goes
/// with it, so no blank line is left. Without one the text comes back unchanged.
///
/// `text` must be a document [`parse`] accepts; its error is returned unchanged otherwise.
pub fn remove_inbound_element(text: &str, kind: InboundElementKind) -> Result<String, PolicyError> {
    parse(text)?;
    let document = xml(text)?;
    let Some(inbound) = section(document.root_element(), "inbound") else { return Ok(text.to_owned()) };
    Ok(apply(text, removals(text, &children_named(inbound, kind))))
}

/// Replace `range` of the original text by `text`.
struct Edit {
    range: Range<usize>,
    text: String,
}

/// Applies non-overlapping edits, all addressed in the original text.
fn apply(original: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|edit| edit.range.start);
    let mut result = String::with_capacity(original.len() + edits.iter().map(|e| e.text.len()).sum::<usize>());
    let mut copied = 0;
    for edit in edits {
        debug_assert!(copied <= edit.range.start, "edits overlap");
        result.push_str(&original[copied..edit.range.start]);
        result.push_str(&edit.text);
        copied = edit.range.end;
    }
    result.push_str(&original[copied..]);
    result
}

fn section<'a, 'input>(policies: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    policies.children().find(|child| child.is_element() && child.tag_name().name() == name)
}

fn children_named<'a, 'input>(parent: Node<'a, 'input>, kind: InboundElementKind) -> Vec<Node<'a, 'input>> {
    parent.children().filter(|child| child.is_element() && child.tag_name().name() == kind.element()).collect()
}

/// Edits deleting `nodes` (document order). Copies separated only by spaces count together, so
/// a line of nothing but removed copies is removed whole too.
fn removals(text: &str, nodes: &[Node<'_, '_>]) -> Vec<Edit> {
    let mut groups: Vec<Vec<Range<usize>>> = Vec::new();
    for node in nodes {
        let range = node.range();
        match groups.last_mut() {
            Some(group) if group.last().is_some_and(|prev| is_blank(&text[prev.end..range.start])) => group.push(range),
            _ => groups.push(vec![range]),
        }
    }
    let mut edits = Vec::new();
    for group in groups {
        let (Some(first), Some(last)) = (group.first(), group.last()) else { continue };
        let line_start = line_start(text, first.start);
        match line_end_after_blanks(text, last.end) {
            Some(line_end) if is_blank(&text[line_start..first.start]) => {
                edits.push(Edit { range: line_start..line_end, text: String::new() })
            }
            _ => edits.extend(group.into_iter().map(|range| Edit { range, text: String::new() })),
        }
    }
    edits
}

/// How the document is laid out, so inserted lines look like their neighbours.
struct Layout<'t> {
    text: &'t str,
    /// One level of indentation.
    unit: &'t str,
    line_ending: &'static str,
}

impl<'t> Layout<'t> {
    fn of(text: &'t str, document: &Document<'t>) -> Self {
        let line_ending = match text.find('\n') {
            Some(at) if text[..at].ends_with('\r') => "\r\n",
            _ => "\n",
        };
        // The first element indented deeper than its parent, both starting their lines, shows
        // the step; a document without one gets the two spaces of EMPTY_POLICY.
        let unit = document
            .descendants()
            .filter(|node| node.is_element())
            .find_map(|node| {
                let parent = node.parent_element()?;
                let inner = indentation(text, node)?;
                let outer = indentation(text, parent)?;
                inner.strip_prefix(outer).filter(|step| !step.is_empty())
            })
            .unwrap_or("  ");
        Layout { text, unit, line_ending }
    }

    /// Inserts `lines` (depth below the children's indentation, text) as the first children of
    /// `parent`, or right after `after`: on lines of their own where the document has lines there,
    /// else inline, joined without whitespace, so that removing them restores the text exactly.
    fn insert_child(&self, parent: Node<'_, '_>, after: Option<Node<'_, '_>>, lines: &[(usize, &str)]) -> Edit {
        let text = self.text;
        let inline: String = lines.iter().map(|(_, line)| *line).collect();
        let range = parent.range();
        if after.is_none() && text[range.clone()].ends_with("/>") {
            // Self-closing: the start tag keeps whatever it holds, only "/>" becomes content.
            let open_end = text[..range.end - 2].trim_end_matches([' ', '\t', '\r', '\n']).len();
            let name = tag_name(text, parent);
            let container = parent.parent().map_or(0..text.len(), |p| p.range());
            let content = if text[container].contains('\n') {
                let outer = line_indentation(text, range.start);
                let inner = format!("{outer}{}", self.unit);
                format!("{}{}{outer}", self.line_ending, self.block(&inner, lines))
            } else {
                inline
            };
            return Edit { range: open_end..range.end, text: format!(">{content}</{name}>") };
        }
        let at = after.map_or_else(|| start_tag_end(text, parent), |node| node.range().end);
        match next_line_after_comments(text, at) {
            Some(next_line) => {
                let indent = self.child_indentation(parent);
                Edit { range: next_line..next_line, text: self.block(&indent, lines) }
            }
            None => Edit { range: at..at, text: inline },
        }
    }

    fn block(&self, indent: &str, lines: &[(usize, &str)]) -> String {
        let mut block = String::new();
        for (depth, line) in lines {
            block.push_str(indent);
            block.push_str(&self.unit.repeat(*depth));
            block.push_str(line);
            block.push_str(self.line_ending);
        }
        block
    }

    /// The indentation of `parent`'s children that start their lines (elements before comments),
    /// else one step deeper than `parent`'s line.
    fn child_indentation(&self, parent: Node<'_, '_>) -> String {
        let children = parent.children();
        children
            .clone()
            .filter(Node::is_element)
            .chain(children.filter(Node::is_comment))
            .find_map(|child| indentation(self.text, child))
            .map_or_else(
                || format!("{}{}", line_indentation(self.text, parent.range().start), self.unit),
                str::to_owned,
            )
    }
}

/// `node`'s indentation, if only spaces and tabs precede it on its line.
fn indentation<'t>(text: &'t str, node: Node<'_, '_>) -> Option<&'t str> {
    let start = node.range().start;
    let before = &text[line_start(text, start)..start];
    is_blank(before).then_some(before)
}

/// The spaces and tabs that begin the line holding `at`.
fn line_indentation(text: &str, at: usize) -> &str {
    let line = &text[line_start(text, at)..at];
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |newline| newline + 1)
}

fn is_blank(text: &str) -> bool {
    text.bytes().all(|b| b == b' ' || b == b'\t')
}

/// Where the next line begins, if only spaces and tabs stand between `at` and the line ending.
fn line_end_after_blanks(text: &str, at: usize) -> Option<usize> {
    let rest = text[at..].trim_start_matches([' ', '\t']);
    let after_blanks = text.len() - rest.len();
    ["\r\n", "\n"].into_iter().find(|ending| rest.starts_with(ending)).map(|ending| after_blanks + ending.len())
}

/// Like [`line_end_after_blanks`], but comments may stand there too: a comment after `<base />`
/// is about the line it ends, so an insertion goes below it rather than splitting the line.
fn next_line_after_comments(text: &str, mut at: usize) -> Option<usize> {
    loop {
        at = text.len() - text[at..].trim_start_matches([' ', '\t']).len();
        if !text[at..].starts_with("<!--") {
            return line_end_after_blanks(text, at);
        }
        at += text[at..].find("-->")? + 3;
    }
}

/// The end of `node`'s start tag (after its `>`); quotes are honoured since a namespace
/// declaration's value may hold a `>`.
fn start_tag_end(text: &str, node: Node<'_, '_>) -> usize {
    let start = node.range().start;
    let mut quote = None;
    for (offset, byte) in text[start..].bytes().enumerate() {
        match (quote, byte) {
            (None, b'"' | b'\'') => quote = Some(byte),
            (Some(open), _) if open == byte => quote = None,
            (None, b'>') => return start + offset + 1,
            _ => {}
        }
    }
    node.range().end
}

/// The element's name as written, prefix included.
fn tag_name<'t>(text: &'t str, node: Node<'_, '_>) -> &'t str {
    let after_open = &text[node.range().start + 1..];
    let end = after_open.find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>').unwrap_or(after_open.len());
    &after_open[..end]
}

fn escape_attribute(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            other => escaped.push(other),
        }
    }
    escaped
}
