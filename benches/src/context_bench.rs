//! Section 4: the context engine (`hearth-context`). Index build vs Universal Ctags on the
//! same files, index memory, selection latency at random cursors, incremental update cost.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context as _;
use hearth_context::{
    select, EstimateTokenCounter, Index, IndexOptions, LanguageId, RenderFormat, SelectionRequest,
};
use serde::Serialize;

use crate::util::{percentile, ratio, resident_bytes, PseudoRandom};

#[derive(Debug, Clone)]
pub struct ContextConfig {
    pub root: PathBuf,
    /// Index a copy of the first N Rust files (sorted) instead of the whole root.
    pub max_files: Option<usize>,
    pub selections: usize,
    pub updates: usize,
    pub budget_tokens: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CtagsResult {
    pub version: String,
    pub list_ms: f64,
    pub recursive_ms: f64,
    pub tags: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ContextResult {
    pub root: String,
    pub subset_of_files: Option<usize>,
    pub optimized_build: bool,
    pub files_indexed: usize,
    pub source_bytes: u64,
    pub definitions: usize,
    pub windows: usize,
    pub build_ms: f64,
    pub resident_delta_bytes: i64,
    pub ctags: Option<CtagsResult>,
    pub ctags_note: String,
    /// Index build time / `ctags -L` time on the same files.
    pub build_to_ctags_ratio: f64,
    pub selections: usize,
    pub select_p50_ms: f64,
    pub select_p90_ms: f64,
    pub select_p99_ms: f64,
    pub select_max_ms: f64,
    pub average_snippets: f64,
    pub average_tokens: f64,
    pub updates: usize,
    pub update_p50_ms: f64,
    pub update_p99_ms: f64,
}

pub fn default_root() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("."));
    home.join("registry").join("src")
}

fn rust_files(root: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_dir() {
            rust_files(&path, out);
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Copy the first `count` Rust files of `root` (sorted walk) into `target`, keeping paths.
fn copy_subset(root: &Path, target: &Path, count: usize) -> anyhow::Result<usize> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut copied = 0;
    for file in files.into_iter().take(count) {
        let relative = file.strip_prefix(root)?;
        let destination = target.join(relative);
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&file, &destination)?;
        copied += 1;
    }
    Ok(copied)
}

fn ctags_version() -> Option<String> {
    let output = Command::new("ctags").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let first = text.lines().next()?.to_string();
    first.contains("Universal Ctags").then_some(first)
}

fn run_ctags(root: &Path, files: &[String], scratch: &Path) -> anyhow::Result<CtagsResult> {
    let version = ctags_version().context("Universal Ctags not found")?;
    let list = scratch.join("files.txt");
    std::fs::write(&list, files.join("\n") + "\n")?;
    let tags = scratch.join("tags-list");
    let started = Instant::now();
    let status = Command::new("ctags")
        .current_dir(root)
        .args(["--languages=Rust", "-f"])
        .arg(&tags)
        .arg("-L")
        .arg(&list)
        .stderr(std::process::Stdio::null())
        .status()?;
    let list_ms = started.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(status.success(), "ctags -L failed: {status}");
    let tag_count = std::fs::read_to_string(&tags)
        .map(|t| t.lines().filter(|l| !l.starts_with("!_")).count())
        .unwrap_or(0);
    let recursive = scratch.join("tags-recursive");
    let started = Instant::now();
    let status = Command::new("ctags")
        .current_dir(root)
        .args(["-R", "--languages=Rust", "-f"])
        .arg(&recursive)
        .arg(".")
        .stderr(std::process::Stdio::null())
        .status()?;
    let recursive_ms = started.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(status.success(), "ctags -R failed: {status}");
    Ok(CtagsResult {
        version,
        list_ms,
        recursive_ms,
        tags: tag_count,
    })
}

pub fn run(config: &ContextConfig) -> anyhow::Result<ContextResult> {
    let scratch = tempfile::Builder::new()
        .prefix("hearth-bench-context-")
        .tempdir()?;
    let (root, subset) = match config.max_files {
        Some(count) => {
            let target = scratch.path().join("tree");
            std::fs::create_dir_all(&target)?;
            let copied = copy_subset(&config.root, &target, count)?;
            (target, Some(copied))
        }
        None => (config.root.clone(), None),
    };
    anyhow::ensure!(root.is_dir(), "{} is not a directory", root.display());
    let options = IndexOptions {
        only_languages: Some(vec![LanguageId::Rust]),
        ..IndexOptions::default()
    };
    let before = resident_bytes() as i64;
    let started = Instant::now();
    let mut index = Index::build(&root, &options, &|_, _| {});
    let build_ms = started.elapsed().as_secs_f64() * 1000.0;
    let after = resident_bytes() as i64;
    let files: Vec<String> = index.files().map(|f| f.relative_path.to_string()).collect();
    let source_bytes = index.files().map(|f| u64::from(f.byte_length)).sum();
    let mut result = ContextResult {
        root: config.root.display().to_string(),
        subset_of_files: subset,
        optimized_build: !cfg!(debug_assertions),
        files_indexed: index.file_count(),
        source_bytes,
        definitions: index.definition_count(),
        windows: index.window_count(),
        build_ms,
        resident_delta_bytes: after - before,
        ..ContextResult::default()
    };
    anyhow::ensure!(
        !files.is_empty(),
        "no Rust files indexed under {}",
        root.display()
    );

    match run_ctags(&root, &files, scratch.path()) {
        Ok(ctags) => {
            result.build_to_ctags_ratio = ratio(build_ms, ctags.list_ms);
            result.ctags = Some(ctags);
        }
        Err(error) => result.ctags_note = format!("{error:#}"),
    }

    // Selection at pseudo-random cursors of pseudo-random files.
    let mut random = PseudoRandom(0x9e37_79b9_7f4a_7c15);
    let counter = EstimateTokenCounter;
    let entries: Vec<_> = index.files().collect();
    let mut micros = Vec::new();
    let (mut snippets, mut tokens) = (0usize, 0usize);
    let mut attempts = 0;
    while micros.len() < config.selections && attempts < config.selections * 4 {
        attempts += 1;
        let file = entries[random.below(entries.len())];
        let Some(text) = index.file_text(file) else {
            continue;
        };
        let cursor = random.below(text.len() + 1);
        let path = root.join(&*file.relative_path);
        let request = SelectionRequest::new(
            &path,
            &text,
            cursor,
            config.budget_tokens,
            RenderFormat::PathComments,
        );
        let started = Instant::now();
        let selection = select(&index, &request, &counter);
        micros.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            selection.total_tokens <= config.budget_tokens,
            "selection exceeded its budget ({} > {})",
            selection.total_tokens,
            config.budget_tokens
        );
        snippets += selection.snippets.len();
        tokens += selection.total_tokens;
    }
    result.selections = micros.len();
    result.select_p50_ms = percentile(&micros, 0.5);
    result.select_p90_ms = percentile(&micros, 0.9);
    result.select_p99_ms = percentile(&micros, 0.99);
    result.select_max_ms = percentile(&micros, 1.0);
    result.average_snippets = snippets as f64 / micros.len().max(1) as f64;
    result.average_tokens = tokens as f64 / micros.len().max(1) as f64;

    // Incremental updates: a line inserted into a random file (what a keystroke burst does).
    let mut update_ms = Vec::new();
    let relative: Vec<String> = files.clone();
    for i in 0..config.updates {
        let key = &relative[random.below(relative.len())];
        let path = root.join(key);
        let Some(text) = index.file(&path).and_then(|f| index.file_text(f)) else {
            continue;
        };
        let mut line_start = random.below(text.len() + 1);
        while line_start > 0
            && (!text.is_char_boundary(line_start) || text.as_bytes()[line_start - 1] != b'\n')
        {
            line_start -= 1;
        }
        let edited = format!(
            "{}fn hearth_bench_edit_{i}() {{}}\n{}",
            &text[..line_start],
            &text[line_start..]
        );
        let started = Instant::now();
        index.update_file(&path, &edited);
        update_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    result.updates = update_ms.len();
    result.update_p50_ms = percentile(&update_ms, 0.5);
    result.update_p99_ms = percentile(&update_ms, 0.99);
    Ok(result)
}
