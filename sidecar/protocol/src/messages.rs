//! Every message that crosses the sidecar socket.
//!
//! Frames carry one JSON document each (see [`crate::framing`]). The first exchange on a connection
//! is always [`ClientMessage::Hello`] → [`SidecarMessage::Hello`] (or an error saying the versions
//! differ). After that, requests carry a client-chosen `id`; every request gets exactly one final
//! message (`Done`, `Tokenized`, `Stats` or `Error`), possibly preceded by streamed `Token`s.

use serde::{Deserialize, Serialize};

/// Bumped whenever a message changes shape. Both sides refuse a peer with another version.
pub const PROTOCOL_VERSION: u32 = 1;

/// Request identifier, unique per connection (chosen by the client).
pub type RequestId = u64;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Hello {
        protocol_version: u32,
        /// Free text for logs, e.g. `hearth lsp 0.1.0 (pid 1234)`.
        client: String,
    },
    Complete {
        id: RequestId,
        params: CompletionParams,
    },
    Chat {
        id: RequestId,
        params: ChatParams,
    },
    Tokenize {
        id: RequestId,
        /// Texts to tokenize; the answer has one token list per text.
        texts: Vec<String>,
        /// Only return the counts, not the token ids.
        count_only: bool,
    },
    Cancel {
        id: RequestId,
    },
    Stats {
        id: RequestId,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SidecarMessage {
    Hello {
        protocol_version: u32,
        sidecar_version: String,
        pid: u32,
        model: ModelInfo,
        engine: EngineSettings,
    },
    /// A piece of generated text (always whole UTF-8 characters).
    Token {
        id: RequestId,
        text: String,
    },
    Done {
        id: RequestId,
        outcome: CompletionOutcome,
    },
    Tokenized {
        id: RequestId,
        counts: Vec<u32>,
        /// Empty when `count_only` was asked.
        tokens: Vec<Vec<i32>>,
    },
    Stats {
        id: RequestId,
        stats: SidecarStats,
    },
    Error {
        /// `None` for errors about the connection itself (bad frame, version mismatch).
        id: Option<RequestId>,
        kind: ErrorKind,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The queue is full; try again later.
    Busy,
    /// The prompt does not fit the context; the message has the numbers.
    PromptTooLong,
    /// The request was cancelled (by the client or by a newer request).
    Cancelled,
    /// The peers speak different protocol versions.
    VersionMismatch,
    /// The request itself is invalid (bad grammar, unknown special token, malformed frame...).
    BadRequest,
    /// llama.cpp refused (decode failure, template failure...).
    Engine,
    /// The sidecar is shutting down.
    ShuttingDown,
    /// A remote server did not answer in time.
    Timeout,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Background work: reviews, refactors. Served after every interactive request.
    Background,
    /// Completions the user is waiting for.
    #[default]
    Interactive,
}

/// Special tokens the prompt can name; the sidecar maps them to the model's own ids.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SpecialToken {
    Bos,
    Eos,
    FimPre,
    FimSuf,
    FimMid,
    FimPad,
    FimRep,
    FimSep,
}

/// One piece of a token-level prompt description.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PromptPart {
    /// Plain text: special-token text inside it is NOT parsed (user code can't inject control tokens).
    Text(String),
    /// Text in which special tokens written out (e.g. `<|file_sep|>`) are parsed as tokens.
    SpecialText(String),
    /// One of the model's special tokens.
    Special(SpecialToken),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SamplingParams {
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// 0 means greedy (the default for completions).
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    /// 1.0 disables.
    pub repeat_penalty: f32,
    pub repeat_last_n: i32,
    pub seed: u32,
    /// Generation stops before the first occurrence of any of these strings.
    pub stop: Vec<String>,
    /// A GBNF grammar (root rule `root`) constraining the output.
    pub grammar: Option<String>,
    /// A JSON schema constraining the output (converted to GBNF by llama.cpp).
    pub json_schema: Option<serde_json::Value>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_tokens: 64,
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
            stop: Vec::new(),
            grammar: None,
            json_schema: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CompletionParams {
    pub prompt: Vec<PromptPart>,
    /// Add the model's BOS token first when its vocabulary asks for one.
    #[serde(default = "default_true")]
    pub add_bos: bool,
    #[serde(default)]
    pub sampling: SamplingParams,
    #[serde(default)]
    pub priority: Priority,
    /// Stream `Token` messages; otherwise only `Done` carries the text.
    #[serde(default)]
    pub stream: bool,
    /// Use the slot whose cache shares the longest prefix (default) — `false` forces a cold
    /// evaluation (benchmarks compare the two).
    #[serde(default = "default_true")]
    pub reuse_cache: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatParams {
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub sampling: SamplingParams,
    #[serde(default = "background")]
    pub priority: Priority,
    #[serde(default)]
    pub stream: bool,
}

fn background() -> Priority {
    Priority::Background
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: i32,
    pub text: String,
}

/// The fill-in-the-middle tokens of the model's vocabulary, as llama.cpp's vocab reports them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FimTokens {
    pub pre: Option<TokenInfo>,
    pub suf: Option<TokenInfo>,
    pub mid: Option<TokenInfo>,
    pub pad: Option<TokenInfo>,
    pub rep: Option<TokenInfo>,
    pub sep: Option<TokenInfo>,
}

impl FimTokens {
    /// Infilling needs at least prefix, suffix and middle.
    pub fn can_infill(&self) -> bool {
        self.pre.is_some() && self.suf.is_some() && self.mid.is_some()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelInfo {
    pub path: String,
    pub name: String,
    pub architecture: String,
    pub n_params: u64,
    pub file_size: u64,
    pub n_ctx_train: u32,
    pub n_vocab: i32,
    pub n_layer: u32,
    pub fim: FimTokens,
    pub has_chat_template: bool,
    pub bos: Option<TokenInfo>,
    pub eos: Option<TokenInfo>,
    pub eot: Option<TokenInfo>,
    pub add_bos: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EngineSettings {
    pub n_ctx: u32,
    pub n_ctx_per_slot: u32,
    pub n_parallel: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
    pub n_threads: u32,
    pub gpu_layers: i32,
    pub flash_attention: bool,
    pub kv_cache_type: String,
    pub queue_capacity: u32,
    pub gpu_backends: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// `max_tokens` reached.
    MaxTokens,
    /// A stop string was found (it is not part of the text).
    StopString,
    /// The slot's context filled up.
    ContextFull,
}

/// Per-request numbers, reported with every completion.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RequestMetrics {
    pub slot: u32,
    pub prompt_tokens: u32,
    /// Prompt tokens whose KV entries were already in the slot's cache.
    pub reused_tokens: u32,
    /// Prompt tokens decoded for this request (`prompt_tokens - reused_tokens`).
    pub evaluated_tokens: u32,
    pub generated_tokens: u32,
    pub queue_ms: f64,
    /// From the request's arrival to its first generated token.
    pub time_to_first_token_ms: f64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub total_ms: f64,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CompletionOutcome {
    pub text: String,
    pub stop_reason: StopReason,
    pub metrics: RequestMetrics,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SidecarStats {
    pub pid: u32,
    pub uptime_secs: f64,
    pub clients_connected: u32,
    pub clients_total: u64,
    pub requests_total: u64,
    pub requests_completed: u64,
    pub requests_cancelled: u64,
    pub requests_failed: u64,
    pub requests_rejected_busy: u64,
    pub queue_length: u32,
    pub active_requests: u32,
    pub prompt_tokens_total: u64,
    pub reused_tokens_total: u64,
    pub evaluated_tokens_total: u64,
    pub generated_tokens_total: u64,
    pub prefill_ms_total: f64,
    pub decode_ms_total: f64,
    /// Resident memory of the sidecar process (host), in bytes.
    pub resident_memory_bytes: u64,
    pub model: ModelInfo,
    pub engine: EngineSettings,
    /// Most recent requests, newest last (bounded).
    pub recent: Vec<RequestMetrics>,
    /// Address of the OpenAI-compatible HTTP listener (`--openai-listen`), when one is open.
    #[serde(default)]
    pub openai_listen: Option<String>,
}
