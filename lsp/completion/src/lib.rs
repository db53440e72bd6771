//! Turns a cursor position into a model prompt, and a model's raw output into a suggestion.
//!
//! - [`fim`]: the FIM layout from the model's vocabulary ([`fim::FimFormat::from_tokens`]),
//!   prompt assembly ([`fim::build_prompt`]) and prefix/suffix clipping.
//! - [`mode`]: single-line or multi-line, from the text around the cursor.
//! - [`mod@postprocess`]: the rules that cut, trim and check a raw completion.
//! - [`cache`]: an LRU of suggestions and "typing along" a shown suggestion.
//! - [`lexical`]: a line-level scanner for comments, strings and brackets.
//!
//! Architecture invariant: pure logic. No IO, no async runtime, no llama.cpp, no tree-sitter
//! (syntax checks come in as a callback). Every function is deterministic, never panics on odd
//! input (UTF-8 boundaries, CRLF) and is cheap enough to run on each keystroke.

pub mod cache;
pub mod fim;
pub mod lexical;
pub mod mode;
pub mod postprocess;

pub use cache::{continue_from_previous, CacheKey, SuggestionCache};
pub use fim::{
    build_fim_prompt, build_prefix_only_prompt, build_prompt, clip_prefix_suffix, ClippedText, ContextFile,
    FimFamily, FimFormat, PromptInputs,
};
pub use lexical::{cursor_context, cursor_in_string_or_comment, CursorContext, LexicalSyntax};
pub use mode::{completion_mode, CompletionMode, ModeConfig, MultilineSetting};
pub use postprocess::{postprocess, CursorLines, PostprocessContext, SyntaxCheck};
