//! The completion pipeline shared by `hearth lsp` and `hearth complete`: context → prompt →
//! sidecar → post-processing → suggestion, with a typing-along cache in front.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hearth_protocol::{
    CompletionParams, ModelInfo, Priority, PromptPart, RequestMetrics, SamplingParams, SidecarClient,
};
use serde::Serialize;

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
    pub prompt_format: &'static str,
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone)]
struct Remembered {
    prefix: String,
    suffix_start: String,
    suggestion: String,
}

/// Cheap per-document memory of the last suggestion, so typing along it costs nothing.
#[derive(Default)]
pub struct SuggestionCache {
    last: Mutex<HashMap<String, Remembered>>,
}

impl SuggestionCache {
    fn lookup(&self, key: &str, prefix: &str, suffix: &str) -> Option<String> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let remembered = last.get(key)?;
        if !suffix.starts_with(&remembered.suffix_start)
            && !remembered.suffix_start.starts_with(suffix_head(suffix))
        {
            return None;
        }
        continue_from_previous(&remembered.prefix, &remembered.suggestion, prefix)
    }

    fn remember(&self, key: &str, prefix: &str, suffix: &str, suggestion: &str) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.insert(
            key.to_string(),
            Remembered {
                prefix: prefix.to_string(),
                suffix_start: suffix_head(suffix).to_string(),
                suggestion: suggestion.to_string(),
            },
        );
    }

    pub fn forget(&self, key: &str) {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

fn suffix_head(suffix: &str) -> &str {
    let end = suffix.find('\n').unwrap_or(suffix.len());
    &suffix[..end]
}

/// If the user typed the first characters of the previous suggestion, the rest of it.
pub fn continue_from_previous(
    previous_prefix: &str,
    previous_suggestion: &str,
    new_prefix: &str,
) -> Option<String> {
    let typed = new_prefix.strip_prefix(previous_prefix)?;
    if typed.is_empty() {
        return (!previous_suggestion.is_empty()).then(|| previous_suggestion.to_string());
    }
    let rest = previous_suggestion.strip_prefix(typed)?;
    (!rest.trim().is_empty()).then(|| rest.to_string())
}

pub struct Pipeline {
    pub cache: SuggestionCache,
    pub context: Arc<ContextEngine>,
}

/// How many lines of the file before / after the cursor go into the prompt.
const PREFIX_LINES: usize = 256;
const SUFFIX_LINES: usize = 64;
/// The prefix window starts on a multiple of this many lines, so its front stays put while typing.
const PREFIX_ALIGN: usize = 32;

impl Pipeline {
    pub fn new(context: Arc<ContextEngine>) -> Pipeline {
        Pipeline {
            cache: SuggestionCache::default(),
            context,
        }
    }

    /// Serve from the typing-along cache only (no model).
    pub fn cached(&self, input: &CompletionInput) -> Option<Suggestion> {
        let (prefix, suffix) = split_at_cursor(&input.text, input.cursor_byte);
        let text = self.cache.lookup(&input.key, prefix, suffix)?;
        Some(Suggestion {
            multiline: text.contains('\n'),
            text,
            source: "typed-along",
            metrics: None,
            context: None,
            prompt_format: "none",
            elapsed_ms: 0.0,
        })
    }

    /// One completion through the model. Dropping the future cancels the sidecar request.
    pub async fn complete(
        &self,
        client: &SidecarClient,
        config: &Config,
        input: &CompletionInput,
    ) -> Result<Option<Suggestion>, hearth_protocol::ClientError> {
        let started = Instant::now();
        let (prefix, suffix) = split_at_cursor(&input.text, input.cursor_byte);
        let model = client.model();
        let budget = context_budget(config, client);
        let manifest = self.context.select(input, budget, model).await;
        let mode = completion_mode(prefix, suffix, &config.completion.multiline);
        let (prompt, format) =
            build_prompt(model, &manifest, &input.path, self.context.root(), prefix, suffix);
        let mut stop = vec![];
        if !mode.multiline {
            stop.push("\n".to_string());
        } else {
            stop.push("\n\n\n".to_string());
        }
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
        let text = postprocess(&outcome.text, prefix, suffix, mode);
        let Some(text) = text else {
            return Ok(None);
        };
        self.cache.remember(&input.key, prefix, suffix, &text);
        Ok(Some(Suggestion {
            multiline: text.contains('\n'),
            text,
            source: "model",
            metrics: Some(outcome.metrics),
            context: Some(manifest),
            prompt_format: format,
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        }))
    }
}

pub fn context_budget(config: &Config, client: &SidecarClient) -> usize {
    if config.context.budget_tokens > 0 {
        return config.context.budget_tokens as usize;
    }
    // A quarter of a slot leaves room for the file itself and the answer, and keeps a cold
    // prompt affordable on CPU.
    let slot = client.hello().engine.n_ctx_per_slot as usize;
    (slot / 4).clamp(256, 32 * 1024)
}

pub fn split_at_cursor(text: &str, cursor_byte: usize) -> (&str, &str) {
    let mut cursor = cursor_byte.min(text.len());
    while !text.is_char_boundary(cursor) {
        cursor -= 1;
    }
    text.split_at(cursor)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletionMode {
    pub multiline: bool,
}

pub fn completion_mode(prefix: &str, suffix: &str, setting: &str) -> CompletionMode {
    match setting {
        "always" => return CompletionMode { multiline: true },
        "never" => return CompletionMode { multiline: false },
        _ => {}
    }
    let line_before = prefix.rsplit('\n').next().unwrap_or("");
    let line_after = suffix.split('\n').next().unwrap_or("");
    let empty_line = line_before.trim().is_empty() && line_after.trim().is_empty();
    let after_opener = {
        let trimmed = line_before.trim_end();
        trimmed.ends_with('{') || trimmed.ends_with(':') || trimmed.ends_with("=>") || trimmed.ends_with('(')
    };
    CompletionMode {
        multiline: empty_line || (after_opener && line_after.trim().is_empty()),
    }
}

/// Lines of the file around the cursor that go into the prompt.
fn clip<'a>(prefix: &'a str, suffix: &'a str) -> (&'a str, &'a str) {
    let prefix_line_count = prefix.matches('\n').count();
    let start_line = if prefix_line_count > PREFIX_LINES {
        // Align to PREFIX_ALIGN lines: the window's start moves once every few dozen lines.
        (prefix_line_count - PREFIX_LINES).div_ceil(PREFIX_ALIGN) * PREFIX_ALIGN
    } else {
        0
    };
    let prefix_start = if start_line == 0 {
        0
    } else {
        prefix
            .match_indices('\n')
            .nth(start_line - 1)
            .map_or(0, |(i, _)| i + 1)
    };
    let suffix_end = suffix
        .match_indices('\n')
        .nth(SUFFIX_LINES)
        .map_or(suffix.len(), |(i, _)| i + 1);
    (&prefix[prefix_start..], &suffix[..suffix_end])
}

fn relative_path(path: &Path, root: Option<&Path>) -> String {
    root.and_then(|root| path.strip_prefix(root).ok())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Build the prompt: context first (stable), then the file. FIM in the model's own format when
/// its vocabulary has the tokens, prefix-only otherwise.
pub fn build_prompt(
    model: &ModelInfo,
    manifest: &Manifest,
    path: &Path,
    root: Option<&Path>,
    prefix: &str,
    suffix: &str,
) -> (Vec<PromptPart>, &'static str) {
    let (prefix, suffix) = clip(prefix, suffix);
    let current = relative_path(path, root);
    let mut parts = Vec::new();
    if let Some(format) = hearth_completion_format(model) {
        parts.extend(crate::context::render_context_parts(manifest, model));
        parts.extend(format.parts(&current, prefix, suffix, model));
        return (parts, format.name());
    }
    parts.extend(crate::context::render_context_parts(manifest, model));
    let comment = crate::context::comment_prefix_for(path);
    parts.push(PromptPart::Text(format!("{comment} path: {current}\n{prefix}")));
    (parts, "prefix-only")
}

/// The FIM layout read from the model's FIM tokens.
fn hearth_completion_format(model: &ModelInfo) -> Option<crate::fim::FimFormat> {
    crate::fim::FimFormat::from_model(model)
}

/// Clean a raw model answer into what to insert; `None` when nothing useful remains.
pub fn postprocess(raw: &str, prefix: &str, suffix: &str, mode: CompletionMode) -> Option<String> {
    let mut text = raw.replace("\r\n", "\n");
    if !mode.multiline {
        if let Some(end) = text.find('\n') {
            text.truncate(end);
        }
    } else {
        text = crate::fim::cut_at_dedent(&text, prefix);
    }
    let line_after = suffix.split('\n').next().unwrap_or("");
    // Drop a tail that repeats what already follows the cursor.
    if !line_after.trim().is_empty() {
        let after = line_after.trim_end();
        if let Some(stripped) = text.trim_end().strip_suffix(after) {
            text = stripped.to_string();
        }
    }
    let trimmed = text.trim_end().to_string();
    if trimmed.trim().is_empty() {
        return None;
    }
    Some(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_along_serves_the_rest_of_the_suggestion() {
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("def f(", "x, y):", "def f(x", Some(", y):")),
            ("def f(", "x, y):", "def f(", Some("x, y):")),
            ("def f(", "x, y):", "def f(z", None),
            ("def f(", "x, y):", "def f(x, y):", None),
            ("def f(", "x, y):", "def ", None),
            ("a", "😀b", "a😀", Some("b")),
        ];
        for (previous_prefix, suggestion, new_prefix, expected) in cases {
            assert_eq!(
                continue_from_previous(previous_prefix, suggestion, new_prefix).as_deref(),
                *expected,
                "{previous_prefix:?} + {suggestion:?} typed to {new_prefix:?}"
            );
        }
    }

    #[test]
    fn mode_follows_the_cursor() {
        let cases: &[(&str, &str, bool)] = &[
            ("fn main() {\n    ", "\n}", true),
            ("def f(x):", "\n", true),
            ("    let x = foo", "\n", false),
            ("    let x = ", "bar;\n", false),
            ("", "", true),
        ];
        for (prefix, suffix, multiline) in cases {
            assert_eq!(
                completion_mode(prefix, suffix, "auto").multiline,
                *multiline,
                "{prefix:?}|{suffix:?}"
            );
        }
        assert!(!completion_mode("", "", "never").multiline);
        assert!(completion_mode("x = 1", "", "always").multiline);
    }

    #[test]
    fn postprocess_single_line_keeps_one_line_and_drops_the_repeated_suffix() {
        let single = CompletionMode { multiline: false };
        assert_eq!(
            postprocess("total = a + b\nprint(total)", "    ", "\n", single).as_deref(),
            Some("total = a + b")
        );
        assert_eq!(postprocess("x, y)", "f(", ")\n", single).as_deref(), Some("x, y"));
        assert_eq!(postprocess("   \n", "f(", "\n", single), None);
    }

    #[test]
    fn split_at_cursor_never_splits_a_char() {
        assert_eq!(split_at_cursor("a😀b", 2), ("a", "😀b"));
        assert_eq!(split_at_cursor("ab", 99), ("ab", ""));
    }

    #[test]
    fn prefix_window_start_is_stable_while_typing() {
        let prefix: String = (0..400).map(|i| format!("line {i}\n")).collect();
        let (a, _) = clip(&prefix, "");
        let longer = format!("{prefix}x");
        let (b, _) = clip(&longer, "");
        assert!(b.starts_with(a.lines().next().unwrap()));
        assert!(a.lines().count() <= PREFIX_LINES + PREFIX_ALIGN);
    }
}
