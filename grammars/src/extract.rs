use std::collections::BTreeMap;
use std::ops::Range;

use streaming_iterator::StreamingIterator;
use tree_sitter::{Node, QueryCursor, Tree};

use crate::{language_queries, LanguageId};

/// What a definition is, from its `@definition.<kind>` capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DefinitionKind {
    Function,
    Method,
    Class,
    Struct,
    Enum,
    Interface,
    Trait,
    Impl,
    Type,
    Constant,
    Variable,
    Module,
    Macro,
}

impl DefinitionKind {
    pub fn from_capture_suffix(suffix: &str) -> Option<DefinitionKind> {
        let kind = match suffix {
            "function" => DefinitionKind::Function,
            "method" => DefinitionKind::Method,
            "class" => DefinitionKind::Class,
            "struct" => DefinitionKind::Struct,
            "enum" => DefinitionKind::Enum,
            "interface" => DefinitionKind::Interface,
            "trait" => DefinitionKind::Trait,
            "impl" => DefinitionKind::Impl,
            "type" => DefinitionKind::Type,
            "constant" => DefinitionKind::Constant,
            "variable" => DefinitionKind::Variable,
            "module" => DefinitionKind::Module,
            "macro" => DefinitionKind::Macro,
            _ => return None,
        };
        Some(kind)
    }

    /// Lower-case name, the same as the capture suffix.
    pub fn name(self) -> &'static str {
        match self {
            DefinitionKind::Function => "function",
            DefinitionKind::Method => "method",
            DefinitionKind::Class => "class",
            DefinitionKind::Struct => "struct",
            DefinitionKind::Enum => "enum",
            DefinitionKind::Interface => "interface",
            DefinitionKind::Trait => "trait",
            DefinitionKind::Impl => "impl",
            DefinitionKind::Type => "type",
            DefinitionKind::Constant => "constant",
            DefinitionKind::Variable => "variable",
            DefinitionKind::Module => "module",
            DefinitionKind::Macro => "macro",
        }
    }

    /// Kinds whose functions are methods: classes, structs, enums, interfaces, traits, impls.
    pub fn is_type_container(self) -> bool {
        matches!(
            self,
            DefinitionKind::Class
                | DefinitionKind::Struct
                | DefinitionKind::Enum
                | DefinitionKind::Interface
                | DefinitionKind::Trait
                | DefinitionKind::Impl
        )
    }

    /// Functions and methods (things with a body of statements).
    pub fn is_callable(self) -> bool {
        matches!(self, DefinitionKind::Function | DefinitionKind::Method)
    }
}

/// One definition found by a language's `definitions.scm`.
///
/// Lines are 0-based rows, as tree-sitter counts them; byte offsets index the parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedDefinition {
    pub name: String,
    pub kind: DefinitionKind,
    pub byte_range: Range<usize>,
    pub start_line: usize,
    /// Last line of the definition (inclusive).
    pub end_line: usize,
    /// End of the signature: the definition's text before its body, without trailing
    /// whitespace. For a definition without a body: its end when it spans at most two
    /// lines, else the end of its first line.
    pub signature_end_byte: usize,
    /// Line of the last character of the signature.
    pub signature_end_line: usize,
    /// Where the body (block, field list, class body...) starts, when there is one.
    pub body_start_byte: Option<usize>,
    /// Index (into the same `Vec`) of the innermost definition that contains this one.
    pub parent: Option<usize>,
}

/// One import found by a language's `imports.scm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedImport {
    pub byte_range: Range<usize>,
    pub start_line: usize,
    pub end_line: usize,
    /// Imported modules or paths, with quotes and angle brackets removed
    /// (`crate::store`, `app.models`, `./util`, `fmt`, `stdio.h`).
    pub modules: Vec<String>,
    /// Names imported from those modules (`Store`, `User`), when the syntax lists them.
    pub names: Vec<String>,
}

/// One identifier found by a language's `references.scm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedReference {
    pub name: String,
    pub byte_range: Range<usize>,
    pub line: usize,
}

/// Definitions and imports of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outline {
    pub definitions: Vec<ExtractedDefinition>,
    pub imports: Vec<ExtractedImport>,
}

/// Definitions and imports of `text`, parsed into `tree`, in one pass of the combined
/// outline query (definitions.scm + imports.scm): one traversal of the tree instead of two.
pub fn extract_outline(language: LanguageId, tree: &Tree, text: &str) -> Outline {
    let Ok(queries) = language_queries(language) else {
        return Outline::default();
    };
    let query = &queries.outline;
    let capture_names = query.capture_names();
    let mut raw_definitions: Vec<RawDefinition<'_>> = Vec::new();
    let mut imports_by_range: BTreeMap<(usize, usize), ExtractedImport> = BTreeMap::new();
    let mut cursor = QueryCursor::new();
    cursor.set_max_start_depth(Some(OUTLINE_MAX_START_DEPTH));
    let mut matches = cursor.matches(query, tree.root_node(), text.as_bytes());
    while let Some(query_match) = matches.next() {
        if !add_import_match(query_match, capture_names, text, &mut imports_by_range) {
            if let Some(raw) = definition_from_match(query_match, capture_names, text) {
                raw_definitions.push(raw);
            }
        }
    }
    Outline {
        definitions: finish_definitions(raw_definitions, text),
        imports: imports_by_range.into_values().collect(),
    }
}

fn node_end_line(node: Node<'_>) -> usize {
    let start = node.start_position();
    let end = node.end_position();
    if end.column == 0 && end.row > start.row {
        end.row - 1
    } else {
        end.row
    }
}

fn node_text<'text>(node: Node<'_>, text: &'text str) -> Option<&'text str> {
    text.get(node.byte_range())
}

const BODY_KINDS: &[&str] = &[
    "block",
    "compound_statement",
    "statement_block",
    "declaration_list",
    "field_declaration_list",
    "class_body",
    "interface_body",
    "enum_body",
    "body_statement",
    "enum_variant_list",
];

/// The body of a definition: its `body` field, or the `body` field of a child (an arrow
/// function's), or a block-like child, or failing that the first `{` token.
fn find_body(definition: Node<'_>) -> Option<Node<'_>> {
    if let Some(body) = definition.child_by_field_name("body") {
        return Some(body);
    }
    let mut queue = vec![(definition, 0usize)];
    let mut index = 0;
    while index < queue.len() {
        let (node, depth) = queue[index];
        index += 1;
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            if let Some(body) = child.child_by_field_name("body") {
                return Some(body);
            }
            if BODY_KINDS.contains(&child.kind()) {
                return Some(child);
            }
            if depth < 3 && child.named_child_count() > 0 {
                queue.push((child, depth + 1));
            }
        }
    }
    let mut cursor = definition.walk();
    let mut stack = vec![(definition, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
        for child in children.into_iter().rev() {
            if child.kind() == "{" {
                return Some(child);
            }
            if depth < 3 {
                stack.push((child, depth + 1));
            }
        }
    }
    None
}

/// Definitions and imports are looked for at most this deep in the syntax tree (a method
/// of an impl in two nested modules is at depth 7); deeper matches (local functions inside
/// function bodies) are skipped, which saves the query engine a lot of work.
pub const OUTLINE_MAX_START_DEPTH: u32 = 10;

struct RawDefinition<'tree> {
    node: Node<'tree>,
    name: String,
    kind: DefinitionKind,
    pattern_index: usize,
}

fn definition_from_match<'tree>(
    query_match: &tree_sitter::QueryMatch<'_, 'tree>,
    capture_names: &[&str],
    text: &str,
) -> Option<RawDefinition<'tree>> {
    let mut name: Option<String> = None;
    let mut definition: Option<(Node<'tree>, DefinitionKind)> = None;
    for capture in query_match.captures {
        let capture_name = capture_names[capture.index as usize];
        if capture_name == "name" {
            if let Some(name_text) = node_text(capture.node, text) {
                name = Some(name_text.trim().to_string());
            }
        } else if let Some(suffix) = capture_name.strip_prefix("definition.") {
            if let Some(kind) = DefinitionKind::from_capture_suffix(suffix) {
                definition = Some((capture.node, kind));
            }
        }
    }
    let (name, (mut node, kind)) = (name?, definition?);
    if name.is_empty() {
        return None;
    }
    // `export function f()` / `export default class C`: the export belongs to the signature.
    if let Some(parent) = node.parent() {
        if parent.kind() == "export_statement" {
            node = parent;
        }
    }
    Some(RawDefinition {
        node,
        name,
        kind,
        pattern_index: query_match.pattern_index,
    })
}

/// Definitions of `text`, sorted by start offset (outer definitions before inner ones).
pub fn extract_definitions(language: LanguageId, tree: &Tree, text: &str) -> Vec<ExtractedDefinition> {
    let Ok(queries) = language_queries(language) else {
        return Vec::new();
    };
    let query = &queries.definitions;
    let capture_names = query.capture_names();
    let mut raw_definitions: Vec<RawDefinition<'_>> = Vec::new();
    let mut cursor = QueryCursor::new();
    cursor.set_max_start_depth(Some(OUTLINE_MAX_START_DEPTH));
    let mut matches = cursor.matches(query, tree.root_node(), text.as_bytes());
    while let Some(query_match) = matches.next() {
        if let Some(raw) = definition_from_match(query_match, capture_names, text) {
            raw_definitions.push(raw);
        }
    }
    finish_definitions(raw_definitions, text)
}

/// A definition before scopes, methods and signatures are worked out: what a query match
/// (or the Rust item scanner) found.
pub(crate) struct RawItem {
    pub name: String,
    pub kind: DefinitionKind,
    pub byte_range: Range<usize>,
    pub start_line: usize,
    /// Last line (inclusive), as [`node_end_line`] counts it.
    pub end_line: usize,
    /// Where the body starts (see [`find_body`]); only looked at for kinds with a body.
    pub body_start: Option<usize>,
    /// Index of the query pattern: of two captures of the same node, the first wins.
    pub pattern_index: usize,
}

/// Kinds whose definitions have a body (the others' signature is their first lines).
fn kind_has_body(kind: DefinitionKind) -> bool {
    !matches!(
        kind,
        DefinitionKind::Constant | DefinitionKind::Variable | DefinitionKind::Type | DefinitionKind::Macro
    )
}

/// Sorts, deduplicates (the same node captured by two patterns keeps the first pattern),
/// links scopes, turns functions in types into methods, finds bodies and signatures.
fn finish_definitions(raw_definitions: Vec<RawDefinition<'_>>, text: &str) -> Vec<ExtractedDefinition> {
    let items = raw_definitions
        .into_iter()
        .map(|raw| RawItem {
            body_start: kind_has_body(raw.kind)
                .then(|| find_body(raw.node))
                .flatten()
                .map(|body| body.start_byte()),
            byte_range: raw.node.byte_range(),
            start_line: raw.node.start_position().row,
            end_line: node_end_line(raw.node),
            name: raw.name,
            kind: raw.kind,
            pattern_index: raw.pattern_index,
        })
        .collect();
    finish_items(items, text)
}

/// [`finish_definitions`] for items however found.
pub(crate) fn finish_items(mut raw_definitions: Vec<RawItem>, text: &str) -> Vec<ExtractedDefinition> {
    raw_definitions.sort_by_key(|raw| {
        (
            raw.byte_range.start,
            std::cmp::Reverse(raw.byte_range.end),
            raw.pattern_index,
        )
    });
    raw_definitions.dedup_by(|later, earlier| later.byte_range == earlier.byte_range);

    let mut definitions: Vec<ExtractedDefinition> = Vec::with_capacity(raw_definitions.len());
    let mut open_scopes: Vec<usize> = Vec::new();
    for raw in raw_definitions {
        let byte_range = raw.byte_range;
        while let Some(&top) = open_scopes.last() {
            if definitions[top].byte_range.end >= byte_range.end
                && definitions[top].byte_range.start <= byte_range.start
            {
                break;
            }
            open_scopes.pop();
        }
        let parent = open_scopes.last().copied();
        let mut kind = raw.kind;
        if kind == DefinitionKind::Function {
            if let Some(parent_index) = parent {
                if definitions[parent_index].kind.is_type_container() {
                    kind = DefinitionKind::Method;
                }
            }
        }
        let start_line = raw.start_line;
        let end_line = raw.end_line;
        let body_start = kind_has_body(kind)
            .then_some(raw.body_start)
            .flatten()
            .filter(|&body| body > byte_range.start && body < byte_range.end);
        let (signature_end_byte, body_start_byte) = match body_start {
            Some(body) => {
                let before_body = text.get(byte_range.start..body).unwrap_or("");
                let trimmed = before_body.trim_end();
                let end = if trimmed.is_empty() {
                    body
                } else {
                    byte_range.start + trimmed.len()
                };
                (end, Some(body))
            }
            None => {
                if end_line <= start_line + 1 {
                    (byte_range.end, None)
                } else {
                    let definition_text = text.get(byte_range.clone()).unwrap_or("");
                    let first_line_length = definition_text.find('\n').unwrap_or(definition_text.len());
                    (byte_range.start + first_line_length, None)
                }
            }
        };
        let signature_text = text.get(byte_range.start..signature_end_byte).unwrap_or("");
        let signature_end_line = start_line + signature_text.matches('\n').count();
        definitions.push(ExtractedDefinition {
            name: raw.name,
            kind,
            byte_range,
            start_line,
            end_line,
            signature_end_byte,
            signature_end_line,
            body_start_byte,
            parent,
        });
        open_scopes.push(definitions.len() - 1);
    }
    definitions
}

pub(crate) fn clean_module_text(raw: &str) -> String {
    let trimmed = raw.trim();
    let trimmed = trimmed
        .trim_start_matches(['"', '\'', '`', '<'])
        .trim_end_matches(['"', '\'', '`', '>', ';']);
    trimmed.trim().to_string()
}

/// Adds the import of a match to `imports_by_range`; false when the match has no `@import`.
fn add_import_match(
    query_match: &tree_sitter::QueryMatch<'_, '_>,
    capture_names: &[&str],
    text: &str,
    imports_by_range: &mut BTreeMap<(usize, usize), ExtractedImport>,
) -> bool {
    let Some(import_node) = query_match
        .captures
        .iter()
        .find(|capture| capture_names[capture.index as usize] == "import")
        .map(|capture| capture.node)
    else {
        return false;
    };
    let import = imports_by_range
        .entry((import_node.start_byte(), import_node.end_byte()))
        .or_insert_with(|| ExtractedImport {
            byte_range: import_node.byte_range(),
            start_line: import_node.start_position().row,
            end_line: node_end_line(import_node),
            modules: Vec::new(),
            names: Vec::new(),
        });
    for capture in query_match.captures {
        let Some(captured_text) = node_text(capture.node, text) else {
            continue;
        };
        match capture_names[capture.index as usize] {
            "import.module" => {
                let module = clean_module_text(captured_text);
                if !module.is_empty() && !import.modules.contains(&module) {
                    import.modules.push(module);
                }
            }
            "import.name" => {
                let name = captured_text.trim().to_string();
                if !name.is_empty() && !import.names.contains(&name) {
                    import.names.push(name);
                }
            }
            _ => {}
        }
    }
    true
}

/// Imports of `text`, in source order. Several matches on the same import node are merged.
pub fn extract_imports(language: LanguageId, tree: &Tree, text: &str) -> Vec<ExtractedImport> {
    let Ok(queries) = language_queries(language) else {
        return Vec::new();
    };
    let query = &queries.imports;
    let capture_names = query.capture_names();
    let mut imports_by_range: BTreeMap<(usize, usize), ExtractedImport> = BTreeMap::new();
    let mut cursor = QueryCursor::new();
    cursor.set_max_start_depth(Some(OUTLINE_MAX_START_DEPTH));
    let mut matches = cursor.matches(query, tree.root_node(), text.as_bytes());
    while let Some(query_match) = matches.next() {
        add_import_match(query_match, capture_names, text, &mut imports_by_range);
    }
    imports_by_range.into_values().collect()
}

/// Identifiers of `text` within `byte_range` (the whole text when `None`), in source order.
pub fn extract_references(
    language: LanguageId,
    tree: &Tree,
    text: &str,
    byte_range: Option<Range<usize>>,
) -> Vec<ExtractedReference> {
    let Ok(queries) = language_queries(language) else {
        return Vec::new();
    };
    let query = &queries.references;
    let mut cursor = QueryCursor::new();
    if let Some(range) = byte_range {
        cursor.set_byte_range(range);
    }
    let mut references: Vec<ExtractedReference> = Vec::new();
    let mut captures = cursor.captures(query, tree.root_node(), text.as_bytes());
    while let Some((query_match, capture_index)) = captures.next() {
        let Some(capture) = query_match.captures.get(*capture_index) else {
            continue;
        };
        let Some(name) = node_text(capture.node, text) else {
            continue;
        };
        let byte_range = capture.node.byte_range();
        if references
            .last()
            .is_some_and(|last| last.byte_range == byte_range)
        {
            continue;
        }
        references.push(ExtractedReference {
            name: name.to_string(),
            byte_range,
            line: capture.node.start_position().row,
        });
    }
    references
}
