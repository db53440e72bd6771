//! `hearth-sidecar`: loads one GGUF model and serves it to every Hearth client of this user over a
//! private local socket. See ARCHITECTURE.md ("sidecar") for the design.

mod engine;
mod openai;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use serde::Deserialize;

use crate::engine::EngineConfig;

/// Hearth's inference sidecar: owns the model, serves completions over a private local socket.
///
/// Normally started by `hearth` itself (one per user and model, shared by every editor window).
/// Every engine flag can also come from the `[sidecar]` section of a TOML file given with
/// `--config`; flags win.
#[derive(Debug, Parser)]
#[command(name = "hearth-sidecar", version = version_text())]
struct Args {
    /// GGUF model file.
    #[arg(long)]
    model: PathBuf,
    /// Socket to listen on (default: the per-user socket for this model and settings).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Lock file held while serving (default: next to the socket).
    #[arg(long)]
    lock_file: Option<PathBuf>,
    /// Exit after this many seconds with no client connected (0 = never).
    #[arg(long, default_value_t = 600)]
    idle_timeout: u64,
    /// TOML file with a `[sidecar]` section holding any of the engine options below.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Also serve an OpenAI-compatible HTTP API on this address (e.g. 127.0.0.1:8080; port 0
    /// picks a free one, shown in the log and in stats). Off by default; the sidecar then stays
    /// up until stopped instead of exiting when idle.
    #[arg(long, value_name = "ADDR")]
    openai_listen: Option<std::net::SocketAddr>,
    /// Environment variable holding the bearer token the HTTP API requires (needed to listen
    /// beyond loopback).
    #[arg(long, value_name = "VAR")]
    openai_api_key_env: Option<String>,
    /// Do not record requests served over HTTP in the usage ledger (`hearth stats` shows them as
    /// `served`; counts and timings only, never text).
    #[arg(long)]
    no_usage_ledger: bool,
    #[command(flatten)]
    engine: EngineFlags,
}

/// The version line also names the GPU backends compiled in (`hearth doctor` reads it).
fn version_text() -> &'static str {
    let backends = engine::compiled_gpu_backends();
    let backends = if backends.is_empty() {
        "none (CPU only)".to_string()
    } else {
        backends.join(", ")
    };
    Box::leak(format!("{} (GPU backends: {backends})", env!("CARGO_PKG_VERSION")).into_boxed_str())
}

#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct EngineFlags {
    /// Context size in tokens, shared by the parallel slots (up to 131072).
    #[arg(long)]
    ctx_size: Option<u32>,
    /// Parallel sequences (slots) decoded together.
    #[arg(long)]
    parallel: Option<u32>,
    /// Logical batch size.
    #[arg(long)]
    batch_size: Option<u32>,
    /// Physical batch size; prompts are decoded in chunks of this size (cancel granularity).
    #[arg(long)]
    ubatch_size: Option<u32>,
    /// Threads for generation (0 = physical cores).
    #[arg(long)]
    threads: Option<u32>,
    /// Threads for prompt processing (0 = same as --threads).
    #[arg(long)]
    threads_batch: Option<u32>,
    /// Layers to offload to the GPU: `auto` (as many as fit) or a number.
    #[arg(long)]
    gpu_layers: Option<String>,
    /// How to split the model across GPUs: none, layer or row.
    #[arg(long)]
    split_mode: Option<String>,
    /// GPU device indices to use, comma-separated.
    #[arg(long, value_delimiter = ',')]
    devices: Option<Vec<usize>>,
    /// GPU used for the whole model with split mode `none`.
    #[arg(long)]
    main_gpu: Option<i32>,
    /// Flash attention: auto, on or off.
    #[arg(long)]
    flash_attn: Option<String>,
    /// KV-cache type: f16, q8_0 or q4_0.
    #[arg(long)]
    kv_cache_type: Option<String>,
    /// Most requests waiting; more are refused as busy.
    #[arg(long)]
    queue_capacity: Option<usize>,
    /// Keep MoE expert tensors in host memory (llama.cpp's `exps=CPU` override).
    #[arg(long)]
    cpu_moe: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    sidecar: EngineFlags,
}

fn engine_config(args: &Args) -> anyhow::Result<EngineConfig> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
            toml::from_str::<ConfigFile>(&text)
                .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?
                .sidecar
        }
        None => EngineFlags::default(),
    };
    let flags = &args.engine;
    macro_rules! pick {
        ($field:ident, $default:expr) => {
            flags
                .$field
                .clone()
                .or(file.$field.clone())
                .unwrap_or($default)
        };
    }
    let cores = engine::physical_cores();
    let threads = match pick!(threads, 0) {
        0 => cores,
        n => n,
    };
    let threads_batch = match pick!(threads_batch, 0) {
        0 => threads,
        n => n,
    };
    let ctx_size = pick!(ctx_size, 8192);
    if !(256..=131072).contains(&ctx_size) {
        anyhow::bail!("--ctx-size {ctx_size} is out of range (256..=131072)");
    }
    let parallel = pick!(parallel, 2).clamp(1, 64);
    let gpu_layers = match pick!(gpu_layers, "auto".to_string()).as_str() {
        "auto" => None,
        number => Some(
            number
                .parse::<u32>()
                .map_err(|_| anyhow::anyhow!("--gpu-layers must be `auto` or a number"))?,
        ),
    };
    let flash_attention = match pick!(flash_attn, "auto".to_string()).as_str() {
        "auto" => None,
        "on" | "true" => Some(true),
        "off" | "false" => Some(false),
        other => anyhow::bail!("--flash-attn `{other}`: use auto, on or off"),
    };
    let ubatch_size = pick!(ubatch_size, 512).max(1);
    Ok(EngineConfig {
        model_path: args.model.clone(),
        ctx_size,
        parallel,
        batch_size: pick!(batch_size, 2048).max(ubatch_size),
        ubatch_size,
        threads,
        threads_batch,
        gpu_layers,
        split_mode: pick!(split_mode, "layer".to_string()),
        devices: pick!(devices, Vec::new()),
        main_gpu: pick!(main_gpu, 0),
        flash_attention,
        kv_cache_type: pick!(kv_cache_type, "f16".to_string()),
        queue_capacity: pick!(queue_capacity, 64).max(1),
        cpu_moe: pick!(cpu_moe, false),
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,llama_cpp_2=warn,llama-cpp-2=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args = Args::parse();
    let config = match engine_config(&args) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("{error:#}");
            return ExitCode::from(2);
        }
    };
    let openai_api_key = match &args.openai_api_key_env {
        Some(var) => match std::env::var(var) {
            Ok(key) if !key.is_empty() => Some(key),
            _ => {
                tracing::error!("--openai-api-key-env {var}: ${var} is not set");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    if let Some(address) = args.openai_listen {
        if !address.ip().is_loopback() && openai_api_key.is_none() {
            tracing::error!(
                "--openai-listen {address} is reachable from other machines: give a key with --openai-api-key-env VAR, or listen on 127.0.0.1"
            );
            return ExitCode::from(2);
        }
    }
    let options = server::ServerOptions {
        socket: args.socket.clone(),
        lock_file: args.lock_file.clone(),
        idle_timeout_secs: args.idle_timeout,
        openai_listen: args.openai_listen,
        openai_api_key,
        usage_ledger: !args.no_usage_ledger,
    };
    server::serve(config, options)
}
