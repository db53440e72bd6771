//! Cross-file context for a cursor (provisional: no index yet).

use std::path::{Path, PathBuf};

use hearth_protocol::{ModelInfo, PromptPart};
use serde::Serialize;

use crate::pipeline::CompletionInput;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Manifest {
    pub snippets: Vec<serde_json::Value>,
    pub total_tokens: usize,
    pub budget_tokens: usize,
}

pub struct ContextEngine {
    root: Option<PathBuf>,
}

impl ContextEngine {
    pub fn new(root: Option<PathBuf>) -> ContextEngine {
        ContextEngine { root }
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    pub async fn select(&self, _input: &CompletionInput, budget: usize, _model: &ModelInfo) -> Manifest {
        Manifest {
            snippets: Vec::new(),
            total_tokens: 0,
            budget_tokens: budget,
        }
    }
}

pub fn render_context_parts(_manifest: &Manifest, _model: &ModelInfo) -> Vec<PromptPart> {
    Vec::new()
}

pub fn comment_prefix_for(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "py" | "rb" | "sh" | "bash" | "toml" | "yaml" | "yml" => "#",
        "lua" | "sql" => "--",
        _ => "//",
    }
}
