//! An OpenAI-compatible server (vLLM, llama.cpp's llama-server, Ollama, LM Studio, or
//! `hearth-sidecar --openai-listen`) behind the same handle as the local sidecar.
//!
//! [`SidecarClient::connect_remote`] returns an ordinary [`SidecarClient`]: requests still go in
//! as [`ClientMessage`]s and answers still come back as [`SidecarMessage`]s, but a dispatcher task
//! turns each one into HTTP:
//!
//! - `Complete` → `POST {base}/completions` with the prompt rendered to text (special tokens by
//!   their spelling, which these servers parse in a text prompt), streamed over SSE.
//! - `Chat` → `POST {base}/chat/completions`; a JSON schema goes as `response_format`.
//! - `Tokenize` → `POST {root}/tokenize` (llama-server and vLLM both have it; an error otherwise,
//!   and the context engine falls back to its estimate).
//! - `Cancel` → the request's task is aborted, which closes its HTTP connection; llama-server and
//!   vLLM stop generating when the client goes away.
//! - `Stats` → counters kept here.
//!
//! The model's FIM tokens are read from the server's own vocabulary: every spelling llama.cpp
//! knows is tokenized through `/tokenize`, and a spelling that comes back as one token is a
//! special token of that vocabulary. Nothing contacts the network unless a URL is configured.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::client::{deliver, ClientError, Pending, Shared, SidecarClient, SidecarHello};
use crate::messages::*;

/// How to find the remote model's fill-in-the-middle tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FimSetting {
    /// Probe the server's vocabulary through `/tokenize`; no FIM when it has no such endpoint.
    Auto,
    /// Prefix-only prompts.
    Off,
    /// The spellings of a known family (`qwen`, `starcoder`, `deepseek`, `codellama`,
    /// `codestral`), for servers without `/tokenize` (Ollama, LM Studio).
    Family(String),
}

impl FimSetting {
    pub fn parse(text: &str) -> Result<FimSetting, String> {
        match text {
            "" | "auto" => Ok(FimSetting::Auto),
            "none" | "off" => Ok(FimSetting::Off),
            family if FIM_FAMILIES.iter().any(|(name, _)| *name == family) => {
                Ok(FimSetting::Family(family.to_string()))
            }
            other => Err(format!(
                "unknown FIM setting `{other}`: use auto, none, {}",
                FIM_FAMILIES
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Base URL of the OpenAI API, e.g. `http://gpu-box:8000/v1`.
    pub base_url: String,
    /// Model name sent with each request; empty = the first model the server lists.
    pub model: String,
    /// Bearer token (read by the caller from an environment variable).
    pub api_key: Option<String>,
    /// The variable the key comes from, named in error messages.
    pub api_key_env: String,
    pub fim: FimSetting,
    /// Context size assumed when the server does not report one.
    pub context_size: u32,
    pub connect_timeout: Duration,
    /// Whole-request limit (headers and the full streamed answer).
    pub request_timeout: Duration,
    /// Retries after a connection failure, 429 or 5xx before any answer arrived.
    pub max_retries: u32,
    /// Extra PEM root certificate for a server with a private CA.
    pub ca_file: Option<PathBuf>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            base_url: String::new(),
            model: String::new(),
            api_key: None,
            api_key_env: "HEARTH_OPENAI_API_KEY".into(),
            fim: FimSetting::Auto,
            context_size: 8192,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(120),
            max_retries: 2,
            ca_file: None,
        }
    }
}

/// FIM spellings per family: prefix, suffix, middle, pad, repo name, file separator — the texts
/// llama.cpp's vocabulary loader recognises (`src/llama-vocab.cpp`).
const FIM_FAMILIES: &[(&str, [&str; 6])] = &[
    (
        "qwen",
        [
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            "<|fim_pad|>",
            "<|repo_name|>",
            "<|file_sep|>",
        ],
    ),
    (
        "starcoder",
        [
            "<fim_prefix>",
            "<fim_suffix>",
            "<fim_middle>",
            "<fim_pad>",
            "<repo_name>",
            "<file_sep>",
        ],
    ),
    (
        "deepseek",
        ["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "", "", ""],
    ),
    ("codellama", ["<PRE>", "<SUF>", "<MID>", "<EOT>", "", ""]),
    ("codestral", ["[PREFIX]", "[SUFFIX]", "[MIDDLE]", "", "", ""]),
    (
        "generic",
        [
            "<fim-prefix>",
            "<fim-suffix>",
            "<fim-middle>",
            "<fim-pad>",
            "<reponame>",
            "<filename>",
        ],
    ),
];

/// Common control-token spellings that must not reach a server inside user text.
const CONTROL_SPELLINGS: &[&str] = &[
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|end_of_text|>",
    "<|begin_of_text|>",
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<s>",
    "</s>",
];

struct RemoteState {
    http: reqwest::Client,
    base: String,
    root: String,
    model: ModelInfo,
    engine: EngineSettings,
    request_timeout: Duration,
    max_retries: u32,
    api_key_env: String,
    has_key: bool,
    tokenize_missing: AtomicBool,
    started: Instant,
    stats: Mutex<SidecarStats>,
    running: Mutex<HashMap<RequestId, tokio::task::AbortHandle>>,
    pending: Pending,
}

fn error(kind: ErrorKind, message: impl Into<String>) -> ClientError {
    ClientError::Sidecar {
        kind,
        message: message.into(),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl SidecarClient {
    /// Connect to an OpenAI-compatible server: list its models, read its context size and FIM
    /// tokens, and return a handle that behaves like a sidecar connection.
    pub async fn connect_remote(
        options: RemoteOptions,
        client_name: &str,
    ) -> Result<SidecarClient, ClientError> {
        let base = options.base_url.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base)
            .map_err(|e| ClientError::Remote(format!("backend.openai-url `{base}` is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::Remote(format!(
                "backend.openai-url `{base}` must start with http:// or https://"
            )));
        }
        let root = base.strip_suffix("/v1").unwrap_or(&base).to_string();

        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = &options.api_key {
            let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                ClientError::Remote(format!(
                    "${} holds characters a header cannot carry",
                    options.api_key_env
                ))
            })?;
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(format!("hearth/{} ({client_name})", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true);
        if is_loopback(&url) {
            builder = builder.no_proxy();
        }
        if let Some(path) = &options.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| ClientError::Remote(format!("cannot read CA file {}: {e}", path.display())))?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(ClientError::Remote(format!(
                    "CA file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                )));
            }
            let certificate = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| ClientError::Remote(format!("CA file {}: {e}", path.display())))?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Remote(format!("cannot set up HTTP: {e}")))?;

        let mut state = RemoteState {
            http,
            base: base.clone(),
            root,
            model: ModelInfo::default(),
            engine: EngineSettings::default(),
            request_timeout: options.request_timeout,
            max_retries: options.max_retries,
            api_key_env: options.api_key_env.clone(),
            has_key: options.api_key.is_some(),
            tokenize_missing: AtomicBool::new(false),
            started: Instant::now(),
            stats: Mutex::default(),
            running: Mutex::default(),
            pending: Pending::default(),
        };

        // The model list doubles as the reachability and auth check.
        let listed = state
            .get_json(&format!("{base}/models"), options.request_timeout)
            .await
            .map_err(|e| {
                ClientError::Remote(format!("cannot use the OpenAI-compatible server at {base}: {e}"))
            })?;
        let models: Vec<&Value> = listed["data"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let name = if options.model.is_empty() {
            models
                .first()
                .and_then(|m| m["id"].as_str())
                .map(str::to_string)
                .ok_or_else(|| {
                    ClientError::Remote(format!("{base}/models lists no model; set backend.openai-model"))
                })?
        } else {
            if !models.iter().any(|m| m["id"].as_str() == Some(&options.model)) && !models.is_empty() {
                tracing::warn!(
                    "{base}/models does not list `{}`; sending it anyway",
                    options.model
                );
            }
            options.model.clone()
        };
        let listed_model = models.iter().find(|m| m["id"].as_str() == Some(&name));
        // vLLM: max_model_len; llama-server: meta.n_ctx_train, /props n_ctx (the real slot size).
        let mut n_ctx = listed_model
            .and_then(|m| m["max_model_len"].as_u64())
            .map(|n| n as u32);
        let mut n_ctx_train = listed_model
            .and_then(|m| m["meta"]["n_ctx_train"].as_u64())
            .map(|n| n as u32);
        if let Ok(props) = state
            .get_json(&format!("{}/props", state.root), Duration::from_secs(5))
            .await
        {
            let slot = props["default_generation_settings"]["n_ctx"]
                .as_u64()
                .or_else(|| props["n_ctx"].as_u64());
            if let Some(slot) = slot {
                n_ctx = Some(slot as u32);
            }
            n_ctx_train = n_ctx_train.or(props["n_ctx_train"].as_u64().map(|n| n as u32));
        }
        let n_ctx = n_ctx.unwrap_or(options.context_size);

        let fim = match &options.fim {
            FimSetting::Off => FimTokens::default(),
            FimSetting::Family(family) => family_tokens(family),
            FimSetting::Auto => state.probe_fim(&name).await,
        };
        state.model = ModelInfo {
            path: base.clone(),
            name: name.clone(),
            architecture: "remote".into(),
            n_ctx_train: n_ctx_train.unwrap_or(n_ctx),
            fim,
            has_chat_template: true,
            ..ModelInfo::default()
        };
        state.engine = EngineSettings {
            n_ctx,
            n_ctx_per_slot: n_ctx,
            n_parallel: 1,
            ..EngineSettings::default()
        };
        tracing::info!(
            "remote model `{name}` at {base}: context {n_ctx}, FIM {}",
            if state.model.fim.can_infill() { "yes" } else { "no" }
        );

        let hello = SidecarHello {
            sidecar_version: "remote".into(),
            pid: 0,
            model: state.model.clone(),
            engine: state.engine.clone(),
            remote_url: Some(base),
        };
        let pending = state.pending.clone();
        let state = Arc::new(state);
        let closed = Arc::new(AtomicBool::new(false));
        let (outgoing, incoming) = mpsc::unbounded_channel::<ClientMessage>();
        let dispatcher = tokio::spawn(dispatch(incoming, state, closed.clone()));
        Ok(SidecarClient {
            shared: Arc::new(Shared::new(outgoing, pending, closed, dispatcher.abort_handle())),
            hello: Arc::new(hello),
        })
    }
}

fn family_tokens(family: &str) -> FimTokens {
    let Some((_, spellings)) = FIM_FAMILIES.iter().find(|(name, _)| *name == family) else {
        return FimTokens::default();
    };
    let info = |i: usize| {
        (!spellings[i].is_empty()).then(|| TokenInfo {
            id: -1,
            text: spellings[i].to_string(),
        })
    };
    FimTokens {
        pre: info(0),
        suf: info(1),
        mid: info(2),
        pad: info(3),
        rep: info(4),
        sep: info(5),
    }
}

async fn dispatch(
    mut incoming: mpsc::UnboundedReceiver<ClientMessage>,
    state: Arc<RemoteState>,
    closed: Arc<AtomicBool>,
) {
    while let Some(message) = incoming.recv().await {
        match message {
            ClientMessage::Hello { .. } => {}
            ClientMessage::Complete { id, params } => {
                let body = completion_body(&state, &params);
                spawn_request(
                    &state,
                    id,
                    "completions",
                    body,
                    params.stream,
                    params.sampling.stop,
                    params.priority,
                );
            }
            ClientMessage::Chat { id, params } => {
                let body = chat_body(&state, &params);
                spawn_request(
                    &state,
                    id,
                    "chat/completions",
                    body,
                    params.stream,
                    params.sampling.stop,
                    params.priority,
                );
            }
            ClientMessage::Tokenize {
                id,
                texts,
                count_only,
            } => {
                let task_state = state.clone();
                tokio::spawn(async move {
                    let message = match task_state.tokenize(texts).await {
                        Ok(tokens) => SidecarMessage::Tokenized {
                            id,
                            counts: tokens.iter().map(|t| t.len() as u32).collect(),
                            tokens: if count_only { Vec::new() } else { tokens },
                        },
                        Err(e) => SidecarMessage::Error {
                            id: Some(id),
                            kind: wire_kind(&e),
                            message: e.to_string(),
                        },
                    };
                    deliver(&task_state.pending, message);
                });
            }
            ClientMessage::Cancel { id } => {
                let handle = state
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                if let Some(handle) = handle {
                    handle.abort();
                    state
                        .stats
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .requests_cancelled += 1;
                    deliver(
                        &state.pending,
                        SidecarMessage::Error {
                            id: Some(id),
                            kind: ErrorKind::Cancelled,
                            message: "cancelled".into(),
                        },
                    );
                }
            }
            ClientMessage::Stats { id } => {
                let mut stats = state.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
                stats.uptime_secs = state.started.elapsed().as_secs_f64();
                stats.clients_connected = 1;
                stats.clients_total = 1;
                stats.active_requests = state.running.lock().unwrap_or_else(|p| p.into_inner()).len() as u32;
                stats.model = state.model.clone();
                stats.engine = state.engine.clone();
                deliver(&state.pending, SidecarMessage::Stats { id, stats });
            }
        }
    }
    // Every handle is gone: stop what is still running.
    closed.store(true, Ordering::Release);
    for (_, handle) in state.running.lock().unwrap_or_else(|p| p.into_inner()).drain() {
        handle.abort();
    }
}

fn spawn_request(
    state: &Arc<RemoteState>,
    id: RequestId,
    endpoint: &'static str,
    body: Result<Value, ClientError>,
    stream: bool,
    stop: Vec<String>,
    priority: Priority,
) {
    state
        .stats
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .requests_total += 1;
    let task_state = state.clone();
    // Registered before the task can finish, so a fast answer cannot leave a stale handle.
    let mut running = state.running.lock().unwrap_or_else(|p| p.into_inner());
    let task = tokio::spawn(async move {
        let result = match body {
            Ok(body) => task_state.generate(id, endpoint, body, stream, &stop).await,
            Err(e) => Err(e),
        };
        let finished = task_state
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
            .is_some();
        if !finished {
            return; // cancelled meanwhile: the dispatcher answered
        }
        let message = match result {
            Ok(outcome) => {
                task_state.count(&outcome.metrics, priority);
                SidecarMessage::Done { id, outcome }
            }
            Err(e) => {
                task_state
                    .stats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .requests_failed += 1;
                SidecarMessage::Error {
                    id: Some(id),
                    kind: wire_kind(&e),
                    message: e.to_string(),
                }
            }
        };
        deliver(&task_state.pending, message);
    });
    running.insert(id, task.abort_handle());
}

/// Make user text inert: a control-token spelling inside it gets a zero-width space after its
/// first character, so a server that parses special tokens in text prompts sees plain text.
fn defuse(text: &str, spellings: &[&str]) -> String {
    let mut out = text.to_string();
    for spelling in spellings.iter().filter(|s| !s.is_empty()) {
        if out.contains(spelling) {
            let first = spelling.chars().next().map_or(0, char::len_utf8);
            let inert = format!("{}\u{200B}{}", &spelling[..first], &spelling[first..]);
            out = out.replace(spelling, &inert);
        }
    }
    out
}

fn render_prompt(parts: &[PromptPart], model: &ModelInfo) -> Result<String, ClientError> {
    let fim = &model.fim;
    let mut spellings: Vec<&str> = CONTROL_SPELLINGS.to_vec();
    spellings.extend(
        [&fim.pre, &fim.suf, &fim.mid, &fim.pad, &fim.rep, &fim.sep]
            .into_iter()
            .flatten()
            .map(|t| t.text.as_str()),
    );
    let mut prompt = String::new();
    for part in parts {
        match part {
            PromptPart::Text(text) => prompt.push_str(&defuse(text, &spellings)),
            PromptPart::SpecialText(text) => prompt.push_str(text),
            // The server adds its model's BOS to a text prompt itself.
            PromptPart::Special(SpecialToken::Bos) => {}
            PromptPart::Special(token) => {
                let info = match token {
                    SpecialToken::Eos => &model.eos,
                    SpecialToken::FimPre => &fim.pre,
                    SpecialToken::FimSuf => &fim.suf,
                    SpecialToken::FimMid => &fim.mid,
                    SpecialToken::FimPad => &fim.pad,
                    SpecialToken::FimRep => &fim.rep,
                    SpecialToken::FimSep => &fim.sep,
                    SpecialToken::Bos => unreachable!("handled above"),
                };
                let info = info.as_ref().ok_or_else(|| {
                    error(
                        ErrorKind::BadRequest,
                        format!("the remote model has no {token:?} token"),
                    )
                })?;
                prompt.push_str(info.text.trim_start_matches('▁'));
            }
        }
    }
    Ok(prompt)
}

/// The sampling fields every OpenAI-compatible server takes, plus llama.cpp/vLLM extensions only
/// when they matter (strict servers reject unknown fields).
fn sampling_fields(body: &mut Value, sampling: &SamplingParams) {
    body["max_tokens"] = json!(sampling.max_tokens);
    body["temperature"] = json!(sampling.temperature);
    if sampling.temperature > 0.0 {
        body["top_p"] = json!(sampling.top_p);
        body["top_k"] = json!(sampling.top_k);
        body["min_p"] = json!(sampling.min_p);
        body["seed"] = json!(sampling.seed);
    }
    if sampling.repeat_penalty != 1.0 {
        body["repeat_penalty"] = json!(sampling.repeat_penalty);
        body["repetition_penalty"] = json!(sampling.repeat_penalty);
    }
    if !sampling.stop.is_empty() {
        body["stop"] = json!(sampling.stop);
    }
    if let Some(grammar) = &sampling.grammar {
        body["grammar"] = json!(grammar);
    }
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
}

fn completion_body(state: &RemoteState, params: &CompletionParams) -> Result<Value, ClientError> {
    let prompt = render_prompt(&params.prompt, &state.model)?;
    let mut body = json!({ "model": state.model.name, "prompt": prompt });
    sampling_fields(&mut body, &params.sampling);
    if let Some(schema) = &params.sampling.json_schema {
        body["json_schema"] = schema.clone();
    }
    if !params.reuse_cache {
        // llama-server's switch for its prompt cache.
        body["cache_prompt"] = json!(false);
    }
    Ok(body)
}

fn chat_body(state: &RemoteState, params: &ChatParams) -> Result<Value, ClientError> {
    let mut body = json!({ "model": state.model.name, "messages": params.messages });
    sampling_fields(&mut body, &params.sampling);
    if let Some(schema) = &params.sampling.json_schema {
        body["response_format"] = json!({
            "type": "json_schema",
            "json_schema": { "name": "hearth", "schema": schema, "strict": true },
        });
    }
    Ok(body)
}

/// What the streamed chunks said, gathered.
#[derive(Default)]
struct Gathered {
    text: String,
    finish_reason: Option<String>,
    usage: Option<Value>,
    timings: Option<Value>,
    chunks_with_text: u32,
    first_token: Option<Instant>,
}

impl Gathered {
    /// Take one chunk (streamed or whole); returns the new text.
    fn absorb(&mut self, chunk: &Value) -> String {
        let choice = &chunk["choices"][0];
        let piece = choice["text"]
            .as_str()
            .or_else(|| choice["delta"]["content"].as_str())
            .or_else(|| choice["message"]["content"].as_str())
            .unwrap_or("")
            .to_string();
        if !piece.is_empty() {
            self.first_token.get_or_insert_with(Instant::now);
            self.chunks_with_text += 1;
            self.text.push_str(&piece);
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_string());
        }
        if chunk["usage"].is_object() {
            self.usage = Some(chunk["usage"].clone());
        }
        if chunk["timings"].is_object() {
            self.timings = Some(chunk["timings"].clone());
        }
        piece
    }
}

impl RemoteState {
    fn count(&self, metrics: &RequestMetrics, _priority: Priority) {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.requests_completed += 1;
        stats.prompt_tokens_total += metrics.prompt_tokens as u64;
        stats.reused_tokens_total += metrics.reused_tokens as u64;
        stats.evaluated_tokens_total += metrics.evaluated_tokens as u64;
        stats.generated_tokens_total += metrics.generated_tokens as u64;
        stats.prefill_ms_total += metrics.prefill_ms;
        stats.decode_ms_total += metrics.decode_ms;
        stats.recent.push(metrics.clone());
        if stats.recent.len() > 64 {
            stats.recent.remove(0);
        }
    }

    async fn get_json(&self, url: &str, timeout: Duration) -> Result<Value, String> {
        let response = self
            .http
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| describe_reqwest(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.status_message(status, &response.text().await.unwrap_or_default()));
        }
        response
            .json::<Value>()
            .await
            .map_err(|e| format!("bad JSON from {url}: {e}"))
    }

    fn status_message(&self, status: reqwest::StatusCode, body: &str) -> String {
        let detail = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| {
                v["error"]["message"]
                    .as_str()
                    .or_else(|| v["error"].as_str())
                    .or_else(|| v["message"].as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| body.chars().take(200).collect());
        let hint = match status.as_u16() {
            401 | 403 if self.has_key => format!(" (the key in ${} was refused)", self.api_key_env),
            401 | 403 => format!(" (set the API key in ${})", self.api_key_env),
            404 => " (check backend.openai-url: it should end in /v1)".to_string(),
            _ => String::new(),
        };
        format!("HTTP {status}: {detail}{hint}")
    }

    /// Send a POST, retrying connection failures, 429 and 5xx with exponential backoff (or the
    /// server's `Retry-After`), but never once an answer has started.
    async fn post(
        &self,
        url: &str,
        body: &Value,
        deadline: Instant,
    ) -> Result<reqwest::Response, ClientError> {
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClientError::Timeout(format!("no answer from {url}")));
            }
            let sent = self.http.post(url).json(body).timeout(remaining).send().await;
            let retry_after = match sent {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let retryable = status.as_u16() == 429 || status.is_server_error();
                    let wait = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .map(|secs| Duration::from_secs_f64(secs.clamp(0.0, 30.0)));
                    let message = self.status_message(status, &response.text().await.unwrap_or_default());
                    if !retryable || attempt >= self.max_retries {
                        let kind = match status.as_u16() {
                            429 | 503 => ErrorKind::Busy,
                            400 | 404 | 422 => ErrorKind::BadRequest,
                            _ => ErrorKind::Engine,
                        };
                        return Err(error(kind, format!("{url}: {message}")));
                    }
                    tracing::debug!("{url}: {message}; retrying");
                    wait
                }
                Err(e) if e.is_timeout() => {
                    return Err(ClientError::Timeout(format!("{url}: {}", describe_reqwest(&e))))
                }
                Err(e) => {
                    if !e.is_connect() || attempt >= self.max_retries {
                        return Err(ClientError::Remote(format!("{url}: {}", describe_reqwest(&e))));
                    }
                    None
                }
            };
            let backoff = retry_after.unwrap_or(Duration::from_millis(250 * 2u64.pow(attempt.min(6))));
            tokio::time::sleep(backoff.min(deadline.saturating_duration_since(Instant::now()))).await;
            attempt += 1;
        }
    }

    async fn generate(
        &self,
        id: RequestId,
        endpoint: &str,
        body: Value,
        stream: bool,
        stop: &[String],
    ) -> Result<CompletionOutcome, ClientError> {
        let started = Instant::now();
        let deadline = started + self.request_timeout;
        let url = format!("{}/{endpoint}", self.base);
        let response = self.post(&url, &body, deadline).await?;
        let is_sse = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut gathered = Gathered::default();
        if is_sse {
            let mut bytes = response.bytes_stream();
            let mut buffer: Vec<u8> = Vec::new();
            'read: while let Some(next) = bytes.next().await {
                let next = next.map_err(|e| match e.is_timeout() {
                    true => ClientError::Timeout(format!("{url}: the answer stopped arriving")),
                    false => ClientError::Remote(format!("{url}: {}", describe_reqwest(&e))),
                })?;
                buffer.extend_from_slice(&next);
                while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line);
                    let Some(data) = line.trim_end().strip_prefix("data:") else {
                        continue;
                    };
                    let data = data.trim();
                    if data == "[DONE]" {
                        break 'read;
                    }
                    let chunk: Value = serde_json::from_str(data)
                        .map_err(|e| ClientError::Protocol(format!("{url} sent a bad event: {e}")))?;
                    if let Some(message) = chunk["error"]["message"].as_str().or(chunk["error"].as_str()) {
                        return Err(error(ErrorKind::Engine, format!("{url}: {message}")));
                    }
                    let piece = gathered.absorb(&chunk);
                    if stream && !piece.is_empty() {
                        deliver(&self.pending, SidecarMessage::Token { id, text: piece });
                    }
                }
            }
        } else {
            let whole: Value = response
                .json()
                .await
                .map_err(|e| ClientError::Protocol(format!("{url}: bad JSON answer: {e}")))?;
            gathered.absorb(&whole);
        }
        let total_ms = started.elapsed().as_secs_f64() * 1000.0;

        // The server applies stop strings; cut here too in case it ignored some.
        let mut stop_reason = match gathered.finish_reason.as_deref() {
            Some("length") => StopReason::MaxTokens,
            _ => StopReason::EndOfGeneration,
        };
        if let Some(cut) = stop.iter().filter_map(|s| gathered.text.find(s.as_str())).min() {
            gathered.text.truncate(cut);
            stop_reason = StopReason::StopString;
        }

        let usage = gathered.usage.unwrap_or(Value::Null);
        let timings = gathered.timings.unwrap_or(Value::Null);
        let as_u32 = |v: &Value| v.as_u64().map(|n| n as u32);
        let prompt_tokens = as_u32(&usage["prompt_tokens"]).unwrap_or(0);
        let reused = as_u32(&usage["prompt_tokens_details"]["cached_tokens"])
            .or_else(|| as_u32(&timings["cache_n"]))
            .unwrap_or(0)
            .min(prompt_tokens);
        let generated = as_u32(&usage["completion_tokens"]).unwrap_or(gathered.chunks_with_text);
        let ttft_ms = gathered
            .first_token
            .map_or(total_ms, |t| t.duration_since(started).as_secs_f64() * 1000.0);
        let prefill_ms = timings["prompt_ms"].as_f64().unwrap_or(ttft_ms);
        let decode_ms = timings["predicted_ms"].as_f64().unwrap_or(total_ms - ttft_ms);
        let evaluated = as_u32(&timings["prompt_n"]).unwrap_or(prompt_tokens - reused);
        let rate = |tokens: u32, ms: f64| {
            if ms > 0.0 {
                tokens as f64 * 1000.0 / ms
            } else {
                0.0
            }
        };
        Ok(CompletionOutcome {
            text: gathered.text,
            stop_reason,
            metrics: RequestMetrics {
                slot: 0,
                prompt_tokens,
                reused_tokens: reused,
                evaluated_tokens: evaluated,
                generated_tokens: generated,
                queue_ms: 0.0,
                time_to_first_token_ms: ttft_ms,
                prefill_ms,
                decode_ms,
                total_ms,
                prefill_tokens_per_second: rate(evaluated, prefill_ms),
                decode_tokens_per_second: rate(generated, decode_ms),
            },
        })
    }

    /// Token ids through `/tokenize`, in the shape llama-server (`content`) or vLLM (`prompt`)
    /// expects — both fields are sent.
    async fn tokenize(&self, texts: Vec<String>) -> Result<Vec<Vec<i32>>, ClientError> {
        if self.tokenize_missing.load(Ordering::Relaxed) {
            return Err(error(
                ErrorKind::BadRequest,
                "the server has no /tokenize endpoint",
            ));
        }
        let url = format!("{}/tokenize", self.root);
        let deadline = Instant::now() + self.request_timeout;
        let mut all = Vec::with_capacity(texts.len());
        for text in texts {
            let body = json!({
                "content": text,
                "prompt": text,
                "model": self.model.name,
                "add_special": false,
                "add_special_tokens": false,
            });
            let response = match self.post(&url, &body, deadline).await {
                Ok(response) => response,
                Err(e) => {
                    if e.kind() == Some(ErrorKind::BadRequest) {
                        self.tokenize_missing.store(true, Ordering::Relaxed);
                    }
                    return Err(e);
                }
            };
            let answer: Value = response
                .json()
                .await
                .map_err(|e| ClientError::Protocol(format!("{url}: bad JSON answer: {e}")))?;
            let tokens = answer["tokens"]
                .as_array()
                .ok_or_else(|| ClientError::Protocol(format!("{url}: no `tokens` in the answer")))?
                .iter()
                .map(|t| t.as_i64().or_else(|| t["id"].as_i64()).unwrap_or(-1) as i32)
                .collect();
            all.push(tokens);
        }
        Ok(all)
    }

    /// Which FIM spellings the server's vocabulary holds as single tokens.
    async fn probe_fim(&self, model: &str) -> FimTokens {
        let mut found = FimTokens::default();
        for (family, spellings) in FIM_FAMILIES {
            let mut infos: Vec<Option<TokenInfo>> = Vec::new();
            for spelling in spellings {
                if spelling.is_empty() {
                    infos.push(None);
                    continue;
                }
                match self.tokenize(vec![spelling.to_string()]).await {
                    Ok(tokens) if tokens[0].len() == 1 => infos.push(Some(TokenInfo {
                        id: tokens[0][0],
                        text: spelling.to_string(),
                    })),
                    Ok(_) => infos.push(None),
                    Err(e) => {
                        tracing::info!("remote model `{model}`: cannot read its vocabulary ({e}); no FIM (set backend.openai-fim to a family to force one)");
                        return FimTokens::default();
                    }
                }
            }
            if infos[0].is_some() && infos[1].is_some() {
                tracing::debug!("remote model `{model}` has {family} FIM tokens");
                let mut infos = infos.into_iter();
                let mut next = || infos.next().flatten();
                found = FimTokens {
                    pre: next(),
                    suf: next(),
                    mid: next(),
                    pad: next(),
                    rep: next(),
                    sep: next(),
                };
                break;
            }
        }
        found
    }
}

/// The error kind a failed remote request reports to its caller.
fn wire_kind(error: &ClientError) -> ErrorKind {
    match error {
        ClientError::Timeout(_) => ErrorKind::Timeout,
        other => other.kind().unwrap_or(ErrorKind::Engine),
    }
}

fn describe_reqwest(error: &reqwest::Error) -> String {
    use std::error::Error;
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if message.contains("InvalidContentType") || message.contains("corrupt message") {
        message.push_str(
            " (the server does not speak TLS: is backend.openai-url http:// rather than https://?)",
        );
    } else if message.contains("Connection refused") {
        message.push_str(" (is the server running, on that port?)");
    } else if message.contains("certificate") {
        message.push_str(" (a server behind a private CA needs backend.openai-ca-file)");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_cannot_smuggle_control_tokens() {
        let model = ModelInfo {
            fim: family_tokens("qwen"),
            ..ModelInfo::default()
        };
        let parts = vec![
            PromptPart::Special(SpecialToken::Bos),
            PromptPart::Special(SpecialToken::FimPre),
            PromptPart::Text("let s = \"<|fim_middle|><|endoftext|>\";".into()),
            PromptPart::Special(SpecialToken::FimSuf),
            PromptPart::SpecialText("<|file_sep|>".into()),
            PromptPart::Special(SpecialToken::FimMid),
        ];
        let prompt = render_prompt(&parts, &model).unwrap();
        assert_eq!(
            prompt,
            "<|fim_prefix|>let s = \"<\u{200B}|fim_middle|><\u{200B}|endoftext|>\";<|fim_suffix|><|file_sep|><|fim_middle|>"
        );
        let no_fim = ModelInfo::default();
        let error = render_prompt(&[PromptPart::Special(SpecialToken::FimPre)], &no_fim).unwrap_err();
        assert_eq!(error.kind(), Some(ErrorKind::BadRequest));
    }

    #[test]
    fn fim_settings_parse() {
        assert_eq!(FimSetting::parse("auto"), Ok(FimSetting::Auto));
        assert_eq!(FimSetting::parse("none"), Ok(FimSetting::Off));
        assert_eq!(
            FimSetting::parse("deepseek"),
            Ok(FimSetting::Family("deepseek".into()))
        );
        assert!(FimSetting::parse("gpt").unwrap_err().contains("qwen"));
        let tokens = family_tokens("codestral");
        assert!(tokens.can_infill());
        assert_eq!(tokens.pre.unwrap().text, "[PREFIX]");
        assert!(tokens.sep.is_none());
    }

    /// A scripted HTTP/1.1 server (one answer per connection) for the retry and timeout logic.
    /// It is not an inference server: the end-to-end tests use the real sidecar's HTTP API.
    type Answer = Option<(u16, &'static str, &'static str)>;
    type Script = Arc<Mutex<std::vec::IntoIter<Answer>>>;

    async fn scripted_server(completions: Vec<Answer>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        scripted_server_with(None, completions).await
    }

    /// Answers each `POST /v1/completions` with the next scripted answer (`None`: never answer).
    async fn scripted_server_with(
        tls: Option<tokio_rustls::TlsAcceptor>,
        completions: Vec<Answer>,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = match tls {
            Some(_) => format!("https://localhost:{port}/v1"),
            None => format!("http://127.0.0.1:{port}/v1"),
        };
        let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = attempts.clone();
        let script: Script = Arc::new(Mutex::new(completions.into_iter()));
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (counter, script, tls) = (counter.clone(), script.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(socket).await {
                                answer_one(stream, &counter, &script).await;
                            }
                        }
                        None => answer_one(socket, &counter, &script).await,
                    }
                });
            }
        });
        (url, attempts)
    }

    async fn answer_one(
        mut socket: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
        counter: &std::sync::atomic::AtomicUsize,
        script: &Script,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buffer[..n]),
            }
        }
        let head = String::from_utf8_lossy(&request).to_string();
        let answer = if head.starts_with("GET /v1/models") {
            Some((
                200,
                "application/json",
                r#"{"data":[{"id":"scripted","max_model_len":512}]}"#,
            ))
        } else if head.starts_with("POST /v1/completions") {
            counter.fetch_add(1, Ordering::SeqCst);
            script.lock().unwrap().next().flatten()
        } else {
            Some((
                404,
                "application/json",
                r#"{"error":{"message":"no such route"}}"#,
            ))
        };
        let Some((status, content_type, body)) = answer else {
            // Never answer.
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nretry-after: 0\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = socket.write_all(response.as_bytes()).await;
        let _ = socket.shutdown().await;
    }

    #[tokio::test]
    async fn https_with_a_private_ca_is_trusted_only_when_configured() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let sse = Some((200, "text/event-stream", SSE));
        let (url, attempts) = scripted_server_with(Some(acceptor), vec![sse]).await;

        // The CA is not a public one: refused without the CA file.
        let untrusted = RemoteOptions {
            base_url: url.clone(),
            ..RemoteOptions::default()
        };
        let error = SidecarClient::connect_remote(untrusted, "test")
            .await
            .unwrap_err()
            .to_string();
        assert!(error.to_lowercase().contains("certificate"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let trusted = RemoteOptions {
            base_url: url,
            ca_file: Some(ca_file),
            ..RemoteOptions::default()
        };
        let client = SidecarClient::connect_remote(trusted, "test").await.unwrap();
        let outcome = client.complete(request()).unwrap().finish().await.unwrap();
        assert_eq!(outcome.text, "ok");
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    const SSE: &str = "data: {\"choices\":[{\"text\":\"ok\"}]}\n\ndata: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";

    fn request() -> CompletionParams {
        CompletionParams {
            prompt: vec![PromptPart::Text("x".into())],
            add_bos: true,
            sampling: SamplingParams::default(),
            priority: Priority::Interactive,
            stream: false,
            reuse_cache: true,
        }
    }

    #[tokio::test]
    async fn busy_answers_are_retried_and_bad_requests_are_not() {
        let busy = Some((503, "application/json", r#"{"error":{"message":"loading"}}"#));
        let (url, attempts) = scripted_server(vec![busy, busy, Some((200, "text/event-stream", SSE))]).await;
        let options = RemoteOptions {
            base_url: url,
            ..RemoteOptions::default()
        };
        let client = SidecarClient::connect_remote(options, "test").await.unwrap();
        assert_eq!(client.model().name, "scripted");
        assert_eq!(client.hello().engine.n_ctx_per_slot, 512);
        assert!(!client.model().fim.can_infill(), "no /tokenize: no FIM");
        let outcome = client.complete(request()).unwrap().finish().await.unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        assert_eq!(outcome.text, "ok");
        assert_eq!(outcome.stop_reason, StopReason::EndOfGeneration);
        assert_eq!(
            (outcome.metrics.prompt_tokens, outcome.metrics.generated_tokens),
            (3, 1)
        );

        let bad = Some((
            400,
            "application/json",
            r#"{"error":{"message":"prompt too long"}}"#,
        ));
        let (url, attempts) = scripted_server(vec![bad]).await;
        let options = RemoteOptions {
            base_url: url,
            ..RemoteOptions::default()
        };
        let client = SidecarClient::connect_remote(options, "test").await.unwrap();
        let error = client.complete(request()).unwrap().finish().await.unwrap_err();
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert_eq!(error.kind(), Some(ErrorKind::BadRequest));
        assert!(error.to_string().contains("prompt too long"), "{error}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let (url, _) = scripted_server(vec![None]).await;
        let options = RemoteOptions {
            base_url: url,
            request_timeout: Duration::from_millis(300),
            ..RemoteOptions::default()
        };
        let client = SidecarClient::connect_remote(options, "test").await.unwrap();
        let error = client.complete(request()).unwrap().finish().await.unwrap_err();
        assert_eq!(error.kind(), Some(ErrorKind::Timeout), "{error}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_clear_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        drop(listener);
        let options = RemoteOptions {
            base_url: url.clone(),
            ..RemoteOptions::default()
        };
        let error = SidecarClient::connect_remote(options, "test")
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(&url) && error.contains("onnect"), "{error}");
        let bad = RemoteOptions {
            base_url: "ftp://example.com/v1".into(),
            ..RemoteOptions::default()
        };
        let error = SidecarClient::connect_remote(bad, "test")
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("http://"), "{error}");
    }

    #[test]
    fn streamed_chunks_gather_text_usage_and_reason() {
        let mut gathered = Gathered::default();
        assert_eq!(
            gathered.absorb(&json!({"choices": [{"text": "fn ", "finish_reason": null}]})),
            "fn "
        );
        assert_eq!(
            gathered.absorb(&json!({"choices": [{"delta": {"content": "main"}}]})),
            "main"
        );
        gathered.absorb(&json!({"choices": [{"text": "", "finish_reason": "length"}]}));
        gathered.absorb(&json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 2}}));
        assert_eq!(gathered.text, "fn main");
        assert_eq!(gathered.finish_reason.as_deref(), Some("length"));
        assert_eq!(gathered.usage.unwrap()["prompt_tokens"], 12);
        assert_eq!(gathered.chunks_with_text, 2);
    }
}
