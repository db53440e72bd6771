//! The completion pipeline shared by `hearth lsp` and `hearth complete`: context → prompt →
//! sidecar → post-processing → suggestion, with a typing-along cache in front.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hearth_protocol::{CompletionParams, Priority, RequestMetrics, SamplingParams, SidecarClient};
use serde::Serialize;

use hearth_completion::{
    build_fim_prompt, build_prefix_only_prompt, clip_prefix_suffix, completion_mode, continue_from_previous,
    cursor_in_string_or_comment, postprocess, CacheKey, ContextFile, CursorLines, FimFormat, LexicalSyntax,
    ModeConfig, MultilineSetting, PostprocessContext, PromptInputs, SyntaxCheck,
};
use hearth_grammars::LanguageId;

use crate::config::Config;
use crate::context::{ContextEngine, Manifest};

/// What the pipeline needs to know about the cursor.
#[derive(Debug, Clone)]
pub struct CompletionInput {
    /// Document key (URI or path) for caches.
    pub key: String,
    /// Path of the file (absolute when known).
    pub path: PathBuf,
    pub language_id: String,
    pub text: Arc<String>,
    pub cursor_byte: usize,
    /// The user asked (e.g. a manual trigger): complete even inside comments and strings.
    pub explicit: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    /// Text to insert at the cursor.
    pub text: String,
    /// Where it came from: `model`, `cache` or `typed-along`.
    pub source: &'static str,
    pub multiline: bool,
    pub metrics: Option<RequestMetrics>,
    pub context: Option<Manifest>,
    pub prompt_format: String,
    pub elapsed_ms: f64,
}

/// Why there is no suggestion (shown by `hearth complete`, logged by the server).
#[derive(Debug, Clone, Serialize)]
pub struct Declined {
    pub reason: String,
    /// What the model said, when it was asked.
    pub raw_answer: Option<String>,
    pub metrics: Option<RequestMetrics>,
    pub context: Option<Manifest>,
    pub prompt_format: String,
}

impl Declined {
    fn before_model(reason: &str) -> Declined {
        Declined {
            reason: reason.to_string(),
            raw_answer: None,
            metrics: None,
            context: None,
            prompt_format: "none".into(),
        }
    }
}

/// Cheap per-document memory of the last suggestion, so typing along it costs nothing, plus an
/// LRU of recent answers so retyping or undo is instant.
pub struct SuggestionCache {
    last: Mutex<HashMap<String, Remembered>>,
    recent: Mutex<hearth_completion::SuggestionCache>,
}

#[derive(Debug, Clone)]
struct Remembered {
    prefix: String,
    suffix_head: String,
    suggestion: String,
}

impl Default for SuggestionCache {
    fn default() -> Self {
        SuggestionCache {
            last: Mutex::default(),
            recent: Mutex::new(hearth_completion::SuggestionCache::new(256)),
        }
    }
}

impl SuggestionCache {
    fn lookup(&self, key: &str, prefix: &str, suffix: &str) -> Option<(String, &'static str)> {
        let exact = CacheKey::new(key, prefix, suffix);
        if let Some(text) = self.recent.lock().unwrap_or_else(|p| p.into_inner()).get(&exact) {
            return Some((text.to_string(), "cache"));
        }
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let remembered = last.get(key)?;
        // Only while the rest of the line after the cursor is unchanged.
        if suffix_head(suffix) != remembered.suffix_head {
            return None;
        }
        continue_from_previous(&remembered.prefix, &remembered.suggestion, prefix)
            .map(|text| (text, "typed-along"))
    }

    fn remember(&self, key: &str, prefix: &str, suffix: &str, suggestion: &str) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(CacheKey::new(key, prefix, suffix), suggestion.to_string());
        self.last.lock().unwrap_or_else(|p| p.into_inner()).insert(
            key.to_string(),
            Remembered {
                prefix: prefix.to_string(),
                suffix_head: suffix_head(suffix).to_string(),
                suggestion: suggestion.to_string(),
            },
        );
    }

    pub fn forget(&self, key: &str) {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove_document(key);
    }
}

fn suffix_head(suffix: &str) -> &str {
    let end = suffix.find('\n').unwrap_or(suffix.len());
    &suffix[..end]
}

pub struct Pipeline {
    pub cache: SuggestionCache,
    pub context: Arc<ContextEngine>,
}

/// How many lines of the file before / after the cursor go into the prompt.
const PREFIX_LINES: usize = 256;
const SUFFIX_LINES: usize = 64;

impl Pipeline {
    pub fn new(context: Arc<ContextEngine>) -> Pipeline {
        Pipeline {
            cache: SuggestionCache::default(),
            context,
        }
    }

    /// Serve from the caches only (no model).
    pub fn cached(&self, input: &CompletionInput) -> Option<Suggestion> {
        let (prefix, suffix) = split_at_cursor(&input.text, input.cursor_byte);
        let (text, source) = self.cache.lookup(&input.key, prefix, suffix)?;
        Some(Suggestion {
            multiline: text.contains('\n'),
            text,
            source,
            metrics: None,
            context: None,
            prompt_format: "none".into(),
            elapsed_ms: 0.0,
        })
    }

    /// One completion through the model, or why there is none. Dropping the future cancels the
    /// sidecar request.
    pub async fn complete(
        &self,
        client: &SidecarClient,
        config: &Config,
        input: &CompletionInput,
    ) -> Result<Result<Suggestion, Declined>, hearth_protocol::ClientError> {
        let started = Instant::now();
        let (before, after) = split_at_cursor(&input.text, input.cursor_byte);
        let language_id = language_id_for(input);
        let syntax = LexicalSyntax::for_language(&language_id);
        let lines = CursorLines::new(before, after, 20);
        if !input.explicit && cursor_in_string_or_comment(lines.prefix_line, &syntax) {
            return Ok(Err(Declined::before_model(
                "the cursor is in a string or comment (only an explicit request completes there)",
            )));
        }
        let mode_config = ModeConfig {
            setting: match config.completion.multiline.as_str() {
                "always" => MultilineSetting::Always,
                "never" => MultilineSetting::Never,
                _ => MultilineSetting::Auto,
            },
            ..ModeConfig::default()
        };
        let Some(mode) = completion_mode(lines.prefix_line, lines.suffix_line, &syntax, &mode_config) else {
            // Mid-word: nothing sensible to insert.
            return Ok(Err(Declined::before_model(
                "the cursor touches a word (inside it, or right before it): nothing sensible to insert",
            )));
        };
        let model = client.model();
        let budget = context_budget(config, client);
        let manifest = self.context.select(input, budget, model, Some(client)).await;

        let clipped = clip_prefix_suffix(before, after, PREFIX_LINES, SUFFIX_LINES);
        // After a line of pure indentation, BPE models often answer with a space token first
        // (`    ` + ` return`): the cursor is already indented, so that space is dropped.
        let trailing_indent = trailing_indentation(clipped.prefix);
        let comment_prefix = LanguageId::from_lsp_language_id(&language_id)
            .or_else(|| LanguageId::from_path(&input.path))
            .map(|language| language.comment_prefix().to_string())
            .unwrap_or_default();
        let inputs = PromptInputs {
            context: manifest
                .selection
                .snippets
                .iter()
                .map(|snippet| ContextFile {
                    path: snippet.path.clone(),
                    text: snippet.text.clone(),
                })
                .collect(),
            repo_name: self
                .context
                .root()
                .and_then(|root| root.file_name())
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            file_path: relative_path(&input.path, self.context.root()),
            prefix: clipped.prefix.to_string(),
            suffix: clipped.suffix.to_string(),
            comment_prefix,
        };
        let format = FimFormat::from_tokens(&model.fim);
        let (prompt, format_name) = match &format {
            Some(format) => (
                build_fim_prompt(format, &inputs),
                format!("fim-{:?}", format.family).to_lowercase(),
            ),
            None => (build_prefix_only_prompt(&inputs), "prefix-only".to_string()),
        };
        let stop = if mode.multiline {
            vec!["\n\n\n".to_string()]
        } else {
            vec!["\n".to_string()]
        };
        let params = CompletionParams {
            prompt,
            add_bos: true,
            sampling: SamplingParams {
                max_tokens: config.completion.max_tokens,
                stop,
                ..SamplingParams::default()
            },
            priority: Priority::Interactive,
            stream: false,
            reuse_cache: true,
        };
        let outcome = client.complete(params)?.finish().await?;

        let grammar =
            LanguageId::from_lsp_language_id(&language_id).or_else(|| LanguageId::from_path(&input.path));
        let count_errors =
            |text: &str| grammar.map_or(0, |language| hearth_grammars::syntax_error_count(language, text));
        let context = PostprocessContext {
            prefix_line: lines.prefix_line,
            suffix_line: lines.suffix_line,
            next_lines: &lines.next_lines,
            tab_width: 4,
            mode,
            syntax,
            syntax_check: (grammar.is_some() && input.text.len() <= SYNTAX_CHECK_MAX_BYTES).then_some(
                SyntaxCheck {
                    count_errors: &count_errors,
                    document_before: before,
                    document_after: after,
                },
            ),
        };
        tracing::debug!(raw = ?outcome.text, stop = ?outcome.stop_reason, generated = outcome.metrics.generated_tokens, "model answer");
        let raw = strip_indentation(&outcome.text, trailing_indent);
        let Some(text) = postprocess(&raw, &context) else {
            let reason = if outcome.text.trim().is_empty() {
                format!("the model answered nothing (stop: {:?})", outcome.stop_reason)
            } else {
                "post-processing dropped the model's answer (nothing left after trimming, it repeats \
                 the text after the cursor, or it breaks the syntax)"
                    .to_string()
            };
            return Ok(Err(Declined {
                reason,
                raw_answer: Some(outcome.text),
                metrics: Some(outcome.metrics),
                context: Some(manifest),
                prompt_format: format_name,
            }));
        };
        let text = match_line_endings(&text, &input.text);
        self.cache.remember(&input.key, before, after, &text);
        Ok(Ok(Suggestion {
            multiline: text.contains('\n'),
            text,
            source: "model",
            metrics: Some(outcome.metrics),
            context: Some(manifest),
            prompt_format: format_name,
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        }))
    }
}

/// The spaces and tabs that end the text, when its last line is nothing but indentation.
fn trailing_indentation(prefix: &str) -> &str {
    let last_line = prefix.rsplit('\n').next().unwrap_or("");
    if !last_line.is_empty() && last_line.chars().all(|c| c == ' ' || c == '\t') {
        last_line
    } else {
        ""
    }
}

/// The cursor sits after indentation already in the document: the answer's first line must
/// not add more in front of its code.
fn strip_indentation<'a>(answer: &'a str, indentation: &str) -> std::borrow::Cow<'a, str> {
    if indentation.is_empty() {
        return answer.into();
    }
    answer.trim_start_matches([' ', '\t']).into()
}

/// The syntax check re-parses the document twice; beyond this size it is skipped.
const SYNTAX_CHECK_MAX_BYTES: usize = 512 * 1024;

fn language_id_for(input: &CompletionInput) -> String {
    if !input.language_id.is_empty() {
        return input.language_id.clone();
    }
    LanguageId::from_path(&input.path)
        .map(|language| language.name().to_string())
        .unwrap_or_default()
}

/// Suggestions are built with `\n`; a CRLF document gets CRLF.
fn match_line_endings(text: &str, document: &str) -> String {
    if document.contains("\r\n") {
        text.replace("\r\n", "\n").replace('\n', "\r\n")
    } else {
        text.to_string()
    }
}

pub fn context_budget(config: &Config, client: &SidecarClient) -> usize {
    budget_for_slot(config, client.hello().engine.n_ctx_per_slot as usize)
}

/// The configured context budget, or a quarter of a slot of `slot_tokens`: room for the file
/// itself and the answer, and a cold prompt stays affordable on CPU.
pub fn budget_for_slot(config: &Config, slot_tokens: usize) -> usize {
    if config.context.budget_tokens > 0 {
        return config.context.budget_tokens as usize;
    }
    (slot_tokens / 4).clamp(256, 32 * 1024)
}

pub fn split_at_cursor(text: &str, cursor_byte: usize) -> (&str, &str) {
    let mut cursor = cursor_byte.min(text.len());
    while !text.is_char_boundary(cursor) {
        cursor -= 1;
    }
    text.split_at(cursor)
}

fn relative_path(path: &Path, root: Option<&Path>) -> String {
    root.and_then(|root| path.strip_prefix(root).ok())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_along_needs_the_same_rest_of_line() {
        let cache = SuggestionCache::default();
        cache.remember("file:///a.py", "def f(", ")\nnext", "x, y");
        assert_eq!(
            cache.lookup("file:///a.py", "def f(x", ")\nnext"),
            Some((", y".to_string(), "typed-along"))
        );
        assert_eq!(
            cache.lookup("file:///a.py", "def f(", ")\nnext"),
            Some(("x, y".to_string(), "cache"))
        );
        // The rest of the line changed: the old suggestion no longer fits.
        assert_eq!(cache.lookup("file:///a.py", "def f(x", "):\nnext"), None);
        assert_eq!(cache.lookup("file:///b.py", "def f(x", ")\nnext"), None);
        cache.forget("file:///a.py");
        assert_eq!(cache.lookup("file:///a.py", "def f(", ")\nnext"), None);
    }

    #[test]
    fn split_at_cursor_never_splits_a_char() {
        assert_eq!(split_at_cursor("a😀b", 2), ("a", "😀b"));
        assert_eq!(split_at_cursor("ab", 99), ("ab", ""));
    }

    #[test]
    fn indentation_moves_from_the_prompt_to_the_answer() {
        assert_eq!(trailing_indentation("def f():\n    "), "    ");
        assert_eq!(trailing_indentation("def f():\n    x"), "");
        assert_eq!(trailing_indentation("def f():\n"), "");
        assert_eq!(strip_indentation("    return 1", "    "), "return 1");
        assert_eq!(strip_indentation("\n    return 1", "    "), "\n    return 1");
        assert_eq!(strip_indentation(" return 1", "    "), "return 1");
        assert_eq!(strip_indentation("\treturn 1", ""), "\treturn 1");
    }

    #[test]
    fn crlf_documents_get_crlf_suggestions() {
        assert_eq!(match_line_endings("a\nb", "x\r\ny"), "a\r\nb");
        assert_eq!(match_line_endings("a\nb", "x\ny"), "a\nb");
    }
}
