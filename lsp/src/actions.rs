//! Code actions: listed instantly (no model), computed on `codeAction/resolve`.
//!
//! `textDocument/codeAction` looks only at the document: the selection, or the definition under
//! the cursor (tree-sitter), and the diagnostics the client passes. Each action carries in `data`
//! everything resolve needs (uri, document version, range, what to do), so resolve is stateless.
//! Resolve refuses when the document moved past that version, asks the model in its chat
//! template with the cross-file context of completions, keeps only code (one fenced block, or a
//! JSON-schema-constrained comment text), and answers a `WorkspaceEdit` with one minimal
//! `TextEdit`, versioned so the client refuses it for a newer text too.

use std::collections::HashMap;
use std::ops::Range as ByteRange;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hearth_grammars::{DefinitionKind, LanguageId};
use hearth_protocol::{ChatMessage, ChatParams, Priority, SamplingParams, SidecarClient};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::{Error as RpcError, ErrorCode, Result as RpcResult};
use tower_lsp_server::lsp_types::*;

use crate::documents::{Document, PositionEncoding};
use crate::pipeline::CompletionInput;
use crate::review::{split_lines, Dismissals, FileReviews};
use crate::server::HearthServer;

pub const REWRITE_COMMAND: &str = "hearth.rewrite";
pub const DISMISS_COMMAND: &str = "hearth.dismissFinding";
pub const SOURCE: &str = "hearth";

/// Code actions kinds Hearth offers.
pub fn action_kinds() -> Vec<CodeActionKind> {
    vec![
        CodeActionKind::QUICKFIX,
        CodeActionKind::REFACTOR_REWRITE,
        CodeActionKind::new("refactor.rewrite.document"),
        CodeActionKind::new("refactor.rewrite.simplify"),
        CodeActionKind::new("refactor.rewrite.explain"),
        CodeActionKind::new("source.tests"),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ActionKind {
    Rewrite,
    Simplify,
    Document,
    Explain,
    Tests,
    Fix,
}

impl ActionKind {
    fn code_action_kind(self) -> CodeActionKind {
        match self {
            ActionKind::Rewrite => CodeActionKind::REFACTOR_REWRITE,
            ActionKind::Simplify => CodeActionKind::new("refactor.rewrite.simplify"),
            ActionKind::Document => CodeActionKind::new("refactor.rewrite.document"),
            ActionKind::Explain => CodeActionKind::new("refactor.rewrite.explain"),
            ActionKind::Tests => CodeActionKind::new("source.tests"),
            ActionKind::Fix => CodeActionKind::QUICKFIX,
        }
    }
}

/// The diagnostic a fix is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticSummary {
    pub message: String,
    pub source: Option<String>,
    pub range: Range,
}

/// What `codeAction/resolve` needs, carried in the action's `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionData {
    pub uri: Uri,
    pub version: i32,
    /// The whole lines the action works on (start of the first line to start of the line after).
    pub range: Range,
    pub action: ActionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<DiagnosticSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
}

/// What a published Hearth diagnostic carries in `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingData {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

/// Server-side state of code actions and reviews.
#[derive(Default)]
pub struct AssistState {
    pub reviews: FileReviews,
    pub dismissals: Mutex<Dismissals>,
    /// Cancel senders of running actions, by progress token.
    pub progress_cancels: Mutex<HashMap<String, tokio::sync::watch::Sender<bool>>>,
    pub next_progress: AtomicU64,
    /// The client applies `documentChanges` (versioned edits) and can create files.
    pub document_changes: AtomicBool,
    pub create_files: AtomicBool,
}

impl AssistState {
    pub fn read_client_capabilities(&self, capabilities: &ClientCapabilities) {
        let edit = capabilities
            .workspace
            .as_ref()
            .and_then(|workspace| workspace.workspace_edit.as_ref());
        self.document_changes.store(
            edit.and_then(|edit| edit.document_changes).unwrap_or(false),
            Ordering::Relaxed,
        );
        self.create_files.store(
            edit.and_then(|edit| edit.resource_operations.as_ref())
                .is_some_and(|ops| ops.contains(&ResourceOperationKind::Create)),
            Ordering::Relaxed,
        );
    }
}

// --- targets ------------------------------------------------------------------------------------

/// What an action works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Whole lines, 0-based, half-open.
    pub lines: ByteRange<u32>,
    /// The definition the selection starts with, or the one under the cursor.
    pub definition: Option<TargetDefinition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDefinition {
    pub name: String,
    pub callable: bool,
    pub start_line: u32,
    pub end_line: u32,
    pub signature_end_line: u32,
}

pub fn language_of(document_language: &str, path: &Path) -> Option<LanguageId> {
    LanguageId::from_lsp_language_id(document_language).or_else(|| LanguageId::from_path(path))
}

/// The lines a selection covers (a selection ending at column 0 stops before that line), or,
/// for an empty selection, the innermost definition under the cursor.
pub fn find_target(
    text: &str,
    language: Option<LanguageId>,
    selection: Range,
    line_count: u32,
) -> Option<Target> {
    let definitions = language
        .and_then(|language| {
            hearth_grammars::parse(language, text)
                .map(|tree| hearth_grammars::extract_definitions(language, &tree, text))
        })
        .unwrap_or_default();
    let to_target = |definition: &hearth_grammars::ExtractedDefinition| TargetDefinition {
        name: definition.name.clone(),
        callable: definition.kind.is_callable(),
        start_line: definition.start_line as u32,
        end_line: definition.end_line as u32,
        signature_end_line: definition.signature_end_line as u32,
    };
    let documentable = |kind: DefinitionKind| {
        kind.is_callable() || kind.is_type_container() || matches!(kind, DefinitionKind::Type)
    };
    if line_count == 0 {
        return None;
    }
    let empty = selection.start == selection.end;
    if empty {
        let line = selection.start.line.min(line_count - 1) as usize;
        let definition = definitions
            .iter()
            .filter(|d| documentable(d.kind) && d.start_line <= line && line <= d.end_line)
            .min_by_key(|d| d.end_line - d.start_line)?;
        let target = to_target(definition);
        return Some(Target {
            lines: target.start_line..(target.end_line + 1).min(line_count),
            definition: Some(target),
        });
    }
    let start = selection.start.line.min(line_count - 1);
    let mut end = selection.end.line;
    if selection.end.character == 0 && end > start {
        end -= 1;
    }
    let end = end.clamp(start, line_count - 1);
    let definition = definitions
        .iter()
        .find(|d| documentable(d.kind) && (start..=end).contains(&(d.start_line as u32)))
        .map(to_target);
    Some(Target {
        lines: start..end + 1,
        definition,
    })
}

fn whole_lines_range(lines: &ByteRange<u32>) -> Range {
    Range::new(Position::new(lines.start, 0), Position::new(lines.end, 0))
}

// --- listing ------------------------------------------------------------------------------------

pub struct ListInput<'a> {
    pub uri: &'a Uri,
    pub document: &'a Document,
    pub path: &'a Path,
    pub encoding: PositionEncoding,
    pub range: Range,
    pub context: &'a CodeActionContext,
    pub document_changes: bool,
}

fn lazy_action(
    title: String,
    data: &ActionData,
    diagnostics: Option<Vec<Diagnostic>>,
) -> CodeActionOrCommand {
    CodeActionOrCommand::CodeAction(CodeAction {
        title,
        kind: Some(data.action.code_action_kind()),
        diagnostics,
        edit: None,
        command: None,
        is_preferred: None,
        disabled: None,
        data: serde_json::to_value(data).ok(),
    })
}

/// The actions for a range: no model, no IO, only the document.
pub fn list_actions(input: &ListInput<'_>) -> Vec<CodeActionOrCommand> {
    let text = input.document.text();
    let line_count = split_lines(&text).len() as u32;
    let language = language_of(&input.document.language_id, input.path);
    let version = input.document.version;
    let wanted = |kind: &CodeActionKind| match &input.context.only {
        None => true,
        Some(only) => only.iter().any(|prefix| {
            kind.as_str() == prefix.as_str() || kind.as_str().starts_with(&format!("{}.", prefix.as_str()))
        }),
    };
    let mut actions = Vec::new();
    let base = |action: ActionKind, lines: &ByteRange<u32>| ActionData {
        uri: input.uri.clone(),
        version,
        range: whole_lines_range(lines),
        action,
        instruction: None,
        diagnostic: None,
        symbol: None,
    };

    // Fixes for the diagnostics the client sent (any source).
    for diagnostic in &input.context.diagnostics {
        let start = diagnostic.range.start.line.min(line_count.saturating_sub(1));
        let end = diagnostic
            .range
            .end
            .line
            .clamp(start, line_count.saturating_sub(1));
        let lines = start..end + 1;
        let finding: Option<FindingData> = (diagnostic.source.as_deref() == Some(SOURCE))
            .then(|| diagnostic.data.clone())
            .flatten()
            .and_then(|data| serde_json::from_value(data).ok());
        if let Some(finding) = &finding {
            if let (Some(replacement), true) = (&finding.replacement, wanted(&CodeActionKind::QUICKFIX)) {
                let edit = replace_lines_edit(input.document, input.encoding, &lines, replacement);
                actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                    title: "Hearth: apply the suggested fix".into(),
                    kind: Some(CodeActionKind::QUICKFIX),
                    diagnostics: Some(vec![diagnostic.clone()]),
                    edit: Some(workspace_edit(
                        input.uri,
                        version,
                        vec![edit],
                        input.document_changes,
                    )),
                    is_preferred: Some(true),
                    ..Default::default()
                }));
            }
        }
        if wanted(&CodeActionKind::QUICKFIX) && line_count > 0 {
            let mut data = base(ActionKind::Fix, &lines);
            data.diagnostic = Some(DiagnosticSummary {
                message: diagnostic.message.clone(),
                source: diagnostic.source.clone(),
                range: diagnostic.range,
            });
            actions.push(lazy_action(
                format!("Hearth: fix “{}”", one_line(&diagnostic.message, 60)),
                &data,
                Some(vec![diagnostic.clone()]),
            ));
        }
        if let (Some(finding), true) = (finding, wanted(&CodeActionKind::QUICKFIX)) {
            actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                title: "Hearth: ignore this finding".into(),
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![diagnostic.clone()]),
                command: Some(Command {
                    title: "Ignore this finding".into(),
                    command: DISMISS_COMMAND.into(),
                    arguments: Some(vec![json!({ "uri": input.uri, "key": finding.key })]),
                }),
                ..Default::default()
            }));
        }
    }

    let Some(target) = find_target(&text, language, input.range, line_count) else {
        return actions;
    };
    let selection_empty = input.range.start == input.range.end;
    let what = match (&target.definition, selection_empty) {
        (Some(definition), true) => format!("`{}`", definition.name),
        _ => "the selection".to_string(),
    };
    if let Some(definition) = &target.definition {
        let lines = definition.start_line..(definition.end_line + 1).min(line_count);
        let mut data = base(ActionKind::Document, &lines);
        data.symbol = Some(definition.name.clone());
        if wanted(&ActionKind::Document.code_action_kind()) {
            actions.push(lazy_action(
                format!("Hearth: write the documentation comment of `{}`", definition.name),
                &data,
                None,
            ));
        }
    }
    for (action, title) in [
        (ActionKind::Rewrite, format!("Hearth: rewrite {what}")),
        (ActionKind::Simplify, format!("Hearth: simplify {what}")),
        (
            ActionKind::Explain,
            format!("Hearth: explain {what} in a comment"),
        ),
    ] {
        if wanted(&action.code_action_kind()) {
            let mut data = base(action, &target.lines);
            data.symbol = target.definition.as_ref().map(|d| d.name.clone());
            actions.push(lazy_action(title, &data, None));
        }
    }
    if let Some(definition) = target.definition.as_ref().filter(|d| d.callable) {
        if wanted(&ActionKind::Tests.code_action_kind()) {
            let lines = definition.start_line..(definition.end_line + 1).min(line_count);
            let mut data = base(ActionKind::Tests, &lines);
            data.symbol = Some(definition.name.clone());
            actions.push(lazy_action(
                format!("Hearth: write unit tests for `{}`", definition.name),
                &data,
                None,
            ));
        }
    }
    actions
}

fn one_line(text: &str, max_chars: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > max_chars {
        format!("{}…", line.chars().take(max_chars).collect::<String>())
    } else {
        line.to_string()
    }
}

// --- edits --------------------------------------------------------------------------------------

/// Byte range of whole lines `lines` in `text`: from the first line's start to the start of the
/// line after the last (or the end of the text).
pub fn line_byte_range(text: &str, lines: &ByteRange<u32>) -> ByteRange<usize> {
    let mut start = text.len();
    let mut end = text.len();
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if index as u32 == lines.start {
            start = offset;
        }
        if index as u32 == lines.end {
            end = offset;
            break;
        }
        offset += line.len();
    }
    start..end.max(start)
}

/// The smallest single replacement turning `old` into `new`: the byte range of `old` and the
/// text replacing it (common prefix and suffix left alone; never splits a character).
pub fn minimal_replacement(old: &str, new: &str) -> Option<(ByteRange<usize>, String)> {
    if old == new {
        return None;
    }
    let mut prefix = old.bytes().zip(new.bytes()).take_while(|(a, b)| a == b).count();
    while !old.is_char_boundary(prefix) || !new.is_char_boundary(prefix) {
        prefix -= 1;
    }
    let max_suffix = (old.len() - prefix).min(new.len() - prefix);
    let mut suffix = old
        .bytes()
        .rev()
        .zip(new.bytes().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    while !old.is_char_boundary(old.len() - suffix) || !new.is_char_boundary(new.len() - suffix) {
        suffix -= 1;
    }
    Some((
        prefix..old.len() - suffix,
        new[prefix..new.len() - suffix].to_string(),
    ))
}

fn text_edit(
    document: &Document,
    encoding: PositionEncoding,
    bytes: ByteRange<usize>,
    new_text: String,
) -> TextEdit {
    TextEdit {
        range: Range::new(
            document.byte_to_position(bytes.start, encoding),
            document.byte_to_position(bytes.end, encoding),
        ),
        new_text,
    }
}

fn with_line_endings(text: &str, document_text: &str) -> String {
    if document_text.contains("\r\n") {
        text.replace("\r\n", "\n").replace('\n', "\r\n")
    } else {
        text.to_string()
    }
}

/// Replace whole lines `lines` by `replacement` (a text without its final line break), as the
/// minimal edit.
pub fn replace_lines_edit(
    document: &Document,
    encoding: PositionEncoding,
    lines: &ByteRange<u32>,
    replacement: &str,
) -> TextEdit {
    let text = document.text();
    let bytes = line_byte_range(&text, lines);
    let old = &text[bytes.clone()];
    let mut new = with_line_endings(replacement.trim_end_matches(['\n', '\r']), &text);
    if old.ends_with('\n') {
        new.push_str(if old.ends_with("\r\n") { "\r\n" } else { "\n" });
    }
    match minimal_replacement(old, &new) {
        Some((range, new_text)) => text_edit(
            document,
            encoding,
            bytes.start + range.start..bytes.start + range.end,
            new_text,
        ),
        None => text_edit(document, encoding, bytes.start..bytes.start, String::new()),
    }
}

pub fn workspace_edit(
    uri: &Uri,
    version: i32,
    edits: Vec<TextEdit>,
    document_changes: bool,
) -> WorkspaceEdit {
    if document_changes {
        WorkspaceEdit {
            document_changes: Some(DocumentChanges::Edits(vec![TextDocumentEdit {
                text_document: OptionalVersionedTextDocumentIdentifier {
                    uri: uri.clone(),
                    version: Some(version),
                },
                edits: edits.into_iter().map(OneOf::Left).collect(),
            }])),
            ..Default::default()
        }
    } else {
        WorkspaceEdit {
            changes: Some(HashMap::from([(uri.clone(), edits)])),
            ..Default::default()
        }
    }
}

/// The code of the model's answer: the first fenced block (to its end, or to the end of a cut-off
/// answer), else the whole answer. Trailing whitespace is removed; `None` when nothing is left.
pub fn extract_code(answer: &str) -> Option<String> {
    let lines: Vec<&str> = answer.lines().collect();
    let code = match lines.iter().position(|line| line.trim_start().starts_with("```")) {
        Some(open) => {
            let body = &lines[open + 1..];
            let close = body
                .iter()
                .position(|line| line.trim_start().starts_with("```"))
                .unwrap_or(body.len());
            body[..close].join("\n")
        }
        None => answer.to_string(),
    };
    let code = code.trim_end().trim_start_matches(['\n', '\r']);
    (!code.trim().is_empty()).then(|| code.to_string())
}

fn indentation(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// Give `code` the indentation of the lines it replaces when the model dropped it.
pub fn reindent(code: &str, original: &[&str]) -> String {
    let base = original
        .iter()
        .find(|line| !line.trim().is_empty())
        .map(|line| indentation(line))
        .unwrap_or("");
    let code_base = code
        .lines()
        .find(|line| !line.trim().is_empty())
        .map(indentation)
        .unwrap_or("");
    if base.is_empty() || !code_base.is_empty() {
        return code.to_string();
    }
    code.lines()
        .map(|line| {
            if line.trim().is_empty() {
                String::new()
            } else {
                format!("{base}{line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Words of `text` wrapped into lines of at most `width` characters.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// Comment lines (`indent` + prefix) holding `text`.
pub fn comment_block(language: Option<LanguageId>, text: &str, indent: &str, doc: bool) -> String {
    let width = 88usize.saturating_sub(indent.len()).max(40);
    let words = wrap(text, width);
    let prefix = match (language, doc) {
        (Some(LanguageId::Rust), true) => "///",
        (Some(LanguageId::CSharp), true) => "///",
        (Some(LanguageId::Lua), true) => "---",
        (Some(language), _) => language.comment_prefix(),
        (None, _) => "#",
    };
    let block = matches!(
        language,
        Some(
            LanguageId::JavaScript
                | LanguageId::TypeScript
                | LanguageId::Tsx
                | LanguageId::Java
                | LanguageId::Php
        )
    ) && doc;
    let mut out = String::new();
    if block {
        out.push_str(&format!("{indent}/**\n"));
        for line in &words {
            out.push_str(&format!("{indent} * {line}\n"));
        }
        out.push_str(&format!("{indent} */\n"));
    } else {
        for line in &words {
            out.push_str(&format!("{indent}{prefix} {line}\n"));
        }
    }
    out
}

/// Lines directly above `line` that are comments (its current documentation).
fn comment_lines_above(lines: &[&str], line: u32, language: Option<LanguageId>) -> ByteRange<u32> {
    let prefixes: &[&str] = match language {
        Some(LanguageId::Python | LanguageId::Ruby | LanguageId::Bash) => &["#"],
        Some(LanguageId::Lua) => &["--"],
        _ => &["//", "/*", "*"],
    };
    let mut start = line;
    while start > 0 {
        let above = lines[start as usize - 1].trim_start();
        let is_comment = prefixes.iter().any(|p| above.starts_with(p))
            && !above.starts_with("#[")
            && !above.starts_with("#!");
        if !is_comment {
            break;
        }
        start -= 1;
    }
    start..line
}

/// A Python docstring right after the signature: its lines.
fn python_docstring(lines: &[&str], after: u32) -> Option<ByteRange<u32>> {
    let first = lines.get(after as usize)?.trim_start();
    let quote = ["\"\"\"", "'''"].into_iter().find(|q| first.starts_with(q))?;
    if first.len() >= 6 && first[3..].contains(quote) {
        return Some(after..after + 1);
    }
    let close = lines[after as usize + 1..]
        .iter()
        .position(|line| line.contains(quote))?;
    Some(after..after + close as u32 + 2)
}

/// Where the documentation of `definition` goes and what it becomes: (lines replaced, new lines).
pub fn documentation_edit(
    lines: &[&str],
    definition: &TargetDefinition,
    language: Option<LanguageId>,
    text: &str,
) -> (ByteRange<u32>, String) {
    let def_line = lines.get(definition.start_line as usize).copied().unwrap_or("");
    if language == Some(LanguageId::Python) {
        let body_line = definition.signature_end_line + 1;
        let indent = lines
            .get(body_line as usize)
            .filter(|line| !line.trim().is_empty())
            .map(|line| indentation(line).to_string())
            .unwrap_or_else(|| format!("{}    ", indentation(def_line)));
        let wrapped = wrap(text, 88usize.saturating_sub(indent.len() + 6).max(40));
        let docstring = if wrapped.len() <= 1 {
            format!(
                "{indent}\"\"\"{}\"\"\"\n",
                wrapped.first().map(String::as_str).unwrap_or("")
            )
        } else {
            let mut out = format!("{indent}\"\"\"{}\n", wrapped[0]);
            for line in &wrapped[1..] {
                out.push_str(&format!("{indent}{line}\n"));
            }
            out.push_str(&format!("{indent}\"\"\"\n"));
            out
        };
        let replaced = python_docstring(lines, body_line).unwrap_or(body_line..body_line);
        return (replaced, docstring);
    }
    let replaced = comment_lines_above(lines, definition.start_line, language);
    (
        replaced,
        comment_block(language, text, indentation(def_line), true),
    )
}

/// Where the tests for `path` go: a test file of the language's convention, or `None` for the
/// same file (Rust keeps unit tests next to the code).
pub fn test_file_for(path: &Path, language: Option<LanguageId>, root: Option<&Path>) -> Option<PathBuf> {
    let stem = path.file_stem()?.to_string_lossy().into_owned();
    let dir = path.parent()?;
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    match language? {
        LanguageId::Python => {
            let tests_dir = root
                .map(|root| root.join("tests"))
                .filter(|dir| dir.is_dir())
                .unwrap_or_else(|| dir.to_path_buf());
            Some(tests_dir.join(format!("test_{stem}.py")))
        }
        LanguageId::Go => Some(dir.join(format!("{stem}_test.go"))),
        LanguageId::JavaScript | LanguageId::TypeScript | LanguageId::Tsx => {
            Some(dir.join(format!("{stem}.test.{extension}")))
        }
        LanguageId::Ruby => Some(dir.join(format!("{stem}_test.rb"))),
        _ => None,
    }
}

// --- resolve ------------------------------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("the document changed since this action was offered (version {offered}, now {current}); ask for the action again")]
    Stale { offered: i32, current: i32 },
    #[error("the document is not open")]
    NotOpen,
    #[error("the model is not available: {0}")]
    Backend(String),
    #[error("the model failed: {0}")]
    Model(#[from] hearth_protocol::ClientError),
    #[error("the model's answer had no usable code")]
    NoCode,
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Invalid(String),
}

impl ActionError {
    pub fn to_rpc(&self) -> RpcError {
        let code = match self {
            ActionError::Stale { .. } => ErrorCode::ContentModified,
            ActionError::Cancelled => ErrorCode::RequestCancelled,
            ActionError::Invalid(_) | ActionError::NotOpen => ErrorCode::InvalidParams,
            _ => ErrorCode::InternalError,
        };
        RpcError {
            code,
            message: format!("Hearth: {self}").into(),
            data: None,
        }
    }
}

const ACTION_MAX_TOKENS: u32 = 512;
/// Lines of the file shown around the target.
const EXCERPT_LINES: usize = 24;

fn code_messages(
    language: &str,
    relative_path: &str,
    context: &str,
    excerpt: &str,
    target_code: &str,
    task: &str,
) -> Vec<ChatMessage> {
    let system = format!(
        "You are an expert {language} programmer. You answer with code only: one fenced code block, \
         no explanation before or after it."
    );
    let mut user = String::new();
    if !context.trim().is_empty() {
        user.push_str("Related code from the same project:\n");
        user.push_str(context.trim_end());
        user.push_str("\n\n");
    }
    if !excerpt.trim().is_empty() {
        user.push_str(&format!(
            "From {relative_path}:\n```{language}\n{excerpt}\n```\n\n"
        ));
    }
    user.push_str(&format!("The code:\n```{language}\n{target_code}\n```\n\n{task}"));
    vec![
        ChatMessage {
            role: "system".into(),
            content: system,
        },
        ChatMessage {
            role: "user".into(),
            content: user,
        },
    ]
}

fn text_schema(max_chars: u32) -> Value {
    json!({
        "type": "object",
        "properties": { "text": { "type": "string", "minLength": 8, "maxLength": max_chars } },
        "required": ["text"],
        "additionalProperties": false
    })
}

/// The text of a `{"text": ...}` answer (or, for a cut-off answer, what it got to).
pub fn parse_text_answer(answer: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Answer {
        text: String,
    }
    let text = match serde_json::from_str::<Answer>(answer.trim()) {
        Ok(answer) => answer.text,
        Err(_) => {
            let start = answer.find("\"text\"")?;
            let rest = &answer[start + 6..];
            let open = rest.find('"')?;
            rest[open + 1..]
                .trim_end_matches(['"', '}', ' ', '\n'])
                .to_string()
        }
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

impl HearthServer {
    /// `textDocument/codeAction`: instant, from the document alone.
    pub(crate) fn list_code_actions(&self, params: &CodeActionParams) -> Vec<CodeActionOrCommand> {
        let uri = &params.text_document.uri;
        let Some(document) = self.document_snapshot(uri) else {
            return Vec::new();
        };
        let config = self.settings();
        if config.disabled_languages.contains(&document.language_id) {
            return Vec::new();
        }
        let path = crate::server::uri_to_path(uri).unwrap_or_else(|| PathBuf::from(uri.path().as_str()));
        list_actions(&ListInput {
            uri,
            document: &document,
            path: &path,
            encoding: self.position_encoding(),
            range: params.range,
            context: &params.context,
            document_changes: self.assist().document_changes.load(Ordering::Relaxed),
        })
    }

    /// `codeAction/resolve`: run the model for the chosen action.
    pub(crate) async fn resolve_code_action(&self, mut action: CodeAction) -> RpcResult<CodeAction> {
        let Some(data) = action.data.clone() else {
            return Ok(action);
        };
        let data: ActionData = serde_json::from_value(data)
            .map_err(|error| RpcError::invalid_params(format!("not a Hearth code action: {error}")))?;
        match self.compute_action(&data, &action.title).await {
            Ok(Some(edit)) => {
                action.edit = Some(edit);
                Ok(action)
            }
            Ok(None) => {
                self.lsp_client()
                    .show_message(MessageType::INFO, "Hearth: the model suggested no change")
                    .await;
                Ok(action)
            }
            Err(error) => {
                tracing::info!("code action `{}`: {error}", action.title);
                if !matches!(error, ActionError::Cancelled) {
                    self.lsp_client()
                        .show_message(MessageType::WARNING, format!("Hearth: {error}"))
                        .await;
                }
                Err(error.to_rpc())
            }
        }
    }

    /// `hearth.rewrite`: `[{uri, range, instruction?, version?}]` → the edit, applied with
    /// `workspace/applyEdit`.
    pub(crate) async fn rewrite_command(&self, arguments: Vec<Value>) -> RpcResult<Option<Value>> {
        #[derive(Deserialize)]
        struct RewriteArguments {
            uri: Uri,
            range: Range,
            #[serde(default)]
            instruction: Option<String>,
            #[serde(default)]
            version: Option<i32>,
        }
        let arguments: RewriteArguments = arguments
            .into_iter()
            .next()
            .and_then(|value| serde_json::from_value(value).ok())
            .ok_or_else(|| {
                RpcError::invalid_params("hearth.rewrite takes [{uri, range, instruction?, version?}]")
            })?;
        let Some(document) = self.document_snapshot(&arguments.uri) else {
            return Err(ActionError::NotOpen.to_rpc());
        };
        let text = document.text();
        let line_count = split_lines(&text).len() as u32;
        let path = crate::server::uri_to_path(&arguments.uri).unwrap_or_default();
        let Some(target) = find_target(
            &text,
            language_of(&document.language_id, &path),
            arguments.range,
            line_count,
        ) else {
            return Err(RpcError::invalid_params("nothing to rewrite at this range"));
        };
        let data = ActionData {
            uri: arguments.uri.clone(),
            version: arguments.version.unwrap_or(document.version),
            range: whole_lines_range(&target.lines),
            action: ActionKind::Rewrite,
            instruction: arguments.instruction.filter(|i| !i.trim().is_empty()),
            diagnostic: None,
            symbol: target.definition.map(|d| d.name),
        };
        match self.compute_action(&data, "Hearth: rewrite").await {
            Ok(Some(edit)) => {
                // Applied from a task: the handler never waits for the client's answer.
                let lsp_client = self.lsp_client().clone();
                let applied_edit = edit.clone();
                tokio::spawn(async move {
                    match lsp_client.apply_edit(applied_edit).await {
                        Ok(response) if !response.applied => tracing::info!(
                            "the client did not apply the rewrite: {}",
                            response.failure_reason.unwrap_or_default()
                        ),
                        Ok(_) => {}
                        Err(error) => tracing::info!("workspace/applyEdit failed: {error}"),
                    }
                });
                Ok(Some(json!({ "applying": true, "edit": edit })))
            }
            Ok(None) => Ok(Some(
                json!({ "applied": false, "message": "the model suggested no change" }),
            )),
            Err(error) => {
                if !matches!(error, ActionError::Cancelled) {
                    self.lsp_client()
                        .show_message(MessageType::WARNING, format!("Hearth: {error}"))
                        .await;
                }
                Err(error.to_rpc())
            }
        }
    }

    fn check_version(&self, data: &ActionData) -> Result<Document, ActionError> {
        let document = self.document_snapshot(&data.uri).ok_or(ActionError::NotOpen)?;
        if document.version != data.version {
            return Err(ActionError::Stale {
                offered: data.version,
                current: document.version,
            });
        }
        Ok(document)
    }

    /// The edit of an action, with cancellable `$/progress` while the model runs.
    async fn compute_action(
        &self,
        data: &ActionData,
        title: &str,
    ) -> Result<Option<WorkspaceEdit>, ActionError> {
        self.check_version(data)?;
        let client = self.sidecar().await.map_err(ActionError::Backend)?;
        let assist = self.assist();
        let token = format!(
            "hearth-action-{}-{}",
            std::process::id(),
            assist.next_progress.fetch_add(1, Ordering::Relaxed)
        );
        let (cancel_sender, mut cancelled) = tokio::sync::watch::channel(false);
        assist
            .progress_cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), cancel_sender);
        // Progress runs in its own task: a handler never waits for the client to answer a request
        // of ours (with every handler slot taken, the answer could not be read).
        let (finished_sender, mut finished) = tokio::sync::watch::channel(None::<&'static str>);
        let lsp_client = self.lsp_client().clone();
        let progress_title = title.trim_start_matches("Hearth: ").to_string();
        let progress_token = token.clone();
        tokio::spawn(async move {
            let token = NumberOrString::String(progress_token);
            let created = lsp_client
                .send_request::<request::WorkDoneProgressCreate>(WorkDoneProgressCreateParams {
                    token: token.clone(),
                })
                .await
                .is_ok();
            if !created || finished.borrow().is_some() {
                return;
            }
            let progress = lsp_client
                .progress(token, progress_title)
                .with_message("asking the model")
                .with_cancel_button()
                .begin()
                .await;
            let message = finished
                .wait_for(|message| message.is_some())
                .await
                .map(|message| message.unwrap_or("done"))
                .unwrap_or("done");
            progress.finish_with_message(message).await;
        });
        let work = self.action_edit(&client, data);
        let result = tokio::select! {
            result = work => result,
            _ = cancelled.wait_for(|c| *c) => Err(ActionError::Cancelled),
        };
        assist
            .progress_cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&token);
        finished_sender.send_replace(Some(match &result {
            Ok(Some(_)) => "done",
            Ok(None) => "no change",
            Err(ActionError::Cancelled) => "cancelled",
            Err(_) => "failed",
        }));
        let edit = result?;
        // The user may have typed while the model ran: never hand out an edit for older text.
        self.check_version(data)?;
        Ok(edit)
    }

    async fn action_edit(
        &self,
        client: &SidecarClient,
        data: &ActionData,
    ) -> Result<Option<WorkspaceEdit>, ActionError> {
        let document = self.check_version(data)?;
        let encoding = self.position_encoding();
        let text = document.text();
        let lines = split_lines(&text);
        let line_count = lines.len() as u32;
        let path =
            crate::server::uri_to_path(&data.uri).unwrap_or_else(|| PathBuf::from(data.uri.path().as_str()));
        let language = language_of(&document.language_id, &path);
        let language_name = crate::review::language_name(&document.language_id, &path);
        let start = data.range.start.line.min(line_count);
        let end = data.range.end.line.clamp(start, line_count);
        if start >= end {
            return Err(ActionError::Invalid(
                "the action's range is outside the document".into(),
            ));
        }
        let target_lines = start..end;
        let target_code = lines[start as usize..end as usize].join("\n");
        let context = self.context_engine();
        let relative = crate::review::relative_path(&path, context.root());
        let bytes = line_byte_range(&text, &target_lines);
        let selection_input = CompletionInput {
            key: data.uri.as_str().to_string(),
            path: path.clone(),
            language_id: document.language_id.clone(),
            text: Arc::new(text.clone()),
            cursor_byte: bytes.start,
            explicit: true,
        };
        let budget = crate::pipeline::context_budget(&self.settings(), client).min(384);
        let manifest = context
            .select(&selection_input, budget, client.model(), Some(client))
            .await;
        let excerpt_start = (start as usize).saturating_sub(EXCERPT_LINES / 2);
        let excerpt_end = (end as usize + EXCERPT_LINES / 2).min(lines.len());
        let excerpt = if excerpt_end - excerpt_start > (end - start) as usize {
            lines[excerpt_start..excerpt_end].join("\n")
        } else {
            String::new()
        };
        let version = document.version;
        let document_changes = self.assist().document_changes.load(Ordering::Relaxed);
        let symbol = data.symbol.clone().unwrap_or_else(|| "this code".into());

        match data.action {
            ActionKind::Document | ActionKind::Explain => {
                let task = if data.action == ActionKind::Document {
                    format!(
                        "Write the documentation comment of `{symbol}`: what it does, its parameters and \
                         what it returns, in one to three sentences. Answer as JSON: {{\"text\": \"...\"}}"
                    )
                } else {
                    "Explain in one to three sentences what this code does and why. Answer as JSON: \
                     {\"text\": \"...\"}"
                        .to_string()
                };
                let mut messages = code_messages(
                    &language_name,
                    &relative,
                    &manifest.selection.rendered,
                    &excerpt,
                    &target_code,
                    &task,
                );
                messages[0].content = format!("You are an expert {language_name} programmer who writes clear, short documentation. You answer with JSON.");
                let outcome = client
                    .chat(ChatParams {
                        messages,
                        sampling: SamplingParams {
                            max_tokens: 160,
                            json_schema: Some(text_schema(400)),
                            repeat_penalty: 1.1,
                            ..SamplingParams::default()
                        },
                        priority: Priority::Background,
                        stream: false,
                    })?
                    .finish()
                    .await?;
                let explanation = parse_text_answer(&outcome.text).ok_or(ActionError::NoCode)?;
                let (replaced, new_text) = if data.action == ActionKind::Document {
                    let definition = find_target(
                        &text,
                        language,
                        Range::new(Position::new(start, 0), Position::new(start, 0)),
                        line_count,
                    )
                    .and_then(|t| t.definition)
                    .filter(|d| d.start_line >= start && d.start_line < end)
                    .unwrap_or(TargetDefinition {
                        name: symbol.clone(),
                        callable: false,
                        start_line: start,
                        end_line: end - 1,
                        signature_end_line: start,
                    });
                    documentation_edit(&lines, &definition, language, &explanation)
                } else {
                    let indent = indentation(lines[start as usize]);
                    (start..start, comment_block(language, &explanation, indent, false))
                };
                let bytes = line_byte_range(&text, &replaced);
                let new_text = with_line_endings(&new_text, &text);
                let old = &text[bytes.clone()];
                let Some((range, replacement)) = minimal_replacement(old, &new_text) else {
                    return Ok(None);
                };
                let edit = text_edit(
                    &document,
                    encoding,
                    bytes.start + range.start..bytes.start + range.end,
                    replacement,
                );
                Ok(Some(workspace_edit(
                    &data.uri,
                    version,
                    vec![edit],
                    document_changes,
                )))
            }
            ActionKind::Rewrite | ActionKind::Simplify | ActionKind::Fix => {
                let task = match data.action {
                    ActionKind::Simplify => "Simplify this code: same behaviour, less code. Answer with the simplified code only.".to_string(),
                    ActionKind::Fix => {
                        let diagnostic = data.diagnostic.as_ref();
                        format!(
                            "Fix this problem{}: {}\nAnswer with the corrected code only.",
                            diagnostic.map(|d| format!(" reported at line {}", d.range.start.line + 1)).unwrap_or_default(),
                            diagnostic.map(|d| d.message.as_str()).unwrap_or("the code is wrong")
                        )
                    }
                    _ => match &data.instruction {
                        Some(instruction) => format!("Rewrite this code: {instruction}\nAnswer with the rewritten code only."),
                        None => "Rewrite this code to be clearer and more idiomatic, with the same behaviour. Answer with the rewritten code only.".to_string(),
                    },
                };
                let messages = code_messages(
                    &language_name,
                    &relative,
                    &manifest.selection.rendered,
                    &excerpt,
                    &target_code,
                    &task,
                );
                let outcome = client
                    .chat(ChatParams {
                        messages,
                        sampling: SamplingParams {
                            max_tokens: ACTION_MAX_TOKENS,
                            repeat_penalty: 1.05,
                            ..SamplingParams::default()
                        },
                        priority: Priority::Background,
                        stream: false,
                    })?
                    .finish()
                    .await?;
                let code = extract_code(&outcome.text).ok_or(ActionError::NoCode)?;
                let code = reindent(&code, &lines[start as usize..end as usize]);
                let edit = replace_lines_edit(&document, encoding, &target_lines, &code);
                if edit.new_text.is_empty() && edit.range.start == edit.range.end {
                    return Ok(None);
                }
                Ok(Some(workspace_edit(
                    &data.uri,
                    version,
                    vec![edit],
                    document_changes,
                )))
            }
            ActionKind::Tests => {
                let framework = match language {
                    Some(LanguageId::Python) => "pytest",
                    Some(LanguageId::Rust) => "a #[cfg(test)] module with #[test] functions",
                    Some(LanguageId::Go) => "the testing package",
                    Some(LanguageId::JavaScript | LanguageId::TypeScript | LanguageId::Tsx) => {
                        "the test runner of the project (describe/it/expect)"
                    }
                    _ => "the usual test framework of the language",
                };
                let task = format!(
                    "Write unit tests for `{symbol}` with {framework}. Answer with the test code only."
                );
                let messages = code_messages(
                    &language_name,
                    &relative,
                    &manifest.selection.rendered,
                    &excerpt,
                    &target_code,
                    &task,
                );
                let outcome = client
                    .chat(ChatParams {
                        messages,
                        sampling: SamplingParams {
                            max_tokens: ACTION_MAX_TOKENS,
                            repeat_penalty: 1.05,
                            ..SamplingParams::default()
                        },
                        priority: Priority::Background,
                        stream: false,
                    })?
                    .finish()
                    .await?;
                let code = extract_code(&outcome.text).ok_or(ActionError::NoCode)?;
                let test_path = test_file_for(&path, language, context.root());
                Ok(Some(self.tests_edit(
                    &data.uri,
                    &document,
                    &text,
                    test_path,
                    &code,
                    document_changes,
                )))
            }
        }
    }

    fn tests_edit(
        &self,
        uri: &Uri,
        document: &Document,
        text: &str,
        test_path: Option<PathBuf>,
        code: &str,
        document_changes: bool,
    ) -> WorkspaceEdit {
        let encoding = self.position_encoding();
        let append = |target: &Document, target_text: &str| {
            let separator = if target_text.is_empty() || target_text.ends_with("\n\n") {
                ""
            } else if target_text.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            let end = target.byte_to_position(target_text.len(), encoding);
            TextEdit {
                range: Range::new(end, end),
                new_text: with_line_endings(&format!("{separator}{code}\n"), target_text),
            }
        };
        let create_files = self.assist().create_files.load(Ordering::Relaxed);
        if let (Some(test_path), true) = (test_path, document_changes) {
            use tower_lsp_server::UriExt;
            if let Some(test_uri) = Uri::from_file_path(&test_path) {
                if let Some(open) = self.document_snapshot(&test_uri) {
                    let open_text = open.text();
                    return workspace_edit(&test_uri, open.version, vec![append(&open, &open_text)], true);
                }
                if test_path.exists() {
                    if let Ok(existing) = std::fs::read_to_string(&test_path) {
                        let on_disk = Document::new(&existing, 0, "");
                        return WorkspaceEdit {
                            document_changes: Some(DocumentChanges::Edits(vec![TextDocumentEdit {
                                text_document: OptionalVersionedTextDocumentIdentifier {
                                    uri: test_uri,
                                    version: None,
                                },
                                edits: vec![OneOf::Left(append(&on_disk, &existing))],
                            }])),
                            ..Default::default()
                        };
                    }
                } else if create_files {
                    return WorkspaceEdit {
                        document_changes: Some(DocumentChanges::Operations(vec![
                            DocumentChangeOperation::Op(ResourceOp::Create(CreateFile {
                                uri: test_uri.clone(),
                                options: Some(CreateFileOptions {
                                    overwrite: Some(false),
                                    ignore_if_exists: Some(true),
                                }),
                                annotation_id: None,
                            })),
                            DocumentChangeOperation::Edit(TextDocumentEdit {
                                text_document: OptionalVersionedTextDocumentIdentifier {
                                    uri: test_uri,
                                    version: None,
                                },
                                edits: vec![OneOf::Left(TextEdit {
                                    range: Range::new(Position::new(0, 0), Position::new(0, 0)),
                                    new_text: format!("{code}\n"),
                                })],
                            }),
                        ])),
                        ..Default::default()
                    };
                }
            }
        }
        // The same file: append at its end.
        workspace_edit(
            uri,
            document.version,
            vec![append(document, text)],
            document_changes,
        )
    }

    /// `window/workDoneProgress/cancel` for an action's progress.
    pub(crate) fn cancel_progress(&self, token: &NumberOrString) {
        let key = match token {
            NumberOrString::String(s) => s.clone(),
            NumberOrString::Number(n) => n.to_string(),
        };
        if let Some(sender) = self
            .assist()
            .progress_cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            sender.send_replace(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_replacement_keeps_common_ends() {
        assert_eq!(minimal_replacement("abc", "abc"), None);
        assert_eq!(
            minimal_replacement("let x = 1;\n", "let x = 2;\n"),
            Some((8..9, "2".to_string()))
        );
        // Pure insertion.
        assert_eq!(
            minimal_replacement("a\nc\n", "a\nb\nc\n"),
            Some((2..2, "b\n".to_string()))
        );
        // Never splits a character: é (2 bytes) vs è (2 bytes) share the first byte.
        let (range, text) = minimal_replacement("café", "cafè").unwrap();
        assert_eq!((range, text.as_str()), (3..5, "è"));
        // Overlapping prefix and suffix ("aa" → "aaa").
        let (range, text) = minimal_replacement("aa", "aaa").unwrap();
        assert_eq!((range.len(), text.as_str()), (0, "a"));
    }

    #[test]
    fn replacing_lines_is_one_small_edit() {
        let document = Document::new("def f(x):\n    return x+1\n\nprint(f(1))\n", 3, "python");
        let edit = replace_lines_edit(
            &document,
            PositionEncoding::Utf16,
            &(0..2),
            "def f(x):\n    return x + 1",
        );
        assert_eq!(edit.range, Range::new(Position::new(1, 12), Position::new(1, 13)));
        assert_eq!(edit.new_text, " + ");
        // CRLF documents get CRLF.
        let document = Document::new("a\r\nb\r\n", 1, "python");
        let edit = replace_lines_edit(&document, PositionEncoding::Utf8, &(0..1), "x\ny");
        assert_eq!(edit.new_text, "x\r\ny");
        assert_eq!(edit.range, Range::new(Position::new(0, 0), Position::new(0, 1)));
    }

    #[test]
    fn edit_positions_follow_the_encoding() {
        let document = Document::new("s = \"😀\"; t = 1\n", 1, "python");
        let utf16 = replace_lines_edit(&document, PositionEncoding::Utf16, &(0..1), "s = \"😀\"; t = 2");
        assert_eq!(utf16.range.start, Position::new(0, 14));
        let utf8 = replace_lines_edit(&document, PositionEncoding::Utf8, &(0..1), "s = \"😀\"; t = 2");
        assert_eq!(utf8.range.start, Position::new(0, 16));
    }

    #[test]
    fn code_comes_out_of_fences() {
        assert_eq!(
            extract_code("Here you go:\n```python\ndef f():\n    return 1\n```\nDone.").as_deref(),
            Some("def f():\n    return 1")
        );
        assert_eq!(extract_code("```\nx = 1\n").as_deref(), Some("x = 1"));
        assert_eq!(extract_code("x = 1\n").as_deref(), Some("x = 1"));
        assert_eq!(extract_code("```python\n```"), None);
        assert_eq!(extract_code("   \n"), None);
    }

    #[test]
    fn dropped_indentation_is_restored() {
        assert_eq!(
            reindent("if x:\n    y()\n\nz()", &["    if a:", "        b()"]),
            "    if x:\n        y()\n\n    z()"
        );
        assert_eq!(reindent("    x()", &["    a()"]), "    x()");
    }

    #[test]
    fn targets_from_selections_and_cursors() {
        let text = "import os\n\ndef f(x):\n    y = x\n    return y\n\ndef g():\n    pass\n";
        let line_count = split_lines(text).len() as u32;
        // Cursor inside f: the whole function.
        let target = find_target(
            text,
            Some(LanguageId::Python),
            Range::new(Position::new(3, 4), Position::new(3, 4)),
            line_count,
        )
        .unwrap();
        assert_eq!(target.lines, 2..5);
        assert_eq!(target.definition.as_ref().map(|d| d.name.as_str()), Some("f"));
        // A selection of whole lines that ends at column 0 of the next line.
        let target = find_target(
            text,
            Some(LanguageId::Python),
            Range::new(Position::new(2, 0), Position::new(5, 0)),
            line_count,
        )
        .unwrap();
        assert_eq!(target.lines, 2..5);
        // Cursor outside any definition: nothing to do.
        assert_eq!(
            find_target(
                text,
                Some(LanguageId::Python),
                Range::new(Position::new(0, 2), Position::new(0, 2)),
                line_count
            ),
            None
        );
        // Out-of-range selections clamp.
        let target = find_target(
            text,
            Some(LanguageId::Python),
            Range::new(Position::new(6, 0), Position::new(99, 0)),
            line_count,
        )
        .unwrap();
        assert_eq!(target.lines, 6..8);
    }

    #[test]
    fn actions_are_listed_with_resolvable_data() {
        let text = "def f(x):\n    return x\n";
        let document = Document::new(text, 7, "python");
        let uri: Uri = "file:///tmp/a.py".parse().unwrap();
        let diagnostic = Diagnostic {
            range: Range::new(Position::new(1, 4), Position::new(1, 12)),
            severity: Some(DiagnosticSeverity::WARNING),
            source: Some(SOURCE.into()),
            message: "returns its argument".into(),
            data: Some(json!({ "key": "abc", "replacement": "    return x * 2" })),
            ..Default::default()
        };
        let context = CodeActionContext {
            diagnostics: vec![diagnostic],
            only: None,
            trigger_kind: None,
        };
        let actions = list_actions(&ListInput {
            uri: &uri,
            document: &document,
            path: Path::new("/tmp/a.py"),
            encoding: PositionEncoding::Utf16,
            range: Range::new(Position::new(0, 4), Position::new(0, 4)),
            context: &context,
            document_changes: true,
        });
        let titles: Vec<&str> = actions
            .iter()
            .map(|a| match a {
                CodeActionOrCommand::CodeAction(a) => a.title.as_str(),
                CodeActionOrCommand::Command(c) => c.title.as_str(),
            })
            .collect();
        assert_eq!(
            titles,
            vec![
                "Hearth: apply the suggested fix",
                "Hearth: fix “returns its argument”",
                "Hearth: ignore this finding",
                "Hearth: write the documentation comment of `f`",
                "Hearth: rewrite `f`",
                "Hearth: simplify `f`",
                "Hearth: explain `f` in a comment",
                "Hearth: write unit tests for `f`",
            ]
        );
        let CodeActionOrCommand::CodeAction(fix) = &actions[0] else {
            panic!()
        };
        let Some(DocumentChanges::Edits(edits)) = &fix.edit.as_ref().unwrap().document_changes else {
            panic!()
        };
        assert_eq!(edits[0].text_document.version, Some(7));
        let CodeActionOrCommand::CodeAction(rewrite) = &actions[4] else {
            panic!()
        };
        let data: ActionData = serde_json::from_value(rewrite.data.clone().unwrap()).unwrap();
        assert_eq!(
            (
                data.version,
                data.action,
                data.range.start.line,
                data.range.end.line
            ),
            (7, ActionKind::Rewrite, 0, 2)
        );
        // `only` filters by kind prefix.
        let only = CodeActionContext {
            diagnostics: Vec::new(),
            only: Some(vec![CodeActionKind::new("source")]),
            trigger_kind: None,
        };
        let actions = list_actions(&ListInput {
            uri: &uri,
            document: &document,
            path: Path::new("/tmp/a.py"),
            encoding: PositionEncoding::Utf16,
            range: Range::new(Position::new(0, 4), Position::new(0, 4)),
            context: &only,
            document_changes: true,
        });
        assert_eq!(actions.len(), 1);
    }

    #[test]
    fn documentation_goes_where_the_language_wants_it() {
        let python = ["def f(x):", "    return x"];
        let definition = TargetDefinition {
            name: "f".into(),
            callable: true,
            start_line: 0,
            end_line: 1,
            signature_end_line: 0,
        };
        let (range, text) = documentation_edit(&python, &definition, Some(LanguageId::Python), "Return x.");
        assert_eq!((range, text.as_str()), (1..1, "    \"\"\"Return x.\"\"\"\n"));
        // An existing docstring is replaced.
        let python = ["def f(x):", "    \"\"\"Old.\"\"\"", "    return x"];
        let (range, _) = documentation_edit(&python, &definition, Some(LanguageId::Python), "New.");
        assert_eq!(range, 1..2);
        // Rust: /// above, replacing the comment lines already there, below attributes' comments.
        let rust = ["// old", "/// doc", "fn f() {}"];
        let definition = TargetDefinition {
            name: "f".into(),
            callable: true,
            start_line: 2,
            end_line: 2,
            signature_end_line: 2,
        };
        let (range, text) = documentation_edit(&rust, &definition, Some(LanguageId::Rust), "Does f.");
        assert_eq!((range, text.as_str()), (0..2, "/// Does f.\n"));
        let ts = ["  function f() {}"];
        let definition = TargetDefinition {
            name: "f".into(),
            callable: true,
            start_line: 0,
            end_line: 0,
            signature_end_line: 0,
        };
        let (_, text) = documentation_edit(&ts, &definition, Some(LanguageId::TypeScript), "Does f.");
        assert_eq!(text, "  /**\n   * Does f.\n   */\n");
    }

    #[test]
    fn text_answers_parse_even_when_cut() {
        assert_eq!(
            parse_text_answer(r#"{"text": "Adds  one."}"#).as_deref(),
            Some("Adds one.")
        );
        assert_eq!(
            parse_text_answer(r#"{"text": "Adds one and"#).as_deref(),
            Some("Adds one and")
        );
        assert_eq!(parse_text_answer("nothing"), None);
    }

    #[test]
    fn test_files_follow_the_language_convention() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("tests")).unwrap();
        let source = root.path().join("shop").join("pricing.py");
        assert_eq!(
            test_file_for(&source, Some(LanguageId::Python), Some(root.path())),
            Some(root.path().join("tests").join("test_pricing.py"))
        );
        assert_eq!(
            test_file_for(Path::new("/p/x/util.go"), Some(LanguageId::Go), None),
            Some(PathBuf::from("/p/x/util_test.go"))
        );
        assert_eq!(
            test_file_for(Path::new("/p/src/lib.rs"), Some(LanguageId::Rust), None),
            None
        );
    }
}
