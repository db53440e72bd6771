//! `--openai-listen ADDR`: the loaded model behind an OpenAI-compatible HTTP API, so other tools
//! (and Hearth's own remote backend, in tests) can use it. Off unless asked.
//!
//! Routes: `GET /health`, `GET /v1/models`, `GET /props`, `POST /tokenize` (llama-server's shape),
//! `POST /v1/completions`, `POST /v1/chat/completions` (each also without `/v1`). Requests go into
//! the same engine queue as socket requests (interactive unless the body says
//! `"priority": "background"`); a client that disconnects cancels its request. With
//! `--openai-api-key-env VAR`, every route but `/health` requires `Authorization: Bearer $VAR`.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use hearth_protocol::*;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::engine::{Command, Job};
use crate::server::{LoadState, Shared};

struct Api {
    shared: Arc<Shared>,
    api_key: Option<String>,
    /// Requests served over HTTP go into this user's usage ledger (as `served`).
    ledger: Option<hearth_protocol::ledger::Ledger>,
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    api_key: Option<String>,
    ledger: Option<hearth_protocol::ledger::Ledger>,
) {
    let api = Arc::new(Api {
        shared,
        api_key,
        ledger,
    });
    let app = Router::new()
        .route("/health", get(health))
        .route("/v1/health", get(health))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/props", get(props))
        .route("/tokenize", post(tokenize))
        .route("/v1/completions", post(completions))
        .route("/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .with_state(api);
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!("the HTTP listener stopped: {error}");
    }
}

struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match self.status.as_u16() {
            400 => "invalid_request_error",
            401 => "authentication_error",
            429 => "rate_limit_error",
            _ => "server_error",
        };
        let mut response = (
            self.status,
            Json(json!({ "error": { "message": self.message, "type": kind, "code": self.status.as_u16() } })),
        )
            .into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS || self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

fn engine_error(kind: ErrorKind, message: String) -> ApiError {
    let status = match kind {
        ErrorKind::Busy => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::PromptTooLong | ErrorKind::BadRequest | ErrorKind::VersionMismatch => {
            StatusCode::BAD_REQUEST
        }
        ErrorKind::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        ErrorKind::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Engine => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
    };
    ApiError::new(status, message)
}

impl Api {
    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(key) = &self.api_key else { return Ok(()) };
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Length-independent comparison is not needed for a loopback key, but cheap.
        let ok = given.is_some_and(|given| {
            given.len() == key.len()
                && given
                    .bytes()
                    .zip(key.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if ok {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong API key",
            ))
        }
    }

    /// The model's hello once it is loaded.
    fn ready(&self) -> Result<(ModelInfo, EngineSettings), ApiError> {
        match &*self.shared.state.borrow() {
            LoadState::Ready(hello) => match &**hello {
                SidecarMessage::Hello { model, engine, .. } => Ok((model.clone(), engine.clone())),
                _ => Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "no model information",
                )),
            },
            LoadState::Loading => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the model is loading",
            )),
            LoadState::Failed(message) => {
                Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message.clone()))
            }
        }
    }

    /// Queue a job under a connection of its own; the guard cancels it if the HTTP side goes away.
    fn submit(&self, job: Job, model: &str) -> (Submitted, mpsc::UnboundedReceiver<SidecarMessage>) {
        let connection = self.shared.next_connection.fetch_add(1, Ordering::Relaxed);
        let (sink, receiver) = mpsc::unbounded_channel();
        let usage = Usage {
            ledger: self.ledger.clone(),
            kind: if matches!(job, Job::Chat(_)) {
                "chat"
            } else {
                "completion"
            },
            priority: job.priority(),
            model: model.to_string(),
            started: std::time::Instant::now(),
        };
        let _ = self.shared.commands.send(Command::Submit {
            connection,
            id: 1,
            job,
            sink,
        });
        (
            Submitted {
                commands: self.shared.commands.clone(),
                connection,
                finished: false,
                usage,
            },
            receiver,
        )
    }
}

/// Cancels the engine request when dropped before it finished (the client disconnected), and
/// records how the request ended in the usage ledger.
struct Submitted {
    commands: crossbeam_channel::Sender<Command>,
    connection: u64,
    finished: bool,
    usage: Usage,
}

struct Usage {
    ledger: Option<hearth_protocol::ledger::Ledger>,
    kind: &'static str,
    priority: Priority,
    model: String,
    started: std::time::Instant,
}

impl Submitted {
    fn finish(&mut self, outcome: UsageOutcome, metrics: Option<RequestMetrics>) {
        self.finished = true;
        let Some(ledger) = &self.usage.ledger else { return };
        let event = UsageEvent {
            kind: self.usage.kind,
            priority: self.usage.priority,
            remote: false,
            model: self.usage.model.clone(),
            outcome,
            metrics,
            elapsed_ms: self.usage.started.elapsed().as_secs_f64() * 1000.0,
        };
        let mut record =
            hearth_protocol::ledger::Record::from_event(&event, hearth_protocol::ledger::now_secs());
        record.backend = "served".into();
        if let Err(error) = ledger.append(&record) {
            tracing::warn!(
                "cannot write the usage ledger in {}: {error}",
                ledger.dir().display()
            );
        }
    }
}

impl Drop for Submitted {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.commands.send(Command::Cancel {
                connection: self.connection,
                id: 1,
            });
            self.finish(UsageOutcome::Cancelled, None);
        }
    }
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn models(State(api): State<Arc<Api>>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    api.authorize(&headers)?;
    let (model, engine) = api.ready()?;
    Ok(Json(json!({
        "object": "list",
        "data": [{
            "id": model_id(&model),
            "name": model.name,
            "object": "model",
            "created": created().saturating_sub(api.shared.started.elapsed().as_secs()),
            "owned_by": "hearth",
            "max_model_len": engine.n_ctx_per_slot,
            "meta": { "n_ctx_train": model.n_ctx_train, "n_params": model.n_params, "n_vocab": model.n_vocab },
        }],
    })))
}

async fn props(State(api): State<Arc<Api>>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    api.authorize(&headers)?;
    let (model, engine) = api.ready()?;
    Ok(Json(json!({
        "default_generation_settings": { "n_ctx": engine.n_ctx_per_slot },
        "total_slots": engine.n_parallel,
        "model_path": model.path,
        "n_ctx_train": model.n_ctx_train,
        "build_info": format!("hearth-sidecar {}", env!("CARGO_PKG_VERSION")),
    })))
}

async fn tokenize(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    api.authorize(&headers)?;
    api.ready()?;
    let text = body["content"]
        .as_str()
        .or_else(|| body["prompt"].as_str())
        .ok_or_else(|| ApiError::bad("`content` must be a string"))?
        .to_string();
    let add_special = body["add_special"]
        .as_bool()
        .or_else(|| body["add_special_tokens"].as_bool())
        .unwrap_or(false);
    let (sink, mut receiver) = mpsc::unbounded_channel();
    let _ = api.shared.commands.send(Command::Tokenize {
        id: 1,
        texts: vec![text],
        count_only: false,
        parse_special: true,
        add_special,
        sink,
    });
    match receiver.recv().await {
        Some(SidecarMessage::Tokenized { mut tokens, .. }) => {
            let tokens = tokens.pop().unwrap_or_default();
            Ok(Json(json!({ "tokens": tokens, "count": tokens.len() })))
        }
        Some(SidecarMessage::Error { kind, message, .. }) => Err(engine_error(kind, message)),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine stopped",
        )),
    }
}

/// Sampling fields shared by both generation routes (OpenAI names, plus llama.cpp's extensions).
fn sampling(body: &Value, default_max_tokens: u32) -> Result<SamplingParams, ApiError> {
    let defaults = SamplingParams::default();
    let number = |key: &str| body.get(key).and_then(Value::as_f64);
    if body.get("n").and_then(Value::as_u64).is_some_and(|n| n != 1) {
        return Err(ApiError::bad("only n = 1 is supported"));
    }
    let stop = match body.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(stop)) => vec![stop.clone()],
        Some(Value::Array(stops)) => stops
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::bad("`stop` must be a string or a list of strings"))?,
        Some(_) => return Err(ApiError::bad("`stop` must be a string or a list of strings")),
    };
    let max_tokens = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .or_else(|| body.get("n_predict"))
        .and_then(Value::as_i64)
        .map_or(default_max_tokens, |n| {
            if n < 0 {
                default_max_tokens
            } else {
                n as u32
            }
        });
    let mut json_schema = body.get("json_schema").filter(|v| !v.is_null()).cloned();
    match body["response_format"]["type"].as_str() {
        Some("json_schema") => {
            json_schema = Some(body["response_format"]["json_schema"]["schema"].clone());
        }
        Some("json_object") => json_schema = Some(json!({ "type": "object" })),
        _ => {}
    }
    Ok(SamplingParams {
        max_tokens,
        temperature: number("temperature").map_or(1.0, |t| t as f32),
        top_k: number("top_k").map_or(defaults.top_k, |k| k as i32),
        top_p: number("top_p").map_or(1.0, |p| p as f32),
        min_p: number("min_p").map_or(0.0, |p| p as f32),
        repeat_penalty: number("repeat_penalty")
            .or_else(|| number("repetition_penalty"))
            .map_or(1.0, |p| p as f32),
        repeat_last_n: defaults.repeat_last_n,
        seed: number("seed").map_or(defaults.seed, |s| s as u32),
        stop,
        grammar: body.get("grammar").and_then(Value::as_str).map(str::to_string),
        json_schema,
    })
}

fn priority(body: &Value) -> Priority {
    match body.get("priority").and_then(Value::as_str) {
        Some("background") => Priority::Background,
        _ => Priority::Interactive,
    }
}

fn outcome_of(kind: ErrorKind) -> UsageOutcome {
    match kind {
        ErrorKind::Cancelled => UsageOutcome::Cancelled,
        _ => UsageOutcome::Failed,
    }
}

fn finish_reason(reason: StopReason) -> &'static str {
    match reason {
        StopReason::EndOfGeneration | StopReason::StopString => "stop",
        StopReason::MaxTokens | StopReason::ContextFull => "length",
    }
}

fn usage(metrics: &RequestMetrics) -> Value {
    json!({
        "prompt_tokens": metrics.prompt_tokens,
        "completion_tokens": metrics.generated_tokens,
        "total_tokens": metrics.prompt_tokens + metrics.generated_tokens,
        "prompt_tokens_details": { "cached_tokens": metrics.reused_tokens },
    })
}

/// llama-server's per-request timings, which Hearth's remote client reads for its metrics.
fn timings(metrics: &RequestMetrics) -> Value {
    json!({
        "cache_n": metrics.reused_tokens,
        "prompt_n": metrics.evaluated_tokens,
        "prompt_ms": metrics.prefill_ms,
        "predicted_n": metrics.generated_tokens,
        "predicted_ms": metrics.decode_ms,
    })
}

fn created() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Clone, Copy, PartialEq)]
enum Route {
    Completions,
    Chat,
}

/// One chunk (streaming) or the whole answer, in the route's shape.
fn answer_json(
    route: Route,
    id: &str,
    model: &str,
    text: &str,
    finish: Option<&str>,
    metrics: Option<&RequestMetrics>,
    streaming: bool,
) -> Value {
    let choice = match (route, streaming) {
        (Route::Completions, _) => {
            json!({ "index": 0, "text": text, "finish_reason": finish, "logprobs": null })
        }
        (Route::Chat, true) => {
            json!({ "index": 0, "delta": { "role": "assistant", "content": text }, "finish_reason": finish })
        }
        (Route::Chat, false) => {
            json!({ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": finish })
        }
    };
    let object = match (route, streaming) {
        (Route::Completions, _) => "text_completion",
        (Route::Chat, true) => "chat.completion.chunk",
        (Route::Chat, false) => "chat.completion",
    };
    let mut value =
        json!({ "id": id, "object": object, "created": created(), "model": model, "choices": [choice] });
    if let Some(metrics) = metrics {
        value["usage"] = usage(metrics);
        value["timings"] = timings(metrics);
    }
    value
}

/// The model's id in the API: its file name without `.gguf` (the GGUF's display name may hold
/// spaces; llama-server also names a model by its file).
fn model_id(model: &ModelInfo) -> String {
    std::path::Path::new(&model.path)
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .filter(|stem| !stem.is_empty())
        .unwrap_or_else(|| model.name.clone())
}

async fn generate(api: Arc<Api>, route: Route, job: Job, stream: bool) -> Result<Response, ApiError> {
    let (model, _) = api.ready()?;
    let model_name = model_id(&model);
    let (mut submitted, mut receiver) = api.submit(job, &model_name);
    let id = format!(
        "{}-{}",
        if route == Route::Chat { "chatcmpl" } else { "cmpl" },
        submitted.connection
    );
    if !stream {
        loop {
            match receiver.recv().await {
                Some(SidecarMessage::Token { .. }) => {}
                Some(SidecarMessage::Done { outcome, .. }) => {
                    submitted.finish(UsageOutcome::Completed, Some(outcome.metrics.clone()));
                    let finish = finish_reason(outcome.stop_reason);
                    let body = answer_json(
                        route,
                        &id,
                        &model_name,
                        &outcome.text,
                        Some(finish),
                        Some(&outcome.metrics),
                        false,
                    );
                    return Ok(Json(body).into_response());
                }
                Some(SidecarMessage::Error { kind, message, .. }) => {
                    submitted.finish(outcome_of(kind), None);
                    return Err(engine_error(kind, message));
                }
                Some(_) => {}
                None => {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the engine stopped",
                    ))
                }
            }
        }
    }

    // Streaming: the first message decides the status (a refusal is an HTTP error, not a stream).
    let first = receiver.recv().await;
    if let Some(SidecarMessage::Error { kind, message, .. }) = &first {
        submitted.finish(outcome_of(*kind), None);
        return Err(engine_error(*kind, message.clone()));
    }
    let state = (Some(first), receiver, submitted, false);
    let events = futures::stream::unfold(state, move |(first, mut receiver, mut submitted, done)| {
        let id = id.clone();
        let model = model_name.clone();
        async move {
            if done {
                return None;
            }
            let message = match first {
                Some(message) => message,
                None => receiver.recv().await,
            };
            let done_event = || Event::default().data("[DONE]");
            let (events, done) = match message {
                Some(SidecarMessage::Token { text, .. }) => {
                    let chunk = answer_json(route, &id, &model, &text, None, None, true);
                    (vec![Event::default().data(chunk.to_string())], false)
                }
                Some(SidecarMessage::Done { outcome, .. }) => {
                    submitted.finish(UsageOutcome::Completed, Some(outcome.metrics.clone()));
                    let finish = finish_reason(outcome.stop_reason);
                    let last =
                        answer_json(route, &id, &model, "", Some(finish), Some(&outcome.metrics), true);
                    (vec![Event::default().data(last.to_string()), done_event()], true)
                }
                Some(SidecarMessage::Error { message, kind, .. }) => {
                    submitted.finish(outcome_of(kind), None);
                    let error = json!({ "error": { "message": message, "type": format!("{kind:?}") } });
                    (vec![Event::default().data(error.to_string()), done_event()], true)
                }
                Some(_) => (Vec::new(), false),
                None => {
                    let error = json!({ "error": { "message": "the engine stopped" } });
                    (vec![Event::default().data(error.to_string())], true)
                }
            };
            Some((events, (None, receiver, submitted, done)))
        }
    });
    let events =
        events.flat_map(|events| futures::stream::iter(events.into_iter().map(Ok::<Event, Infallible>)));
    Ok(Sse::new(events).into_response())
}

async fn completions(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    api.authorize(&headers)?;
    let prompt = match &body["prompt"] {
        Value::String(prompt) => prompt.clone(),
        Value::Array(prompts) if prompts.len() == 1 && prompts[0].is_string() => {
            prompts[0].as_str().unwrap_or_default().to_string()
        }
        Value::Array(_) => {
            return Err(ApiError::bad(
                "`prompt` must be one string (batches and token arrays are not supported)",
            ))
        }
        _ => return Err(ApiError::bad("`prompt` must be a string")),
    };
    let stream = body["stream"].as_bool().unwrap_or(false);
    let params = CompletionParams {
        // Special-token spellings in the prompt are tokens, as in llama-server.
        prompt: vec![PromptPart::SpecialText(prompt)],
        add_bos: true,
        sampling: sampling(&body, 16)?,
        priority: priority(&body),
        stream,
        reuse_cache: body["cache_prompt"].as_bool().unwrap_or(true),
    };
    generate(api, Route::Completions, Job::Complete(params), stream).await
}

async fn chat_completions(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    api.authorize(&headers)?;
    let messages = body["messages"]
        .as_array()
        .ok_or_else(|| ApiError::bad("`messages` must be a list"))?
        .iter()
        .map(|message| {
            let role = message["role"]
                .as_str()
                .ok_or_else(|| ApiError::bad("a message has no `role`"))?;
            // Content is a string or a list of parts; only text parts are supported.
            let content = match &message["content"] {
                Value::String(text) => text.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .map(|part| match part["type"].as_str() {
                        Some("text") => Ok(part["text"].as_str().unwrap_or_default()),
                        other => Err(ApiError::bad(format!("unsupported content part {other:?}"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .concat(),
                Value::Null => String::new(),
                _ => {
                    return Err(ApiError::bad(
                        "message `content` must be a string or a list of parts",
                    ))
                }
            };
            Ok(ChatMessage {
                role: role.to_string(),
                content,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let stream = body["stream"].as_bool().unwrap_or(false);
    let params = ChatParams {
        messages,
        sampling: sampling(&body, 1024)?,
        priority: priority(&body),
        stream,
    };
    generate(api, Route::Chat, Job::Chat(params), stream).await
}
