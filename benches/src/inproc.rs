//! The baseline for the sidecar's overhead: a plain llama-cpp-2 loop in this process, with the
//! same model, context size, batch sizes, threads and greedy sampling as the sidecar reports.
//!
//! llama.cpp contexts must stay on the thread that made them, so the model and the context live
//! on one worker thread; runs are requested over a channel.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, OnceLock};
use std::time::Instant;

use anyhow::{anyhow, Context as _};
use hearth_protocol::EngineSettings;
use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use serde::Serialize;
use tokio::sync::oneshot;

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

fn backend() -> anyhow::Result<&'static LlamaBackend> {
    BACKEND
        .get_or_init(|| {
            LlamaBackend::init()
                .map(|mut backend| {
                    backend.void_logs();
                    backend
                })
                .map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|error| anyhow!("llama.cpp backend: {error}"))
}

/// GPU backends this benchmark binary was built with (must match the sidecar's to compare).
pub fn compiled_gpu_backends() -> Vec<String> {
    let mut backends = Vec::new();
    if cfg!(feature = "cuda") {
        backends.push("cuda".to_string());
    }
    if cfg!(feature = "vulkan") {
        backends.push("vulkan".to_string());
    }
    if cfg!(feature = "metal") {
        backends.push("metal".to_string());
    }
    backends
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunResult {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Start → first token sampled (prefill of the whole prompt plus one sample).
    pub time_to_first_token_ms: f64,
    /// First token → last token.
    pub decode_ms: f64,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    pub text: String,
}

struct Job {
    text: String,
    add_bos: bool,
    max_tokens: usize,
    reply: oneshot::Sender<anyhow::Result<RunResult>>,
}

/// Several sequences decoded together, the way llama.cpp's `batched-bench` does: every prompt
/// prefilled (in chunks), then one token per sequence per decode step, `max_tokens` steps.
struct BatchedJob {
    prompts: Vec<String>,
    max_tokens: usize,
    reply: oneshot::Sender<anyhow::Result<BatchedResult>>,
}

enum Work {
    Run(Job),
    Batched(BatchedJob),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BatchedResult {
    pub sequences: usize,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub wall_ms: f64,
}

pub struct InProcess {
    jobs: Option<mpsc::Sender<Work>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    /// Load the model and make a context matching `settings` on a worker thread.
    pub async fn start(model_path: &Path, settings: &EngineSettings) -> anyhow::Result<InProcess> {
        let (jobs, receiver) = mpsc::channel::<Work>();
        let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<()>>();
        let model_path: PathBuf = model_path.to_path_buf();
        let settings = settings.clone();
        let thread = std::thread::Builder::new()
            .name("in-process-llama".into())
            .spawn(move || worker(model_path, settings, receiver, ready_tx))?;
        ready_rx
            .await
            .context("the in-process worker died while loading")??;
        Ok(InProcess {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    pub async fn run(&self, text: &str, add_bos: bool, max_tokens: usize) -> anyhow::Result<RunResult> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .as_ref()
            .context("worker stopped")?
            .send(Work::Run(Job {
                text: text.to_string(),
                add_bos,
                max_tokens,
                reply,
            }))
            .map_err(|_| anyhow!("the in-process worker stopped"))?;
        answer.await.context("the in-process worker died")?
    }

    /// Decode `prompts` together (one sequence each; at most the context's `n_parallel`).
    pub async fn run_batched(
        &self,
        prompts: Vec<String>,
        max_tokens: usize,
    ) -> anyhow::Result<BatchedResult> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .as_ref()
            .context("worker stopped")?
            .send(Work::Batched(BatchedJob {
                prompts,
                max_tokens,
                reply,
            }))
            .map_err(|_| anyhow!("the in-process worker stopped"))?;
        answer.await.context("the in-process worker died")?
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn kv_type(name: &str) -> KvCacheType {
    match name {
        "q8_0" => KvCacheType::Q8_0,
        "q4_0" => KvCacheType::Q4_0,
        "f32" => KvCacheType::F32,
        _ => KvCacheType::F16,
    }
}

fn worker(
    model_path: PathBuf,
    settings: EngineSettings,
    jobs: mpsc::Receiver<Work>,
    ready: oneshot::Sender<anyhow::Result<()>>,
) {
    let setup = (|| -> anyhow::Result<(&'static LlamaBackend, LlamaModel)> {
        let backend = backend()?;
        let mut params = LlamaModelParams::default();
        if compiled_gpu_backends().is_empty() {
            params = params.with_n_gpu_layers(0);
        } else if settings.gpu_layers >= 0 {
            params = params.with_n_gpu_layers(settings.gpu_layers as u32);
        }
        let model = LlamaModel::load_from_file(backend, &model_path, &params)
            .map_err(|error| anyhow!("cannot load {}: {error}", model_path.display()))?;
        Ok((backend, model))
    })();
    let (backend, model) = match setup {
        Ok(pair) => pair,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let threads = settings.n_threads.max(1) as i32;
    let context_params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(settings.n_ctx))
        .with_n_batch(settings.n_batch)
        .with_n_ubatch(settings.n_ubatch)
        .with_n_seq_max(settings.n_parallel.max(1))
        .with_kv_unified(false)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        // The sidecar's default is `auto` (EngineSettings cannot tell auto from off).
        .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO)
        .with_type_k(kv_type(&settings.kv_cache_type))
        .with_type_v(kv_type(&settings.kv_cache_type))
        .with_no_perf(true);
    let mut context = match model.new_context(backend, context_params) {
        Ok(context) => context,
        Err(error) => {
            let _ = ready.send(Err(anyhow!("cannot create the in-process context: {error}")));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let n_batch = context.n_batch().min(context.n_ubatch()).max(1) as usize;
    let mut batch = LlamaBatch::new(n_batch, 1);
    while let Ok(work) = jobs.recv() {
        let job = match work {
            Work::Run(job) => job,
            Work::Batched(job) => {
                let result = batched(&model, &mut context, &mut batch, &job.prompts, job.max_tokens);
                let _ = job.reply.send(result);
                continue;
            }
        };
        let result = (|| -> anyhow::Result<RunResult> {
            let vocab = model.vocab();
            let mut tokens = Vec::new();
            if job.add_bos && vocab.should_add_bos() && vocab.bos().0 >= 0 {
                tokens.push(vocab.bos());
            }
            tokens.extend(vocab.tokenize(job.text.as_bytes(), false, false));
            anyhow::ensure!(!tokens.is_empty(), "empty prompt");
            anyhow::ensure!(
                tokens.len() + job.max_tokens < context.n_ctx() as usize,
                "prompt does not fit the context"
            );
            context.clear_kv_cache();
            let started = Instant::now();
            let mut position = 0usize;
            for chunk in tokens.chunks(n_batch) {
                batch.clear();
                for (offset, token) in chunk.iter().enumerate() {
                    let last = position + offset + 1 == tokens.len();
                    batch.add(*token, (position + offset) as i32, &[0], last)?;
                }
                context.decode(&mut batch)?;
                position += chunk.len();
            }
            let mut sampler = LlamaSampler::chain_simple([LlamaSampler::greedy()]);
            let mut token = sampler.sample(&context, batch.n_tokens() - 1);
            let first = Instant::now();
            let mut generated = 0usize;
            let mut bytes = Vec::new();
            loop {
                if vocab.is_eog(token) {
                    break;
                }
                generated += 1;
                bytes.extend(vocab.token_to_piece(token, false, None));
                if generated >= job.max_tokens {
                    break;
                }
                batch.clear();
                batch.add(token, position as i32, &[0], true)?;
                position += 1;
                context.decode(&mut batch)?;
                token = sampler.sample(&context, 0);
            }
            let done = Instant::now();
            let ttft = first.duration_since(started).as_secs_f64();
            let decode = done.duration_since(first).as_secs_f64();
            Ok(RunResult {
                prompt_tokens: tokens.len(),
                generated_tokens: generated,
                time_to_first_token_ms: ttft * 1000.0,
                decode_ms: decode * 1000.0,
                prefill_tokens_per_second: if ttft > 0.0 {
                    tokens.len() as f64 / ttft
                } else {
                    0.0
                },
                decode_tokens_per_second: if decode > 0.0 && generated > 1 {
                    (generated - 1) as f64 / decode
                } else {
                    0.0
                },
                text: String::from_utf8_lossy(&bytes).into_owned(),
            })
        })();
        let _ = job.reply.send(result);
    }
}

fn batched(
    model: &LlamaModel,
    context: &mut llama_cpp_2::context::LlamaContext,
    batch: &mut LlamaBatch,
    prompts: &[String],
    max_tokens: usize,
) -> anyhow::Result<BatchedResult> {
    let vocab = model.vocab();
    let sequences: Vec<Vec<llama_cpp_2::token::LlamaToken>> = prompts
        .iter()
        .map(|text| {
            let mut tokens = Vec::new();
            if vocab.should_add_bos() && vocab.bos().0 >= 0 {
                tokens.push(vocab.bos());
            }
            tokens.extend(vocab.tokenize(text.as_bytes(), false, false));
            tokens
        })
        .collect();
    anyhow::ensure!(!sequences.is_empty(), "no prompts");
    anyhow::ensure!(sequences.iter().all(|t| !t.is_empty()), "an empty prompt");
    context.clear_kv_cache();
    let capacity = batch_capacity(context);
    anyhow::ensure!(sequences.len() <= capacity, "more sequences than a batch holds");
    let started = Instant::now();
    // Prefill every prompt but its last token, packed into batches of at most `capacity`.
    let body: Vec<(i32, i32, llama_cpp_2::token::LlamaToken)> = sequences
        .iter()
        .enumerate()
        .flat_map(|(seq, tokens)| {
            let body = &tokens[..tokens.len().saturating_sub(1)];
            body.iter()
                .enumerate()
                .map(move |(position, token)| (seq as i32, position as i32, *token))
        })
        .collect();
    for chunk in body.chunks(capacity) {
        batch.clear();
        for (seq, position, token) in chunk {
            batch.add(*token, *position, &[*seq], false)?;
        }
        context.decode(batch)?;
    }
    // Every sequence's last prompt token in one batch: the logits of all of them.
    batch.clear();
    for (seq, tokens) in sequences.iter().enumerate() {
        let last = tokens.len() - 1;
        batch.add(tokens[last], last as i32, &[seq as i32], true)?;
    }
    context.decode(batch)?;
    let mut sampler = LlamaSampler::chain_simple([LlamaSampler::greedy()]);
    let mut next: Vec<_> = (0..sequences.len())
        .map(|i| sampler.sample(context, i as i32))
        .collect();
    let mut positions: Vec<i32> = sequences.iter().map(|t| t.len() as i32).collect();
    let mut generated = 0usize;
    for _ in 0..max_tokens {
        batch.clear();
        for (seq, token) in next.iter().enumerate() {
            batch.add(*token, positions[seq], &[seq as i32], true)?;
            positions[seq] += 1;
        }
        context.decode(batch)?;
        generated += next.len();
        next = (0..sequences.len())
            .map(|i| sampler.sample(context, i as i32))
            .collect();
    }
    Ok(BatchedResult {
        sequences: sequences.len(),
        prompt_tokens: sequences.iter().map(Vec::len).sum(),
        generated_tokens: generated,
        wall_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

fn batch_capacity(context: &llama_cpp_2::context::LlamaContext) -> usize {
    context.n_batch().min(context.n_ubatch()).max(1) as usize
}
