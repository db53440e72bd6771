//! Context selection: which snippets of the workspace go before the current file.
//!
//! 1. Candidates, each with a score and a reason: definitions of symbols used around the
//!    cursor and in the enclosing function (other files; the same file only far from the
//!    cursor), definitions and signatures behind the current file's imports, the enclosing
//!    class/impl skeleton, recent edit regions, and lexically similar windows (BM25).
//! 2. Rank by score; drop pieces that overlap what was already chosen; pack greedily into
//!    the token budget (never exceeding it).
//! 3. Order the chosen snippets by (stability class, path, start line) so the front of the
//!    prompt stays identical while the user types at one place; volatile kinds go last.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hearth_grammars::{DefinitionKind, LanguageId};
use serde::Serialize;

use crate::analysis::{analyze_text, line_starts, Definition, Import};
use crate::index::{DefinitionLocation, FileEntry, Index};
use crate::lexical::{content_hash, identifier_ranges, similarity_tokens};
use crate::secrets::{is_secret_path, redact_secrets};
use crate::tokens::TokenCounter;

/// How the chosen snippets are rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RenderFormat {
    /// `{file_sep}{path}\n{text}\n` per snippet: the repository-level format of code models
    /// (`<|file_sep|>` for Qwen2.5-Coder, `<file_sep>` for StarCoder2): the separator token
    /// text, immediately followed by the path, then the code on the next lines.
    FileSep { file_sep: String },
    /// `{comment} path: {path}\n{text}\n\n` per snippet, with the snippet language's line
    /// comment prefix (`// path: src/x.rs`, `# path: app/models.py`).
    PathComments,
}

/// Whether a recent region was edited or only looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecentRegionKind {
    Edit,
    View,
}

/// A region the user recently edited or opened. Lines are 1-based and inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentRegion {
    /// Absolute (under the index root) or relative path.
    pub path: PathBuf,
    pub start_line: u32,
    pub end_line: u32,
    /// Larger is more recent (a timestamp or a counter).
    pub sequence: u64,
    pub kind: RecentRegionKind,
}

/// Tuning knobs of [`select`]; the defaults are what the language server uses.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionOptions {
    /// Definitions in the current file are candidates only this many lines from the cursor.
    pub same_file_min_distance_lines: u32,
    /// Lines above and below the cursor whose identifiers count as "used at cursor".
    pub usage_lines_before: u32,
    pub usage_lines_after: u32,
    /// Functions up to this many lines are shown whole, longer ones as signatures.
    pub small_function_lines: u32,
    /// Types up to this many lines are shown whole, longer ones as skeletons.
    pub small_type_lines: u32,
    /// No snippet is longer than this many lines.
    pub max_snippet_lines: u32,
    /// Names with more definitions than this in the workspace are too ambiguous to look up.
    pub max_definitions_per_name: usize,
    /// At most this many definitions are taken for one name.
    pub definitions_taken_per_name: usize,
    pub max_similar_snippets: usize,
    /// Similar windows below this normalised BM25 score are ignored.
    pub min_similarity: f32,
    pub max_recent_snippets: usize,
    /// Lines of context added around a recent region.
    pub recent_context_lines: u32,
}

impl Default for SelectionOptions {
    fn default() -> Self {
        SelectionOptions {
            same_file_min_distance_lines: 60,
            usage_lines_before: 30,
            usage_lines_after: 10,
            small_function_lines: 20,
            small_type_lines: 40,
            max_snippet_lines: 120,
            max_definitions_per_name: 12,
            definitions_taken_per_name: 3,
            max_similar_snippets: 6,
            min_similarity: 0.2,
            max_recent_snippets: 8,
            recent_context_lines: 3,
        }
    }
}

/// What to select context for.
#[derive(Debug, Clone)]
pub struct SelectionRequest<'a> {
    /// The current file (absolute under the index root, or relative to it).
    pub path: &'a Path,
    /// Its current text (may differ from disk).
    pub text: &'a str,
    pub cursor_byte_offset: usize,
    pub budget_tokens: usize,
    pub recent_regions: &'a [RecentRegion],
    pub format: RenderFormat,
    pub options: SelectionOptions,
}

impl<'a> SelectionRequest<'a> {
    /// A request with no recent regions and default options.
    pub fn new(
        path: &'a Path,
        text: &'a str,
        cursor_byte_offset: usize,
        budget_tokens: usize,
        format: RenderFormat,
    ) -> Self {
        SelectionRequest {
            path,
            text,
            cursor_byte_offset,
            budget_tokens,
            recent_regions: &[],
            format,
            options: SelectionOptions::default(),
        }
    }
}

/// Why a snippet was chosen, coarsely. Also its stability class: snippets are ordered by
/// this first (declaration order), so the most stable kinds come first in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnippetKind {
    /// Signatures of a module the current file imports.
    ModuleSignatures,
    /// Skeleton of the class/impl/trait around the cursor.
    EnclosingScope,
    /// A definition used around the cursor or imported by the current file.
    Definition,
    /// A window of another file lexically similar to the code before the cursor.
    SimilarCode,
    /// A region recently edited or viewed.
    RecentEdit,
}

/// One chosen piece of context. Lines are 1-based and inclusive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snippet {
    /// Relative to the index root, `/` separators.
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub kind: SnippetKind,
    pub reason: String,
    pub score: f32,
    /// Tokens of this snippet rendered alone (header included). Adjacent snippets of the
    /// same file share one header in `rendered`, so it may count fewer than the sum.
    pub tokens: usize,
    /// The snippet's code (secrets redacted; elided parts shown as `<comment> ...`).
    pub text: String,
}

/// The result of [`select`]; serialised as the manifest of `hearth context --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    /// In render order.
    pub snippets: Vec<Snippet>,
    /// What goes before the current file in the prompt.
    pub rendered: String,
    /// `counter.count(&rendered)`; never above `budget_tokens`.
    pub total_tokens: usize,
    pub budget_tokens: usize,
    pub candidates_considered: usize,
    pub elapsed_micros: u64,
}

/// 0-based inclusive line range.
type LineRange = (u32, u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Source {
    Current,
    Indexed(u32),
}

#[derive(Debug, Clone)]
struct Candidate {
    source: Source,
    path: Arc<str>,
    language: Option<LanguageId>,
    kind: SnippetKind,
    reason: String,
    score: f32,
    pieces: Vec<LineRange>,
    /// A shorter alternative (signature only) tried when `pieces` do not fit.
    compact_pieces: Option<Vec<LineRange>>,
    /// For definitions: the position in its file's definitions; `pieces` are then computed
    /// only when packing reaches the candidate.
    definition: Option<usize>,
    /// 0-based first line, for a deterministic order among equal scores.
    sort_line: u32,
    /// Pieces may be dropped individually on overlap, except the first one.
    partial_allowed: bool,
}

struct LoadedText {
    text: Arc<str>,
    starts: Vec<usize>,
}

/// File texts needed during one selection: the current text and lazily read others.
struct TextCache<'a> {
    index: &'a Index,
    current_text: &'a str,
    current_starts: Vec<usize>,
    others: HashMap<u32, Option<LoadedText>>,
}

impl<'a> TextCache<'a> {
    fn get(&mut self, source: Source) -> Option<(&str, &[usize])> {
        match source {
            Source::Current => Some((self.current_text, &self.current_starts)),
            Source::Indexed(file) => {
                let index = self.index;
                let loaded = self.others.entry(file).or_insert_with(|| {
                    let entry = index.file_by_id(file)?;
                    let text = index.file_text(entry)?;
                    let starts = line_starts(&text);
                    Some(LoadedText { text, starts })
                });
                loaded
                    .as_ref()
                    .map(|loaded| (&*loaded.text, loaded.starts.as_slice()))
            }
        }
    }
}

/// Text of 0-based lines `start..=end`, without the final line ending.
fn lines_slice<'text>(text: &'text str, starts: &[usize], start: u32, end: u32) -> &'text str {
    let Some(&from) = starts.get(start as usize) else {
        return "";
    };
    let to = starts.get(end as usize + 1).copied().unwrap_or(text.len());
    text.get(from..to.max(from))
        .unwrap_or("")
        .trim_end_matches(['\n', '\r'])
}

fn leading_whitespace(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

fn render_pieces(text: &str, starts: &[usize], pieces: &[LineRange], comment_prefix: &str) -> String {
    let mut rendered = String::new();
    let mut previous_end: Option<u32> = None;
    for &(start, end) in pieces {
        if let Some(previous_end) = previous_end {
            rendered.push('\n');
            let gap_is_blank =
                (previous_end + 1..start).all(|line| lines_slice(text, starts, line, line).trim().is_empty());
            if start > previous_end + 1 && gap_is_blank {
                for _ in previous_end + 1..start {
                    rendered.push('\n');
                }
            } else if start > previous_end + 1 {
                let first_elided = lines_slice(text, starts, previous_end + 1, previous_end + 1);
                let indent_source = if first_elided.trim().is_empty() {
                    lines_slice(text, starts, start, start)
                } else {
                    first_elided
                };
                rendered.push_str(leading_whitespace(indent_source));
                rendered.push_str(comment_prefix);
                rendered.push_str(" ...\n");
            }
        }
        rendered.push_str(lines_slice(text, starts, start, end));
        previous_end = Some(end);
    }
    rendered
}

fn render_block(format: &RenderFormat, path: &str, language: Option<LanguageId>, text: &str) -> String {
    match format {
        RenderFormat::FileSep { file_sep } => format!("{file_sep}{path}\n{text}\n"),
        RenderFormat::PathComments => {
            let prefix = language.map(LanguageId::comment_prefix).unwrap_or("//");
            format!("{prefix} path: {path}\n{text}\n\n")
        }
    }
}

fn is_closing_line(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.starts_with('}') || trimmed == "end" || trimmed == ");" || trimmed == ")"
}

/// Subtracts `holes` (sorted or not) from the inclusive range `range`.
fn subtract_ranges(range: LineRange, holes: &mut [LineRange]) -> Vec<LineRange> {
    holes.sort_unstable();
    let mut pieces = Vec::new();
    let mut next = range.0;
    for &(hole_start, hole_end) in holes.iter() {
        if hole_end < next || hole_start > range.1 {
            continue;
        }
        if hole_start > next {
            pieces.push((next, hole_start - 1));
        }
        next = next.max(hole_end.saturating_add(1));
    }
    if next <= range.1 {
        pieces.push((next, range.1));
    }
    pieces
}

/// Keeps pieces up to `max_lines` lines in total.
fn cap_lines(pieces: Vec<LineRange>, max_lines: u32) -> Vec<LineRange> {
    let mut remaining = max_lines.max(1);
    let mut capped = Vec::with_capacity(pieces.len());
    for (start, end) in pieces {
        if remaining == 0 {
            break;
        }
        let length = end - start + 1;
        if length <= remaining {
            capped.push((start, end));
            remaining -= length;
        } else {
            capped.push((start, start + remaining - 1));
            remaining = 0;
        }
    }
    capped
}

/// Doc + signature (+ the closing line when it is a lone brace / `end`).
fn signature_pieces(definition: &Definition, text: &str, starts: &[usize]) -> Vec<LineRange> {
    let doc = definition.doc_start_line.saturating_sub(1);
    let signature_end = definition.signature_end_line.saturating_sub(1);
    let end = definition.end_line.saturating_sub(1);
    let mut pieces = vec![(doc, signature_end.min(end))];
    if end > signature_end && is_closing_line(lines_slice(text, starts, end, end)) {
        pieces.push((end, end));
    }
    pieces
}

/// Full pieces and a compact alternative for one definition: small definitions whole,
/// long functions as their signature, long types as a skeleton (method bodies elided).
fn definition_pieces(
    definitions: &[Definition],
    position: usize,
    text: &str,
    starts: &[usize],
    options: &SelectionOptions,
) -> (Vec<LineRange>, Option<Vec<LineRange>>) {
    let definition = &definitions[position];
    let doc = definition.doc_start_line.saturating_sub(1);
    let start = definition.start_line.saturating_sub(1);
    let end = definition.end_line.saturating_sub(1).max(start);
    let length = end - start + 1;
    let signature = signature_pieces(definition, text, starts);
    let is_type = definition.kind.is_type_container() || definition.kind == DefinitionKind::Module;
    let full = if definition.kind.is_callable() {
        if length <= options.small_function_lines {
            vec![(doc, end)]
        } else {
            return (signature, None);
        }
    } else if is_type {
        if length <= options.small_type_lines {
            vec![(doc, end)]
        } else {
            let mut holes: Vec<LineRange> = definitions[position + 1..]
                .iter()
                .take_while(|inner| inner.start_byte < definition.end_byte)
                .filter(|inner| inner.kind.is_callable())
                .filter_map(|inner| {
                    let body_start = inner.signature_end_line; // 1-based line after signature
                    let inner_end = inner.end_line.saturating_sub(1);
                    let keep_closing = is_closing_line(lines_slice(text, starts, inner_end, inner_end));
                    let hole_end = if keep_closing {
                        inner_end.checked_sub(1)?
                    } else {
                        inner_end
                    };
                    (body_start <= hole_end).then_some((body_start, hole_end))
                })
                .collect();
            subtract_ranges((doc, end), &mut holes)
        }
    } else if length <= options.small_type_lines {
        vec![(doc, end)]
    } else {
        return (
            vec![(doc, start + options.max_snippet_lines.min(length) - 1)],
            Some(signature),
        );
    };
    let full = cap_lines(full, options.max_snippet_lines);
    let compact = (full != signature).then_some(signature);
    (full, compact)
}

/// Structs, enums, interfaces and type aliases up to this many lines appear whole in module signatures.
const SMALL_TYPE_IN_MODULE_LINES: u32 = 8;

/// Signatures of a module's top-level definitions and of their members.
fn module_signature_pieces(definitions: &[Definition], max_lines: u32) -> Vec<LineRange> {
    let mut pieces: Vec<LineRange> = Vec::new();
    for definition in definitions {
        let is_top_level = definition.scope.is_none();
        let is_member_of_top_level = definition.scope.is_some_and(|scope| {
            definitions
                .get(scope as usize)
                .is_some_and(|parent| parent.scope.is_none() && parent.kind.is_type_container())
        });
        if !is_top_level && !is_member_of_top_level {
            continue;
        }
        let start = definition.start_line.saturating_sub(1);
        let end = definition.end_line.saturating_sub(1).max(start);
        let small_data_type = matches!(
            definition.kind,
            DefinitionKind::Struct | DefinitionKind::Enum | DefinitionKind::Type | DefinitionKind::Interface
        ) && end - start < SMALL_TYPE_IN_MODULE_LINES;
        if small_data_type {
            pieces.push((start, end));
        } else {
            let signature_end = definition.signature_end_line.saturating_sub(1).min(start + 2);
            pieces.push((start, signature_end.max(start)));
        }
    }
    pieces.sort_unstable();
    let mut merged: Vec<LineRange> = Vec::with_capacity(pieces.len());
    for (start, end) in pieces {
        match merged.last_mut() {
            Some(last) if start <= last.1 + 1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    cap_lines(merged, max_lines)
}

fn overlaps(chosen: &[LineRange], piece: LineRange) -> bool {
    chosen
        .iter()
        .any(|&(start, end)| piece.0 <= end && start <= piece.1)
}

/// The identifier touching the cursor (being typed), as a byte range.
fn word_at(text: &str, cursor: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let is_word = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$';
    let mut start = cursor;
    while start > 0 && is_word(bytes[start - 1]) {
        start -= 1;
    }
    let mut end = cursor;
    while end < bytes.len() && is_word(bytes[end]) {
        end += 1;
    }
    (start < end).then_some((start, end))
}

fn line_of_offset(starts: &[usize], offset: usize) -> u32 {
    match starts.binary_search(&offset) {
        Ok(line) => line as u32,
        Err(insertion) => insertion.saturating_sub(1) as u32,
    }
}

/// Number of leading path components two keys share (nearby files rank higher).
fn shared_directory_depth(left: &str, right: &str) -> usize {
    let left_parts: Vec<&str> = left.split('/').collect();
    let right_parts: Vec<&str> = right.split('/').collect();
    left_parts
        .iter()
        .zip(right_parts.iter())
        .take(
            left_parts
                .len()
                .saturating_sub(1)
                .min(right_parts.len().saturating_sub(1)),
        )
        .take_while(|(l, r)| l == r)
        .count()
}

struct UsedName {
    min_distance: u32,
    inside_enclosing_function: bool,
}

/// Builds the context for the request: see the module documentation for the algorithm.
/// Never exceeds `request.budget_tokens` as counted by `counter`, for the rendered text and
/// for the sum of the snippets' tokens.
pub fn select(index: &Index, request: &SelectionRequest<'_>, counter: &dyn TokenCounter) -> Selection {
    let started = Instant::now();
    let options = &request.options;
    let text = request.text;
    let mut cursor = request.cursor_byte_offset.min(text.len());
    while cursor > 0 && !text.is_char_boundary(cursor) {
        cursor -= 1;
    }
    let current_key: Arc<str> = index
        .relative_key(request.path)
        .unwrap_or_else(|| request.path.to_string_lossy().into_owned())
        .into();
    let current_id = index.file_id(&current_key);
    let current_language = LanguageId::from_path(Path::new(&*current_key));
    let current_entry: Option<&FileEntry> = current_id.and_then(|id| index.file_by_id(id));

    // Definitions and imports of the current text: from the index when it is up to date.
    let owned_analysis;
    let (current_definitions, current_imports): (&[Definition], &[Import]) = match current_entry {
        Some(entry) if entry.content_hash == content_hash(text) => (&entry.definitions, &entry.imports),
        _ => match current_language {
            Some(language) => {
                owned_analysis = analyze_text(language, text, false);
                (&owned_analysis.definitions, &owned_analysis.imports)
            }
            None => (&[], &[]),
        },
    };

    let mut texts = TextCache {
        index,
        current_text: text,
        current_starts: line_starts(text),
        others: HashMap::new(),
    };
    let current_line_count = texts.current_starts.len() as u32;
    let cursor_line = line_of_offset(&texts.current_starts, cursor);
    let cursor_word = word_at(text, cursor);
    let cursor_byte = cursor as u32;

    let innermost = |predicate: &dyn Fn(&Definition) -> bool| {
        current_definitions
            .iter()
            .enumerate()
            .filter(|(_, definition)| {
                definition.start_byte <= cursor_byte && cursor_byte <= definition.end_byte
            })
            .filter(|(_, definition)| predicate(definition))
            .max_by_key(|(_, definition)| definition.start_byte)
    };
    let enclosing_function = innermost(&|definition| definition.kind.is_callable());
    let enclosing_container = innermost(&|definition| definition.kind.is_type_container());

    let mut candidates: Vec<Candidate> = Vec::new();
    // (source, definition position) → candidate position, to merge duplicates.
    let mut definition_candidates: HashMap<(Source, usize), usize> = HashMap::new();
    let family = current_language.map(LanguageId::family);
    let same_family = |language: LanguageId| family.is_none_or(|family| language.family() == family);

    let mut add_definition =
        |candidates: &mut Vec<Candidate>, source: Source, position: usize, score: f32, reason: String| {
            if let Some(&existing) = definition_candidates.get(&(source, position)) {
                let candidate: &mut Candidate = &mut candidates[existing];
                if !candidate.reason.split("; ").any(|part| part == reason)
                    && candidate.reason.matches("; ").count() < MAX_EXTRA_REASONS
                {
                    candidate.reason = if score > candidate.score {
                        format!("{reason}; {}", candidate.reason)
                    } else {
                        format!("{}; {reason}", candidate.reason)
                    };
                }
                candidate.score = candidate.score.max(score);
                return;
            }
            let (definitions, path, language): (&[Definition], Arc<str>, Option<LanguageId>) = match source {
                Source::Current => (current_definitions, Arc::clone(&current_key), current_language),
                Source::Indexed(file) => match index.file_by_id(file) {
                    Some(entry) => (
                        &entry.definitions,
                        entry.relative_path.as_ref().into(),
                        Some(entry.language),
                    ),
                    None => return,
                },
            };
            let Some(definition) = definitions.get(position) else {
                return;
            };
            // Pieces are computed when packing reaches this candidate (its file is read then).
            definition_candidates.insert((source, position), candidates.len());
            candidates.push(Candidate {
                source,
                path,
                language,
                kind: SnippetKind::Definition,
                reason,
                score,
                sort_line: definition.doc_start_line.saturating_sub(1),
                pieces: Vec::new(),
                compact_pieces: None,
                definition: Some(position),
                partial_allowed: definition.kind.is_type_container(),
            });
        };

    // Is a current-file definition far enough from the cursor to be worth repeating?
    let far_from_cursor = |definition: &Definition| {
        let start = definition.doc_start_line.saturating_sub(1);
        let end = definition.end_line.saturating_sub(1);
        let distance = if cursor_line < start {
            start - cursor_line
        } else {
            cursor_line.saturating_sub(end)
        };
        distance > 0 && distance >= options.same_file_min_distance_lines
    };

    // Imports: module signatures and imported definitions.
    let mut imported_files: HashSet<u32> = HashSet::new();
    let mut module_candidate_files: HashSet<u32> = HashSet::new();
    for (import_position, import) in current_imports.iter().take(40).enumerate() {
        let rank_penalty = import_position as f32 * 0.5;
        for module in &import.modules {
            let mut files: Vec<u32> = Vec::new();
            if let Some(family) = family {
                files = index.resolve_module(&current_key, family, module);
                for name in &import.names {
                    let joined = if module.chars().all(|character| character == '.') {
                        format!("{module}{name}")
                    } else {
                        format!("{module}/{name}")
                    };
                    for file in index.resolve_module(&current_key, family, &joined) {
                        let stem_matches = index.file_by_id(file).is_some_and(|entry| {
                            Path::new(&*entry.relative_path)
                                .file_stem()
                                .is_some_and(|stem| stem.to_str() == Some(&**name))
                        });
                        if stem_matches && !files.contains(&file) {
                            files.push(file);
                        }
                    }
                }
            }
            files.retain(|&file| Some(file) != current_id);
            for &file in &files {
                imported_files.insert(file);
                if module_candidate_files.insert(file) {
                    let Some(entry) = index.file_by_id(file) else {
                        continue;
                    };
                    let pieces = module_signature_pieces(&entry.definitions, options.max_snippet_lines);
                    let Some(&(first_line, _)) = pieces.first() else {
                        continue;
                    };
                    candidates.push(Candidate {
                        source: Source::Indexed(file),
                        path: entry.relative_path.as_ref().into(),
                        language: Some(entry.language),
                        kind: SnippetKind::ModuleSignatures,
                        reason: format!("import `{module}`"),
                        score: (35.0 - rank_penalty).max(20.0),
                        pieces,
                        compact_pieces: None,
                        definition: None,
                        sort_line: first_line,
                        partial_allowed: true,
                    });
                }
            }
            for name in &import.names {
                let mut locations: Vec<_> = index
                    .definition_locations(name)
                    .iter()
                    .filter(|location| files.contains(&location.file))
                    .copied()
                    .collect();
                locations.sort();
                for location in locations.into_iter().take(options.definitions_taken_per_name) {
                    add_definition(
                        &mut candidates,
                        Source::Indexed(location.file),
                        location.definition as usize,
                        (50.0 - rank_penalty).max(30.0),
                        format!("definition of `{name}` imported from `{module}`"),
                    );
                }
            }
        }
    }

    // Names used around the cursor and in the enclosing function.
    let near_start = cursor_line.saturating_sub(options.usage_lines_before);
    let near_end = (cursor_line + options.usage_lines_after).min(current_line_count.saturating_sub(1));
    let (mut region_start, mut region_end) = (near_start, near_end);
    if let Some((_, function)) = enclosing_function {
        region_start = region_start.min(
            function
                .start_line
                .saturating_sub(1)
                .max(cursor_line.saturating_sub(80)),
        );
        region_end = region_end.max(function.end_line.saturating_sub(1).min(cursor_line + 40));
    }
    let mut used_names: BTreeMap<&str, UsedName> = BTreeMap::new();
    if current_line_count > 0 {
        let region_offset = texts.current_starts[region_start as usize];
        let region_text = lines_slice(text, &texts.current_starts, region_start, region_end);
        let mut line = region_start;
        let mut scanned_to = 0;
        for (start, end) in identifier_ranges(region_text) {
            line += region_text[scanned_to..start].matches('\n').count() as u32;
            scanned_to = start;
            let absolute = (region_offset + start, region_offset + end);
            if Some(absolute) == cursor_word {
                continue;
            }
            let name = &region_text[start..end];
            if name.len() < 2 {
                continue;
            }
            let distance = line.abs_diff(cursor_line);
            let inside_function = enclosing_function.is_some_and(|(_, function)| {
                let offset = absolute.0 as u32;
                function.start_byte <= offset && offset <= function.end_byte
            });
            let used = used_names.entry(name).or_insert(UsedName {
                min_distance: distance,
                inside_enclosing_function: inside_function,
            });
            used.min_distance = used.min_distance.min(distance);
            used.inside_enclosing_function |= inside_function;
        }
    }
    let enclosing_function_name = enclosing_function.map(|(_, function)| &*function.name);
    for (name, used) in &used_names {
        let proximity = 1.0 / (1.0 + used.min_distance as f32 / 8.0);
        let reason = if used.min_distance <= 3 {
            format!("definition of `{name}` used at cursor")
        } else if let (true, Some(function)) = (used.inside_enclosing_function, enclosing_function_name) {
            format!("definition of `{name}` used in `{function}`")
        } else {
            format!("definition of `{name}` used near cursor")
        };
        // Same file, far from the cursor.
        for (position, definition) in current_definitions.iter().enumerate() {
            if &*definition.name == *name && far_from_cursor(definition) {
                add_definition(
                    &mut candidates,
                    Source::Current,
                    position,
                    40.0 + 30.0 * proximity,
                    format!("{reason} (same file)"),
                );
            }
        }
        let all_locations = index.definition_locations(name);
        if all_locations.len() > options.max_definitions_per_name {
            continue;
        }
        let mut locations: Vec<(i64, &str, u32, DefinitionLocation)> = all_locations
            .iter()
            .filter(|location| Some(location.file) != current_id)
            .filter_map(|&location| {
                let (entry, definition) = index.resolve_location(location)?;
                if !same_family(entry.language) {
                    return None;
                }
                // Prefer imported files, real definitions over impl blocks, nearby paths.
                let preference = i64::from(imported_files.contains(&location.file)) * 100
                    + i64::from(definition.kind != DefinitionKind::Impl) * 10
                    + shared_directory_depth(&entry.relative_path, &current_key) as i64;
                Some((
                    -preference,
                    &*entry.relative_path,
                    definition.start_line,
                    location,
                ))
            })
            .collect();
        locations.sort();
        let ambiguity = (locations.len().max(1) as f32).sqrt();
        for (_, _, _, location) in locations.into_iter().take(options.definitions_taken_per_name) {
            let imported_bonus = if imported_files.contains(&location.file) {
                10.0
            } else {
                0.0
            };
            add_definition(
                &mut candidates,
                Source::Indexed(location.file),
                location.definition as usize,
                (60.0 + 40.0 * proximity) / ambiguity + imported_bonus,
                reason.clone(),
            );
        }
    }

    // The enclosing class/impl/trait: its skeleton when its header is far above, and the
    // definitions of its name elsewhere (the struct of an impl, the trait of a class).
    if let Some((container_position, container)) = enclosing_container {
        if cursor_line.saturating_sub(container.start_line.saturating_sub(1))
            >= options.same_file_min_distance_lines
        {
            if let Some((file_text, starts)) = texts.get(Source::Current) {
                let (pieces, compact_pieces) = definition_pieces(
                    current_definitions,
                    container_position,
                    file_text,
                    starts,
                    options,
                );
                candidates.push(Candidate {
                    source: Source::Current,
                    path: Arc::clone(&current_key),
                    language: current_language,
                    kind: SnippetKind::EnclosingScope,
                    reason: format!("enclosing {} `{}`", container.kind.name(), container.name),
                    score: 70.0,
                    pieces,
                    compact_pieces,
                    definition: None,
                    sort_line: container.doc_start_line.saturating_sub(1),
                    partial_allowed: true,
                });
            }
        }
        let name = &*container.name;
        let reason = format!("definition of `{name}` (enclosing {})", container.kind.name());
        for (position, definition) in current_definitions.iter().enumerate() {
            if position != container_position && &*definition.name == name && far_from_cursor(definition) {
                add_definition(&mut candidates, Source::Current, position, 60.0, reason.clone());
            }
        }
        let all_locations = index.definition_locations(name);
        if all_locations.len() <= options.max_definitions_per_name {
            let mut locations: Vec<(bool, &str, u32, DefinitionLocation)> = all_locations
                .iter()
                .filter(|location| Some(location.file) != current_id)
                .filter_map(|&location| {
                    let (entry, definition) = index.resolve_location(location)?;
                    same_family(entry.language).then_some((
                        definition.kind == DefinitionKind::Impl,
                        &*entry.relative_path,
                        definition.start_line,
                        location,
                    ))
                })
                .collect();
            locations.sort();
            for (_, _, _, location) in locations.into_iter().take(options.definitions_taken_per_name) {
                add_definition(
                    &mut candidates,
                    Source::Indexed(location.file),
                    location.definition as usize,
                    65.0,
                    reason.clone(),
                );
            }
        }
    }

    // Recent edits and views in other files, most recent first.
    let mut recent: Vec<&RecentRegion> = request.recent_regions.iter().collect();
    recent.sort_by_key(|region| std::cmp::Reverse(region.sequence));
    let mut recent_taken = 0;
    for region in recent {
        if recent_taken >= options.max_recent_snippets {
            break;
        }
        let Some(key) = index.relative_key(&region.path) else {
            continue;
        };
        if *key == *current_key || is_secret_path(Path::new(&key), &index.options().secret_policy) {
            continue;
        }
        let Some(file) = index.file_id(&key) else {
            continue;
        };
        let Some(entry) = index.file_by_id(file) else {
            continue;
        };
        if entry.line_count == 0 {
            continue;
        }
        let last_line = entry.line_count - 1;
        let region_start = region.start_line.min(region.end_line).saturating_sub(1);
        let region_end = region.end_line.max(region.start_line).saturating_sub(1);
        let start = region_start
            .saturating_sub(options.recent_context_lines)
            .min(last_line);
        let end = (region_end + options.recent_context_lines)
            .min(last_line)
            .min(start + options.max_snippet_lines.min(40) - 1);
        let reason = match region.kind {
            RecentRegionKind::Edit => "recent edit",
            RecentRegionKind::View => "recently viewed",
        };
        candidates.push(Candidate {
            source: Source::Indexed(file),
            path: entry.relative_path.as_ref().into(),
            language: Some(entry.language),
            kind: SnippetKind::RecentEdit,
            reason: reason.to_string(),
            score: 40.0 * 0.85f32.powi(recent_taken as i32),
            pieces: vec![(start, end)],
            compact_pieces: None,
            definition: None,
            sort_line: start,
            partial_allowed: false,
        });
        recent_taken += 1;
    }

    // Windows of other files similar to the code before the cursor.
    if current_line_count > 0 && options.max_similar_snippets > 0 {
        let query_start = cursor_line.saturating_sub(crate::analysis::WINDOW_LINES as u32 - 1);
        let query_offset = texts.current_starts[query_start as usize];
        let query_text = lines_slice(text, &texts.current_starts, query_start, cursor_line);
        let excluded = cursor_word.and_then(|(start, end)| {
            Some((start.checked_sub(query_offset)?, end.checked_sub(query_offset)?))
        });
        let query_tokens = similarity_tokens(query_text, excluded);
        let similar = index.similar_windows(&query_tokens, current_id, options.max_similar_snippets * 4);
        let mut taken: Vec<(u32, LineRange)> = Vec::new();
        for (window, similarity) in similar {
            if taken.len() >= options.max_similar_snippets || similarity < options.min_similarity {
                break;
            }
            let range = (
                window.start_line,
                window.end_line.saturating_sub(1).max(window.start_line),
            );
            if taken
                .iter()
                .any(|&(file, taken_range)| file == window.file && overlaps(&[taken_range], range))
            {
                continue;
            }
            let Some(entry) = index.file_by_id(window.file) else {
                continue;
            };
            taken.push((window.file, range));
            candidates.push(Candidate {
                source: Source::Indexed(window.file),
                path: entry.relative_path.as_ref().into(),
                language: Some(entry.language),
                kind: SnippetKind::SimilarCode,
                reason: "similar code".to_string(),
                score: 30.0 * similarity,
                pieces: vec![range],
                compact_pieces: None,
                definition: None,
                sort_line: range.0,
                partial_allowed: false,
            });
        }
    }

    let candidates_considered = candidates.len();
    let definitions_of = |source: Source| -> Option<&[Definition]> {
        match source {
            Source::Current => Some(current_definitions),
            Source::Indexed(file) => index.file_by_id(file).map(|entry| entry.definitions.as_slice()),
        }
    };
    let chosen = pack(candidates, request, counter, &mut texts, &definitions_of);
    let (snippets, rendered, total_tokens) = render_within_budget(chosen, request, counter, &mut texts);
    Selection {
        snippets,
        rendered,
        total_tokens,
        budget_tokens: request.budget_tokens,
        candidates_considered,
        elapsed_micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    }
}

/// A chosen snippet with its rendered block.
struct Chosen {
    snippet: Snippet,
    language: Option<LanguageId>,
    source: Source,
    pieces: Vec<LineRange>,
    /// The snippet rendered alone, header included.
    block: String,
}

/// Stop trying candidates after this many in a row did not fit.
const MAX_CONSECUTIVE_MISFITS: usize = 64;
/// A snippet's reason lists at most this many further reasons after the first.
const MAX_EXTRA_REASONS: usize = 2;
/// Below this many remaining tokens nothing useful fits.
const MIN_USEFUL_TOKENS: usize = 8;

fn pack<'data>(
    mut candidates: Vec<Candidate>,
    request: &SelectionRequest<'_>,
    counter: &dyn TokenCounter,
    texts: &mut TextCache<'_>,
    definitions_of: &dyn Fn(Source) -> Option<&'data [Definition]>,
) -> Vec<Chosen> {
    candidates.sort_by(|left, right| {
        right
            .score
            .total_cmp(&left.score)
            .then_with(|| left.kind.cmp(&right.kind))
            .then_with(|| left.path.cmp(&right.path))
            .then_with(|| left.sort_line.cmp(&right.sort_line))
    });
    let mut remaining = request.budget_tokens;
    let mut chosen: Vec<Chosen> = Vec::new();
    let mut chosen_ranges: HashMap<Arc<str>, Vec<LineRange>> = HashMap::new();
    let mut misfits = 0;
    for mut candidate in candidates {
        if remaining < MIN_USEFUL_TOKENS || misfits >= MAX_CONSECUTIVE_MISFITS {
            break;
        }
        if let Some(position) = candidate.definition {
            let Some(definitions) = definitions_of(candidate.source) else {
                continue;
            };
            let Some((file_text, starts)) = texts.get(candidate.source) else {
                continue;
            };
            let (pieces, compact_pieces) =
                definition_pieces(definitions, position, file_text, starts, &request.options);
            candidate.pieces = pieces;
            candidate.compact_pieces = compact_pieces;
        }
        let already = chosen_ranges
            .get(&candidate.path)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let Some((file_text, starts)) = texts.get(candidate.source) else {
            continue;
        };
        let indent = |line: u32| -> usize {
            lines_slice(file_text, starts, line, line)
                .bytes()
                .take_while(|byte| *byte == b' ' || *byte == b'\t')
                .count()
        };
        let keep = |pieces: &[LineRange]| -> Option<Vec<LineRange>> {
            let first = *pieces.first()?;
            if overlaps(already, first) {
                return None;
            }
            if candidate.partial_allowed {
                // A dropped piece takes the pieces nested under it along (a class header shown
                // elsewhere must not leave its methods to look like the previous class's).
                let mut dropped_at: Option<usize> = None;
                let mut kept = Vec::with_capacity(pieces.len());
                for &piece in pieces {
                    let depth = indent(piece.0);
                    if dropped_at.is_some_and(|header| depth > header) {
                        continue;
                    }
                    if overlaps(already, piece) {
                        dropped_at = Some(depth);
                    } else {
                        dropped_at = None;
                        kept.push(piece);
                    }
                }
                Some(kept)
            } else if pieces.iter().any(|&piece| overlaps(already, piece)) {
                None
            } else {
                Some(pieces.to_vec())
            }
        };
        let mut attempts: Vec<Vec<LineRange>> = Vec::with_capacity(2);
        if let Some(pieces) = keep(&candidate.pieces) {
            attempts.push(pieces);
        }
        if let Some(compact) = candidate.compact_pieces.as_deref().and_then(keep) {
            attempts.push(compact);
        }
        if attempts.is_empty() {
            // An imported module whose signatures are all shown already: say so.
            if candidate.kind == SnippetKind::ModuleSignatures {
                for chosen in chosen
                    .iter_mut()
                    .filter(|chosen| *chosen.snippet.path == *candidate.path)
                {
                    if !chosen.snippet.reason.contains(&candidate.reason)
                        && chosen.snippet.reason.matches("; ").count() < MAX_EXTRA_REASONS
                    {
                        chosen.snippet.reason = format!("{}; {}", chosen.snippet.reason, candidate.reason);
                    }
                }
            }
            continue;
        }
        let comment_prefix = candidate.language.map(LanguageId::comment_prefix).unwrap_or("//");
        let mut fitted = false;
        for pieces in attempts {
            let raw = render_pieces(file_text, starts, &pieces, comment_prefix);
            if raw.trim().is_empty() {
                break;
            }
            let snippet_text = redact_secrets(&raw).into_owned();
            let block = render_block(
                &request.format,
                &candidate.path,
                candidate.language,
                &snippet_text,
            );
            let tokens = counter.count(&block);
            if tokens > remaining {
                continue;
            }
            remaining -= tokens;
            let (Some(&first), Some(&last)) = (pieces.first(), pieces.last()) else {
                break;
            };
            chosen_ranges
                .entry(Arc::clone(&candidate.path))
                .or_default()
                .extend(pieces.iter().copied());
            chosen.push(Chosen {
                snippet: Snippet {
                    path: candidate.path.to_string(),
                    start_line: first.0 + 1,
                    end_line: last.1 + 1,
                    kind: candidate.kind,
                    reason: candidate.reason.clone(),
                    score: candidate.score,
                    tokens,
                    text: snippet_text,
                },
                language: candidate.language,
                source: candidate.source,
                pieces,
                block,
            });
            fitted = true;
            break;
        }
        misfits = if fitted { 0 } else { misfits + 1 };
    }
    chosen
}

/// Renders the chosen snippets in order. Adjacent snippets of the same file share one
/// block: their line ranges are merged and rendered as one view of the file, with elision
/// lines between the gaps.
fn render_chosen(chosen: &[Chosen], format: &RenderFormat, texts: &mut TextCache<'_>) -> String {
    let mut rendered = String::new();
    let mut position = 0;
    while position < chosen.len() {
        let first = &chosen[position];
        let mut group_end = position + 1;
        while group_end < chosen.len() && chosen[group_end].snippet.path == first.snippet.path {
            group_end += 1;
        }
        let merged_text = if group_end > position + 1 {
            let mut pieces: Vec<LineRange> = chosen[position..group_end]
                .iter()
                .flat_map(|chosen| chosen.pieces.iter().copied())
                .collect();
            pieces.sort_unstable();
            let mut merged: Vec<LineRange> = Vec::with_capacity(pieces.len());
            for (start, end) in pieces {
                match merged.last_mut() {
                    Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                    _ => merged.push((start, end)),
                }
            }
            let comment_prefix = first.language.map(LanguageId::comment_prefix).unwrap_or("//");
            texts.get(first.source).map(|(file_text, starts)| {
                redact_secrets(&render_pieces(file_text, starts, &merged, comment_prefix)).into_owned()
            })
        } else {
            None
        };
        match merged_text {
            Some(text) => {
                rendered.push_str(&render_block(format, &first.snippet.path, first.language, &text))
            }
            None => {
                for chosen in &chosen[position..group_end] {
                    rendered.push_str(&chosen.block);
                }
            }
        }
        position = group_end;
    }
    rendered
}

/// Orders the chosen snippets for prompt stability and renders them; drops the lowest
/// scored ones while the whole rendered text counts more than the budget (possible with
/// tokenizers whose counts are not additive).
fn render_within_budget(
    mut chosen: Vec<Chosen>,
    request: &SelectionRequest<'_>,
    counter: &dyn TokenCounter,
    texts: &mut TextCache<'_>,
) -> (Vec<Snippet>, String, usize) {
    chosen.sort_by(|left, right| {
        (left.snippet.kind, &left.snippet.path, left.snippet.start_line).cmp(&(
            right.snippet.kind,
            &right.snippet.path,
            right.snippet.start_line,
        ))
    });
    loop {
        let rendered = render_chosen(&chosen, &request.format, texts);
        let total_tokens = if rendered.is_empty() {
            0
        } else {
            counter.count(&rendered)
        };
        if total_tokens <= request.budget_tokens || chosen.is_empty() {
            let snippets = chosen.into_iter().map(|chosen| chosen.snippet).collect();
            return (snippets, rendered, total_tokens);
        }
        let lowest = chosen
            .iter()
            .enumerate()
            .min_by(|left, right| left.1.snippet.score.total_cmp(&right.1.snippet.score))
            .map(|(position, _)| position);
        if let Some(position) = lowest {
            chosen.remove(position);
        }
    }
}
