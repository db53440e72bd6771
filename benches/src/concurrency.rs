//! Section 3: several clients at once (each its own connection), and interactive latency while
//! background jobs run. Baselines: one client on the same sidecar; the same interactive requests
//! with no background load, alternated with the loaded rounds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_protocol::{
    ChatMessage, ChatParams, CompletionParams, Priority, PromptPart, SamplingParams, SidecarClient,
};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::procs::Sidecar;
use crate::prompts::cut_at_line;
use crate::util::{median, percentile, ratio};

#[derive(Debug, Clone)]
pub struct ConcurrencyConfig {
    pub client_counts: Vec<usize>,
    pub requests_per_client: usize,
    pub prompt_tokens: usize,
    pub generate_tokens: usize,
    pub interactive_requests: usize,
    pub background_clients: usize,
    pub background_tokens: usize,
    pub rounds: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LevelResult {
    pub clients: usize,
    pub requests: usize,
    pub wall_ms: f64,
    pub generated_tokens: u64,
    pub prompt_tokens: u64,
    pub throughput_tokens_per_second: f64,
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ConcurrencyResult {
    pub prompt_tokens: usize,
    pub generate_tokens: usize,
    pub requests_per_client: usize,
    pub n_parallel: u32,
    pub n_ctx_per_slot: u32,
    pub levels: Vec<LevelResult>,
    /// Throughput of the largest client count / one client.
    pub scaling_ratio: f64,
    pub scaling_clients: usize,
    pub background_kind: String,
    pub interactive_alone_ms: Vec<f64>,
    pub interactive_loaded_ms: Vec<f64>,
    pub interactive_alone_p50_ms: f64,
    pub interactive_alone_p90_ms: f64,
    pub interactive_loaded_p50_ms: f64,
    pub interactive_loaded_p90_ms: f64,
    pub loaded_ratio: f64,
    pub background_requests_finished: u64,
    pub background_tokens_generated: u64,
    /// The same load as a plain llama-cpp-2 loop decoding the sequences together (no sidecar,
    /// no IPC, no scheduling): what batching itself gives on this machine.
    pub plain_levels: Vec<PlainLevel>,
    pub plain_scaling_ratio: f64,
    /// Sidecar scaling / plain-loop scaling (1.0 = the sidecar gets all batching can give).
    pub scaling_vs_plain: f64,
    pub plain_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PlainLevel {
    pub sequences: usize,
    pub generated_tokens: u64,
    pub wall_ms: f64,
    pub throughput_tokens_per_second: f64,
}

/// Distinct prompts (different places of the corpus: no shared prefix beyond BOS).
fn prompt_pool(corpus: &str, count: usize, bytes: usize) -> Vec<String> {
    let stride = (corpus.len() / count.max(1)).max(1);
    (0..count)
        .map(|i| {
            let mut start = (i * stride) % corpus.len().max(1);
            while !corpus.is_char_boundary(start) {
                start -= 1;
            }
            // Start on a line.
            let start = corpus[start..].find('\n').map_or(start, |n| start + n + 1);
            let mut rest = corpus[start.min(corpus.len())..].to_string();
            while rest.len() < bytes + 1 {
                rest.push_str(corpus);
            }
            cut_at_line(&rest, bytes).to_string()
        })
        .collect()
}

fn completion(text: &str, max_tokens: usize, priority: Priority) -> CompletionParams {
    CompletionParams {
        prompt: vec![PromptPart::Text(text.to_string())],
        add_bos: true,
        sampling: SamplingParams {
            max_tokens: max_tokens as u32,
            ..SamplingParams::default()
        },
        priority,
        stream: false,
        reuse_cache: true,
    }
}

struct Answer {
    latency_ms: f64,
    generated: u32,
    prompt: u32,
}

async fn one(client: &SidecarClient, params: CompletionParams) -> anyhow::Result<Answer> {
    let started = Instant::now();
    let outcome = client.complete(params)?.finish().await?;
    Ok(Answer {
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        generated: outcome.metrics.generated_tokens,
        prompt: outcome.metrics.prompt_tokens,
    })
}

pub async fn run(
    sidecar: &Sidecar,
    corpus: &str,
    config: &ConcurrencyConfig,
) -> anyhow::Result<ConcurrencyResult> {
    let hello = sidecar.client.hello().clone();
    let (counts, _) = sidecar
        .client
        .tokenize(vec![cut_at_line(corpus, 16 * 1024).to_string()], true)
        .await?;
    let bytes_per_token = cut_at_line(corpus, 16 * 1024).len() as f64 / f64::from(counts[0].max(1));
    let prompt_bytes = (config.prompt_tokens as f64 * bytes_per_token) as usize;
    let max_clients = config.client_counts.iter().copied().max().unwrap_or(1);
    let pool_size = max_clients * config.requests_per_client * config.client_counts.len()
        + config.interactive_requests
        + config.background_clients;
    let pool = prompt_pool(corpus, pool_size, prompt_bytes);
    let mut next_prompt = 0usize;
    let mut take = || {
        let prompt = pool[next_prompt % pool.len()].clone();
        next_prompt += 1;
        prompt
    };

    let mut result = ConcurrencyResult {
        prompt_tokens: config.prompt_tokens,
        generate_tokens: config.generate_tokens,
        requests_per_client: config.requests_per_client,
        n_parallel: hello.engine.n_parallel,
        n_ctx_per_slot: hello.engine.n_ctx_per_slot,
        ..ConcurrencyResult::default()
    };

    // Warm-up (untimed).
    one(&sidecar.client, completion(&take(), 4, Priority::Interactive)).await?;

    for &clients in &config.client_counts {
        let mut connections = Vec::new();
        for _ in 0..clients {
            connections.push(sidecar.connect().await?);
        }
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for client in connections {
            let prompts: Vec<String> = (0..config.requests_per_client).map(|_| take()).collect();
            let generate = config.generate_tokens;
            tasks.spawn(async move {
                let mut answers = Vec::new();
                for prompt in prompts {
                    answers.push(one(&client, completion(&prompt, generate, Priority::Interactive)).await?);
                }
                anyhow::Ok(answers)
            });
        }
        let mut answers = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            answers.extend(joined??);
        }
        let wall = started.elapsed().as_secs_f64();
        let latencies: Vec<f64> = answers.iter().map(|a| a.latency_ms).collect();
        let generated: u64 = answers.iter().map(|a| u64::from(a.generated)).sum();
        result.levels.push(LevelResult {
            clients,
            requests: answers.len(),
            wall_ms: wall * 1000.0,
            generated_tokens: generated,
            prompt_tokens: answers.iter().map(|a| u64::from(a.prompt)).sum(),
            throughput_tokens_per_second: ratio(generated as f64, wall),
            latency_p50_ms: median(&latencies),
            latency_p90_ms: percentile(&latencies, 0.9),
        });
    }
    if let (Some(one_client), Some(most)) = (
        result.levels.iter().find(|l| l.clients == 1),
        result.levels.iter().max_by_key(|l| l.clients),
    ) {
        result.scaling_ratio = ratio(
            most.throughput_tokens_per_second,
            one_client.throughput_tokens_per_second,
        );
        result.scaling_clients = most.clients;
    }

    // The physical limit of batching here: the same kind of load in a plain llama-cpp-2 loop with
    // the sidecar's settings, each level's sequences prefilled and decoded together.
    match crate::inproc::InProcess::start(std::path::Path::new(&hello.model.path), &hello.engine).await {
        Ok(plain) => {
            for &sequences in &config.client_counts {
                let mut level = PlainLevel {
                    sequences,
                    ..PlainLevel::default()
                };
                for _ in 0..config.requests_per_client {
                    let prompts: Vec<String> = (0..sequences).map(|_| take()).collect();
                    let run = plain.run_batched(prompts, config.generate_tokens).await?;
                    level.generated_tokens += run.generated_tokens as u64;
                    level.wall_ms += run.wall_ms;
                }
                level.throughput_tokens_per_second =
                    ratio(level.generated_tokens as f64, level.wall_ms / 1000.0);
                result.plain_levels.push(level);
            }
            if let (Some(one), Some(most)) = (
                result.plain_levels.iter().find(|l| l.sequences == 1),
                result.plain_levels.iter().max_by_key(|l| l.sequences),
            ) {
                result.plain_scaling_ratio = ratio(
                    most.throughput_tokens_per_second,
                    one.throughput_tokens_per_second,
                );
                result.scaling_vs_plain = ratio(result.scaling_ratio, result.plain_scaling_ratio);
            }
        }
        Err(error) => result.plain_error = Some(format!("{error:#}")),
    }

    // Interactive latency with and without background jobs, alternating rounds.
    let use_chat = hello.model.has_chat_template;
    result.background_kind = if use_chat {
        format!(
            "chat (Priority::Background, up to {} tokens)",
            config.background_tokens
        )
    } else {
        format!(
            "complete (Priority::Background, up to {} tokens)",
            config.background_tokens
        )
    };
    let interactive = sidecar.connect().await?;
    let background_prompts: Vec<String> = (0..config.background_clients).map(|_| take()).collect();
    // The same interactive prompts in both kinds of round, each evaluated cold, so the two
    // differ only by the background load.
    let interactive_prompts: Vec<String> = (0..config.interactive_requests).map(|_| take()).collect();
    for _round in 0..config.rounds {
        for loaded in [false, true] {
            let stop = Arc::new(AtomicBool::new(false));
            let mut background = JoinSet::new();
            if loaded {
                for prompt in &background_prompts {
                    let client = sidecar.connect().await?;
                    let stop = stop.clone();
                    let prompt = prompt.clone();
                    let tokens = config.background_tokens;
                    background.spawn(async move {
                        let (mut finished, mut generated) = (0u64, 0u64);
                        while !stop.load(Ordering::Acquire) {
                            let stream = if use_chat {
                                client.chat(ChatParams {
                                    messages: vec![ChatMessage {
                                        role: "user".into(),
                                        content: format!(
                                            "Review this code and list its problems:\n\n{prompt}"
                                        ),
                                    }],
                                    sampling: SamplingParams {
                                        max_tokens: tokens as u32,
                                        ..SamplingParams::default()
                                    },
                                    priority: Priority::Background,
                                    stream: false,
                                })
                            } else {
                                client.complete(completion(&prompt, tokens, Priority::Background))
                            };
                            let Ok(stream) = stream else { break };
                            // Poll the stop flag while the job runs; dropping the stream cancels it.
                            let mut finish = Box::pin(stream.finish());
                            loop {
                                tokio::select! {
                                    outcome = &mut finish => {
                                        if let Ok(outcome) = outcome {
                                            finished += 1;
                                            generated += u64::from(outcome.metrics.generated_tokens);
                                        }
                                        break;
                                    }
                                    _ = tokio::time::sleep(Duration::from_millis(20)) => {
                                        if stop.load(Ordering::Acquire) {
                                            break;
                                        }
                                    }
                                }
                            }
                        }
                        (finished, generated)
                    });
                }
                // Wait until the background jobs are being decoded.
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline {
                    let stats = interactive.stats().await?;
                    if stats.active_requests as usize >= config.background_clients {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            for prompt in &interactive_prompts {
                let mut params = completion(prompt, config.generate_tokens, Priority::Interactive);
                params.reuse_cache = false;
                let answer = one(&interactive, params).await?;
                if loaded {
                    result.interactive_loaded_ms.push(answer.latency_ms);
                } else {
                    result.interactive_alone_ms.push(answer.latency_ms);
                }
            }
            stop.store(true, Ordering::Release);
            while let Some(joined) = background.join_next().await {
                if let Ok((finished, generated)) = joined {
                    result.background_requests_finished += finished;
                    result.background_tokens_generated += generated;
                }
            }
        }
    }
    result.interactive_alone_p50_ms = median(&result.interactive_alone_ms);
    result.interactive_alone_p90_ms = percentile(&result.interactive_alone_ms, 0.9);
    result.interactive_loaded_p50_ms = median(&result.interactive_loaded_ms);
    result.interactive_loaded_p90_ms = percentile(&result.interactive_loaded_ms, 0.9);
    result.loaded_ratio = ratio(result.interactive_loaded_p50_ms, result.interactive_alone_p50_ms);
    Ok(result)
}
