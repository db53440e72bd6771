//! Everything one run measured (serialised as `--json`).

use hearth_protocol::{EngineSettings, ModelInfo};
use serde::Serialize;

use crate::concurrency::ConcurrencyResult;
use crate::context_bench::ContextResult;
use crate::longctx::LongContextResult;
use crate::overhead::OverheadResult;
use crate::typing::TypingResult;
use crate::util::Machine;

/// A section's outcome: measured, failed (with the error), or skipped (with why).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", content = "value", rename_all = "snake_case")]
pub enum Section<T> {
    Measured(T),
    Failed(String),
    Skipped(String),
}

impl<T> Section<T> {
    pub fn measured(&self) -> Option<&T> {
        match self {
            Section::Measured(value) => Some(value),
            _ => None,
        }
    }
    pub fn failed(&self) -> Option<&str> {
        match self {
            Section::Failed(error) => Some(error),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SidecarSetup {
    pub purpose: String,
    pub args: Vec<String>,
    pub engine: EngineSettings,
    pub load_seconds: f64,
}

/// A functional check (never a timing): failing one makes the run exit non-zero.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub mode: String,
    pub command: String,
    pub started_utc: String,
    pub duration_seconds: f64,
    pub git_commit: String,
    pub build_profile: String,
    pub machine: Machine,
    /// 1/5/15-minute load average when the report was written (other work on a shared machine).
    pub load_average_end: String,
    pub model_path: String,
    pub model: Option<ModelInfo>,
    pub sidecars: Vec<SidecarSetup>,
    pub typing: Section<TypingResult>,
    pub overhead: Section<OverheadResult>,
    pub concurrency: Section<ConcurrencyResult>,
    pub context: Section<ContextResult>,
    pub long_context: Section<LongContextResult>,
    pub checks: Vec<Check>,
}
