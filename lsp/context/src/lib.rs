//! Workspace index and cross-file context selection for Hearth.
//!
//! - [`Index::build`] walks a workspace (honouring `.gitignore`, `.ignore`, `.hearthignore`;
//!   skipping secret, binary, generated, minified, vendored and oversized files) and keeps,
//!   per file, its definitions, imports and lexical similarity windows.
//! - [`select`] picks snippets for a completion prompt within a token budget and renders them.
//! - [`is_secret_path`] and [`redact_secrets`] keep secrets out of prompts.
//!
//! Architecture invariant: pure logic plus file reads for the index. No tokio, no LSP types,
//! no llama.cpp; nothing here blocks on anything but the file system.

mod analysis;
mod fxhash;
mod index;
mod lexical;
mod resolve;
mod secrets;
mod select;
mod tokens;
mod walk;

pub use analysis::{Definition, Import};
pub use hearth_grammars::{DefinitionKind, LanguageId};
pub use index::{FileEntry, Index};
pub use secrets::{
    is_secret_path, redact_secrets, SecretGlobError, SecretPolicy, DEFAULT_SECRET_DIRECTORY_NAMES,
    DEFAULT_SECRET_FILE_GLOBS,
};
pub use select::{
    select, RecentRegion, RecentRegionKind, RenderFormat, Selection, SelectionOptions, SelectionRequest,
    Snippet, SnippetKind,
};
pub use tokens::{EstimateTokenCounter, TokenCounter};
pub use walk::{
    IndexOptions, SkipReason, WalkStatistics, DEFAULT_SKIPPED_DIRECTORY_NAMES, GENERATED_MARKERS,
    HEARTH_IGNORE_FILE_NAME,
};
