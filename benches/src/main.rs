//! `hearth-bench`: Hearth's benchmark suite and report generator. See `benches/README.md`.
//!
//! Every figure is measured next to a baseline in the same run and reported as a ratio; there
//! are no timed assertions. The exit status reflects only errors and functional checks.

mod concurrency;
mod context_bench;
mod inproc;
mod longctx;
mod overhead;
mod peer;
mod procs;
mod prompts;
mod report;
mod results;
mod svg;
mod typing;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};

use crate::procs::{Programs, Sidecar};
use crate::results::{Check, Results, Section, SidecarSetup};

/// Hearth's benchmarks: typing latency through `hearth lsp`, sidecar overhead, concurrency,
/// context engine, long context. Writes a markdown report with SVG plots.
#[derive(Debug, Parser)]
#[command(name = "hearth-bench", version)]
struct Args {
    /// Tiny sizes for CI (well under two minutes); exits non-zero on errors or failed checks.
    #[arg(long)]
    quick: bool,
    /// GGUF model (default: the default model in Hearth's model cache).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Write the markdown report here (SVG plots go next to it).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the raw results as JSON to this file (`-` or no value: standard output).
    #[arg(long, num_args = 0..=1, default_missing_value = "-")]
    json: Option<PathBuf>,
    /// Sections to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    sections: Option<Vec<SectionName>>,
    /// Tree indexed by the context section (default: ~/.cargo/registry/src, Rust files).
    #[arg(long)]
    context_root: Option<PathBuf>,
    /// Index a copy of only the first N Rust files (default: 300 with --quick, all otherwise).
    #[arg(long)]
    context_files: Option<usize>,
    /// Largest context the long-context section may ask the sidecar for.
    #[arg(long, default_value_t = 131072)]
    max_context: u32,
    /// Seconds a single cold prefill of the long-context section may take (estimated from the
    /// previous size); larger sizes are skipped and the report says so.
    #[arg(long, default_value_t = 90)]
    long_context_budget: u64,
    /// The `hearth` binary (default: next to this one).
    #[arg(long)]
    hearth: Option<PathBuf>,
    /// The `hearth-sidecar` binary (default: next to this one).
    #[arg(long)]
    sidecar: Option<PathBuf>,
    /// llama.cpp's `llama-server`, the peer of the typing section (default: $HEARTH_LLAMA_SERVER,
    /// else where `tests/install-llama-server.sh` builds it; skipped when absent).
    #[arg(long)]
    llama_server: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SectionName {
    Typing,
    Overhead,
    Concurrency,
    Context,
    LongContext,
}

fn default_model() -> PathBuf {
    let cache = std::env::var_os("HEARTH_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("hearth")
                .join("models")
        });
    cache.join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn utc_now() -> String {
    let secs = hearth_protocol::ledger::now_secs();
    let rest = secs % 86_400;
    format!(
        "{} {:02}:{:02}",
        hearth_protocol::ledger::utc_date(secs),
        rest / 3600,
        (rest % 3600) / 60
    )
}

fn git_commit() -> String {
    let root = util::repo_root();
    let head = std::process::Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    head.unwrap_or_else(|| "unknown".into())
}

fn sidecar_setup(purpose: &str, sidecar: &Sidecar) -> SidecarSetup {
    SidecarSetup {
        purpose: purpose.into(),
        args: sidecar.args.clone(),
        engine: sidecar.client.hello().engine.clone(),
        load_seconds: sidecar.load_seconds,
    }
}

fn pending<T>(wanted: bool) -> Section<T> {
    Section::Skipped(if wanted {
        "not run: the run ended before this section".into()
    } else {
        "not selected (--sections)".into()
    })
}

fn section<T>(name: &str, outcome: anyhow::Result<T>) -> Section<T> {
    match outcome {
        Ok(value) => {
            eprintln!("hearth-bench: {name}: done");
            Section::Measured(value)
        }
        Err(error) => {
            eprintln!("hearth-bench: {name} failed: {error:#}");
            Section::Failed(format!("{error:#}"))
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("hearth-bench: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let started = Instant::now();
    let quick = args.quick;
    let wants = |name: SectionName| args.sections.as_ref().is_none_or(|s| s.contains(&name));
    let model_path = args.model.clone().unwrap_or_else(default_model);
    anyhow::ensure!(
        model_path.exists(),
        "model not found: {} (run `hearth model pull default` or pass --model)",
        model_path.display()
    );
    let model_path = model_path.canonicalize().unwrap_or(model_path);
    let programs = Programs::locate(args.hearth.clone(), args.sidecar.clone())?;
    let mut command = String::from("hearth-bench");
    for arg in std::env::args().skip(1) {
        command.push(' ');
        command.push_str(&arg);
    }
    let mut results = Results {
        mode: if quick { "quick".into() } else { "full".into() },
        command,
        started_utc: utc_now(),
        duration_seconds: 0.0,
        git_commit: git_commit(),
        build_profile: if cfg!(debug_assertions) {
            "dev (debug)".into()
        } else {
            "release".into()
        },
        machine: util::Machine::detect(),
        load_average_end: String::new(),
        model_path: model_path.display().to_string(),
        model: None,
        sidecars: Vec::new(),
        typing: pending(wants(SectionName::Typing)),
        overhead: pending(wants(SectionName::Overhead)),
        concurrency: pending(wants(SectionName::Concurrency)),
        context: pending(wants(SectionName::Context)),
        long_context: pending(wants(SectionName::LongContext)),
        checks: Vec::new(),
    };
    let corpus = util::corpus_text();
    // Results so far are written after every section: a run cut short still leaves a report.
    let save = |results: &mut Results| -> anyhow::Result<()> {
        add_checks(results);
        results.load_average_end = util::Machine::detect().load_average;
        results.duration_seconds = started.elapsed().as_secs_f64();
        if let Some(out) = &args.out {
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            report::write(results, out)?;
        }
        if let Some(json) = args.json.as_ref().filter(|j| j.as_os_str() != "-") {
            std::fs::write(json, serde_json::to_string_pretty(&*results)?)?;
        }
        Ok(())
    };

    // 1. Typing session through the real language server (it starts its own sidecar).
    if wants(SectionName::Typing) {
        eprintln!("hearth-bench: typing session through hearth lsp...");
        let config = typing::TypingConfig {
            root: util::repo_root().join("tests/fixtures/shop"),
            file: "shop/inventory.py".into(),
            language_id: "python".into(),
            keystrokes: if quick { 24 } else { 240 },
            replay_samples: if quick { 1 } else { 8 },
            // --quick: one probe before and one after the session only.
            probe_every: if quick { usize::MAX } else { 15 },
            peer: peer::locate(args.llama_server.clone()),
        };
        if let Err(why) = &config.peer {
            eprintln!("hearth-bench: no peer in the typing section: {why}");
        }
        results.typing = section("typing", typing::run(&programs, &model_path, &config).await);
        save(&mut results)?;
    }

    // 2 and 5 share a one-slot sidecar; 3 has its own with eight slots.
    let single_args: Vec<String> = ["--ctx-size", "8192", "--parallel", "1"]
        .map(String::from)
        .to_vec();
    if wants(SectionName::Overhead) || wants(SectionName::LongContext) {
        eprintln!("hearth-bench: starting a one-slot sidecar...");
        match Sidecar::spawn(&programs.sidecar, &model_path, &single_args).await {
            Ok(single) => {
                results.model = Some(single.client.model().clone());
                results
                    .sidecars
                    .push(sidecar_setup("overhead, long context", &single));
                if wants(SectionName::Overhead) {
                    eprintln!("hearth-bench: sidecar overhead...");
                    let config = overhead::OverheadConfig {
                        prompt_tokens: if quick { 128 } else { 512 },
                        generate_tokens: if quick { 24 } else { 128 },
                        repetitions: if quick { 2 } else { 6 },
                        ipc_iterations: if quick { 30 } else { 200 },
                    };
                    let outcome = async {
                        let (text, _) =
                            prompts::text_with_tokens(&single.client, &corpus, config.prompt_tokens).await?;
                        overhead::run(&single, &model_path, &text, config).await
                    }
                    .await;
                    results.overhead = section("overhead", outcome);
                    save(&mut results)?;
                }
                if wants(SectionName::LongContext) {
                    eprintln!("hearth-bench: long context...");
                    let wanted: Vec<usize> = if quick {
                        vec![256, 512]
                    } else {
                        vec![2048, 4096, 8192, 16384, 32768, 65536, 131072]
                    };
                    let budget = std::time::Duration::from_secs(args.long_context_budget);
                    let train = single.client.model().n_ctx_train;
                    let per_slot = single.client.hello().engine.n_ctx_per_slot;
                    let larger = train.min(args.max_context);
                    let outcome = if !quick && larger > per_slot {
                        // A long-context model: a sidecar whose one slot holds what it was trained on.
                        let long_args: Vec<String> = vec![
                            "--ctx-size".into(),
                            larger.to_string(),
                            "--parallel".into(),
                            "1".into(),
                        ];
                        match Sidecar::spawn(&programs.sidecar, &model_path, &long_args).await {
                            Ok(long) => {
                                results.sidecars.push(sidecar_setup("long context", &long));
                                longctx::run(&long.client, &corpus, &wanted, budget).await
                            }
                            Err(error) => Err(error),
                        }
                    } else {
                        longctx::run(&single.client, &corpus, &wanted, budget).await
                    };
                    results.long_context = section("long context", outcome);
                    save(&mut results)?;
                }
            }
            Err(error) => {
                let message = format!("{error:#}");
                eprintln!("hearth-bench: {message}");
                if wants(SectionName::Overhead) {
                    results.overhead = Section::Failed(message.clone());
                }
                if wants(SectionName::LongContext) {
                    results.long_context = Section::Failed(message);
                }
            }
        }
    }

    if wants(SectionName::Concurrency) {
        eprintln!("hearth-bench: concurrency...");
        let multi_args: Vec<String> = ["--ctx-size", "8192", "--parallel", "8"]
            .map(String::from)
            .to_vec();
        let outcome = async {
            let multi = Sidecar::spawn(&programs.sidecar, &model_path, &multi_args).await?;
            results.model.get_or_insert_with(|| multi.client.model().clone());
            results.sidecars.push(sidecar_setup("concurrency", &multi));
            let config = concurrency::ConcurrencyConfig {
                client_counts: vec![1, 4, 8],
                requests_per_client: if quick { 1 } else { 2 },
                prompt_tokens: if quick { 32 } else { 64 },
                generate_tokens: if quick { 16 } else { 64 },
                interactive_requests: if quick { 2 } else { 5 },
                background_clients: 2,
                background_tokens: if quick { 64 } else { 256 },
                rounds: if quick { 1 } else { 2 },
            };
            concurrency::run(&multi, &corpus, &config).await
        }
        .await;
        results.concurrency = section("concurrency", outcome);
        save(&mut results)?;
    }

    if wants(SectionName::Context) {
        eprintln!("hearth-bench: context engine...");
        let config = context_bench::ContextConfig {
            root: args
                .context_root
                .clone()
                .unwrap_or_else(context_bench::default_root),
            max_files: args.context_files.or(quick.then_some(300)),
            selections: if quick { 100 } else { 1000 },
            updates: if quick { 10 } else { 100 },
            budget_tokens: 2048,
        };
        let outcome = tokio::task::spawn_blocking(move || context_bench::run(&config))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r);
        results.context = section("context", outcome);
    }

    save(&mut results)?;
    match &args.out {
        Some(out) => eprintln!("hearth-bench: wrote {}", out.display()),
        None => println!(
            "{}",
            report::render(&results, "(no plot: use --out)", "(no plot: use --out)")
        ),
    }
    if args.json.as_ref().is_some_and(|j| j.as_os_str() == "-") {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    let ok = results.checks.iter().all(|c| c.passed);
    for c in results.checks.iter().filter(|c| !c.passed) {
        eprintln!("hearth-bench: check failed: {}: {}", c.name, c.detail);
    }
    eprintln!("hearth-bench: finished in {:.0} s", results.duration_seconds);
    Ok(ok)
}

fn add_checks(results: &mut Results) {
    let mut checks = Vec::new();
    let mut failed = |name: &str, section: Option<&str>| {
        if let Some(error) = section {
            checks.push(Check {
                name: format!("{name} ran"),
                passed: false,
                detail: error.to_string(),
            });
        }
    };
    failed("typing session", results.typing.failed());
    failed("sidecar overhead", results.overhead.failed());
    failed("concurrency", results.concurrency.failed());
    failed("context engine", results.context.failed());
    failed("long context", results.long_context.failed());
    if let Some(t) = results.typing.measured() {
        checks.push(Check {
            name: "the language server answered with model suggestions".into(),
            passed: t.model_requests > 0,
            detail: format!(
                "{} of {} requests went to the model, {} non-empty",
                t.model_requests,
                t.requests.len(),
                t.model_requests - t.empty
            ),
        });
        let reused = t
            .requests
            .iter()
            .filter_map(|r| r.metrics.as_ref())
            .skip(1)
            .filter(|m| m.reused_tokens > 0)
            .count();
        if let Some(error) = &t.peer_error {
            checks.push(Check {
                name: "the peer (llama-server) answered the session's prompts".into(),
                passed: false,
                detail: error.clone(),
            });
        }
        checks.push(Check {
            name: "typing requests reuse the KV cache".into(),
            passed: t.model_requests <= 1 || reused > 0,
            detail: format!(
                "{reused} of {} model requests after the first reused cached tokens",
                t.model_requests.saturating_sub(1)
            ),
        });
    }
    if let Some(l) = results.long_context.measured() {
        let bad: Vec<u32> = l
            .points
            .iter()
            .filter(|p| p.follow_reused_tokens == 0)
            .map(|p| p.prompt_tokens)
            .collect();
        checks.push(Check {
            name: "a follow-up with one appended line reuses the cached prompt".into(),
            passed: bad.is_empty() && !l.points.is_empty(),
            detail: if bad.is_empty() {
                format!("{} sizes measured", l.points.len())
            } else {
                format!("no reuse at {bad:?} tokens")
            },
        });
    }
    if let Some(c) = results.concurrency.measured() {
        let answered = c.levels.iter().all(|l| l.requests > 0 && l.generated_tokens > 0);
        checks.push(Check {
            name: "every concurrency level completed its requests".into(),
            passed: answered,
            detail: c
                .levels
                .iter()
                .map(|l| format!("{} clients: {} requests", l.clients, l.requests))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if let Some(x) = results.context.measured() {
        checks.push(Check {
            name: "the context index selects within budget".into(),
            passed: x.selections > 0 && x.files_indexed > 0,
            detail: format!("{} files, {} selections", x.files_indexed, x.selections),
        });
    }
    results.checks = checks;
}
