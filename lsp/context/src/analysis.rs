//! Per-file analysis: definitions, imports and similarity windows of one text.

use hearth_grammars::{DefinitionKind, LanguageId};
use serde::{Serialize, Serializer};

use crate::lexical::{content_hash, identifier_ranges, token_hash, MIN_SIMILARITY_TOKEN_LENGTH};

/// Lines per similarity window.
pub(crate) const WINDOW_LINES: usize = 20;
/// A new window starts every `WINDOW_STRIDE` lines (windows overlap by half).
pub(crate) const WINDOW_STRIDE: usize = 10;
/// Windows with fewer distinct tokens are not indexed (blank or trivial code).
const MIN_WINDOW_TOKENS: usize = 4;
/// Signatures are cut at this many bytes.
const MAX_SIGNATURE_BYTES: usize = 400;
/// At most this many comment/attribute lines above a definition belong to it.
const MAX_DOC_LINES: usize = 40;
/// Raw import text is cut at this many bytes.
const MAX_IMPORT_TEXT_BYTES: usize = 200;

fn serialize_kind<S: Serializer>(kind: &DefinitionKind, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(kind.name())
}

/// A definition in an indexed file. Lines are 1-based and inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Definition {
    pub name: Box<str>,
    #[serde(serialize_with = "serialize_kind")]
    pub kind: DefinitionKind,
    pub start_byte: u32,
    pub end_byte: u32,
    pub start_line: u32,
    pub end_line: u32,
    /// Last line of the signature (the text before the body).
    pub signature_end_line: u32,
    /// First line of the doc comments / attributes / decorators directly above the
    /// definition; equals `start_line` when there are none.
    pub doc_start_line: u32,
    /// The definition's text up to its body, at most 400 bytes.
    pub signature: Box<str>,
    /// Index (in the same file's definitions) of the enclosing definition.
    pub scope: Option<u32>,
}

/// An import in an indexed file. Lines are 1-based and inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Import {
    /// Raw source text of the import, at most 200 bytes.
    pub text: Box<str>,
    pub start_line: u32,
    pub end_line: u32,
    /// Module or path names (`crate::store`, `./util`, `app.models`).
    pub modules: Vec<Box<str>>,
    /// Imported names, when listed (`Store`, `User`).
    pub names: Vec<Box<str>>,
}

/// Similarity tokens of one window of lines.
#[derive(Debug, Clone)]
pub(crate) struct WindowTokens {
    /// 0-based first line.
    pub start_line: u32,
    /// 0-based line after the window.
    pub end_line: u32,
    /// Sorted distinct token hashes.
    pub tokens: Vec<u64>,
}

/// Everything the index keeps about one file text.
#[derive(Debug, Clone)]
pub(crate) struct FileAnalysis {
    pub language: LanguageId,
    pub content_hash: u64,
    pub byte_length: u32,
    pub line_count: u32,
    pub definitions: Vec<Definition>,
    pub imports: Vec<Import>,
    pub windows: Vec<WindowTokens>,
}

/// Byte offsets where each line starts. An empty text has no lines; a trailing newline
/// does not start a new line.
pub(crate) fn line_starts(text: &str) -> Vec<usize> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut starts = vec![0];
    starts.extend(
        memchr::memchr_iter(b'\n', text.as_bytes())
            .map(|offset| offset + 1)
            .filter(|&start| start < text.len()),
    );
    starts
}

/// Text of 0-based `line` without its line ending.
pub(crate) fn line_text<'text>(text: &'text str, starts: &[usize], line: usize) -> &'text str {
    let Some(&start) = starts.get(line) else {
        return "";
    };
    let end = starts.get(line + 1).copied().unwrap_or(text.len());
    let line_text = text.get(start..end).unwrap_or("");
    line_text.trim_end_matches(['\n', '\r'])
}

fn truncate_at_char_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn to_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// First 0-based line of the comments and attributes directly above `start_line`.
fn doc_start(
    language: LanguageId,
    text: &str,
    starts: &[usize],
    start_line: usize,
    lowest_line: usize,
) -> usize {
    let prefixes = language.leading_line_prefixes();
    let mut line = start_line;
    while line > lowest_line && start_line - line < MAX_DOC_LINES {
        let previous = line_text(text, starts, line - 1).trim_start();
        if previous.is_empty() || !prefixes.iter().any(|prefix| previous.starts_with(prefix)) {
            break;
        }
        line -= 1;
    }
    line
}

/// Parses and analyses `text`. `with_windows` also computes similarity windows (the index
/// needs them; the current file of a selection does not).
pub(crate) fn analyze_text(language: LanguageId, text: &str, with_windows: bool) -> FileAnalysis {
    let starts = line_starts(text);
    let mut definitions = Vec::new();
    let mut imports = Vec::new();
    if let Some(mut outline) = hearth_grammars::outline(language, text) {
        definitions.reserve(outline.definitions.len());
        let signature_end_lines: Vec<usize> = outline
            .definitions
            .iter()
            .map(|definition| definition.signature_end_line)
            .collect();
        for extracted in &mut outline.definitions {
            // Doc lines may not reach into the enclosing definition's header.
            let lowest_line = extracted
                .parent
                .and_then(|parent| signature_end_lines.get(parent))
                .map(|&signature_end_line| signature_end_line + 1)
                .unwrap_or(0);
            let doc_start_line = doc_start(
                language,
                text,
                &starts,
                extracted.start_line,
                lowest_line.min(extracted.start_line),
            );
            let signature = text
                .get(extracted.byte_range.start..extracted.signature_end_byte)
                .unwrap_or("");
            definitions.push(Definition {
                name: std::mem::take(&mut extracted.name).into_boxed_str(),
                kind: extracted.kind,
                start_byte: to_u32(extracted.byte_range.start),
                end_byte: to_u32(extracted.byte_range.end),
                start_line: to_u32(extracted.start_line + 1),
                end_line: to_u32(extracted.end_line + 1),
                signature_end_line: to_u32(extracted.signature_end_line + 1),
                doc_start_line: to_u32(doc_start_line + 1),
                signature: truncate_at_char_boundary(signature, MAX_SIGNATURE_BYTES).into(),
                scope: extracted.parent.map(to_u32),
            });
        }
        imports = outline
            .imports
            .into_iter()
            .map(|extracted| Import {
                text: truncate_at_char_boundary(
                    text.get(extracted.byte_range.clone()).unwrap_or(""),
                    MAX_IMPORT_TEXT_BYTES,
                )
                .into(),
                start_line: to_u32(extracted.start_line + 1),
                end_line: to_u32(extracted.end_line + 1),
                modules: extracted
                    .modules
                    .into_iter()
                    .map(String::into_boxed_str)
                    .collect(),
                names: extracted.names.into_iter().map(String::into_boxed_str).collect(),
            })
            .collect();
    }
    let windows = if with_windows {
        similarity_windows(text, &starts)
    } else {
        Vec::new()
    };
    FileAnalysis {
        language,
        content_hash: content_hash(text),
        byte_length: to_u32(text.len()),
        line_count: to_u32(starts.len()),
        definitions,
        imports,
        windows,
    }
}

fn similarity_windows(text: &str, starts: &[usize]) -> Vec<WindowTokens> {
    let line_count = starts.len();
    // Token hashes of every line, flattened: tokens of line i are
    // line_tokens[line_token_starts[i]..line_token_starts[i + 1]].
    let mut line_tokens: Vec<u64> = Vec::new();
    let mut line_token_starts: Vec<usize> = Vec::with_capacity(line_count + 1);
    for line in 0..line_count {
        line_token_starts.push(line_tokens.len());
        let line_text = line_text(text, starts, line);
        for (start, end) in identifier_ranges(line_text) {
            if end - start >= MIN_SIMILARITY_TOKEN_LENGTH {
                line_tokens.push(token_hash(&line_text[start..end]));
            }
        }
    }
    line_token_starts.push(line_tokens.len());
    let mut windows = Vec::new();
    let mut window_start = 0;
    while window_start < line_count {
        let window_end = (window_start + WINDOW_LINES).min(line_count);
        let mut tokens = line_tokens[line_token_starts[window_start]..line_token_starts[window_end]].to_vec();
        tokens.sort_unstable();
        tokens.dedup();
        if tokens.len() >= MIN_WINDOW_TOKENS {
            windows.push(WindowTokens {
                start_line: to_u32(window_start),
                end_line: to_u32(window_end),
                tokens,
            });
        }
        if window_end == line_count {
            break;
        }
        window_start += WINDOW_STRIDE;
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_starts_and_line_text() {
        let text = "a\r\nbc\n\nd";
        let starts = line_starts(text);
        assert_eq!(starts, vec![0, 3, 6, 7]);
        assert_eq!(line_text(text, &starts, 0), "a");
        assert_eq!(line_text(text, &starts, 1), "bc");
        assert_eq!(line_text(text, &starts, 2), "");
        assert_eq!(line_text(text, &starts, 3), "d");
        assert_eq!(line_text(text, &starts, 9), "");
        assert_eq!(line_starts("x\n"), vec![0]);
        assert!(line_starts("").is_empty());
    }

    #[test]
    fn definitions_carry_doc_lines_signature_and_scope() {
        let text = "use crate::store::Store;\n\n/// Parses.\n/// Twice.\n#[inline]\npub fn parse(text: &str) -> u32 {\n    1\n}\n\nimpl Store {\n    // helper\n    fn open(&self) {}\n}\n";
        let analysis = analyze_text(LanguageId::Rust, text, true);
        type Summary<'a> = (String, &'a str, u32, u32, u32, Option<u32>);
        let summary: Vec<Summary<'_>> = analysis
            .definitions
            .iter()
            .map(|d| {
                (
                    d.name.to_string(),
                    d.kind.name(),
                    d.doc_start_line,
                    d.start_line,
                    d.end_line,
                    d.scope,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("parse".to_string(), "function", 3, 6, 8, None),
                ("Store".to_string(), "impl", 10, 10, 13, None),
                ("open".to_string(), "method", 11, 12, 12, Some(1)),
            ]
        );
        assert_eq!(
            &*analysis.definitions[0].signature,
            "pub fn parse(text: &str) -> u32"
        );
        assert_eq!(analysis.imports.len(), 1);
        assert_eq!(&*analysis.imports[0].text, "use crate::store::Store;");
        assert_eq!(analysis.line_count, 13);
        assert_eq!(analysis.windows.len(), 1);
        assert_eq!(analysis.windows[0].start_line, 0);
        assert_eq!(analysis.windows[0].end_line, 13);
    }

    #[test]
    fn windows_overlap_by_half_and_cover_the_end() {
        let text: String = (0..45)
            .map(|i| format!("let value_{i} = compute_{i}(input_{i});\n"))
            .collect();
        let analysis = analyze_text(LanguageId::Rust, &text, true);
        let ranges: Vec<(u32, u32)> = analysis
            .windows
            .iter()
            .map(|w| (w.start_line, w.end_line))
            .collect();
        assert_eq!(ranges, vec![(0, 20), (10, 30), (20, 40), (30, 45)]);
        assert!(analysis
            .windows
            .iter()
            .all(|w| w.tokens.windows(2).all(|p| p[0] < p[1])));
    }
}
