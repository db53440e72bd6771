//! tree-sitter languages and Hearth's own per-language query files.
//!
//! Every supported language has three query files under `grammars/queries/<name>/`:
//!
//! - `definitions.scm`: captures a definition node as `@definition.<kind>` (`function`,
//!   `method`, `class`, `struct`, `enum`, `interface`, `trait`, `impl`, `type`, `constant`,
//!   `variable`, `module`, `macro`) and its name as `@name`;
//! - `imports.scm`: captures an import node as `@import`, the imported module or path as
//!   `@import.module` and imported names as `@import.name`;
//! - `references.scm`: captures identifiers as `@reference`.
//!
//! Queries are embedded with `include_str!`, compiled lazily once per language and cached.
//!
//! Architecture invariant: this crate knows syntax only. It does no file IO, keeps no state
//! besides the compiled queries, and never fails on bad input: parsing gives a tree with
//! ERROR nodes, extraction returns whatever it could find.

pub mod elide;
mod extract;
mod language;
mod queries;
mod rust_scan;

pub use extract::{
    extract_definitions, extract_imports, extract_outline, extract_references, DefinitionKind,
    ExtractedDefinition, ExtractedImport, ExtractedReference, Outline,
};
pub use language::LanguageId;
pub use queries::{language_queries, query_source, LanguageQueries, QueryCompileError, QueryKind};
pub use rust_scan::{scan_rust_failure, scan_rust_outline};

use std::cell::RefCell;

thread_local! {
    static THREAD_PARSER: RefCell<tree_sitter::Parser> = RefCell::new(tree_sitter::Parser::new());
}

/// Parses `text` as `language`. Returns `None` only if the grammar could not be loaded
/// (an ABI mismatch) — a syntactically broken text still gives a tree, with ERROR nodes.
///
/// Uses one parser per thread, so it is cheap to call repeatedly.
pub fn parse(language: LanguageId, text: &str) -> Option<tree_sitter::Tree> {
    THREAD_PARSER.with(|cell| {
        let mut parser = cell.try_borrow_mut().ok()?;
        parser.set_language(&language.tree_sitter_language()).ok()?;
        parser.parse(text, None)
    })
}

/// Parses `text` for [`extract_outline`]: gives the same definitions and imports as
/// [`parse`], but for Rust the interiors of function bodies that declare no item (no `fn`,
/// `struct`, `use`, ... inside) are left out of the parse (see `elide.rs`), which is most
/// of a typical file. The tree is only good for the outline: skipped bodies are empty
/// blocks, so references and syntax errors inside them are missing.
pub fn parse_outline(language: LanguageId, text: &str) -> Option<tree_sitter::Tree> {
    let skipped = match language {
        LanguageId::Rust => elide::rust_skippable_bodies(text),
        _ => Vec::new(),
    };
    if skipped.is_empty() {
        return parse(language, text);
    }
    // Long skipped parts are left out of the parser's included ranges; short ones are
    // blanked (spaces, newlines kept) instead: tree-sitter looks up the included range of a
    // position linearly, so thousands of ranges (one per constant) would cost more than
    // they save. Offsets and rows stay those of `text` either way.
    let (long, short): (Vec<_>, Vec<_>) = skipped
        .into_iter()
        .partition(|range| range.len() >= MIN_EXCLUDED_RANGE_BYTES);
    let blanked;
    let parsed_text = if short.is_empty() {
        text
    } else {
        let mut bytes = text.as_bytes().to_vec();
        for range in short {
            for byte in &mut bytes[range] {
                if *byte != b'\n' {
                    *byte = b' ';
                }
            }
        }
        // Ranges start and end at ASCII delimiters, so whole characters were replaced.
        blanked = String::from_utf8(bytes).ok()?;
        &blanked
    };
    if long.is_empty() {
        return parse(language, parsed_text);
    }
    let ranges = elide::included_ranges(text, &long);
    THREAD_PARSER.with(|cell| {
        let mut parser = cell.try_borrow_mut().ok()?;
        parser.set_language(&language.tree_sitter_language()).ok()?;
        parser.set_included_ranges(&ranges).ok()?;
        let tree = parser.parse(parsed_text, None);
        // The parser is shared by `parse`, which wants the whole text.
        parser.set_included_ranges(&[]).ok()?;
        tree
    })
}

/// The outline (definitions and imports) of `text`: the same as [`extract_outline`] of a
/// full [`parse`], but as cheap as possible. Rust files are read by a hand-written item
/// scanner ([`scan_rust_outline`]) and parsed (with [`parse_outline`]) only where the
/// scanner is unsure; other languages are parsed. `None` only if the grammar could not be
/// loaded.
pub fn outline(language: LanguageId, text: &str) -> Option<Outline> {
    if language == LanguageId::Rust {
        if let Some(outline) = scan_rust_outline(text) {
            return Some(outline);
        }
    }
    let tree = parse_outline(language, text)?;
    Some(extract_outline(language, &tree, text))
}

/// Skipped parts shorter than this are blanked rather than excluded (see [`parse_outline`]).
const MIN_EXCLUDED_RANGE_BYTES: usize = 200;

/// Number of ERROR and MISSING nodes in the syntax tree of `text`.
///
/// The language server compares this before and after inserting a completion, and drops
/// completions that add syntax errors. Returns 0 when the text cannot be parsed at all.
pub fn syntax_error_count(language: LanguageId, text: &str) -> usize {
    match parse(language, text) {
        Some(tree) => count_error_nodes(&tree),
        None => 0,
    }
}

/// Number of ERROR and MISSING nodes in an already parsed tree.
pub fn count_error_nodes(tree: &tree_sitter::Tree) -> usize {
    let root = tree.root_node();
    if !root.has_error() {
        return 0;
    }
    let mut count = 0;
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        if node.is_error() || node.is_missing() {
            count += 1;
        }
        // Only descend into subtrees that contain an error.
        if node.has_error() && !node.is_missing() && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return count;
            }
        }
    }
}
