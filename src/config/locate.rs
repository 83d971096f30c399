//! The position-aware view of `jobs.yaml`, built with marked-yaml.
//!
//! Owns the [`Document`] tree used for two things: refusing YAML features
//! litewarden does not accept (duplicate keys, anchors, aliases, merge keys,
//! tags) before serde sees the text, and finding the `line:column` of a key
//! path for semantic errors found later on the typed config.
//!
//! Refusing anchors and aliases up front also bounds "billion laughs" alias
//! bombs: the first `&anchor` is an error with its position.

use marked_yaml::types::{MarkedMappingNode, Node};
use marked_yaml::{LoadError, LoaderOptions};

/// A 1-based position in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl Position {
    /// The first character of the file.
    pub const START: Position = Position { line: 1, column: 1 };
}

/// One step of a key path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A list index, from 0.
    Index(usize),
}

/// A key path such as `databases.website_crawler.path`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The path of the top-level key `key`.
    pub fn root(key: &str) -> Self {
        Self(vec![Segment::Key(key.to_string())])
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_string()));
        Self(segments)
    }

    /// This path extended by a list index.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A structural problem found while building the [`Document`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructureError {
    /// Where it is.
    pub position: Position,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
}

/// The deepest block nesting accepted. `jobs.yaml` needs six levels; the
/// YAML parser recurses once per level of indentation without a limit of
/// its own (it has one for `{ }` and `[ ]`), so a file nested thousands of
/// levels deep would overflow the stack.
pub const MAX_NESTING: usize = 64;

/// The first line whose block nesting (indentation levels plus `- `
/// sequence entries opened on the line) goes past [`MAX_NESTING`].
pub fn too_deep(text: &str) -> Option<Position> {
    let mut indents: Vec<usize> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        while indents.last().is_some_and(|&top| top >= indent) {
            indents.pop();
        }
        indents.push(indent);
        let mut rest = content;
        let mut dashes = 0;
        while let Some(after) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("-\t")) {
            dashes += 1;
            rest = after.trim_start();
        }
        if indents.len() + dashes > MAX_NESTING {
            return Some(Position {
                line: index + 1,
                column: indent + 1,
            });
        }
    }
    None
}

/// The parsed file with positions.
#[derive(Debug)]
pub struct Document {
    root: Node,
}

const SHARE_HINT: &str = "put shared settings under `defaults:` instead";

impl Document {
    /// Parses `text`, refusing duplicate keys, anchors, aliases, tags and
    /// merge keys.
    pub fn parse(text: &str) -> Result<Self, StructureError> {
        if let Some(position) = too_deep(text) {
            return Err(StructureError {
                position,
                message: format!(
                    "nested more than {MAX_NESTING} levels deep; jobs.yaml needs at most six"
                ),
            });
        }
        let options = LoaderOptions::default().error_on_duplicate_keys(true);
        let root = marked_yaml::parse_yaml_with_options(0, text, options)
            .map_err(|error| structure_error(text, error))?;
        let document = Self { root };
        if let Some(position) = find_merge_key(&document.root) {
            return Err(StructureError {
                position,
                message: format!("merge keys (`<<`) are not supported; {SHARE_HINT}"),
            });
        }
        Ok(document)
    }

    /// The position of the value at `path` when it is a scalar, else of
    /// its key; when the path does not exist, the deepest part that does
    /// (the file start when nothing matches).
    pub fn locate(&self, path: &FieldPath) -> Position {
        let mut node = &self.root;
        let mut position = Position::START;
        for segment in &path.0 {
            let child = match (segment, node) {
                (Segment::Key(key), Node::Mapping(map)) => {
                    find_key(map, key).map(|(key_node, value)| {
                        position = marker_position(key_node.span().start()).unwrap_or(position);
                        value
                    })
                }
                (Segment::Index(index), Node::Sequence(list)) => {
                    list.get(*index).inspect(|element| {
                        position = marker_position(element.span().start()).unwrap_or(position);
                    })
                }
                _ => None,
            };
            match child {
                Some(child) => node = child,
                None => return position,
            }
        }
        match node {
            Node::Scalar(scalar) => marker_position(scalar.span().start()).unwrap_or(position),
            _ => position,
        }
    }

    /// The text of the scalar at `path`, when there is one.
    pub fn scalar(&self, path: &FieldPath) -> Option<&str> {
        match self.node(path)? {
            Node::Scalar(scalar) => Some(scalar.as_str()),
            _ => None,
        }
    }

    /// The keys of the mapping at `path` (empty when it is not a mapping).
    pub fn keys(&self, path: &FieldPath) -> Vec<&str> {
        match self.node(path) {
            Some(Node::Mapping(map)) => map.keys().map(|key| key.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the file has a mapping at `path`.
    pub fn is_mapping(&self, path: &FieldPath) -> bool {
        matches!(self.node(path), Some(Node::Mapping(_)))
    }

    fn node(&self, path: &FieldPath) -> Option<&Node> {
        let mut node = &self.root;
        for segment in &path.0 {
            node = match (segment, node) {
                (Segment::Key(key), Node::Mapping(map)) => find_key(map, key)?.1,
                (Segment::Index(index), Node::Sequence(list)) => list.get(*index)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The position of the *key* at the end of `path` (for "unknown" or
    /// "duplicate" style errors about the key itself).
    pub fn locate_key(&self, path: &FieldPath) -> Position {
        let Some((last, parent)) = path.0.split_last() else {
            return Position::START;
        };
        let parent_path = FieldPath(parent.to_vec());
        let mut node = &self.root;
        for segment in &parent_path.0 {
            node = match (segment, node) {
                (Segment::Key(key), Node::Mapping(map)) => match find_key(map, key) {
                    Some((_, value)) => value,
                    None => return self.locate(&parent_path),
                },
                (Segment::Index(index), Node::Sequence(list)) => match list.get(*index) {
                    Some(value) => value,
                    None => return self.locate(&parent_path),
                },
                _ => return self.locate(&parent_path),
            };
        }
        match (last, node) {
            (Segment::Key(key), Node::Mapping(map)) => find_key(map, key)
                .and_then(|(key_node, _)| marker_position(key_node.span().start()))
                .unwrap_or_else(|| self.locate(&parent_path)),
            _ => self.locate(path),
        }
    }
}

fn find_key<'a>(
    map: &'a MarkedMappingNode,
    key: &str,
) -> Option<(&'a marked_yaml::types::MarkedScalarNode, &'a Node)> {
    map.get_key_value(key)
}

fn marker_position(marker: Option<&marked_yaml::Marker>) -> Option<Position> {
    marker.map(|m| Position {
        line: m.line(),
        column: m.column(),
    })
}

fn find_merge_key(node: &Node) -> Option<Position> {
    match node {
        Node::Mapping(map) => map.iter().find_map(|(key, value)| {
            if key.as_str() == "<<" {
                Some(marker_position(key.span().start()).unwrap_or(Position::START))
            } else {
                find_merge_key(value)
            }
        }),
        Node::Sequence(list) => list.iter().find_map(find_merge_key),
        Node::Scalar(_) => None,
    }
}

fn structure_error(text: &str, error: LoadError) -> StructureError {
    let at = |marker: &marked_yaml::Marker| Position {
        line: marker.line(),
        column: marker.column(),
    };
    match error {
        LoadError::TopLevelMustBeMapping(m) | LoadError::TopLevelMustBeSequence(m) => {
            StructureError {
                position: at(&m),
                message: "the top level must be a mapping with `version:` and `databases:`".into(),
            }
        }
        LoadError::UnexpectedAnchor(m) => StructureError {
            position: anchor_position(text, at(&m)),
            message: format!(
                "anchors and aliases (`&name`, `*name`) are not supported; {SHARE_HINT}"
            ),
        },
        LoadError::UnexpectedTag(m) => StructureError {
            position: at(&m),
            message: "YAML tags (`!tag`, `!!str`) are not supported; write the plain value".into(),
        },
        LoadError::MappingKeyMustBeScalar(m) => StructureError {
            position: at(&m),
            message: "mapping keys must be plain names".into(),
        },
        LoadError::DuplicateKey(inner) => {
            let first = marker_position(inner.prev_key.span().start()).unwrap_or(Position::START);
            StructureError {
                position: marker_position(inner.key.span().start()).unwrap_or(Position::START),
                message: format!(
                    "duplicate key `{}` (first defined at line {} column {})",
                    inner.key.as_str(),
                    first.line,
                    first.column
                ),
            }
        }
        LoadError::ScanError(m, scan) => {
            let position = at(&m);
            StructureError {
                position,
                message: scan_message(text, position, &scan.to_string()),
            }
        }
    }
}

/// marked-yaml marks the node after an anchor; point at the `&` itself.
fn anchor_position(text: &str, marked: Position) -> Position {
    let line = text
        .lines()
        .nth(marked.line.saturating_sub(1))
        .unwrap_or("");
    let before: Vec<char> = line.chars().take(marked.column.saturating_sub(1)).collect();
    match before.iter().rposition(|c| *c == '&') {
        Some(index) => Position {
            line: marked.line,
            column: index + 1,
        },
        None => marked,
    }
}

fn scan_message(text: &str, position: Position, raw: &str) -> String {
    let line = text
        .lines()
        .nth(position.line.saturating_sub(1))
        .unwrap_or("");
    let indentation: String = line.chars().take_while(|c| c.is_whitespace()).collect();
    if indentation.contains('\t') || raw.contains("tab") {
        return "tabs are not allowed for indentation in YAML; indent with spaces".into();
    }
    let detail = raw.split(" at byte ").next().unwrap_or(raw);
    if detail.contains("unknown anchor") {
        return format!("anchors and aliases (`&name`, `*name`) are not supported; {SHARE_HINT}");
    }
    match unclosed_flow(text, position) {
        Some((bracket, at)) => format!(
            "invalid YAML: {detail}; the `{bracket}` at line {} column {} is never closed",
            at.line, at.column
        ),
        None => format!("invalid YAML: {detail}"),
    }
}

/// The innermost `{` or `[` opened before `position` and not closed by it
/// (outside quotes and comments): a parser finds the missing `}` only where
/// the text stops making sense, often lines later.
fn unclosed_flow(text: &str, position: Position) -> Option<(char, Position)> {
    let mut open: Vec<(char, Position)> = Vec::new();
    for (index, line) in text.lines().enumerate().take(position.line) {
        let end = if index + 1 == position.line {
            position.column.saturating_sub(1)
        } else {
            usize::MAX
        };
        let mut quote: Option<char> = None;
        let mut escaped = false;
        let mut after_space = true;
        for (column, c) in line.chars().enumerate().take(end) {
            match quote {
                Some('"') if escaped => escaped = false,
                Some('"') if c == '\\' => escaped = true,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '"' | '\'' => quote = Some(c),
                    '#' if after_space => break,
                    '{' | '[' => open.push((
                        c,
                        Position {
                            line: index + 1,
                            column: column + 1,
                        },
                    )),
                    '}' | ']' => {
                        open.pop();
                    }
                    _ => {}
                },
            }
            after_space = c.is_whitespace();
        }
    }
    open.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_mapping_never_closed_is_named_with_where_it_opens() {
        let text = "version: 1\ndatabases:\n  app: { path: \"a}.db\", note: 'x]', backup: { every: 1h } # }\n  other: { path: b.db }\n";
        let error = Document::parse(text).err().unwrap();
        assert!(
            error
                .message
                .ends_with("; the `{` at line 3 column 8 is never closed"),
            "{}",
            error.message
        );
    }

    fn path(text: &str) -> FieldPath {
        let mut segments = text.split('.');
        let mut out = FieldPath::root(segments.next().unwrap());
        for s in segments {
            out = out.key(s);
        }
        out
    }

    #[test]
    fn locates_nested_values_and_falls_back_to_the_deepest_existing_key() {
        let doc = Document::parse("version: 1\ndatabases:\n  a:\n    path: a.db\n").unwrap();
        assert_eq!(
            doc.locate(&path("databases.a.path")),
            Position {
                line: 4,
                column: 11
            }
        );
        assert_eq!(
            doc.locate_key(&path("databases.a.path")),
            Position { line: 4, column: 5 }
        );
        assert_eq!(
            doc.locate(&path("databases.a.missing")),
            Position { line: 3, column: 3 }
        );
    }

    #[test]
    fn refuses_duplicate_keys_with_both_positions() {
        let err = Document::parse("version: 1\nversion: 2\n").unwrap_err();
        assert_eq!(err.position, Position { line: 2, column: 1 });
        assert!(
            err.message.contains("first defined at line 1"),
            "{}",
            err.message
        );
    }

    #[test]
    fn refuses_anchors_aliases_tags_and_merge_keys() {
        let anchor = Document::parse("a: &x 1\nb: *x\n").unwrap_err();
        assert!(anchor.message.contains("defaults:"));
        assert!(
            Document::parse("a: !!str 1\n")
                .unwrap_err()
                .message
                .contains("tags")
        );
        let merge = Document::parse("a:\n  <<: {b: 1}\n").unwrap_err();
        assert_eq!(merge.position, Position { line: 2, column: 3 });
    }

    #[test]
    fn explains_tab_indentation() {
        let err = Document::parse("a:\n\tb: 1\n").unwrap_err();
        assert!(err.message.contains("tabs"), "{}", err.message);
    }
}
