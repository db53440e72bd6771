//! The engine thread: the only code that touches llama.cpp.
//!
//! It owns the model, the context and its sequence slots. Requests arrive on a crossbeam channel
//! (already parsed: no JSON here), wait in a bounded priority queue, and are decoded together:
//! each step builds one batch with one token for every generating slot and a chunk of prompt for
//! slots still reading theirs (continuous batching). Each slot remembers the tokens in its KV
//! cache; a new request goes to the free slot sharing the longest prefix and only evaluates the
//! rest. Cancel flags are checked between chunks and between tokens.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::path::PathBuf;

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use hearth_protocol::*;
use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::{LlamaModelParams, LlamaSplitMode};
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::UnboundedSender;

/// Engine settings as given on the command line.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub model_path: PathBuf,
    pub ctx_size: u32,
    pub parallel: u32,
    pub batch_size: u32,
    pub ubatch_size: u32,
    pub threads: u32,
    pub threads_batch: u32,
    /// `None` = auto (as many as fit).
    pub gpu_layers: Option<u32>,
    pub split_mode: String,
    pub devices: Vec<usize>,
    pub main_gpu: i32,
    /// `None` = auto.
    pub flash_attention: Option<bool>,
    pub kv_cache_type: String,
    pub queue_capacity: usize,
    pub cpu_moe: bool,
}

/// Where an event for a request goes: the connection's outgoing queue.
pub type EventSink = UnboundedSender<SidecarMessage>;

pub enum Command {
    Submit {
        connection: u64,
        id: RequestId,
        job: Job,
        sink: EventSink,
    },
    Tokenize {
        id: RequestId,
        texts: Vec<String>,
        count_only: bool,
        /// Read special-token spellings as tokens (the OpenAI-compatible `/tokenize`, like
        /// llama-server's); the socket protocol counts user text, so it never does.
        parse_special: bool,
        add_special: bool,
        sink: EventSink,
    },
    Cancel {
        connection: u64,
        id: RequestId,
    },
    /// The connection closed: cancel everything it asked for.
    Disconnected {
        connection: u64,
    },
    Stats {
        id: RequestId,
        sink: EventSink,
        clients_connected: u32,
        clients_total: u64,
        started: Instant,
        openai_listen: Option<String>,
    },
    Shutdown,
}

pub enum Job {
    Complete(CompletionParams),
    Chat(ChatParams),
}

impl Job {
    pub fn priority(&self) -> Priority {
        match self {
            Job::Complete(params) => params.priority,
            Job::Chat(params) => params.priority,
        }
    }
}

struct Queued {
    connection: u64,
    id: RequestId,
    priority: Priority,
    prompt: Vec<LlamaToken>,
    sampling: SamplingParams,
    stream: bool,
    reuse_cache: bool,
    sink: EventSink,
    arrived: Instant,
}

struct Active {
    request: Queued,
    sampler: LlamaSampler,
    /// Prompt tokens already in the KV cache (reused or decoded).
    n_prompt_done: usize,
    reused: usize,
    generated: Vec<LlamaToken>,
    /// The last sampled token, to be decoded in the next batch.
    pending_token: Option<LlamaToken>,
    /// Index of this slot's logits in the batch just decoded.
    logits_index: Option<i32>,
    utf8_pending: Vec<u8>,
    text: String,
    sent_len: usize,
    cancelled: bool,
    started: Instant,
    prefill_done_at: Option<Instant>,
    first_token_at: Option<Instant>,
}

struct Slot {
    index: u32,
    /// Tokens whose KV entries are in this slot's sequence, in order (positions 0..len).
    cached: Vec<LlamaToken>,
    active: Option<Active>,
    last_used: Instant,
}

#[derive(Default)]
struct Totals {
    requests_total: u64,
    requests_completed: u64,
    requests_cancelled: u64,
    requests_failed: u64,
    requests_rejected_busy: u64,
    prompt_tokens_total: u64,
    reused_tokens_total: u64,
    evaluated_tokens_total: u64,
    generated_tokens_total: u64,
    prefill_ms_total: f64,
    decode_ms_total: f64,
    recent: VecDeque<RequestMetrics>,
}

const RECENT_METRICS: usize = 64;

pub fn physical_cores() -> u32 {
    if let Ok(text) = std::fs::read_to_string("/proc/cpuinfo") {
        let mut cores = std::collections::HashSet::new();
        let (mut physical, mut core) = (None::<String>, None::<String>);
        for line in text.lines() {
            if let Some((key, value)) = line.split_once(':') {
                match key.trim() {
                    "physical id" => physical = Some(value.trim().to_string()),
                    "core id" => core = Some(value.trim().to_string()),
                    _ => {}
                }
            } else if line.trim().is_empty() {
                if let (Some(p), Some(c)) = (physical.take(), core.take()) {
                    cores.insert((p, c));
                }
            }
        }
        if !cores.is_empty() {
            return cores.len() as u32;
        }
    }
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

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

fn kv_type(name: &str) -> anyhow::Result<KvCacheType> {
    Ok(match name {
        "f16" => KvCacheType::F16,
        "q8_0" => KvCacheType::Q8_0,
        "q4_0" => KvCacheType::Q4_0,
        "f32" => KvCacheType::F32,
        other => bail!("unknown KV-cache type `{other}` (use f16, q8_0 or q4_0)"),
    })
}

/// Check the file before handing it to llama.cpp, so the common mistakes get a clear message.
pub fn check_model_file(path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).with_context(|| {
        format!(
            "model file not found or unreadable: {} — set `model` or run `hearth model pull default`",
            path.display()
        )
    })?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
        bail!(
            "{} is not a GGUF model file (it does not start with the GGUF magic)",
            path.display()
        );
    }
    Ok(())
}

/// Load the model and build the context; returns the hello payload parts.
pub struct LoadedModel {
    pub model: LlamaModel,
    pub info: ModelInfo,
}

pub fn load_model(backend: &LlamaBackend, config: &EngineConfig) -> anyhow::Result<LoadedModel> {
    check_model_file(&config.model_path)?;
    let architecture = llama_cpp_2::gguf::GgufContext::from_file(&config.model_path)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} has a GGUF magic but its header cannot be read: the file is truncated or corrupt",
                config.model_path.display()
            )
        })
        .map(|gguf| gguf_architecture(&gguf))?;

    let split_mode = match config.split_mode.as_str() {
        "none" => LlamaSplitMode::None,
        "layer" => LlamaSplitMode::Layer,
        "row" => LlamaSplitMode::Row,
        other => bail!("unknown split mode `{other}` (use none, layer or row)"),
    };
    let mut params = LlamaModelParams::default()
        .with_split_mode(split_mode)
        .with_main_gpu(config.main_gpu);
    params = match config.gpu_layers {
        Some(layers) => params.with_n_gpu_layers(layers),
        None if compiled_gpu_backends().is_empty() => params.with_n_gpu_layers(0),
        // Auto with a GPU build: llama.cpp's default (-1) offloads every layer; see `fit` below.
        None => params,
    };
    if !config.devices.is_empty() {
        params = params.with_devices(&config.devices).context("--devices")?;
    }
    let mut params = Box::pin(params);
    if config.cpu_moe {
        params.as_mut().add_cpu_moe_override();
    }
    if config.gpu_layers.is_none() && !compiled_gpu_backends().is_empty() {
        // Fit as many layers as the devices hold at the requested context.
        if let Ok(path) = std::ffi::CString::new(config.model_path.to_string_lossy().as_bytes()) {
            let mut cparams = context_params(config)?;
            let mut margins = vec![512usize * 1024 * 1024; 16];
            match params.as_mut().fit_params(
                &path,
                &mut cparams,
                &mut margins,
                512,
                llama_cpp_sys_2::GGML_LOG_LEVEL_WARN,
            ) {
                Ok(fit) => tracing::info!(
                    "fitted GPU layers: {} (n_ctx {})",
                    params.n_gpu_layers(),
                    fit.n_ctx
                ),
                Err(error) => {
                    tracing::warn!("could not fit the model to the GPUs ({error:?}); offloading every layer")
                }
            }
        }
    }

    let model = LlamaModel::load_from_file(backend, &config.model_path, &params).map_err(|error| {
        anyhow::anyhow!(
            "llama.cpp could not load {} (architecture `{architecture}`): {error} — the file may be truncated, \
             or this build of llama.cpp does not support the architecture; see the sidecar log",
            config.model_path.display()
        )
    })?;
    let info = model_info(&model, config, architecture);
    Ok(LoadedModel { model, info })
}

fn gguf_architecture(gguf: &llama_cpp_2::gguf::GgufContext) -> String {
    let index = gguf.find_key("general.architecture");
    if index < 0 {
        return "unknown".to_string();
    }
    gguf.val_str(index).unwrap_or("unknown").to_string()
}

fn token_info(model: &LlamaModel, token: LlamaToken) -> Option<TokenInfo> {
    if token.0 < 0 {
        return None;
    }
    let text = model
        .vocab()
        .text(token)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    Some(TokenInfo { id: token.0, text })
}

fn model_info(model: &LlamaModel, config: &EngineConfig, architecture: String) -> ModelInfo {
    let vocab = model.vocab();
    let name = model
        .meta_val_str("general.name")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| {
            config
                .model_path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    ModelInfo {
        path: config.model_path.display().to_string(),
        name,
        architecture,
        n_params: model.n_params(),
        file_size: std::fs::metadata(&config.model_path)
            .map(|m| m.len())
            .unwrap_or(0),
        n_ctx_train: model.n_ctx_train(),
        n_vocab: model.n_vocab(),
        n_layer: model.n_layer(),
        fim: FimTokens {
            pre: token_info(model, vocab.fim_pre()),
            suf: token_info(model, vocab.fim_suf()),
            mid: token_info(model, vocab.fim_mid()),
            pad: token_info(model, vocab.fim_pad()),
            rep: token_info(model, vocab.fim_rep()),
            sep: token_info(model, vocab.fim_sep()),
        },
        has_chat_template: model.chat_template(None).is_ok(),
        bos: token_info(model, vocab.bos()),
        eos: token_info(model, vocab.eos()),
        eot: token_info(model, vocab.eot()),
        add_bos: vocab.should_add_bos(),
    }
}

fn context_params(config: &EngineConfig) -> anyhow::Result<LlamaContextParams> {
    let flash = match config.flash_attention {
        None => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
        Some(true) => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
        Some(false) => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
    };
    let kv = kv_type(&config.kv_cache_type)?;
    Ok(LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.ctx_size))
        .with_n_batch(config.batch_size)
        .with_n_ubatch(config.ubatch_size)
        .with_n_seq_max(config.parallel)
        .with_kv_unified(false)
        .with_n_threads(config.threads as i32)
        .with_n_threads_batch(config.threads_batch as i32)
        .with_flash_attention_policy(flash)
        .with_type_k(kv)
        .with_type_v(kv)
        .with_no_perf(true))
}

pub fn engine_settings(config: &EngineConfig, gpu_layers: i32) -> EngineSettings {
    EngineSettings {
        n_ctx: config.ctx_size,
        n_ctx_per_slot: config.ctx_size / config.parallel.max(1),
        n_parallel: config.parallel,
        n_batch: config.batch_size,
        n_ubatch: config.ubatch_size,
        n_threads: config.threads,
        gpu_layers,
        flash_attention: config.flash_attention.unwrap_or(false),
        kv_cache_type: config.kv_cache_type.clone(),
        queue_capacity: config.queue_capacity as u32,
        gpu_backends: compiled_gpu_backends(),
    }
}

pub struct Engine<'model> {
    model: &'model LlamaModel,
    context: LlamaContext<'model>,
    info: ModelInfo,
    settings: EngineSettings,
    slots: Vec<Slot>,
    queue: VecDeque<Queued>,
    queue_capacity: usize,
    batch: LlamaBatch<'static>,
    n_batch: usize,
    n_ctx_per_slot: usize,
    totals: Totals,
}

impl<'model> Engine<'model> {
    pub fn new(
        backend: &LlamaBackend,
        loaded: &'model LoadedModel,
        config: &EngineConfig,
    ) -> anyhow::Result<Engine<'model>> {
        let context = loaded.model.new_context(backend, context_params(config)?).map_err(|error| {
            anyhow::anyhow!(
                "cannot create a context of {} tokens ({} slots, KV {}): {error} — lower --ctx-size or use --kv-cache-type q8_0",
                config.ctx_size,
                config.parallel,
                config.kv_cache_type
            )
        })?;
        let n_batch = context.n_batch().min(context.n_ubatch()).max(1) as usize;
        let n_ctx_per_slot = (context.n_ctx() / config.parallel.max(1)) as usize;
        let gpu_layers = if compiled_gpu_backends().is_empty() {
            0
        } else {
            config.gpu_layers.map_or(-1, |n| n as i32)
        };
        let mut settings = engine_settings(config, gpu_layers);
        settings.n_ctx = context.n_ctx();
        settings.n_ctx_per_slot = n_ctx_per_slot as u32;
        let now = Instant::now();
        Ok(Engine {
            model: &loaded.model,
            context,
            info: loaded.info.clone(),
            settings,
            slots: (0..config.parallel.max(1))
                .map(|index| Slot {
                    index,
                    cached: Vec::new(),
                    active: None,
                    last_used: now,
                })
                .collect(),
            queue: VecDeque::new(),
            queue_capacity: config.queue_capacity,
            batch: LlamaBatch::new(n_batch, 1),
            n_batch,
            n_ctx_per_slot,
            totals: Totals::default(),
        })
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Serve commands until `Shutdown` or until every sender is gone.
    pub fn run(mut self, commands: Receiver<Command>) {
        loop {
            let busy = self.slots.iter().any(|slot| slot.active.is_some());
            // Block only when there is nothing to decode.
            let first = if busy {
                commands.try_recv().ok()
            } else {
                match commands.recv_timeout(Duration::from_millis(500)) {
                    Ok(command) => Some(command),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            let mut next = first;
            while let Some(command) = next {
                if matches!(command, Command::Shutdown) {
                    self.fail_everything(ErrorKind::ShuttingDown, "the sidecar is shutting down");
                    return;
                }
                self.handle(command);
                next = commands.try_recv().ok();
            }
            self.assign_slots();
            self.step();
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Submit {
                connection,
                id,
                job,
                sink,
            } => self.submit(connection, id, job, sink),
            Command::Tokenize {
                id,
                texts,
                count_only,
                parse_special,
                add_special,
                sink,
            } => {
                let vocab = self.model.vocab();
                let tokens: Vec<Vec<i32>> = texts
                    .iter()
                    .map(|text| {
                        vocab
                            .tokenize(text.as_bytes(), add_special, parse_special)
                            .into_iter()
                            .map(|t| t.0)
                            .collect()
                    })
                    .collect();
                let counts = tokens.iter().map(|t| t.len() as u32).collect();
                let tokens = if count_only { Vec::new() } else { tokens };
                let _ = sink.send(SidecarMessage::Tokenized { id, counts, tokens });
            }
            Command::Cancel { connection, id } => self.cancel(|c, i| c == connection && i == id),
            Command::Disconnected { connection } => self.cancel(|c, _| c == connection),
            Command::Stats {
                id,
                sink,
                clients_connected,
                clients_total,
                started,
                openai_listen,
            } => {
                let mut stats = self.stats(clients_connected, clients_total, started);
                stats.openai_listen = openai_listen;
                let _ = sink.send(SidecarMessage::Stats { id, stats });
            }
            Command::Shutdown => {}
        }
    }

    fn submit(&mut self, connection: u64, id: RequestId, job: Job, sink: EventSink) {
        self.totals.requests_total += 1;
        let priority = job.priority();
        let prompt = match self.render_prompt(&job) {
            Ok(prompt) => prompt,
            Err(message) => {
                self.totals.requests_failed += 1;
                let _ = sink.send(SidecarMessage::Error {
                    id: Some(id),
                    kind: ErrorKind::BadRequest,
                    message,
                });
                return;
            }
        };
        if prompt.len() + 1 > self.n_ctx_per_slot {
            self.totals.requests_failed += 1;
            let message = format!(
                "prompt is {} tokens but a slot holds {} ({} context / {} slots): shorten the context budget or raise --ctx-size",
                prompt.len(),
                self.n_ctx_per_slot,
                self.settings.n_ctx,
                self.settings.n_parallel
            );
            let _ = sink.send(SidecarMessage::Error {
                id: Some(id),
                kind: ErrorKind::PromptTooLong,
                message,
            });
            return;
        }
        if self.queue.len() >= self.queue_capacity {
            self.totals.requests_rejected_busy += 1;
            let message = format!(
                "busy: {} requests already queued; try again shortly",
                self.queue.len()
            );
            let _ = sink.send(SidecarMessage::Error {
                id: Some(id),
                kind: ErrorKind::Busy,
                message,
            });
            return;
        }
        let (sampling, stream, reuse_cache) = match job {
            Job::Complete(params) => (params.sampling, params.stream, params.reuse_cache),
            Job::Chat(params) => (params.sampling, params.stream, true),
        };
        let queued = Queued {
            connection,
            id,
            priority,
            prompt,
            sampling,
            stream,
            reuse_cache,
            sink,
            arrived: Instant::now(),
        };
        // Interactive requests go before every background one; FIFO within a priority.
        let position = self
            .queue
            .iter()
            .position(|q| q.priority < queued.priority)
            .unwrap_or(self.queue.len());
        self.queue.insert(position, queued);
    }

    fn render_prompt(&self, job: &Job) -> Result<Vec<LlamaToken>, String> {
        let vocab = self.model.vocab();
        match job {
            Job::Complete(params) => {
                let mut tokens = Vec::new();
                if params.add_bos && vocab.should_add_bos() && vocab.bos().0 >= 0 {
                    tokens.push(vocab.bos());
                }
                for part in &params.prompt {
                    match part {
                        PromptPart::Text(text) => {
                            tokens.extend(vocab.tokenize(text.as_bytes(), false, false))
                        }
                        PromptPart::SpecialText(text) => {
                            tokens.extend(vocab.tokenize(text.as_bytes(), false, true))
                        }
                        PromptPart::Special(special) => {
                            let token = match special {
                                SpecialToken::Bos => vocab.bos(),
                                SpecialToken::Eos => vocab.eos(),
                                SpecialToken::FimPre => vocab.fim_pre(),
                                SpecialToken::FimSuf => vocab.fim_suf(),
                                SpecialToken::FimMid => vocab.fim_mid(),
                                SpecialToken::FimPad => vocab.fim_pad(),
                                SpecialToken::FimRep => vocab.fim_rep(),
                                SpecialToken::FimSep => vocab.fim_sep(),
                            };
                            if token.0 < 0 {
                                return Err(format!("this model's vocabulary has no {special:?} token"));
                            }
                            tokens.push(token);
                        }
                    }
                }
                if tokens.is_empty() {
                    return Err("empty prompt".to_string());
                }
                Ok(tokens)
            }
            Job::Chat(params) => {
                let template = self
                    .model
                    .chat_template(None)
                    .map_err(|_| "this model has no chat template; use a completion request".to_string())?;
                let messages = params
                    .messages
                    .iter()
                    .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| format!("invalid chat message: {error}"))?;
                let text = self
                    .model
                    .apply_chat_template(&template, &messages, true)
                    .map_err(|error| format!("cannot render the chat template: {error}"))?;
                let tokens = vocab.tokenize(text.as_bytes(), vocab.should_add_bos(), true);
                if tokens.is_empty() {
                    return Err("empty prompt".to_string());
                }
                Ok(tokens)
            }
        }
    }

    fn build_sampler(&self, sampling: &SamplingParams) -> Result<LlamaSampler, String> {
        let mut chain = Vec::new();
        let grammar = match (&sampling.grammar, &sampling.json_schema) {
            (Some(grammar), _) => Some(grammar.clone()),
            (None, Some(schema)) => Some(
                llama_cpp_2::json_schema_to_grammar(&schema.to_string())
                    .map_err(|error| format!("invalid JSON schema: {error}"))?,
            ),
            (None, None) => None,
        };
        if let Some(grammar) = grammar {
            chain.push(
                LlamaSampler::grammar(self.model, &grammar, "root")
                    .map_err(|error| format!("invalid grammar: {error}"))?,
            );
        }
        if sampling.repeat_penalty != 1.0 && sampling.repeat_penalty > 0.0 {
            chain.push(LlamaSampler::penalties(
                self.model.n_vocab(),
                sampling.repeat_last_n,
                sampling.repeat_penalty,
                0.0,
                0.0,
            ));
        }
        if sampling.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            if sampling.top_k > 0 {
                chain.push(LlamaSampler::top_k(sampling.top_k));
            }
            if sampling.top_p < 1.0 {
                chain.push(LlamaSampler::top_p(sampling.top_p, 1));
            }
            if sampling.min_p > 0.0 {
                chain.push(LlamaSampler::min_p(sampling.min_p, 1));
            }
            chain.push(LlamaSampler::temp(sampling.temperature));
            chain.push(LlamaSampler::dist(sampling.seed));
        }
        Ok(LlamaSampler::chain_simple(chain))
    }

    fn cancel(&mut self, matches: impl Fn(u64, RequestId) -> bool) {
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for queued in self.queue.drain(..) {
            if matches(queued.connection, queued.id) {
                self.totals.requests_cancelled += 1;
                let _ = queued.sink.send(SidecarMessage::Error {
                    id: Some(queued.id),
                    kind: ErrorKind::Cancelled,
                    message: "cancelled".into(),
                });
            } else {
                kept.push_back(queued);
            }
        }
        self.queue = kept;
        for slot in &mut self.slots {
            if let Some(active) = &mut slot.active {
                if matches(active.request.connection, active.request.id) {
                    active.cancelled = true;
                }
            }
        }
    }

    fn fail_everything(&mut self, kind: ErrorKind, message: &str) {
        for queued in self.queue.drain(..) {
            let _ = queued.sink.send(SidecarMessage::Error {
                id: Some(queued.id),
                kind,
                message: message.into(),
            });
        }
        for slot in &mut self.slots {
            if let Some(active) = slot.active.take() {
                let _ = active.request.sink.send(SidecarMessage::Error {
                    id: Some(active.request.id),
                    kind,
                    message: message.into(),
                });
            }
        }
    }

    /// Move queued requests into free slots, each to the free slot sharing its longest prefix.
    fn assign_slots(&mut self) {
        let n_slots = self.slots.len();
        while !self.queue.is_empty() {
            let free: Vec<usize> = (0..n_slots).filter(|&i| self.slots[i].active.is_none()).collect();
            if free.is_empty() {
                return;
            }
            // Keep one slot for interactive requests when there are several.
            let background_running = self
                .slots
                .iter()
                .filter(|s| {
                    s.active
                        .as_ref()
                        .is_some_and(|a| a.request.priority == Priority::Background)
                })
                .count();
            let candidate_index = self.queue.iter().position(|q| {
                q.priority == Priority::Interactive || n_slots == 1 || background_running + 1 < n_slots
            });
            let Some(candidate_index) = candidate_index else {
                return;
            };
            let Some(request) = self.queue.remove(candidate_index) else {
                return;
            };

            let chosen = if request.reuse_cache {
                free.iter()
                    .copied()
                    .max_by_key(|&i| {
                        (
                            common_prefix(&self.slots[i].cached, &request.prompt),
                            std::cmp::Reverse(self.slots[i].last_used),
                        )
                    })
                    .unwrap_or(free[0])
            } else {
                // Cold evaluation on purpose: the least recently used slot, emptied.
                free.iter()
                    .copied()
                    .min_by_key(|&i| self.slots[i].last_used)
                    .unwrap_or(free[0])
            };
            if let Err(message) = self.start(chosen, request) {
                tracing::warn!("{message}");
            }
        }
    }

    fn start(&mut self, slot_index: usize, request: Queued) -> Result<(), String> {
        let sampler = match self.build_sampler(&request.sampling) {
            Ok(sampler) => sampler,
            Err(message) => {
                self.totals.requests_failed += 1;
                let _ = request.sink.send(SidecarMessage::Error {
                    id: Some(request.id),
                    kind: ErrorKind::BadRequest,
                    message: message.clone(),
                });
                return Err(message);
            }
        };
        let slot = &mut self.slots[slot_index];
        let seq = slot.index as i32;
        let mut keep = if request.reuse_cache {
            common_prefix(&slot.cached, &request.prompt)
        } else {
            0
        };
        // At least one prompt token must be decoded to get logits.
        if keep >= request.prompt.len() {
            keep = request.prompt.len() - 1;
        }
        let removed = self
            .context
            .clear_kv_cache_seq(Some(seq as u32), Some(keep as u32), None)
            .unwrap_or(false);
        if !removed {
            // Some caches (sliding window, recurrent) cannot drop a suffix: start the slot over.
            let _ = self.context.clear_kv_cache_seq(Some(seq as u32), None, None);
            keep = 0;
        }
        slot.cached.truncate(keep);
        slot.last_used = Instant::now();
        slot.active = Some(Active {
            sampler,
            n_prompt_done: keep,
            reused: keep,
            generated: Vec::new(),
            pending_token: None,
            logits_index: None,
            utf8_pending: Vec::new(),
            text: String::new(),
            sent_len: 0,
            cancelled: false,
            started: Instant::now(),
            prefill_done_at: None,
            first_token_at: None,
            request,
        });
        Ok(())
    }

    /// One decode step over every active slot.
    fn step(&mut self) {
        // Finish cancelled requests first: they must not cost another chunk.
        for index in 0..self.slots.len() {
            if self.slots[index].active.as_ref().is_some_and(|a| a.cancelled) {
                self.finish_with_error(index, ErrorKind::Cancelled, "cancelled".into());
            }
        }
        if self.slots.iter().all(|slot| slot.active.is_none()) {
            return;
        }

        self.batch.clear();
        let mut budget = self.n_batch;
        // While someone waits for a completion, background work (reviews, refactors) pauses:
        // its tokens would make every step of the interactive request slower. It resumes, with
        // its cache intact, as soon as no interactive request is active.
        let interactive_active = self.slots.iter().any(|slot| {
            slot.active
                .as_ref()
                .is_some_and(|a| a.request.priority == Priority::Interactive)
        });
        let paused = |active: &Active| interactive_active && active.request.priority == Priority::Background;
        // Generating slots first: one token each keeps every stream moving.
        for slot in &mut self.slots {
            let seq = slot.index as i32;
            let Some(active) = &mut slot.active else { continue };
            active.logits_index = None;
            if paused(active) {
                continue;
            }
            if let Some(token) = active.pending_token.take() {
                let position = slot.cached.len() as i32;
                if budget == 0 || self.batch.add(token, position, &[seq], true).is_err() {
                    active.pending_token = Some(token);
                    continue;
                }
                active.logits_index = Some(self.batch.n_tokens() - 1);
                slot.cached.push(token);
                budget -= 1;
            }
        }
        // Then prompt chunks, interactive slots first.
        let mut order: Vec<usize> = (0..self.slots.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.slots[i].active.as_ref().map(|a| a.request.priority)));
        for index in order {
            let slot = &mut self.slots[index];
            let seq = slot.index as i32;
            let Some(active) = &mut slot.active else { continue };
            if paused(active) {
                continue;
            }
            let prompt_len = active.request.prompt.len();
            while active.n_prompt_done < prompt_len && budget > 0 {
                let token = active.request.prompt[active.n_prompt_done];
                let last = active.n_prompt_done + 1 == prompt_len;
                let position = slot.cached.len() as i32;
                if self.batch.add(token, position, &[seq], last).is_err() {
                    budget = 0;
                    break;
                }
                slot.cached.push(token);
                active.n_prompt_done += 1;
                budget -= 1;
                if last {
                    active.logits_index = Some(self.batch.n_tokens() - 1);
                }
            }
        }
        if self.batch.n_tokens() == 0 {
            return;
        }

        let began = Instant::now();
        let outcome = self.context.decode(&mut self.batch);
        let elapsed = began.elapsed();
        if let Err(error) = outcome {
            tracing::error!("decode failed: {error}");
            for index in 0..self.slots.len() {
                if self.slots[index].active.is_some() {
                    // The cache state of these slots is unknown now: forget it.
                    let seq = self.slots[index].index;
                    let _ = self.context.clear_kv_cache_seq(Some(seq), None, None);
                    self.slots[index].cached.clear();
                    self.finish_with_error(
                        index,
                        ErrorKind::Engine,
                        format!("llama.cpp decode failed: {error}"),
                    );
                }
            }
            return;
        }
        let n_tokens = self.batch.n_tokens().max(1) as f64;

        for index in 0..self.slots.len() {
            let n_ctx_per_slot = self.n_ctx_per_slot;
            let slot = &mut self.slots[index];
            let Some(active) = &mut slot.active else { continue };
            let Some(logits_index) = active.logits_index else {
                continue;
            };
            // Attribute decode time: prompt tokens to prefill, generated tokens to decode.
            let _ = (elapsed, n_tokens);
            if active.prefill_done_at.is_none() {
                active.prefill_done_at = Some(Instant::now());
            }
            let token = active.sampler.sample(&self.context, logits_index);
            if active.first_token_at.is_none() {
                active.first_token_at = Some(Instant::now());
            }
            let vocab = self.model.vocab();
            if vocab.is_eog(token) {
                self.finish_ok(index, StopReason::EndOfGeneration);
                continue;
            }
            active.generated.push(token);
            let piece = vocab.token_to_piece(token, false, None);
            active.utf8_pending.extend_from_slice(&piece);
            let valid = match std::str::from_utf8(&active.utf8_pending) {
                Ok(text) => text.len(),
                Err(error) if error.error_len().is_none() => error.valid_up_to(),
                Err(_) => {
                    // Not UTF-8 at all: keep it visible rather than stall.
                    let lossy = String::from_utf8_lossy(&active.utf8_pending).into_owned();
                    active.utf8_pending.clear();
                    active.text.push_str(&lossy);
                    0
                }
            };
            if valid > 0 {
                let bytes: Vec<u8> = active.utf8_pending.drain(..valid).collect();
                active
                    .text
                    .push_str(&String::from_utf8(bytes).unwrap_or_default());
            }
            // Stop strings: cut the text at the first one.
            let stop_at = active
                .request
                .sampling
                .stop
                .iter()
                .filter(|stop| !stop.is_empty())
                .filter_map(|stop| active.text.find(stop.as_str()))
                .min();
            if let Some(stop_at) = stop_at {
                active.text.truncate(stop_at);
                self.finish_ok(index, StopReason::StopString);
                continue;
            }
            if active.request.stream {
                let safe_end = active.text.len() - held_back(&active.text, &active.request.sampling.stop);
                if safe_end > active.sent_len {
                    let piece = active.text[active.sent_len..safe_end].to_string();
                    active.sent_len = safe_end;
                    let _ = active.request.sink.send(SidecarMessage::Token {
                        id: active.request.id,
                        text: piece,
                    });
                }
            }
            if active.generated.len() >= active.request.sampling.max_tokens as usize {
                self.finish_ok(index, StopReason::MaxTokens);
                continue;
            }
            if slot.cached.len() + 1 >= n_ctx_per_slot {
                self.finish_ok(index, StopReason::ContextFull);
                continue;
            }
            active.pending_token = Some(token);
        }
    }

    fn metrics(slot_index: u32, active: &Active) -> RequestMetrics {
        let now = Instant::now();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let prompt_tokens = active.request.prompt.len() as u32;
        // A cancelled request evaluated only part of its prompt.
        let evaluated = (active.n_prompt_done - active.reused) as u32;
        let prefill_end = active.prefill_done_at.unwrap_or(now);
        let prefill_ms = ms(prefill_end.saturating_duration_since(active.started));
        let decode_ms = ms(now.saturating_duration_since(prefill_end));
        let generated = active.generated.len() as u32;
        RequestMetrics {
            slot: slot_index,
            prompt_tokens,
            reused_tokens: active.reused as u32,
            evaluated_tokens: evaluated,
            generated_tokens: generated,
            queue_ms: ms(active.started.saturating_duration_since(active.request.arrived)),
            time_to_first_token_ms: ms(active
                .first_token_at
                .unwrap_or(now)
                .saturating_duration_since(active.request.arrived)),
            prefill_ms,
            decode_ms,
            total_ms: ms(now.saturating_duration_since(active.request.arrived)),
            prefill_tokens_per_second: if prefill_ms > 0.0 {
                evaluated as f64 / (prefill_ms / 1000.0)
            } else {
                0.0
            },
            // The first generated token comes from the prefill's logits.
            decode_tokens_per_second: if decode_ms > 0.0 && generated > 1 {
                (generated - 1) as f64 / (decode_ms / 1000.0)
            } else {
                0.0
            },
        }
    }

    fn record(&mut self, metrics: &RequestMetrics) {
        let totals = &mut self.totals;
        totals.prompt_tokens_total += u64::from(metrics.prompt_tokens);
        totals.reused_tokens_total += u64::from(metrics.reused_tokens);
        totals.evaluated_tokens_total += u64::from(metrics.evaluated_tokens);
        totals.generated_tokens_total += u64::from(metrics.generated_tokens);
        totals.prefill_ms_total += metrics.prefill_ms;
        totals.decode_ms_total += metrics.decode_ms;
        if totals.recent.len() == RECENT_METRICS {
            totals.recent.pop_front();
        }
        totals.recent.push_back(metrics.clone());
    }

    fn finish_ok(&mut self, index: usize, stop_reason: StopReason) {
        let slot_index = self.slots[index].index;
        let Some(mut active) = self.slots[index].active.take() else {
            return;
        };
        if !active.utf8_pending.is_empty() {
            let rest = String::from_utf8_lossy(&active.utf8_pending).into_owned();
            active.text.push_str(&rest);
        }
        // The sampled-but-not-decoded token is not in the cache: `cached` stays exact.
        self.slots[index].last_used = Instant::now();
        let metrics = Self::metrics(slot_index, &active);
        self.record(&metrics);
        self.totals.requests_completed += 1;
        if active.request.stream && active.text.len() > active.sent_len {
            let piece = active.text[active.sent_len..].to_string();
            let _ = active.request.sink.send(SidecarMessage::Token {
                id: active.request.id,
                text: piece,
            });
        }
        let _ = active.request.sink.send(SidecarMessage::Done {
            id: active.request.id,
            outcome: CompletionOutcome {
                text: active.text,
                stop_reason,
                metrics,
            },
        });
    }

    fn finish_with_error(&mut self, index: usize, kind: ErrorKind, message: String) {
        let slot_index = self.slots[index].index;
        let Some(active) = self.slots[index].active.take() else {
            return;
        };
        // A prompt cut short leaves a valid prefix in the cache: keep it for the next request.
        self.slots[index].last_used = Instant::now();
        let metrics = Self::metrics(slot_index, &active);
        self.record(&metrics);
        if kind == ErrorKind::Cancelled {
            self.totals.requests_cancelled += 1;
        } else {
            self.totals.requests_failed += 1;
        }
        let message = if kind == ErrorKind::Cancelled {
            format!(
                "cancelled after {} of {} prompt tokens and {} generated",
                active.n_prompt_done,
                active.request.prompt.len(),
                active.generated.len()
            )
        } else {
            message
        };
        let _ = active.request.sink.send(SidecarMessage::Error {
            id: Some(active.request.id),
            kind,
            message,
        });
    }

    fn stats(&self, clients_connected: u32, clients_total: u64, started: Instant) -> SidecarStats {
        let totals = &self.totals;
        SidecarStats {
            pid: std::process::id(),
            uptime_secs: started.elapsed().as_secs_f64(),
            clients_connected,
            clients_total,
            requests_total: totals.requests_total,
            requests_completed: totals.requests_completed,
            requests_cancelled: totals.requests_cancelled,
            requests_failed: totals.requests_failed,
            requests_rejected_busy: totals.requests_rejected_busy,
            queue_length: self.queue.len() as u32,
            active_requests: self.slots.iter().filter(|s| s.active.is_some()).count() as u32,
            prompt_tokens_total: totals.prompt_tokens_total,
            reused_tokens_total: totals.reused_tokens_total,
            evaluated_tokens_total: totals.evaluated_tokens_total,
            generated_tokens_total: totals.generated_tokens_total,
            prefill_ms_total: totals.prefill_ms_total,
            decode_ms_total: totals.decode_ms_total,
            resident_memory_bytes: resident_memory_bytes(),
            model: self.info.clone(),
            engine: self.settings.clone(),
            recent: totals.recent.iter().cloned().collect(),
            openai_listen: None,
        }
    }
}

/// Length of the longest common prefix of two token lists.
pub fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// How many trailing bytes of `text` might be the start of a stop string (held back while streaming).
fn held_back(text: &str, stops: &[String]) -> usize {
    let mut held = 0;
    for stop in stops {
        for len in (1..stop.len().min(text.len() + 1)).rev() {
            if stop.is_char_boundary(len) && text.ends_with(&stop[..len]) {
                held = held.max(len);
                break;
            }
        }
    }
    // Never split a character.
    while held > 0 && !text.is_char_boundary(text.len() - held) {
        held += 1;
    }
    held
}

fn resident_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|text| {
            text.split_whitespace()
                .nth(1)
                .and_then(|pages| pages.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_back_keeps_possible_stop_prefixes() {
        let stops = vec!["\n\n".to_string(), "```".to_string()];
        assert_eq!(held_back("let x = 1;\n", &stops), 1);
        assert_eq!(held_back("code ``", &stops), 2);
        assert_eq!(held_back("plain", &stops), 0);
        assert_eq!(held_back("", &stops), 0);
    }

    #[test]
    fn common_prefix_counts_equal_leading_tokens() {
        let a = [LlamaToken(1), LlamaToken(2), LlamaToken(3)];
        let b = [LlamaToken(1), LlamaToken(2), LlamaToken(9), LlamaToken(3)];
        assert_eq!(common_prefix(&a, &b), 2);
        assert_eq!(common_prefix(&a, &a), 3);
        assert_eq!(common_prefix(&[], &a), 0);
    }
}
