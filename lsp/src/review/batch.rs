//! `hearth review`: the review of the language server, from the command line (scripts, CI, the
//! overnight batch review).
//!
//! Exit status: 0 when no finding reaches `--fail-on`, 1 when one does, 2 when the review could
//! not run at all (no model, bad arguments). A file whose review fails (an unusable answer, a
//! timeout) is reported on stderr and counted in `files_failed`; it does not change the status.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use super::{git_show, relative_path, review_text, split_lines, ReviewInput, Severity};
use crate::backend::Backend;
use crate::config::Config;
use crate::context::ContextEngine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReviewFormat {
    Text,
    Json,
    Sarif,
}

pub struct ReviewCommand {
    pub paths: Vec<PathBuf>,
    pub diff: Option<String>,
    pub format: ReviewFormat,
    /// `info`, `warning`, `error` or `never`.
    pub fail_on: String,
    pub min_severity: Option<String>,
    pub root: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct ReportedFinding {
    path: String,
    /// 1-based.
    line: u32,
    end_line: u32,
    /// 1-based, in characters: the first non-blank character of the line.
    column: u32,
    severity: Severity,
    category: String,
    message: String,
    replacement: Option<String>,
}

#[derive(Debug, Serialize)]
struct FailedFile {
    path: String,
    error: String,
}

const SKIPPED_DIRS: [&str; 6] = ["target", "node_modules", "__pycache__", "dist", "build", "venv"];

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for entry in entries {
            let name = entry
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') || (entry.is_dir() && SKIPPED_DIRS.contains(&name.as_str())) {
                continue;
            }
            if entry.is_dir() || hearth_grammars::LanguageId::from_path(&entry).is_some() {
                collect_files(&entry, out);
            }
        }
    } else if path.is_file() {
        out.push(path.to_path_buf());
    }
}

async fn changed_files(root: &Path, rev: &str) -> anyhow::Result<Vec<PathBuf>> {
    let output = tokio::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["diff", "--name-only", "--relative", rev, "--"])
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    if !output.status.success() {
        anyhow::bail!(
            "git diff {rev} failed in {}: {}",
            root.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| root.join(line))
        .filter(|path| path.is_file())
        .collect())
}

fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    relative_path(path, cwd.as_deref())
}

pub async fn run(
    command: ReviewCommand,
    mut config: Config,
    root: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let fail_on = match command.fail_on.as_str() {
        "never" => None,
        other => Some(Severity::parse(other).ok_or_else(|| {
            anyhow::anyhow!("--fail-on takes info, warning, error or never, not `{other}`")
        })?),
    };
    if let Some(min) = &command.min_severity {
        Severity::parse(min)
            .ok_or_else(|| anyhow::anyhow!("--min-severity takes info, warning or error, not `{min}`"))?;
        config.review.min_severity = min.clone();
    }
    let root = root
        .or_else(|| std::env::current_dir().ok())
        .map(|root| root.canonicalize().unwrap_or(root));
    let mut files = Vec::new();
    if command.paths.is_empty() {
        match (&command.diff, &root) {
            (Some(rev), Some(root)) => files = changed_files(root, rev).await?,
            _ => anyhow::bail!(
                "give the files or folders to review, or --diff REV to review what changed since REV"
            ),
        }
    }
    for path in &command.paths {
        if !path.exists() {
            anyhow::bail!("{} does not exist", path.display());
        }
        collect_files(path, &mut files);
    }
    let files: Vec<PathBuf> = files
        .into_iter()
        .map(|path| path.canonicalize().unwrap_or(path))
        .filter(|path| {
            let language = hearth_grammars::LanguageId::from_path(path).map(|l| l.name().to_string());
            !language.is_some_and(|l| config.disabled_languages.contains(&l))
        })
        .collect();

    let backend = Backend::new(format!("hearth review (pid {})", std::process::id()));
    let (client, _) = backend.client(&config).await?;
    let engine = Arc::new(ContextEngine::new(root.clone()));
    {
        let engine = engine.clone();
        let _ = tokio::task::spawn_blocking(move || engine.build_index(&|_, _| {})).await;
    }

    let mut findings = Vec::new();
    let mut failed = Vec::new();
    let mut reviewed = 0usize;
    for path in &files {
        let text = match crate::cli::read_source(path) {
            Ok(text) => text,
            Err(error) => {
                failed.push(FailedFile {
                    path: display_path(path),
                    error: error.to_string(),
                });
                continue;
            }
        };
        let baseline = match &command.diff {
            // A file the revision does not have is new: all of it is reviewed.
            Some(rev) => git_show(path, rev).await,
            None => None,
        };
        let input = ReviewInput {
            path: path.clone(),
            language_id: String::new(),
            text: Arc::new(text),
            baseline,
        };
        match review_text(&client, &engine, &config, &input).await {
            Ok(outcome) => {
                reviewed += 1;
                let lines = split_lines(&input.text);
                for finding in outcome.findings {
                    let line_text = lines.get(finding.start_line as usize).copied().unwrap_or("");
                    let column = line_text.chars().take_while(|c| c.is_whitespace()).count() as u32 + 1;
                    findings.push(ReportedFinding {
                        path: display_path(path),
                        line: finding.start_line + 1,
                        end_line: finding.end_line + 1,
                        column,
                        severity: finding.severity,
                        category: finding.category,
                        message: finding.message,
                        replacement: finding.replacement,
                    });
                }
            }
            Err(error) => {
                eprintln!("hearth: review of {} dropped: {error}", display_path(path));
                failed.push(FailedFile {
                    path: display_path(path),
                    error: error.to_string(),
                });
            }
        }
    }

    match command.format {
        ReviewFormat::Text => {
            for finding in &findings {
                outln!(
                    "{}:{}:{}: {}: {} [{}]",
                    finding.path,
                    finding.line,
                    finding.column,
                    finding.severity.name(),
                    finding.message.replace('\n', " "),
                    finding.category
                );
            }
            eprintln!(
                "hearth: {} findings in {reviewed} reviewed files ({} failed)",
                findings.len(),
                failed.len()
            );
        }
        ReviewFormat::Json => {
            let report = json!({
                "model": client.model().name,
                "files_reviewed": reviewed,
                "files_failed": failed,
                "findings": findings,
            });
            outln!("{}", serde_json::to_string_pretty(&report)?);
        }
        ReviewFormat::Sarif => outln!(
            "{}",
            serde_json::to_string_pretty(&sarif(&findings, &client.model().name))?
        ),
    }
    let failing = fail_on.is_some_and(|threshold| findings.iter().any(|f| f.severity >= threshold));
    Ok(if failing {
        ExitCode::from(1)
    } else if !failed.is_empty() {
        // A file that could not be reviewed is not a clean file: the review did not run there.
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn sarif(findings: &[ReportedFinding], model: &str) -> serde_json::Value {
    let rules: Vec<_> = super::CATEGORIES
        .iter()
        .map(|category| json!({ "id": category, "shortDescription": { "text": format!("{category} found by review") } }))
        .collect();
    let results: Vec<_> = findings
        .iter()
        .map(|finding| {
            let mut result = json!({
                "ruleId": finding.category,
                "level": match finding.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                    Severity::Info => "note",
                },
                "message": { "text": finding.message },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": finding.path },
                        "region": { "startLine": finding.line, "endLine": finding.end_line, "startColumn": finding.column }
                    }
                }]
            });
            if let Some(replacement) = &finding.replacement {
                result["properties"] = json!({ "replacement": replacement });
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": { "name": "hearth", "version": env!("CARGO_PKG_VERSION"), "rules": rules, "properties": { "model": model } } },
            "results": results
        }]
    })
}
