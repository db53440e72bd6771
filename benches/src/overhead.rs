//! Section 2: the sidecar's overhead. The same prompt, cold, through the sidecar (client-side
//! times, IPC included) and through a plain llama-cpp-2 loop in this process with the settings
//! the sidecar reports; runs alternate (ABBA) so drift on a noisy machine hits both.

use std::path::Path;
use std::time::{Duration, Instant};

use hearth_protocol::{CompletionParams, Priority, PromptPart, SamplingParams, SidecarClient, StreamEvent};
use serde::Serialize;

use crate::inproc::{compiled_gpu_backends, InProcess, RunResult};
use crate::procs::Sidecar;
use crate::util::{median, percentile, ratio};

#[derive(Debug, Clone, Copy)]
pub struct OverheadConfig {
    pub prompt_tokens: usize,
    pub generate_tokens: usize,
    pub repetitions: usize,
    pub ipc_iterations: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SidecarRun {
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    pub client_time_to_first_token_ms: f64,
    pub client_decode_ms: f64,
    pub client_prefill_tokens_per_second: f64,
    pub client_decode_tokens_per_second: f64,
    pub server_prefill_tokens_per_second: f64,
    pub server_decode_tokens_per_second: f64,
    pub text: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OverheadResult {
    pub prompt_tokens: usize,
    pub generate_tokens: usize,
    pub threads: u32,
    pub comparable: bool,
    pub note: String,
    pub sidecar_runs: Vec<SidecarRun>,
    pub in_process_runs: Vec<RunResult>,
    pub sidecar_decode_tps: f64,
    pub in_process_decode_tps: f64,
    pub decode_ratio: f64,
    pub sidecar_prefill_tps: f64,
    pub in_process_prefill_tps: f64,
    pub prefill_ratio: f64,
    pub same_output: bool,
    pub stats_round_trip_p50_ms: f64,
    pub stats_round_trip_p90_ms: f64,
    pub tokenize_round_trip_p50_ms: f64,
    pub tokenize_round_trip_p90_ms: f64,
}

pub async fn sidecar_run(
    client: &SidecarClient,
    text: &str,
    max_tokens: usize,
) -> anyhow::Result<SidecarRun> {
    let params = CompletionParams {
        prompt: vec![PromptPart::Text(text.to_string())],
        add_bos: true,
        sampling: SamplingParams {
            max_tokens: max_tokens as u32,
            ..SamplingParams::default()
        },
        priority: Priority::Interactive,
        stream: true,
        reuse_cache: false,
    };
    let started = Instant::now();
    let mut stream = client.complete(params)?;
    let mut first = None;
    let outcome = loop {
        match stream.next_event().await? {
            StreamEvent::Token(_) => {
                first.get_or_insert_with(Instant::now);
            }
            StreamEvent::Done(outcome) => break outcome,
        }
    };
    let done = Instant::now();
    let first = first.unwrap_or(done);
    let metrics = &outcome.metrics;
    let ttft = first.duration_since(started).as_secs_f64();
    let decode = done.duration_since(first).as_secs_f64();
    Ok(SidecarRun {
        prompt_tokens: metrics.prompt_tokens,
        generated_tokens: metrics.generated_tokens,
        client_time_to_first_token_ms: ttft * 1000.0,
        client_decode_ms: decode * 1000.0,
        client_prefill_tokens_per_second: ratio(f64::from(metrics.evaluated_tokens), ttft),
        client_decode_tokens_per_second: if metrics.generated_tokens > 1 {
            ratio(f64::from(metrics.generated_tokens - 1), decode)
        } else {
            f64::NAN
        },
        server_prefill_tokens_per_second: metrics.prefill_tokens_per_second,
        server_decode_tokens_per_second: metrics.decode_tokens_per_second,
        text: outcome.text,
    })
}

pub async fn run(
    sidecar: &Sidecar,
    model_path: &Path,
    text: &str,
    config: OverheadConfig,
) -> anyhow::Result<OverheadResult> {
    let client = &sidecar.client;
    let settings = client.hello().engine.clone();
    let mut result = OverheadResult {
        prompt_tokens: config.prompt_tokens,
        generate_tokens: config.generate_tokens,
        threads: settings.n_threads,
        comparable: settings.gpu_backends == compiled_gpu_backends(),
        ..OverheadResult::default()
    };
    if !result.comparable {
        result.note = format!(
            "the sidecar uses GPU backends {:?} but this benchmark was built with {:?}: build hearth-benches with the same feature to compare",
            settings.gpu_backends,
            compiled_gpu_backends()
        );
    }

    // IPC round trips first, while nothing else runs.
    let mut stats_ms = Vec::new();
    let mut tokenize_ms = Vec::new();
    for _ in 0..config.ipc_iterations {
        let started = Instant::now();
        client.stats().await?;
        stats_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        client.tokenize(vec!["fn main() {}".to_string()], true).await?;
        tokenize_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    result.stats_round_trip_p50_ms = median(&stats_ms);
    result.stats_round_trip_p90_ms = percentile(&stats_ms, 0.9);
    result.tokenize_round_trip_p50_ms = median(&tokenize_ms);
    result.tokenize_round_trip_p90_ms = percentile(&tokenize_ms, 0.9);

    let in_process = InProcess::start(model_path, &settings).await?;
    // One untimed warm-up each (page cache, allocator, thread pools).
    sidecar_run(client, text, 4).await?;
    in_process.run(text, true, 4).await?;
    for repetition in 0..config.repetitions {
        let sidecar_first = repetition % 2 == 0;
        for turn in 0..2 {
            if (turn == 0) == sidecar_first {
                result
                    .sidecar_runs
                    .push(sidecar_run(client, text, config.generate_tokens).await?);
            } else {
                result
                    .in_process_runs
                    .push(in_process.run(text, true, config.generate_tokens).await?);
            }
            // Let the other process's threads settle.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(in_process);

    let values = |f: &dyn Fn(&SidecarRun) -> f64| result.sidecar_runs.iter().map(f).collect::<Vec<_>>();
    result.sidecar_decode_tps = median(&values(&|r| r.client_decode_tokens_per_second));
    result.sidecar_prefill_tps = median(&values(&|r| r.client_prefill_tokens_per_second));
    result.in_process_decode_tps = median(
        &result
            .in_process_runs
            .iter()
            .map(|r| r.decode_tokens_per_second)
            .collect::<Vec<_>>(),
    );
    result.in_process_prefill_tps = median(
        &result
            .in_process_runs
            .iter()
            .map(|r| r.prefill_tokens_per_second)
            .collect::<Vec<_>>(),
    );
    // The ratio is the median of the per-repetition ratios: each pair ran back to back, so a
    // load spike on the shared machine hits both of its runs, while it would skew either median.
    let paired = |a: &dyn Fn(&SidecarRun) -> f64, b: &dyn Fn(&RunResult) -> f64| -> f64 {
        median(
            &result
                .sidecar_runs
                .iter()
                .zip(&result.in_process_runs)
                .map(|(s, i)| ratio(a(s), b(i)))
                .collect::<Vec<_>>(),
        )
    };
    result.decode_ratio = paired(&|r| r.client_decode_tokens_per_second, &|r| {
        r.decode_tokens_per_second
    });
    result.prefill_ratio = paired(&|r| r.client_prefill_tokens_per_second, &|r| {
        r.prefill_tokens_per_second
    });
    result.same_output = match (result.sidecar_runs.first(), result.in_process_runs.first()) {
        (Some(a), Some(b)) => a.text == b.text && a.generated_tokens as usize == b.generated_tokens,
        _ => false,
    };
    if let Some(first) = result.sidecar_runs.first() {
        result.prompt_tokens = first.prompt_tokens as usize;
    }
    Ok(result)
}
