//! Review of changed code: on save in the language server, and `hearth review` on the command
//! line. Both run [`review_text`]: what changed since a baseline (the last review, the git HEAD
//! version, or the text the file was opened with) goes to the model in its chat template, with
//! the cross-file context of completions, and the answer is constrained by a JSON schema to a
//! list of findings whose line numbers can only name changed lines.
//!
//! The answer is never trusted: [`parse_findings`] salvages the complete findings of a truncated
//! answer, [`accept_findings`] drops findings outside the changed region or the document, below
//! the minimum severity or dismissed, and [`LineMap`] moves findings to the current text when the
//! file was edited while its review ran (dropping those whose lines were touched).

pub mod batch;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_grammars::LanguageId;
use hearth_protocol::{ChatMessage, ChatParams, Priority, SamplingParams, SidecarClient};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Config;
use crate::context::ContextEngine;
use crate::documents::{Document, PositionEncoding};
use crate::pipeline::CompletionInput;
use crate::server::HearthServer;
use tower_lsp_server::lsp_types::{Diagnostic, DiagnosticSeverity, NumberOrString, Position, Uri};

/// Changed lines beyond this many are not reviewed (the review is trimmed, with a log line).
pub const MAX_REVIEW_LINES: usize = 120;
/// Lines shown around each changed hunk.
const SURROUNDING_LINES: usize = 6;
/// A review answer that takes longer than this is dropped.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(240);
const MAX_MESSAGE_CHARS: u32 = 120;
const MAX_REPLACEMENT_CHARS: u32 = 240;
const REVIEW_MAX_TOKENS: u32 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    /// `info`, `warning` (or `warn`), `error`; anything else is `None`.
    pub fn parse(text: &str) -> Option<Severity> {
        match text.trim().to_ascii_lowercase().as_str() {
            "info" | "information" | "hint" | "note" => Some(Severity::Info),
            "warning" | "warn" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

pub const CATEGORIES: [&str; 4] = ["bug", "security", "performance", "style"];

/// One finding, with 0-based inclusive line numbers in the reviewed text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub start_line: u32,
    pub end_line: u32,
    pub severity: Severity,
    pub category: String,
    pub message: String,
    /// Code replacing lines `start_line..=end_line` (without the final line break).
    pub replacement: Option<String>,
}

/// A finding as the model writes it (1-based lines, free-form strings).
#[derive(Debug, Clone, Deserialize)]
pub struct RawFinding {
    #[serde(default)]
    pub line: Option<i64>,
    #[serde(default)]
    pub end_line: Option<i64>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub replacement: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindingsError {
    #[error("the model's answer is empty")]
    Empty,
    #[error("the model's answer is not a findings object: {0}")]
    Invalid(String),
}

/// The JSON schema the answer is constrained by: line numbers can only name lines
/// `first_line..=last_line` (1-based), at most `max_findings` findings.
pub fn findings_schema(first_line: u32, last_line: u32, max_findings: u32) -> Value {
    let line = json!({ "type": "integer", "minimum": first_line, "maximum": last_line.max(first_line) });
    json!({
        "type": "object",
        "properties": {
            "findings": {
                "type": "array",
                "maxItems": max_findings.clamp(1, 20),
                "items": {
                    "type": "object",
                    "properties": {
                        "line": line,
                        "end_line": line,
                        "severity": { "enum": ["error", "warning", "info"] },
                        "category": { "enum": CATEGORIES },
                        "message": { "type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_CHARS },
                        "replacement": {
                            "anyOf": [
                                { "type": "string", "maxLength": MAX_REPLACEMENT_CHARS },
                                { "type": "null" }
                            ]
                        }
                    },
                    "required": ["line", "end_line", "severity", "category", "message", "replacement"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["findings"],
        "additionalProperties": false
    })
}

/// Parse the model's answer. A well-formed answer gives all its findings; an answer cut off
/// (by `max_tokens`, say) gives the findings that were complete; anything else is an error.
pub fn parse_findings(answer: &str) -> Result<Vec<RawFinding>, FindingsError> {
    let answer = answer.trim();
    if answer.is_empty() {
        return Err(FindingsError::Empty);
    }
    #[derive(Deserialize)]
    struct Answer {
        findings: Vec<Value>,
    }
    if let Ok(parsed) = serde_json::from_str::<Answer>(answer) {
        return Ok(parsed
            .findings
            .into_iter()
            .filter_map(|value| serde_json::from_value(value).ok())
            .collect());
    }
    // Salvage: the complete objects of the findings array, up to the first broken one.
    let Some(array_start) = answer
        .find("\"findings\"")
        .and_then(|at| answer[at..].find('[').map(|open| at + open + 1))
    else {
        return Err(FindingsError::Invalid(shorten(answer)));
    };
    let mut rest = &answer[array_start..];
    let mut findings = Vec::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if !rest.starts_with('{') {
            break;
        }
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value)) => {
                let used = stream.byte_offset();
                if let Ok(finding) = serde_json::from_value(value) {
                    findings.push(finding);
                }
                rest = &rest[used..];
            }
            _ => break,
        }
    }
    if findings.is_empty() && !rest.trim_start().starts_with(']') {
        return Err(FindingsError::Invalid(shorten(answer)));
    }
    Ok(findings)
}

fn shorten(text: &str) -> String {
    let mut end = text.len().min(120);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if end < text.len() {
        format!("{}…", &text[..end])
    } else {
        text.to_string()
    }
}

/// What [`accept_findings`] needs to know.
pub struct AcceptRules<'a> {
    /// Lines of the reviewed text.
    pub line_count: u32,
    /// The changed region (0-based, half-open line ranges, sorted).
    pub changed: &'a [Range<u32>],
    pub min_severity: Severity,
    pub max_findings: usize,
}

/// Turn raw findings into findings: drop those without a message, outside the changed region
/// or past the end of the text, below the minimum severity; clamp the end line to the hunk the
/// finding starts in; keep at most `max_findings`, most severe first, one per start line and
/// message.
pub fn accept_findings(raw: Vec<RawFinding>, rules: &AcceptRules<'_>) -> (Vec<Finding>, usize) {
    let mut accepted: Vec<Finding> = Vec::new();
    let mut dropped = 0;
    for finding in raw {
        let Some(line) = finding.line else {
            dropped += 1;
            continue;
        };
        let message = finding.message.as_deref().unwrap_or("").trim().to_string();
        let start = line - 1;
        if message.is_empty() || start < 0 || start >= i64::from(rules.line_count) {
            dropped += 1;
            continue;
        }
        let start = start as u32;
        let Some(hunk) = rules.changed.iter().find(|hunk| hunk.contains(&start)) else {
            dropped += 1;
            continue;
        };
        let end = finding
            .end_line
            .map_or(i64::from(start), |end| end - 1)
            .clamp(i64::from(start), i64::from(hunk.end.saturating_sub(1).max(start)));
        let severity = finding
            .severity
            .as_deref()
            .and_then(Severity::parse)
            .unwrap_or(Severity::Warning);
        if severity < rules.min_severity {
            dropped += 1;
            continue;
        }
        let category = finding
            .category
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| CATEGORIES.contains(&c.as_str()))
            .unwrap_or_else(|| "bug".to_string());
        let replacement = finding
            .replacement
            .filter(|text| !text.trim().is_empty())
            .map(|text| text.trim_end_matches(['\n', '\r']).to_string());
        let candidate = Finding {
            start_line: start,
            end_line: end as u32,
            severity,
            category,
            message,
            replacement,
        };
        if accepted
            .iter()
            .any(|f| f.start_line == candidate.start_line && f.message == candidate.message)
        {
            dropped += 1;
            continue;
        }
        accepted.push(candidate);
    }
    accepted.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.start_line.cmp(&b.start_line)));
    if accepted.len() > rules.max_findings {
        dropped += accepted.len() - rules.max_findings;
        accepted.truncate(rules.max_findings);
    }
    accepted.sort_by_key(|f| (f.start_line, f.end_line));
    (accepted, dropped)
}

// --- line diff ----------------------------------------------------------------------------------

/// Lines of a text without their line breaks (`\n` or `\r\n`); a final line break does not
/// start another line.
pub fn split_lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect()
}

/// One hunk of a line diff: `old` lines were replaced by `new` lines (either may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    pub old: Range<u32>,
    pub new: Range<u32>,
}

/// Beyond this many cells the diff of the middle part falls back to one hunk.
const DIFF_MAX_CELLS: usize = 4_000_000;

/// Line diff of `old` → `new` (longest common subsequence after trimming the common prefix and
/// suffix; one hunk for the middle when it is too large to compare line by line).
pub fn diff_lines(old: &[&str], new: &[&str]) -> Vec<Hunk> {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let old_mid = &old[prefix..old.len() - suffix];
    let new_mid = &new[prefix..new.len() - suffix];
    let offset = prefix as u32;
    if old_mid.is_empty() && new_mid.is_empty() {
        return Vec::new();
    }
    if old_mid.is_empty()
        || new_mid.is_empty()
        || old_mid.len().saturating_mul(new_mid.len()) > DIFF_MAX_CELLS
    {
        return vec![Hunk {
            old: offset..offset + old_mid.len() as u32,
            new: offset..offset + new_mid.len() as u32,
        }];
    }
    // LCS table over the middle, from the end.
    let (n, m) = (old_mid.len(), new_mid.len());
    let mut table = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[at(i, j)] = if old_mid[i] == new_mid[j] {
                table[at(i + 1, j + 1)] + 1
            } else {
                table[at(i + 1, j)].max(table[at(i, j + 1)])
            };
        }
    }
    let mut hunks = Vec::new();
    let (mut i, mut j) = (0, 0);
    let mut open: Option<(usize, usize)> = None;
    while i < n || j < m {
        if i < n && j < m && old_mid[i] == new_mid[j] {
            if let Some((oi, oj)) = open.take() {
                hunks.push(Hunk {
                    old: offset + oi as u32..offset + i as u32,
                    new: offset + oj as u32..offset + j as u32,
                });
            }
            i += 1;
            j += 1;
            continue;
        }
        open.get_or_insert((i, j));
        if j < m && (i == n || table[at(i, j + 1)] >= table[at(i + 1, j)]) {
            j += 1;
        } else {
            i += 1;
        }
    }
    if let Some((oi, oj)) = open {
        hunks.push(Hunk {
            old: offset + oi as u32..offset + n as u32,
            new: offset + oj as u32..offset + m as u32,
        });
    }
    hunks
}

/// The changed region of `new` relative to `old`: lines of `new` that were added or modified,
/// as sorted half-open ranges. A pure deletion marks the line after it (when there is one).
pub fn changed_lines(old: &str, new: &str) -> Vec<Range<u32>> {
    let new_lines = split_lines(new);
    let new_count = new_lines.len() as u32;
    let mut ranges: Vec<Range<u32>> = Vec::new();
    for hunk in diff_lines(&split_lines(old), &new_lines) {
        let range = if hunk.new.is_empty() {
            if hunk.new.start >= new_count {
                continue;
            }
            hunk.new.start..hunk.new.start + 1
        } else {
            hunk.new
        };
        match ranges.last_mut() {
            Some(last) if last.end >= range.start => last.end = last.end.max(range.end),
            _ => ranges.push(range),
        }
    }
    ranges
}

/// Keep at most `max_lines` changed lines (the first ones); returns whether anything was cut.
pub fn trim_changed(ranges: &mut Vec<Range<u32>>, max_lines: usize) -> bool {
    let mut left = max_lines as u32;
    let mut trimmed = false;
    ranges.retain_mut(|range| {
        if left == 0 {
            trimmed = true;
            return false;
        }
        let length = range.end - range.start;
        if length > left {
            range.end = range.start + left;
            trimmed = true;
        }
        left -= range.end - range.start;
        true
    });
    trimmed
}

/// Maps line ranges of an old text to a new text; ranges whose lines were touched map to `None`.
pub struct LineMap {
    hunks: Vec<Hunk>,
}

impl LineMap {
    pub fn new(old: &str, new: &str) -> LineMap {
        LineMap {
            hunks: diff_lines(&split_lines(old), &split_lines(new)),
        }
    }

    pub fn is_identity(&self) -> bool {
        self.hunks.is_empty()
    }

    /// `start..=end` (0-based, inclusive) in the old text → the same lines in the new text.
    pub fn map_range(&self, start: u32, end: u32) -> Option<(u32, u32)> {
        let mut shift: i64 = 0;
        for hunk in &self.hunks {
            let touches = if hunk.old.is_empty() {
                // An insertion between two lines of the range touches it.
                hunk.old.start > start && hunk.old.start <= end
            } else {
                hunk.old.start <= end && start < hunk.old.end
            };
            if touches {
                return None;
            }
            if hunk.old.end <= start && !(hunk.old.is_empty() && hunk.old.start > start) {
                shift += i64::from(hunk.new.end - hunk.new.start) - i64::from(hunk.old.end - hunk.old.start);
            }
        }
        let start = i64::from(start) + shift;
        let end = i64::from(end) + shift;
        (start >= 0).then_some((start as u32, end as u32))
    }
}

// --- dismissals ---------------------------------------------------------------------------------

/// What identifies a finding across reviews: the file, its category and the code it flags
/// (whitespace-normalized), never its line numbers, so a dismissed finding stays dismissed when
/// code above it moves.
pub fn finding_key(path: &str, category: &str, flagged_lines: &[&str]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    category.hash(&mut hasher);
    for line in flagged_lines {
        line.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

/// Findings the user dismissed ("ignore this finding"); they are not raised again for the same
/// code.
#[derive(Debug, Default)]
pub struct Dismissals {
    keys: HashSet<String>,
}

impl Dismissals {
    pub fn dismiss(&mut self, key: &str) -> bool {
        self.keys.insert(key.to_string())
    }

    pub fn is_dismissed(&self, key: &str) -> bool {
        self.keys.contains(key)
    }
}

// --- the review itself --------------------------------------------------------------------------

/// One file to review.
pub struct ReviewInput {
    pub path: PathBuf,
    pub language_id: String,
    pub text: Arc<String>,
    /// The text to compare with; `None` reviews the whole file.
    pub baseline: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReviewOutcome {
    /// Accepted findings (0-based lines in the reviewed text).
    pub findings: Vec<Finding>,
    /// The changed region that was reviewed.
    pub reviewed: Vec<Range<u32>>,
    pub dropped: usize,
    pub trimmed: bool,
    pub generated_tokens: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("{0}")]
    Sidecar(#[from] hearth_protocol::ClientError),
    #[error("{0}")]
    Findings(#[from] FindingsError),
    #[error("the model took longer than {0:?}")]
    Timeout(Duration),
}

pub fn min_severity(config: &Config) -> Severity {
    Severity::parse(&config.review.min_severity).unwrap_or(Severity::Warning)
}

/// The language's name for prompts and fences.
pub fn language_name(language_id: &str, path: &Path) -> String {
    LanguageId::from_lsp_language_id(language_id)
        .or_else(|| LanguageId::from_path(path))
        .map(|language| language.name().to_string())
        .unwrap_or_else(|| language_id.to_string())
}

/// Lines `ranges` (with some lines around each) numbered 1-based, hunks separated by `...`.
fn numbered_excerpt(lines: &[&str], ranges: &[Range<u32>]) -> String {
    let mut shown: Vec<Range<usize>> = Vec::new();
    for range in ranges {
        let start = (range.start as usize).saturating_sub(SURROUNDING_LINES);
        let end = (range.end as usize + SURROUNDING_LINES).min(lines.len());
        match shown.last_mut() {
            Some(last) if last.end >= start => last.end = last.end.max(end),
            _ => shown.push(start..end),
        }
    }
    let mut out = String::new();
    for (index, range) in shown.iter().enumerate() {
        if index > 0 || range.start > 0 {
            out.push_str("...\n");
        }
        for line in range.clone() {
            out.push_str(&format!("{:>4} | {}\n", line + 1, lines[line]));
        }
    }
    if shown.last().is_some_and(|last| last.end < lines.len()) {
        out.push_str("...\n");
    }
    out
}

fn describe_ranges(ranges: &[Range<u32>]) -> String {
    ranges
        .iter()
        .map(|range| {
            if range.end - range.start == 1 {
                format!("{}", range.start + 1)
            } else {
                format!("{}-{}", range.start + 1, range.end)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The chat prompt of a review.
pub fn review_messages(
    relative_path: &str,
    language: &str,
    lines: &[&str],
    reviewed: &[Range<u32>],
    context: &str,
) -> Vec<ChatMessage> {
    let system = "You are a careful senior code reviewer. You report real problems only: bugs, \
                  security issues, performance problems and bad style. You answer with JSON.";
    let mut user = String::new();
    if !context.trim().is_empty() {
        user.push_str("Related code from the same project:\n");
        user.push_str(context.trim_end());
        user.push_str("\n\n");
    }
    user.push_str(&format!(
        "File {relative_path} ({language}), with line numbers:\n```{language}\n{}```\n\n",
        numbered_excerpt(lines, reviewed)
    ));
    user.push_str(&format!(
        "Lines {} changed. Review only those lines. For each problem give `line` and `end_line` \
         (line numbers from the left column), `severity` (error, warning or info), `category` \
         (bug, security, performance or style), a one-sentence `message`, and `replacement`: \
         the corrected code for those lines, or null.",
        describe_ranges(reviewed)
    ));
    vec![
        ChatMessage {
            role: "system".into(),
            content: system.into(),
        },
        ChatMessage {
            role: "user".into(),
            content: user,
        },
    ]
}

pub fn relative_path(path: &Path, root: Option<&Path>) -> String {
    root.and_then(|root| path.strip_prefix(root).ok())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Review `input` with the model. Dismissed findings are filtered by the caller (it knows the
/// keys); everything else — schema, parsing, range checks, severity, the cap — happens here.
/// Dropping the future cancels the sidecar request.
pub async fn review_text(
    client: &SidecarClient,
    context: &Arc<ContextEngine>,
    config: &Config,
    input: &ReviewInput,
) -> Result<ReviewOutcome, ReviewError> {
    let lines = split_lines(&input.text);
    let line_count = lines.len() as u32;
    let mut reviewed = match &input.baseline {
        Some(baseline) => changed_lines(baseline, &input.text),
        None if line_count > 0 => std::iter::once(0..line_count).collect(),
        None => Vec::new(),
    };
    let trimmed = trim_changed(&mut reviewed, MAX_REVIEW_LINES);
    if trimmed {
        tracing::info!(
            "review of {}: the change is larger than {MAX_REVIEW_LINES} lines; reviewing the first {MAX_REVIEW_LINES}",
            input.path.display()
        );
    }
    if reviewed.is_empty() {
        return Ok(ReviewOutcome {
            findings: Vec::new(),
            reviewed,
            dropped: 0,
            trimmed,
            generated_tokens: 0,
        });
    }
    let first = reviewed.first().map_or(0, |r| r.start);
    let last = reviewed.last().map_or(0, |r| r.end.saturating_sub(1));
    let language = language_name(&input.language_id, &input.path);
    let cursor_byte = lines
        .iter()
        .take(first as usize)
        .map(|line| line.len() + 1)
        .sum::<usize>()
        .min(input.text.len());
    let selection_input = CompletionInput {
        key: input.path.display().to_string(),
        path: input.path.clone(),
        language_id: input.language_id.clone(),
        text: input.text.clone(),
        cursor_byte,
        explicit: true,
    };
    let budget = crate::pipeline::context_budget(config, client).min(256);
    let manifest = context
        .select(&selection_input, budget, client.model(), Some(client))
        .await;
    let messages = review_messages(
        &relative_path(&input.path, context.root()),
        &language,
        &lines,
        &reviewed,
        &manifest.selection.rendered,
    );
    let max_findings = config.review.max_findings.max(1);
    let params = ChatParams {
        messages,
        sampling: SamplingParams {
            max_tokens: REVIEW_MAX_TOKENS,
            json_schema: Some(findings_schema(first + 1, last + 1, max_findings.min(4))),
            repeat_penalty: 1.1,
            ..SamplingParams::default()
        },
        priority: Priority::Background,
        stream: false,
    };
    let work = async { client.chat(params)?.finish().await };
    let outcome = match tokio::time::timeout(REVIEW_TIMEOUT, work).await {
        Ok(outcome) => outcome?,
        Err(_) => return Err(ReviewError::Timeout(REVIEW_TIMEOUT)),
    };
    let raw = parse_findings(&outcome.text)?;
    let (findings, dropped) = accept_findings(
        raw,
        &AcceptRules {
            line_count,
            changed: &reviewed,
            min_severity: min_severity(config),
            max_findings: max_findings as usize,
        },
    );
    if dropped > 0 {
        tracing::info!(
            "review of {}: dropped {dropped} findings (outside the changed lines, below the minimum severity, or over the limit)",
            input.path.display()
        );
    }
    Ok(ReviewOutcome {
        findings,
        reviewed,
        dropped,
        trimmed,
        generated_tokens: outcome.metrics.generated_tokens,
    })
}

/// The text of `path` at git revision `rev`, when `path` is in a git work tree and the revision
/// has it (`None` otherwise: the file is new, or there is no git).
pub async fn git_show(path: &Path, rev: &str) -> Option<String> {
    let dir = path.parent()?;
    let name = path.file_name()?.to_string_lossy().into_owned();
    let output = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .arg("show")
        .arg(format!("{rev}:./{name}"))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

// --- in the language server ---------------------------------------------------------------------

/// Saves closer together than this are reviewed once.
const REVIEW_DEBOUNCE: Duration = Duration::from_millis(300);

/// Per-file review state of the language server.
#[derive(Default)]
pub struct FileReviews {
    files: Mutex<HashMap<Uri, FileReview>>,
}

#[derive(Default)]
struct FileReview {
    /// The text the file had when it was opened (the baseline before any review).
    opened_text: Option<String>,
    /// The text of the last finished review, and its findings (lines in that text).
    reviewed_text: Option<String>,
    findings: Vec<PublishedFinding>,
    task: Option<tokio::task::AbortHandle>,
}

#[derive(Debug, Clone)]
pub struct PublishedFinding {
    pub finding: Finding,
    pub key: String,
}

impl FileReviews {
    fn with<T>(&self, uri: &Uri, f: impl FnOnce(&mut FileReview) -> T) -> T {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        f(files.entry(uri.clone()).or_default())
    }
}

fn to_diagnostic(
    document: &Document,
    encoding: PositionEncoding,
    published: &PublishedFinding,
    start_line: u32,
    end_line: u32,
) -> Diagnostic {
    let finding = &published.finding;
    let start_text = document.rope.line(start_line as usize).to_string();
    let indent = start_text.len() - start_text.trim_start().len();
    let start = document.clamp(Position::new(start_line, indent as u32), encoding);
    let end = document.clamp(Position::new(end_line, u32::MAX), encoding);
    let start = if start > end {
        Position::new(start_line, 0)
    } else {
        start
    };
    Diagnostic {
        range: tower_lsp_server::lsp_types::Range::new(start, end),
        severity: Some(match finding.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
            Severity::Info => DiagnosticSeverity::INFORMATION,
        }),
        code: Some(NumberOrString::String(finding.category.clone())),
        source: Some(crate::actions::SOURCE.into()),
        message: finding.message.clone(),
        data: serde_json::to_value(crate::actions::FindingData {
            key: published.key.clone(),
            replacement: finding.replacement.clone(),
        })
        .ok(),
        ..Default::default()
    }
}

impl HearthServer {
    /// `didOpen`: remember the text as the baseline for the first review.
    pub(crate) fn review_opened(&self, uri: &Uri, text: &str) {
        self.assist().reviews.with(uri, |review| {
            if review.opened_text.is_none() && review.reviewed_text.is_none() {
                review.opened_text = Some(text.to_string());
            }
        });
    }

    /// `didClose`: stop the running review, forget the file, clear its diagnostics.
    pub(crate) async fn review_closed(&self, uri: &Uri) {
        let removed = self
            .assist()
            .reviews
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uri);
        if let Some(task) = removed.and_then(|review| review.task) {
            task.abort();
        }
        self.lsp_client()
            .publish_diagnostics(uri.clone(), Vec::new(), None)
            .await;
    }

    /// `didSave`: review the file in the background (debounced; a newer save or a close cancels
    /// the running review, which cancels its sidecar request).
    pub(crate) fn schedule_review(&self, uri: &Uri) {
        let config = self.settings();
        let Some(document) = self.document_snapshot(uri) else {
            return;
        };
        if !config.review.enabled || config.disabled_languages.contains(&document.language_id) {
            return;
        }
        let server = self.handle();
        let task_uri = uri.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(REVIEW_DEBOUNCE).await;
            server.review_file(&task_uri).await;
        });
        let previous = self
            .assist()
            .reviews
            .with(uri, |review| review.task.replace(task.abort_handle()));
        if let Some(previous) = previous {
            previous.abort();
        }
    }

    async fn review_file(&self, uri: &Uri) {
        let Some(document) = self.document_snapshot(uri) else {
            return;
        };
        let path = crate::server::uri_to_path(uri).unwrap_or_else(|| PathBuf::from(uri.path().as_str()));
        let text = Arc::new(document.text());
        let (reviewed_text, opened_text) = self.assist().reviews.with(uri, |review| {
            (review.reviewed_text.clone(), review.opened_text.clone())
        });
        let baseline = match reviewed_text {
            Some(text) => Some(text),
            None => git_show(&path, "HEAD").await.or(opened_text),
        };
        if baseline.as_deref() == Some(text.as_str()) {
            tracing::debug!("review of {}: nothing changed", path.display());
            return;
        }
        let client = match self.sidecar().await {
            Ok(client) => client,
            Err(message) => {
                tracing::info!("review of {} skipped: {message}", path.display());
                return;
            }
        };
        let config = self.settings();
        let input = ReviewInput {
            path: path.clone(),
            language_id: document.language_id.clone(),
            text: text.clone(),
            baseline,
        };
        let outcome = match review_text(&client, &self.context_engine(), &config, &input).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!("review of {} dropped: {error}", path.display());
                return;
            }
        };
        let relative = relative_path(&path, self.context_engine().root());
        let lines = split_lines(&text);
        let new_findings: Vec<PublishedFinding> = {
            let dismissals = self.assist().dismissals.lock().unwrap_or_else(|p| p.into_inner());
            outcome
                .findings
                .into_iter()
                .map(|finding| {
                    let flagged = &lines[finding.start_line as usize..=finding.end_line as usize];
                    let key = finding_key(&relative, &finding.category, flagged);
                    PublishedFinding { finding, key }
                })
                .filter(|published| !dismissals.is_dismissed(&published.key))
                .collect()
        };
        tracing::info!(
            "review of {}: {} findings on lines {} ({} tokens, {} dropped{})",
            path.display(),
            new_findings.len(),
            describe_ranges(&outcome.reviewed),
            outcome.generated_tokens,
            outcome.dropped,
            if outcome.trimmed { ", change trimmed" } else { "" }
        );
        // Earlier findings outside the reviewed lines stay, moved to this text.
        let max = config.review.max_findings as usize;
        let findings = self.assist().reviews.with(uri, |review| {
            let mut findings = new_findings;
            if let Some(previous_text) = &review.reviewed_text {
                let map = LineMap::new(previous_text, &text);
                for old in &review.findings {
                    let Some((start, end)) = map.map_range(old.finding.start_line, old.finding.end_line)
                    else {
                        continue;
                    };
                    let reviewed_again = outcome.reviewed.iter().any(|r| r.start <= end && start < r.end);
                    if !reviewed_again && findings.len() < max {
                        let mut moved = old.clone();
                        moved.finding.start_line = start;
                        moved.finding.end_line = end;
                        findings.push(moved);
                    }
                }
            }
            findings.sort_by_key(|f| (f.finding.start_line, f.finding.end_line));
            review.reviewed_text = Some(text.to_string());
            review.findings = findings.clone();
            review.task = None;
            findings
        });
        self.publish_findings(uri, &text, &findings).await;
    }

    /// Publish findings computed for `reviewed_text` on the document as it is now: moved past
    /// edits made meanwhile, dropped where those edits touched their lines.
    async fn publish_findings(&self, uri: &Uri, reviewed_text: &str, findings: &[PublishedFinding]) {
        let Some(document) = self.document_snapshot(uri) else {
            return;
        };
        let encoding = self.position_encoding();
        let current = document.text();
        let map = LineMap::new(reviewed_text, &current);
        if !map.is_identity() {
            tracing::info!(
                "{}: edited while it was reviewed; moving the findings",
                uri.as_str()
            );
        }
        let line_count = split_lines(&current).len() as u32;
        let diagnostics: Vec<Diagnostic> = findings
            .iter()
            .filter_map(|published| {
                let (start, end) = map.map_range(published.finding.start_line, published.finding.end_line)?;
                (end < line_count).then(|| to_diagnostic(&document, encoding, published, start, end))
            })
            .collect();
        self.lsp_client()
            .publish_diagnostics(uri.clone(), diagnostics, Some(document.version))
            .await;
    }

    /// `hearth.dismissFinding` `[{uri, key}]`: never raise this finding again for the same code.
    pub(crate) async fn dismiss_finding(
        &self,
        arguments: Vec<Value>,
    ) -> tower_lsp_server::jsonrpc::Result<Option<Value>> {
        #[derive(Deserialize)]
        struct DismissArguments {
            uri: Uri,
            key: String,
        }
        let arguments: DismissArguments = arguments
            .into_iter()
            .next()
            .and_then(|value| serde_json::from_value(value).ok())
            .ok_or_else(|| {
                tower_lsp_server::jsonrpc::Error::invalid_params("hearth.dismissFinding takes [{uri, key}]")
            })?;
        self.assist()
            .dismissals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .dismiss(&arguments.key);
        let remaining = self.assist().reviews.with(&arguments.uri, |review| {
            review.findings.retain(|f| f.key != arguments.key);
            review
                .reviewed_text
                .clone()
                .map(|text| (text, review.findings.clone()))
        });
        if let Some((text, findings)) = remaining {
            self.publish_findings(&arguments.uri, &text, &findings).await;
        }
        Ok(Some(json!({ "dismissed": arguments.key })))
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-hunk ranges are the point of these tests
mod tests {
    use super::*;

    fn raw(line: i64, end: i64, severity: &str, message: &str) -> RawFinding {
        RawFinding {
            line: Some(line),
            end_line: Some(end),
            severity: Some(severity.into()),
            category: Some("bug".into()),
            message: Some(message.into()),
            replacement: None,
        }
    }

    #[test]
    fn a_well_formed_answer_parses() {
        let answer = r#"{"findings": [{"line": 3, "end_line": 4, "severity": "error", "category": "bug",
            "message": "division by zero", "replacement": "    return total // len(prices)"}]}"#;
        let findings = parse_findings(answer).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].line, Some(3));
        assert_eq!(findings[0].message.as_deref(), Some("division by zero"));
        assert_eq!(parse_findings(r#"{"findings": []}"#).unwrap().len(), 0);
    }

    #[test]
    fn a_truncated_answer_keeps_its_complete_findings() {
        let answer = r#"{"findings": [
            {"line": 3, "end_line": 3, "severity": "warning", "category": "style", "message": "a", "replacement": null},
            {"line": 5, "end_line": 5, "severity": "error", "category": "bug", "message": "b", "replacement": null},
            {"line": 6, "end_line": 6, "severity": "err"#;
        let findings = parse_findings(answer).unwrap();
        assert_eq!(
            findings.iter().map(|f| f.line).collect::<Vec<_>>(),
            vec![Some(3), Some(5)]
        );
    }

    #[test]
    fn garbage_and_empty_answers_are_errors() {
        assert_eq!(parse_findings("  \n").unwrap_err(), FindingsError::Empty);
        assert!(matches!(
            parse_findings("The code looks fine to me."),
            Err(FindingsError::Invalid(_))
        ));
        assert!(matches!(
            parse_findings(r#"{"findings": [{"line": 3, "mess"#),
            Err(FindingsError::Invalid(_))
        ));
        // Wrong types inside an item drop the item, not the answer.
        let findings =
            parse_findings(r#"{"findings": [{"line": "three"}, {"line": 2, "message": "x"}]}"#).unwrap();
        assert_eq!(findings.len(), 1);
    }

    #[test]
    fn findings_outside_the_change_or_the_document_are_dropped() {
        let changed = [2..4, 8..9];
        let rules = AcceptRules {
            line_count: 10,
            changed: &changed,
            min_severity: Severity::Warning,
            max_findings: 10,
        };
        let (findings, dropped) = accept_findings(
            vec![
                raw(3, 9, "error", "inside, end clamped to the hunk"),
                raw(9, 9, "warning", "inside the second hunk"),
                raw(1, 1, "error", "before the change"),
                raw(6, 6, "error", "between the hunks"),
                raw(11, 11, "error", "past the end"),
                raw(0, 0, "error", "line zero"),
                raw(-4, 2, "error", "negative"),
                raw(4, 4, "info", "below the minimum severity"),
                raw(4, 4, "error", "   "),
            ],
            &rules,
        );
        assert_eq!(dropped, 7);
        assert_eq!(
            findings
                .iter()
                .map(|f| (f.start_line, f.end_line, f.message.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (2, 3, "inside, end clamped to the hunk"),
                (8, 8, "inside the second hunk")
            ]
        );
    }

    #[test]
    fn the_cap_keeps_the_most_severe() {
        let changed = [0..10];
        let rules = AcceptRules {
            line_count: 10,
            changed: &changed,
            min_severity: Severity::Info,
            max_findings: 2,
        };
        let (findings, dropped) = accept_findings(
            vec![
                raw(1, 1, "info", "a"),
                raw(2, 2, "error", "b"),
                raw(3, 3, "warning", "c"),
                raw(3, 3, "warning", "c"),
            ],
            &rules,
        );
        assert_eq!(dropped, 2);
        assert_eq!(
            findings.iter().map(|f| f.message.as_str()).collect::<Vec<_>>(),
            vec!["b", "c"]
        );
    }

    #[test]
    fn changed_lines_cover_additions_and_modifications() {
        let old = "a\nb\nc\nd\ne\n";
        assert_eq!(changed_lines(old, old), Vec::<Range<u32>>::new());
        assert_eq!(changed_lines(old, "a\nb\nc\nd\ne\nf\ng\n"), vec![5..7]);
        assert_eq!(changed_lines(old, "a\nB\nc\nd\nE\n"), vec![1..2, 4..5]);
        assert_eq!(changed_lines(old, "a\nb\nx\ny\nc\nd\ne\n"), vec![2..4]);
        // A deletion marks the line after it.
        assert_eq!(changed_lines(old, "a\nc\nd\ne\n"), vec![1..2]);
        assert_eq!(changed_lines(old, "a\nb\nc\nd\n"), Vec::<Range<u32>>::new());
        assert_eq!(changed_lines("", "x\ny"), vec![0..2]);
        // CRLF and LF lines compare equal.
        assert_eq!(changed_lines("a\r\nb\r\n", "a\nb\nc\n"), vec![2..3]);
    }

    #[test]
    fn a_huge_change_is_trimmed() {
        let mut ranges = vec![0..50, 60..200, 300..310];
        assert!(trim_changed(&mut ranges, 120));
        assert_eq!(ranges, vec![0..50, 60..130]);
        let mut small = vec![3..5];
        assert!(!trim_changed(&mut small, 120));
    }

    #[test]
    fn ranges_follow_edits_above_and_die_with_edits_inside() {
        let old = "a\nb\nc\nd\ne\nf\n";
        // Two lines inserted above line 3 ("d").
        let map = LineMap::new(old, "a\nx\ny\nb\nc\nd\ne\nf\n");
        assert_eq!(map.map_range(3, 4), Some((5, 6)));
        assert_eq!(map.map_range(0, 0), Some((0, 0)));
        // The range spans the insertion point: touched.
        assert_eq!(map.map_range(0, 2), None);
        // A line edited inside the range.
        let map = LineMap::new(old, "a\nb\nC\nd\ne\nf\n");
        assert_eq!(map.map_range(1, 3), None);
        assert_eq!(map.map_range(3, 5), Some((3, 5)));
        // Lines deleted above.
        let map = LineMap::new(old, "c\nd\ne\nf\n");
        assert_eq!(map.map_range(4, 4), Some((2, 2)));
        assert_eq!(map.map_range(1, 1), None);
        // Appending at the end moves nothing.
        let map = LineMap::new(old, "a\nb\nc\nd\ne\nf\ng\n");
        assert_eq!(map.map_range(5, 5), Some((5, 5)));
        assert!(LineMap::new(old, old).is_identity());
    }

    #[test]
    fn dismissal_memory_follows_the_code_not_the_line() {
        let mut dismissals = Dismissals::default();
        let key = finding_key("shop/pricing.py", "bug", &["    return total / 0"]);
        assert!(!dismissals.is_dismissed(&key));
        assert!(dismissals.dismiss(&key));
        assert!(!dismissals.dismiss(&key));
        // The same code, re-indented (moved into a block), is still dismissed.
        assert!(dismissals.is_dismissed(&finding_key(
            "shop/pricing.py",
            "bug",
            &["        return total  / 0"]
        )));
        // Other code, another category or another file: raised again.
        assert!(!dismissals.is_dismissed(&finding_key("shop/pricing.py", "bug", &["    return total / 1"])));
        assert!(!dismissals.is_dismissed(&finding_key(
            "shop/pricing.py",
            "style",
            &["    return total / 0"]
        )));
        assert!(!dismissals.is_dismissed(&finding_key("shop/cli.py", "bug", &["    return total / 0"])));
        assert_eq!(dismissals.keys.len(), 1);
    }

    #[test]
    fn the_schema_bounds_line_numbers_to_the_change() {
        let schema = findings_schema(58, 64, 5);
        let line = &schema["properties"]["findings"]["items"]["properties"]["line"];
        assert_eq!(
            (line["minimum"].as_u64(), line["maximum"].as_u64()),
            (Some(58), Some(64))
        );
        assert_eq!(schema["properties"]["findings"]["maxItems"], 5);
    }

    #[test]
    fn the_excerpt_numbers_lines_from_one() {
        let lines = split_lines("l1\nl2\nl3\nl4\nl5\nl6\nl7\nl8\nl9\nl10\nl11\nl12\nl13\nl14\nl15\nl16\n");
        let excerpt = numbered_excerpt(&lines, &[14..15]);
        assert!(excerpt.starts_with("...\n   9 | l9\n"), "{excerpt}");
        assert!(excerpt.ends_with("  16 | l16\n"), "{excerpt}");
    }
}
