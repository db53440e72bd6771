//! The language server: LSP over stdio (or any duplex stream, for tests).
//!
//! Handlers may run concurrently (tower-lsp): document edits are applied synchronously, before
//! any `.await`, under a short lock, and checked against the document version. Completions
//! snapshot what they need (an `Arc<String>` of the text) and never hold a lock across `.await`.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;
use tower_lsp_server::jsonrpc::{Error as RpcError, ErrorCode, Result as RpcResult};
use tower_lsp_server::lsp_types::notification::Notification;
use tower_lsp_server::lsp_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

use hearth_context::RecentRegionKind;

use crate::backend::{Backend, BackendStatus};
use crate::config::{self, Config, ConfigLayers};
use crate::context::ContextEngine;
use crate::documents::{Document, PositionEncoding};
use crate::pipeline::{CompletionInput, Pipeline, Suggestion};

/// Files larger than this are not completed in (they still sync).
const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;

pub struct HearthServer {
    client: Client,
    state: Arc<State>,
}

struct State {
    documents: Mutex<HashMap<Uri, Document>>,
    /// Per-document generation: bumped by every edit and every new completion request; a
    /// completion whose generation moved on is superseded.
    generations: Mutex<HashMap<Uri, watch::Sender<u64>>>,
    encoding: RwLock<PositionEncoding>,
    root: RwLock<Option<PathBuf>>,
    layers: Mutex<ConfigLayers>,
    config: RwLock<Arc<Config>>,
    backend: Backend,
    pipeline: RwLock<Arc<Pipeline>>,
    shown_errors: Mutex<HashSet<String>>,
    metrics: Mutex<ServerMetrics>,
    /// Code actions and reviews.
    assist: crate::actions::AssistState,
    /// A handler is connecting to the sidecar (and showing progress for it).
    connecting: std::sync::atomic::AtomicBool,
    /// The client offered to watch files for us (dynamic registration of didChangeWatchedFiles).
    client_watches_files: std::sync::atomic::AtomicBool,
    /// Our own watcher, when the client does not watch.
    watcher: Mutex<Option<crate::watch::WorkspaceWatcher>>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerMetrics {
    completions_requested: u64,
    completions_answered: u64,
    completions_empty: u64,
    completions_superseded: u64,
    completions_failed: u64,
    served_from_cache: u64,
    last_latency_ms: Option<f64>,
    documents_open: usize,
}

/// `hearth/status`: what the editor's status line shows.
pub enum StatusNotification {}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusParams {
    pub state: String,
    pub model: String,
    pub message: Option<String>,
    pub last_latency_ms: Option<f64>,
}

impl Notification for StatusNotification {
    type Params = StatusParams;
    const METHOD: &'static str = "hearth/status";
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextParams {
    pub text_document: TextDocumentIdentifier,
    pub position: Position,
}

fn internal_error(message: impl Into<String>) -> RpcError {
    RpcError {
        code: ErrorCode::InternalError,
        message: message.into().into(),
        data: None,
    }
}

/// Run a handler body; a panic becomes an error answer instead of ending the server.
async fn guarded<T>(name: &str, future: impl std::future::Future<Output = RpcResult<T>>) -> RpcResult<T> {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!("{name} panicked: {message}");
            Err(internal_error(format!(
                "{name} failed: internal error ({message})"
            )))
        }
    }
}

pub fn uri_to_path(uri: &Uri) -> Option<PathBuf> {
    use tower_lsp_server::UriExt;
    uri.to_file_path().map(|p| p.into_owned())
}

impl HearthServer {
    pub fn new(client: Client) -> HearthServer {
        let state = State {
            documents: Mutex::default(),
            generations: Mutex::default(),
            encoding: RwLock::new(PositionEncoding::Utf16),
            root: RwLock::new(None),
            layers: Mutex::default(),
            config: RwLock::new(Arc::new(Config::default())),
            backend: Backend::new(format!(
                "hearth lsp {} (pid {})",
                env!("CARGO_PKG_VERSION"),
                std::process::id()
            )),
            pipeline: RwLock::new(Arc::new(Pipeline::new(Arc::new(ContextEngine::new(None))))),
            shown_errors: Mutex::default(),
            metrics: Mutex::default(),
            assist: Default::default(),
            connecting: std::sync::atomic::AtomicBool::new(false),
            client_watches_files: std::sync::atomic::AtomicBool::new(false),
            watcher: Mutex::default(),
        };
        HearthServer {
            client,
            state: Arc::new(state),
        }
    }

    fn config(&self) -> Arc<Config> {
        self.state
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn encoding(&self) -> PositionEncoding {
        *self.state.encoding.read().unwrap_or_else(|p| p.into_inner())
    }

    fn pipeline(&self) -> Arc<Pipeline> {
        self.state
            .pipeline
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn apply_config(&self, layers: ConfigLayers) {
        let (config, errors) = layers.resolve();
        *self.state.layers.lock().unwrap_or_else(|p| p.into_inner()) = layers;
        let old = std::mem::replace(
            &mut *self.state.config.write().unwrap_or_else(|p| p.into_inner()),
            Arc::new(config),
        );
        let new = self.config();
        if old.model != new.model || old.backend != new.backend || old.sidecar_path != new.sidecar_path {
            self.state.backend.reset().await;
        }
        for error in errors {
            self.show_error_once(format!("Hearth configuration: {error}"))
                .await;
        }
    }

    async fn show_error_once(&self, message: String) {
        let first = self
            .state
            .shown_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(message.clone());
        tracing::warn!("{message}");
        if first {
            self.client.show_message(MessageType::ERROR, message).await;
        }
    }

    async fn send_status(&self) {
        let status = self.state.backend.status();
        let model = self.config().model.clone();
        let (state, message) = match status {
            BackendStatus::Idle => ("starting", None),
            BackendStatus::Starting => ("loading", None),
            BackendStatus::Ready => ("ready", None),
            BackendStatus::Error(message) => ("error", Some(message)),
        };
        let model = match self.state.backend.current().await {
            Some(client) => client.model().name.clone(),
            None => model,
        };
        let last_latency_ms = self
            .state
            .metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_latency_ms;
        self.client
            .send_notification::<StatusNotification>(StatusParams {
                state: state.into(),
                model,
                message,
                last_latency_ms,
            })
            .await;
    }

    /// Connect (or start) the sidecar, with `$/progress` while the model loads.
    async fn ensure_backend(&self) -> Result<hearth_protocol::SidecarClient, String> {
        if let Some(client) = self.state.backend.current().await {
            return Ok(client);
        }
        let config = self.config();
        // Progress is shown from its own task: a handler must never wait for the client to
        // answer a request of ours (with every handler slot taken, that answer could not even
        // be read — a deadlock).
        let loaded = Arc::new(tokio::sync::Notify::new());
        if !self
            .state
            .connecting
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            let client = self.client.clone();
            let loaded = loaded.clone();
            let model = config.model.clone();
            tokio::spawn(async move {
                let token = NumberOrString::String(format!("hearth-model-{}", std::process::id()));
                let created = client
                    .send_request::<request::WorkDoneProgressCreate>(WorkDoneProgressCreateParams {
                        token: token.clone(),
                    })
                    .await
                    .is_ok();
                if created {
                    let progress = client
                        .progress(token, "Hearth: loading model")
                        .with_message(model)
                        .begin()
                        .await;
                    loaded.notified().await;
                    progress.finish_with_message("done").await;
                }
            });
        }
        self.send_status().await;
        let result = self.state.backend.client(&config).await;
        self.state
            .connecting
            .store(false, std::sync::atomic::Ordering::Release);
        loaded.notify_one();
        self.send_status().await;
        match result {
            Ok((client, _)) => Ok(client),
            Err(error) => {
                let message = error.to_string();
                if !matches!(error, crate::backend::BackendError::Backoff { .. }) {
                    self.show_error_once(format!("Hearth: {message}")).await;
                }
                Err(message)
            }
        }
    }

    fn bump_generation(&self, uri: &Uri) -> (u64, watch::Receiver<u64>) {
        let mut generations = self.state.generations.lock().unwrap_or_else(|p| p.into_inner());
        let sender = generations
            .entry(uri.clone())
            .or_insert_with(|| watch::channel(0).0);
        let next = *sender.borrow() + 1;
        sender.send_replace(next);
        (next, sender.subscribe())
    }

    fn snapshot(&self, uri: &Uri, position: Position) -> Option<(CompletionInput, Position)> {
        let encoding = self.encoding();
        let documents = self.state.documents.lock().unwrap_or_else(|p| p.into_inner());
        let document = documents.get(uri)?;
        if document.rope.len_bytes() > MAX_DOCUMENT_BYTES {
            return None;
        }
        let position = document.clamp(position, encoding);
        let cursor_byte = document.position_to_byte(position, encoding);
        let path = uri_to_path(uri).unwrap_or_else(|| PathBuf::from(uri.path().as_str()));
        Some((
            CompletionInput {
                key: uri.as_str().to_string(),
                path,
                language_id: document.language_id.clone(),
                text: Arc::new(document.text()),
                cursor_byte,
                explicit: false,
            },
            position,
        ))
    }

    /// The shared path behind `textDocument/completion` and `textDocument/inlineCompletion`.
    async fn suggest(
        &self,
        uri: &Uri,
        position: Position,
        explicit: bool,
    ) -> RpcResult<Option<(Suggestion, Position)>> {
        let config = self.config();
        self.state
            .metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .completions_requested += 1;
        let (generation, mut changes) = self.bump_generation(uri);
        let Some((mut input, position)) = self.snapshot(uri, position) else {
            return Ok(None);
        };
        input.explicit = explicit;
        if !config.completion.enabled || config.disabled_languages.contains(&input.language_id) {
            return Ok(None);
        }
        let pipeline = self.pipeline();
        if let Some(suggestion) = pipeline.cached(&input) {
            let mut metrics = self.state.metrics.lock().unwrap_or_else(|p| p.into_inner());
            metrics.served_from_cache += 1;
            metrics.completions_answered += 1;
            return Ok(Some((suggestion, position)));
        }
        // Debounce: a newer keystroke or request within the window supersedes this one.
        if config.completion.debounce_ms > 0 {
            let superseded = tokio::time::timeout(
                Duration::from_millis(config.completion.debounce_ms),
                changes.changed(),
            )
            .await;
            if superseded.is_ok() || *changes.borrow() != generation {
                self.state
                    .metrics
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .completions_superseded += 1;
                return Ok(None);
            }
        }
        let client = match self.ensure_backend().await {
            Ok(client) => client,
            Err(message) => {
                self.state
                    .metrics
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .completions_failed += 1;
                return Err(internal_error(message));
            }
        };
        let work = pipeline.complete(&client, &config, &input);
        let outcome = tokio::select! {
            outcome = work => outcome,
            _ = wait_for_change(&mut changes, generation) => {
                // Dropping `work` sends Cancel to the sidecar.
                self.state.metrics.lock().unwrap_or_else(|p| p.into_inner()).completions_superseded += 1;
                return Ok(None);
            }
        };
        match outcome {
            Ok(Ok(suggestion)) => {
                {
                    let mut metrics = self.state.metrics.lock().unwrap_or_else(|p| p.into_inner());
                    metrics.completions_answered += 1;
                    metrics.last_latency_ms = Some(suggestion.elapsed_ms);
                }
                // The status line shows the latest latency.
                self.send_status().await;
                Ok(Some((suggestion, position)))
            }
            Ok(Err(declined)) => {
                tracing::debug!(reason = %declined.reason, raw = ?declined.raw_answer, "no suggestion");
                self.state
                    .metrics
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .completions_empty += 1;
                Ok(None)
            }
            Err(error) if error.is_cancelled() => Ok(None),
            Err(error) => {
                self.state
                    .metrics
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .completions_failed += 1;
                self.send_status().await;
                Err(internal_error(format!("completion failed: {error}")))
            }
        }
    }

    pub async fn inline_completion(
        &self,
        params: InlineCompletionParams,
    ) -> RpcResult<Option<InlineCompletionResponse>> {
        guarded("inlineCompletion", async {
            let uri = params.text_document_position.text_document.uri.clone();
            let position = params.text_document_position.position;
            let explicit = params.context.trigger_kind == InlineCompletionTriggerKind::Invoked;
            let Some((suggestion, position)) = self.suggest(&uri, position, explicit).await? else {
                return Ok(Some(InlineCompletionResponse::Array(Vec::new())));
            };
            let item = InlineCompletionItem {
                insert_text: suggestion.text,
                filter_text: None,
                range: Some(Range::new(position, position)),
                command: None,
                insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
            };
            Ok(Some(InlineCompletionResponse::Array(vec![item])))
        })
        .await
    }

    pub async fn context_request(&self, params: ContextParams) -> RpcResult<Value> {
        guarded("hearth/context", async {
            let Some((input, _)) = self.snapshot(&params.text_document.uri, params.position) else {
                return Err(RpcError::invalid_params("document is not open"));
            };
            let pipeline = self.pipeline();
            let client = self.state.backend.current().await;
            let budget = match &client {
                Some(client) => crate::pipeline::context_budget(&self.config(), client),
                None => self.config().context.budget_tokens.max(2048) as usize,
            };
            let model = client.as_ref().map(|c| c.model().clone()).unwrap_or_default();
            let manifest = pipeline
                .context
                .select(&input, budget, &model, client.as_ref())
                .await;
            serde_json::to_value(manifest).map_err(|e| internal_error(e.to_string()))
        })
        .await
    }

    /// A frame the client sent was not valid JSON-RPC (see `transport`): log it, keep serving.
    pub async fn malformed_message(&self, params: Value) {
        let reason = params["reason"].as_str().unwrap_or("unknown").to_string();
        tracing::warn!("ignored a malformed message from the client: {reason}");
        self.client
            .log_message(
                MessageType::WARNING,
                format!("Hearth ignored a malformed message: {reason}"),
            )
            .await;
    }

    /// `hearth/document`: the server's copy of an open document (for debugging editors and tests).
    pub async fn document_request(&self, params: TextDocumentIdentifier) -> RpcResult<Value> {
        let documents = self.state.documents.lock().unwrap_or_else(|p| p.into_inner());
        match documents.get(&params.uri) {
            Some(document) => Ok(json!({
                "uri": params.uri.as_str(),
                "version": document.version,
                "languageId": document.language_id,
                "text": document.text(),
            })),
            None => Err(RpcError::invalid_params(format!(
                "document is not open: {}",
                params.uri.as_str()
            ))),
        }
    }

    pub async fn stats_request(&self) -> RpcResult<Value> {
        guarded("hearth/stats", async {
            let mut server = self.state.metrics.lock().unwrap_or_else(|p| p.into_inner()).clone();
            server.documents_open = self.state.documents.lock().unwrap_or_else(|p| p.into_inner()).len();
            let sidecar = match self.state.backend.current().await {
                Some(client) => match client.stats().await {
                    Ok(stats) => serde_json::to_value(stats).unwrap_or(Value::Null),
                    Err(error) => json!({ "error": error.to_string() }),
                },
                None => json!({ "error": "not connected", "status": format!("{:?}", self.state.backend.status()) }),
            };
            // Today's line of the usage ledger (every Hearth process of this user, not just us).
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let today = crate::usage::Ledger::open_default()
                .and_then(|ledger| crate::usage::ReadLedger::read_days(&ledger, 1, now).pop())
                .map_or(Value::Null, |day| serde_json::to_value(day).unwrap_or(Value::Null));
            Ok(json!({ "server": server, "sidecar": sidecar, "usageToday": today }))
        })
        .await
    }
}

impl HearthServer {
    /// Start our own file watcher on the workspace root (clients that do not watch for us).
    fn watch_files_ourselves(&self) {
        let Some(root) = self.state.root.read().unwrap_or_else(|p| p.into_inner()).clone() else {
            return;
        };
        let server = self.handle();
        let started = crate::watch::start(root.clone(), move |paths| {
            let context = server.pipeline().context.clone();
            for path in paths {
                context.refresh_from_disk(&path);
            }
        });
        match started {
            Ok(watcher) => {
                tracing::info!("watching {} for changes made outside the editor", root.display());
                *self.state.watcher.lock().unwrap_or_else(|p| p.into_inner()) = Some(watcher);
            }
            Err(error) => tracing::warn!(
                "cannot watch {} ({error}); files changed outside the editor reach the index when opened or saved",
                root.display()
            ),
        }
    }
}

/// What the code-action and review modules (`actions.rs`, `review.rs`) use of the server.
impl HearthServer {
    pub(crate) fn handle(&self) -> HearthServer {
        HearthServer {
            client: self.client.clone(),
            state: self.state.clone(),
        }
    }

    pub(crate) fn lsp_client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn settings(&self) -> Arc<Config> {
        self.config()
    }

    pub(crate) fn position_encoding(&self) -> PositionEncoding {
        self.encoding()
    }

    pub(crate) fn context_engine(&self) -> Arc<ContextEngine> {
        self.pipeline().context.clone()
    }

    pub(crate) fn document_snapshot(&self, uri: &Uri) -> Option<Document> {
        self.state
            .documents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uri)
            .cloned()
    }

    pub(crate) async fn sidecar(&self) -> Result<hearth_protocol::SidecarClient, String> {
        self.ensure_backend().await
    }

    pub(crate) fn assist(&self) -> &crate::actions::AssistState {
        &self.state.assist
    }

    /// `window/workDoneProgress/cancel`: the user cancelled a code action's progress.
    pub async fn work_done_progress_cancel(&self, params: WorkDoneProgressCancelParams) {
        self.cancel_progress(&params.token);
    }
}

impl HearthServer {
    async fn index_workspace(&self) {
        let context = self.pipeline().context.clone();
        if context.root().is_none() {
            return;
        }
        let token = NumberOrString::String(format!("hearth-index-{}", std::process::id()));
        let created = self
            .client
            .send_request::<request::WorkDoneProgressCreate>(WorkDoneProgressCreateParams {
                token: token.clone(),
            })
            .await
            .is_ok();
        let progress = if created {
            Some(
                self.client
                    .progress(token, "Hearth: indexing workspace")
                    .with_percentage(0)
                    .begin()
                    .await,
            )
        } else {
            None
        };
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<(usize, usize)>();
        let build = tokio::task::spawn_blocking(move || {
            context.build_index(&move |done, total| {
                let _ = sender.send((done, total));
            })
        });
        let mut last_percent = 0;
        while let Some((done, total)) = receiver.recv().await {
            let percent = (done * 100).checked_div(total).unwrap_or(100) as u32;
            if percent >= last_percent + 5 {
                last_percent = percent;
                if let Some(progress) = &progress {
                    progress
                        .report_with_message(format!("{done}/{total} files"), percent)
                        .await;
                }
            }
        }
        let files = build.await.ok().flatten().unwrap_or(0);
        tracing::info!("indexed {files} files");
        if let Some(progress) = progress {
            progress
                .finish_with_message(format!("{files} files indexed"))
                .await;
        }
    }
}

async fn wait_for_change(changes: &mut watch::Receiver<u64>, generation: u64) {
    loop {
        if changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        if *changes.borrow() != generation {
            return;
        }
    }
}

fn negotiate_encoding(params: &InitializeParams) -> PositionEncoding {
    let offered = params
        .capabilities
        .general
        .as_ref()
        .and_then(|general| general.position_encodings.as_ref());
    match offered {
        Some(encodings) if encodings.contains(&PositionEncodingKind::UTF8) => PositionEncoding::Utf8,
        _ => PositionEncoding::Utf16,
    }
}

impl LanguageServer for HearthServer {
    async fn initialize(&self, params: InitializeParams) -> RpcResult<InitializeResult> {
        let encoding = negotiate_encoding(&params);
        self.state.assist.read_client_capabilities(&params.capabilities);
        let watches = params
            .capabilities
            .workspace
            .as_ref()
            .and_then(|workspace| workspace.did_change_watched_files.as_ref())
            .and_then(|watched| watched.dynamic_registration)
            .unwrap_or(false);
        self.state
            .client_watches_files
            .store(watches, std::sync::atomic::Ordering::Relaxed);
        *self.state.encoding.write().unwrap_or_else(|p| p.into_inner()) = encoding;
        #[allow(deprecated)]
        let root = params
            .workspace_folders
            .as_ref()
            .and_then(|folders| folders.first())
            .and_then(|folder| uri_to_path(&folder.uri))
            .or_else(|| params.root_uri.as_ref().and_then(uri_to_path));
        *self.state.root.write().unwrap_or_else(|p| p.into_inner()) = root.clone();
        let (mut layers, errors) = config::file_layers(root.as_deref());
        layers.initialization_options = params
            .initialization_options
            .as_ref()
            .and_then(config::lsp_settings_layer);
        self.apply_config(layers).await;
        for error in errors {
            self.show_error_once(format!("Hearth configuration: {error}"))
                .await;
        }
        *self.state.pipeline.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Pipeline::new(Arc::new(ContextEngine::new(root))));

        let capabilities = ServerCapabilities {
            position_encoding: Some(match encoding {
                PositionEncoding::Utf8 => PositionEncodingKind::UTF8,
                PositionEncoding::Utf16 => PositionEncodingKind::UTF16,
            }),
            text_document_sync: Some(TextDocumentSyncCapability::Options(TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                    include_text: Some(false),
                })),
                ..Default::default()
            })),
            completion_provider: Some(CompletionOptions {
                resolve_provider: Some(false),
                trigger_characters: Some(vec![".".into(), "(".into(), " ".into()]),
                ..Default::default()
            }),
            inline_completion_provider: Some(OneOf::Left(true)),
            code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
                code_action_kinds: Some(crate::actions::action_kinds()),
                resolve_provider: Some(true),
                work_done_progress_options: Default::default(),
            })),
            execute_command_provider: Some(ExecuteCommandOptions {
                commands: vec![
                    crate::actions::REWRITE_COMMAND.into(),
                    crate::actions::DISMISS_COMMAND.into(),
                ],
                work_done_progress_options: Default::default(),
            }),
            ..Default::default()
        };
        Ok(InitializeResult {
            capabilities,
            server_info: Some(ServerInfo {
                name: "hearth".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        tracing::info!("initialized");
        // Index the workspace in the background, with progress.
        let server = HearthServer {
            client: self.client.clone(),
            state: self.state.clone(),
        };
        tokio::spawn(async move { server.index_workspace().await });
        // Warm the model up in the background so the first keystroke does not pay for it.
        let server = HearthServer {
            client: self.client.clone(),
            state: self.state.clone(),
        };
        tokio::spawn(async move {
            let _ = server.ensure_backend().await;
        });
        // Keep the index current when files change outside the editor.
        let watchers = vec![FileSystemWatcher {
            glob_pattern: GlobPattern::String("**/*".into()),
            kind: None,
        }];
        let registration = Registration {
            id: "hearth-watched-files".into(),
            method: "workspace/didChangeWatchedFiles".into(),
            register_options: serde_json::to_value(DidChangeWatchedFilesRegistrationOptions { watchers })
                .ok(),
        };
        let server = self.handle();
        if self
            .state
            .client_watches_files
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            tokio::spawn(async move {
                if let Err(error) = server.client.register_capability(vec![registration]).await {
                    tracing::info!("the client refused to watch files for us ({error}); watching ourselves");
                    server.watch_files_ourselves();
                }
            });
        } else {
            server.watch_files_ourselves();
        }
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        let context = self.pipeline().context.clone();
        let paths: Vec<PathBuf> = params
            .changes
            .iter()
            .filter_map(|change| uri_to_path(&change.uri))
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for path in paths {
                context.refresh_from_disk(&path);
            }
        })
        .await;
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        let uri = params.text_document.uri;
        let text = self
            .state
            .documents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&uri)
            .map(|d| d.text());
        if let (Some(path), Some(text)) = (uri_to_path(&uri), text) {
            let context = self.pipeline().context.clone();
            let _ = tokio::task::spawn_blocking(move || context.update_file(&path, &text)).await;
        }
        self.schedule_review(&uri);
    }

    async fn shutdown(&self) -> RpcResult<()> {
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let document = params.text_document;
        if let Some(path) = uri_to_path(&document.uri) {
            let context = self.pipeline().context.clone();
            context.record_region(&path, 0, RecentRegionKind::View);
            let text = document.text.clone();
            tokio::task::spawn_blocking(move || context.update_file(&path, &text));
        }
        self.review_opened(&document.uri, &document.text);
        self.state
            .documents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                document.uri.clone(),
                Document::new(&document.text, document.version, &document.language_id),
            );
        self.bump_generation(&document.uri);
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        // Synchronous: applied before any other handler can observe the document.
        let encoding = self.encoding();
        let uri = params.text_document.uri;
        {
            let mut documents = self.state.documents.lock().unwrap_or_else(|p| p.into_inner());
            match documents.get_mut(&uri) {
                Some(document) => {
                    if let Err(error) = document.apply_changes(
                        params.text_document.version,
                        &params.content_changes,
                        encoding,
                    ) {
                        tracing::warn!("{}: {error}", uri.as_str());
                    }
                }
                None => tracing::warn!("didChange for a document never opened: {}", uri.as_str()),
            }
        }
        self.bump_generation(&uri);
        if let (Some(path), Some(change)) = (uri_to_path(&uri), params.content_changes.first()) {
            let line = change.range.map_or(0, |range| range.start.line);
            self.pipeline()
                .context
                .record_region(&path, line, RecentRegionKind::Edit);
        }
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let uri = params.text_document.uri;
        self.state
            .documents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&uri);
        self.bump_generation(&uri);
        self.state
            .generations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&uri);
        self.pipeline().cache.forget(uri.as_str());
        self.review_closed(&uri).await;
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        let mut layers = self
            .state
            .layers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        layers.client_settings = config::lsp_settings_layer(&params.settings);
        self.apply_config(layers).await;
    }

    async fn code_action(&self, params: CodeActionParams) -> RpcResult<Option<CodeActionResponse>> {
        guarded("codeAction", async { Ok(Some(self.list_code_actions(&params))) }).await
    }

    async fn code_action_resolve(&self, params: CodeAction) -> RpcResult<CodeAction> {
        guarded("codeAction/resolve", self.resolve_code_action(params)).await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> RpcResult<Option<LSPAny>> {
        guarded("workspace/executeCommand", async {
            match params.command.as_str() {
                crate::actions::REWRITE_COMMAND => self.rewrite_command(params.arguments).await,
                crate::actions::DISMISS_COMMAND => self.dismiss_finding(params.arguments).await,
                other => Err(RpcError::invalid_params(format!("unknown command `{other}`"))),
            }
        })
        .await
    }

    async fn completion(&self, params: CompletionParams) -> RpcResult<Option<CompletionResponse>> {
        guarded("completion", async {
            let uri = params.text_document_position.text_document.uri.clone();
            let position = params.text_document_position.position;
            let explicit = params
                .context
                .as_ref()
                .is_some_and(|context| context.trigger_kind == CompletionTriggerKind::INVOKED);
            let Some((suggestion, position)) = self.suggest(&uri, position, explicit).await? else {
                return Ok(Some(CompletionResponse::List(CompletionList {
                    is_incomplete: true,
                    items: Vec::new(),
                })));
            };
            let label = suggestion
                .text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string();
            let item = CompletionItem {
                label,
                kind: Some(CompletionItemKind::TEXT),
                detail: Some("hearth".into()),
                documentation: suggestion.multiline.then(|| {
                    Documentation::MarkupContent(MarkupContent {
                        kind: MarkupKind::Markdown,
                        value: format!("```\n{}\n```", suggestion.text),
                    })
                }),
                // Sorts and filters as typed text at the cursor.
                filter_text: None,
                sort_text: Some("0".into()),
                preselect: Some(true),
                insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
                text_edit: Some(CompletionTextEdit::Edit(TextEdit {
                    range: Range::new(position, position),
                    new_text: suggestion.text,
                })),
                ..Default::default()
            };
            Ok(Some(CompletionResponse::List(CompletionList {
                is_incomplete: true,
                items: vec![item],
            })))
        })
        .await
    }
}

/// Build the service: the trait's methods plus inline completion and Hearth's own requests.
pub fn service() -> (LspService<HearthServer>, tower_lsp_server::ClientSocket) {
    LspService::build(HearthServer::new)
        .custom_method("textDocument/inlineCompletion", HearthServer::inline_completion)
        .custom_method("hearth/context", HearthServer::context_request)
        .custom_method("hearth/stats", HearthServer::stats_request)
        .custom_method(
            "window/workDoneProgress/cancel",
            HearthServer::work_done_progress_cancel,
        )
        .custom_method("hearth/document", HearthServer::document_request)
        .custom_method(
            crate::transport::MALFORMED_METHOD,
            HearthServer::malformed_message,
        )
        .finish()
}

/// Serve LSP on the given streams until the client exits.
pub async fn serve<I, O>(input: I, output: O)
where
    I: tokio::io::AsyncRead + Unpin + Send + 'static,
    O: tokio::io::AsyncWrite,
{
    let (service, socket) = service();
    // Malformed frames are repaired before tower-lsp sees them (it would stop reading).
    let (filtered_write, filtered_read) = tokio::io::duplex(1 << 20);
    tokio::spawn(crate::transport::filter_frames(input, filtered_write));
    Server::new(filtered_read, output, socket)
        .concurrency_level(64)
        .serve(service)
        .await;
}
