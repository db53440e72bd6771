//! The client handle the language server (and the CLI, tests and benchmarks) uses.
//!
//! One connection multiplexes many requests. A background task reads frames and routes them by
//! request id; when the connection drops, every pending request fails at once with
//! [`ClientError::Disconnected`]. Dropping a [`CompletionStream`] before it finished sends
//! `Cancel` to the sidecar, so a superseded completion stops decoding there too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use interprocess::local_socket::tokio::{prelude::*, Stream as LocalStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::endpoint::Endpoint;
use crate::framing;
use crate::messages::*;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the sidecar at {path}: {source}")]
    Connect { path: String, source: std::io::Error },
    #[error("the sidecar speaks protocol {theirs}, this client speaks {ours}: restart the sidecar (`hearth stop`) or update Hearth")]
    VersionMismatch { ours: u32, theirs: u32 },
    #[error("the sidecar connection closed")]
    Disconnected,
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{message}")]
    Sidecar { kind: ErrorKind, message: String },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("failed to start the sidecar: {0}")]
    Launch(String),
    /// An OpenAI-compatible server refused or could not be reached.
    #[error("{0}")]
    Remote(String),
}

impl ClientError {
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Sidecar { kind, .. } => Some(*kind),
            _ => None,
        }
    }
    pub fn is_cancelled(&self) -> bool {
        self.kind() == Some(ErrorKind::Cancelled)
    }
}

/// What the sidecar said about itself in the handshake.
#[derive(Debug, Clone, PartialEq)]
pub struct SidecarHello {
    pub sidecar_version: String,
    /// 0 for a remote server.
    pub pid: u32,
    pub model: ModelInfo,
    pub engine: EngineSettings,
    /// Base URL when this handle talks to an OpenAI-compatible server instead of the sidecar.
    pub remote_url: Option<String>,
}

/// How one completion or chat request ended, reported to the usage observer (the ledger).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEvent {
    /// `completion` or `chat`.
    pub kind: &'static str,
    pub priority: Priority,
    pub remote: bool,
    pub model: String,
    pub outcome: UsageOutcome,
    /// The engine's numbers, when the request finished.
    pub metrics: Option<RequestMetrics>,
    /// From the request's start to its end, measured here.
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageOutcome {
    Completed,
    Cancelled,
    Failed,
}

pub type UsageObserver = Arc<dyn Fn(UsageEvent) + Send + Sync>;

pub(crate) type Pending = Arc<Mutex<HashMap<RequestId, mpsc::UnboundedSender<SidecarMessage>>>>;

pub(crate) struct Shared {
    pub(crate) outgoing: mpsc::UnboundedSender<ClientMessage>,
    pub(crate) pending: Pending,
    pub(crate) next_id: AtomicU64,
    pub(crate) closed: Arc<AtomicBool>,
    /// The task that answers requests (the socket reader, or the remote dispatcher).
    pub(crate) reader: tokio::task::AbortHandle,
    pub(crate) observer: Mutex<Option<UsageObserver>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Shared {
    /// The state of a handle whose answers `reader` delivers into `pending`.
    pub(crate) fn new(
        outgoing: mpsc::UnboundedSender<ClientMessage>,
        pending: Pending,
        closed: Arc<AtomicBool>,
        reader: tokio::task::AbortHandle,
    ) -> Shared {
        Shared {
            outgoing,
            pending,
            next_id: AtomicU64::new(1),
            closed,
            reader,
            observer: Mutex::new(None),
        }
    }

    fn register(&self) -> Result<(RequestId, mpsc::UnboundedReceiver<SidecarMessage>), ClientError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ClientError::Disconnected);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::unbounded_channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, sender);
        Ok((id, receiver))
    }

    fn forget(&self, id: RequestId) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    fn send(&self, message: ClientMessage) -> Result<(), ClientError> {
        self.outgoing.send(message).map_err(|_| ClientError::Disconnected)
    }
}

/// Hand `message` to the request waiting for it; the request is done after a final message.
pub(crate) fn deliver(pending: &Pending, message: SidecarMessage) {
    let id = match &message {
        SidecarMessage::Token { id, .. }
        | SidecarMessage::Done { id, .. }
        | SidecarMessage::Tokenized { id, .. }
        | SidecarMessage::Stats { id, .. } => Some(*id),
        SidecarMessage::Error { id, .. } => *id,
        SidecarMessage::Hello { .. } => None,
    };
    let is_final = !matches!(message, SidecarMessage::Token { .. });
    let mut pending = pending.lock().unwrap_or_else(|p| p.into_inner());
    match id {
        Some(id) => {
            if let Some(sender) = pending.get(&id) {
                let _ = sender.send(message);
            }
            if is_final {
                pending.remove(&id);
            }
        }
        None => tracing::warn!("sidecar: {message:?}"),
    }
}

/// A handle on an inference engine: the local sidecar over its socket, or an OpenAI-compatible
/// server over HTTP ([`SidecarClient::connect_remote`]). Callers cannot tell them apart except
/// through [`SidecarHello::remote_url`].
#[derive(Clone)]
pub struct SidecarClient {
    pub(crate) shared: Arc<Shared>,
    pub(crate) hello: Arc<SidecarHello>,
}

impl std::fmt::Debug for SidecarClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SidecarClient")
            .field("pid", &self.hello.pid)
            .finish()
    }
}

impl SidecarClient {
    /// Connect and perform the versioned handshake. The sidecar answers the handshake only once
    /// its model is loaded, so `hello_timeout` must cover a model load.
    pub async fn connect(
        endpoint: &Endpoint,
        client_name: &str,
        hello_timeout: Duration,
    ) -> Result<SidecarClient, ClientError> {
        let path = endpoint.socket_path.display().to_string();
        let name = endpoint.socket_name().map_err(|source| ClientError::Connect {
            path: path.clone(),
            source,
        })?;
        let stream = LocalStream::connect(name)
            .await
            .map_err(|source| ClientError::Connect { path, source })?;
        Self::handshake(stream, client_name, hello_timeout).await
    }

    async fn handshake(
        stream: LocalStream,
        client_name: &str,
        hello_timeout: Duration,
    ) -> Result<SidecarClient, ClientError> {
        let (recv_half, send_half) = tokio::io::split(stream);
        let mut reader = FramedRead::new(recv_half, framing::codec());
        let mut writer = FramedWrite::new(send_half, framing::codec());

        let hello = ClientMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            client: client_name.to_string(),
        };
        writer
            .send(framing::encode(&hello))
            .await
            .map_err(|_| ClientError::Disconnected)?;
        let first = tokio::time::timeout(hello_timeout, reader.next())
            .await
            .map_err(|_| {
                ClientError::Timeout("waiting for the sidecar's handshake (model still loading?)".into())
            })?;
        let frame = match first {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => return Err(ClientError::Protocol(error.to_string())),
            None => return Err(ClientError::Disconnected),
        };
        let hello = match framing::decode::<SidecarMessage>(&frame) {
            Ok(SidecarMessage::Hello { protocol_version, .. }) if protocol_version != PROTOCOL_VERSION => {
                return Err(ClientError::VersionMismatch {
                    ours: PROTOCOL_VERSION,
                    theirs: protocol_version,
                })
            }
            Ok(SidecarMessage::Hello {
                sidecar_version,
                pid,
                model,
                engine,
                ..
            }) => SidecarHello {
                sidecar_version,
                pid,
                model,
                engine,
                remote_url: None,
            },
            Ok(SidecarMessage::Error { kind, message, .. }) => {
                return Err(ClientError::Sidecar { kind, message })
            }
            Ok(other) => return Err(ClientError::Protocol(format!("expected hello, got {other:?}"))),
            Err(error) => return Err(ClientError::Protocol(error.to_string())),
        };

        let pending: Pending = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let (outgoing, mut outgoing_rx) = mpsc::unbounded_channel::<ClientMessage>();

        // Writer task: serializes outgoing messages in order.
        let writer_closed = closed.clone();
        tokio::spawn(async move {
            while let Some(message) = outgoing_rx.recv().await {
                if writer.send(framing::encode(&message)).await.is_err() {
                    break;
                }
            }
            // Every handle is gone: shut the socket down so the sidecar sees us leave.
            let _ = SinkExt::<bytes::Bytes>::close(&mut writer).await;
            writer_closed.store(true, Ordering::Release);
        });

        // Reader task: routes each message to its request; on EOF fails everything pending.
        let reader_pending = pending.clone();
        let reader_closed = closed.clone();
        let reader_task = tokio::spawn(async move {
            while let Some(Ok(frame)) = reader.next().await {
                let message = match framing::decode::<SidecarMessage>(&frame) {
                    Ok(message) => message,
                    Err(error) => {
                        tracing::warn!("sidecar sent a malformed frame: {error}");
                        continue;
                    }
                };
                deliver(&reader_pending, message);
            }
            reader_closed.store(true, Ordering::Release);
            // Dropping the senders wakes every waiter with `Disconnected`.
            reader_pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
        });

        Ok(SidecarClient {
            shared: Arc::new(Shared::new(outgoing, pending, closed, reader_task.abort_handle())),
            hello: Arc::new(hello),
        })
    }

    pub fn hello(&self) -> &SidecarHello {
        &self.hello
    }

    pub fn model(&self) -> &ModelInfo {
        &self.hello.model
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    pub fn is_remote(&self) -> bool {
        self.hello.remote_url.is_some()
    }

    /// Call `observer` once for every completion and chat request this handle (and its clones)
    /// starts, when it finishes, fails or is cancelled. Replaces any previous observer.
    pub fn set_usage_observer(&self, observer: UsageObserver) {
        *self.shared.observer.lock().unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    fn stream(
        &self,
        kind: &'static str,
        priority: Priority,
    ) -> Result<(RequestId, CompletionStream), ClientError> {
        let (id, receiver) = self.shared.register()?;
        let stream = CompletionStream {
            id,
            receiver,
            shared: self.shared.clone(),
            finished: false,
            usage: Some(UsageStart {
                kind,
                priority,
                remote: self.is_remote(),
                model: self.hello.model.name.clone(),
                started: std::time::Instant::now(),
            }),
        };
        Ok((id, stream))
    }

    /// Start a completion. Events arrive on the returned stream; dropping it early cancels.
    pub fn complete(&self, params: CompletionParams) -> Result<CompletionStream, ClientError> {
        let (id, stream) = self.stream("completion", params.priority)?;
        self.shared.send(ClientMessage::Complete { id, params })?;
        Ok(stream)
    }

    /// Start a chat request (messages rendered with the model's own template).
    pub fn chat(&self, params: ChatParams) -> Result<CompletionStream, ClientError> {
        let (id, stream) = self.stream("chat", params.priority)?;
        self.shared.send(ClientMessage::Chat { id, params })?;
        Ok(stream)
    }

    /// Token counts (and ids unless `count_only`) of each text, with the model's real tokenizer.
    pub async fn tokenize(
        &self,
        texts: Vec<String>,
        count_only: bool,
    ) -> Result<(Vec<u32>, Vec<Vec<i32>>), ClientError> {
        let (id, mut receiver) = self.shared.register()?;
        let guard = ForgetOnDrop {
            shared: &self.shared,
            id,
        };
        self.shared.send(ClientMessage::Tokenize {
            id,
            texts,
            count_only,
        })?;
        let answer = receiver.recv().await;
        drop(guard);
        match answer {
            Some(SidecarMessage::Tokenized { counts, tokens, .. }) => Ok((counts, tokens)),
            Some(SidecarMessage::Error { kind, message, .. }) => Err(ClientError::Sidecar { kind, message }),
            Some(other) => Err(ClientError::Protocol(format!(
                "unexpected answer to tokenize: {other:?}"
            ))),
            None => Err(ClientError::Disconnected),
        }
    }

    pub async fn stats(&self) -> Result<SidecarStats, ClientError> {
        let (id, mut receiver) = self.shared.register()?;
        let guard = ForgetOnDrop {
            shared: &self.shared,
            id,
        };
        self.shared.send(ClientMessage::Stats { id })?;
        let answer = receiver.recv().await;
        drop(guard);
        match answer {
            Some(SidecarMessage::Stats { stats, .. }) => Ok(stats),
            Some(SidecarMessage::Error { kind, message, .. }) => Err(ClientError::Sidecar { kind, message }),
            Some(other) => Err(ClientError::Protocol(format!(
                "unexpected answer to stats: {other:?}"
            ))),
            None => Err(ClientError::Disconnected),
        }
    }
}

struct ForgetOnDrop<'a> {
    shared: &'a Shared,
    id: RequestId,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        self.shared.forget(self.id);
    }
}

/// One event of a streamed completion.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Token(String),
    Done(CompletionOutcome),
}

pub struct CompletionStream {
    id: RequestId,
    receiver: mpsc::UnboundedReceiver<SidecarMessage>,
    shared: Arc<Shared>,
    finished: bool,
    /// Taken when the outcome is reported to the usage observer.
    usage: Option<UsageStart>,
}

struct UsageStart {
    kind: &'static str,
    priority: Priority,
    remote: bool,
    model: String,
    started: std::time::Instant,
}

impl CompletionStream {
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The next event; `Done` is the last one. Errors end the stream.
    pub async fn next_event(&mut self) -> Result<StreamEvent, ClientError> {
        if self.finished {
            return Err(ClientError::Protocol("stream already finished".into()));
        }
        let message = self.receiver.recv().await;
        match &message {
            Some(SidecarMessage::Token { .. }) => {}
            Some(SidecarMessage::Done { outcome, .. }) => {
                self.report(UsageOutcome::Completed, Some(outcome.metrics.clone()))
            }
            Some(SidecarMessage::Error {
                kind: ErrorKind::Cancelled,
                ..
            }) => self.report(UsageOutcome::Cancelled, None),
            _ => self.report(UsageOutcome::Failed, None),
        }
        match message {
            Some(SidecarMessage::Token { text, .. }) => Ok(StreamEvent::Token(text)),
            Some(SidecarMessage::Done { outcome, .. }) => {
                self.finished = true;
                Ok(StreamEvent::Done(outcome))
            }
            Some(SidecarMessage::Error { kind, message, .. }) => {
                self.finished = true;
                Err(ClientError::Sidecar { kind, message })
            }
            Some(other) => {
                self.finished = true;
                Err(ClientError::Protocol(format!(
                    "unexpected message in a completion: {other:?}"
                )))
            }
            None => {
                self.finished = true;
                Err(ClientError::Disconnected)
            }
        }
    }

    fn report(&mut self, outcome: UsageOutcome, metrics: Option<RequestMetrics>) {
        let Some(start) = self.usage.take() else { return };
        let observer = self
            .shared
            .observer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(observer) = observer {
            observer(UsageEvent {
                kind: start.kind,
                priority: start.priority,
                remote: start.remote,
                model: start.model,
                outcome,
                metrics,
                elapsed_ms: start.started.elapsed().as_secs_f64() * 1000.0,
            });
        }
    }

    /// Wait for the final outcome, ignoring streamed tokens.
    pub async fn finish(mut self) -> Result<CompletionOutcome, ClientError> {
        loop {
            if let StreamEvent::Done(outcome) = self.next_event().await? {
                return Ok(outcome);
            }
        }
    }

    /// Ask the sidecar to stop this request; the stream then ends with a `Cancelled` error
    /// (or `Done`, if it finished first).
    pub fn cancel(&self) {
        let _ = self.shared.send(ClientMessage::Cancel { id: self.id });
    }
}

impl Drop for CompletionStream {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.shared.send(ClientMessage::Cancel { id: self.id });
            self.report(UsageOutcome::Cancelled, None);
        }
        self.shared.forget(self.id);
    }
}
