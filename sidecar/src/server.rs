//! The IPC side: lock, socket, connections, idle exit. No llama.cpp here beyond starting the
//! engine thread; frames are parsed here and only typed commands reach the engine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hearth_protocol::framing;
use hearth_protocol::*;
use interprocess::local_socket::tokio::{prelude::*, Stream as LocalStream};
use interprocess::local_socket::ListenerOptions;
use tokio::sync::{mpsc, watch};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::engine::{self, Command, EngineConfig, Job};

pub struct ServerOptions {
    pub socket: Option<PathBuf>,
    pub lock_file: Option<PathBuf>,
    pub idle_timeout_secs: u64,
    /// Also serve the OpenAI-compatible HTTP API on this address (off unless asked).
    pub openai_listen: Option<std::net::SocketAddr>,
    /// Bearer token the HTTP API requires (from `--openai-api-key-env`).
    pub openai_api_key: Option<String>,
    /// Record requests served over HTTP in the user's usage ledger.
    pub usage_ledger: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum LoadState {
    Loading,
    Ready(Arc<SidecarMessage>),
    Failed(String),
}

pub(crate) struct Shared {
    pub(crate) commands: crossbeam_channel::Sender<Command>,
    pub(crate) state: watch::Receiver<LoadState>,
    clients_connected: AtomicU32,
    clients_total: AtomicU64,
    pub(crate) next_connection: AtomicU64,
    pub(crate) started: Instant,
    /// Milliseconds since `started` when the last client left (or the server started).
    idle_since_ms: AtomicU64,
    /// The bound address of the OpenAI-compatible listener.
    pub(crate) openai_listen: std::sync::OnceLock<String>,
}

impl Shared {
    pub(crate) fn stats_command(&self, id: RequestId, sink: engine::EventSink) -> Command {
        Command::Stats {
            id,
            sink,
            clients_connected: self.clients_connected.load(Ordering::Acquire),
            clients_total: self.clients_total.load(Ordering::Relaxed),
            started: self.started,
            openai_listen: self.openai_listen.get().cloned(),
        }
    }
}

pub fn serve(config: EngineConfig, options: ServerOptions) -> ExitCode {
    let endpoint = match &options.socket {
        Some(socket) => {
            let dir = socket
                .parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            let stem = socket
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut endpoint = Endpoint::in_dir(&dir, stem.trim_start_matches("sidecar-"));
            endpoint.socket_path = socket.clone();
            endpoint.lock_path = options
                .lock_file
                .clone()
                .unwrap_or_else(|| socket.with_extension("lock"));
            endpoint
        }
        None => match Endpoint::for_model(&config.model_path, "") {
            Ok(endpoint) => endpoint,
            Err(error) => {
                tracing::error!("cannot prepare the runtime directory: {error}");
                return ExitCode::from(2);
            }
        },
    };

    // One sidecar per endpoint: the lock decides, before anything is bound or loaded.
    let _lock = match take_lock(&endpoint.lock_path) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            tracing::info!(
                "another hearth-sidecar already serves {} (same model and settings); exiting. \
                 Stop it, or give this one its own --socket PATH",
                endpoint.socket_path.display()
            );
            return ExitCode::from(EXIT_ALREADY_RUNNING as u8);
        }
        Err(error) => {
            tracing::error!("cannot take the lock {}: {error}", endpoint.lock_path.display());
            return ExitCode::from(2);
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the IO runtime: {error}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(serve_async(config, options, endpoint))
}

async fn serve_async(config: EngineConfig, options: ServerOptions, endpoint: Endpoint) -> ExitCode {
    // We hold the lock: any socket file left here is stale.
    let _ = std::fs::remove_file(&endpoint.socket_path);
    let name = match endpoint.socket_name() {
        Ok(name) => name,
        Err(error) => {
            tracing::error!("bad socket path {}: {error}", endpoint.socket_path.display());
            return ExitCode::from(2);
        }
    };
    let mut listener_options = ListenerOptions::new().name(name);
    #[cfg(unix)]
    {
        use interprocess::os::unix::local_socket::ListenerOptionsExt;
        listener_options = listener_options.mode(0o600);
    }
    let listener = match listener_options.create_tokio() {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!("cannot listen on {}: {error}", endpoint.socket_path.display());
            return ExitCode::from(2);
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&endpoint.socket_path, std::fs::Permissions::from_mode(0o600));
    }
    tracing::info!(
        "listening on {} (pid {})",
        endpoint.socket_path.display(),
        std::process::id()
    );

    let (state_tx, state_rx) = watch::channel(LoadState::Loading);
    let (commands_tx, commands_rx) = crossbeam_channel::unbounded::<Command>();
    let engine_thread = std::thread::Builder::new()
        .name("hearth-engine".into())
        .spawn(move || run_engine(config, commands_rx, state_tx));
    if let Err(error) = engine_thread {
        tracing::error!("cannot start the engine thread: {error}");
        return ExitCode::from(2);
    }

    let shared = Arc::new(Shared {
        commands: commands_tx,
        state: state_rx.clone(),
        clients_connected: AtomicU32::new(0),
        clients_total: AtomicU64::new(0),
        next_connection: AtomicU64::new(1),
        started: Instant::now(),
        idle_since_ms: AtomicU64::new(0),
        openai_listen: std::sync::OnceLock::new(),
    });

    if let Some(address) = options.openai_listen {
        let listener = match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!("cannot listen for HTTP on {address}: {error}");
                return ExitCode::from(2);
            }
        };
        let bound = listener
            .local_addr()
            .map_or(address.to_string(), |a| a.to_string());
        tracing::info!("OpenAI-compatible API on http://{bound}/v1");
        let _ = shared.openai_listen.set(bound);
        let ledger = options
            .usage_ledger
            .then(hearth_protocol::ledger::Ledger::open_default)
            .flatten();
        tokio::spawn(crate::openai::serve(
            listener,
            shared.clone(),
            options.openai_api_key.clone(),
            ledger,
        ));
    }

    let exit = {
        let shared = shared.clone();
        let mut state = state_rx.clone();
        let idle = Duration::from_secs(options.idle_timeout_secs);
        async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    changed = state.changed() => {
                        if changed.is_err() {
                            return ExitCode::from(2);
                        }
                    }
                }
                if let LoadState::Failed(message) = &*state.borrow() {
                    tracing::error!("{message}");
                    // Let waiting clients read the error before we go.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    return ExitCode::from(2);
                }
                // An HTTP listener has no connections to count: it stays until stopped.
                if options.idle_timeout_secs > 0
                    && options.openai_listen.is_none()
                    && shared.clients_connected.load(Ordering::Acquire) == 0
                {
                    let idle_since = Duration::from_millis(shared.idle_since_ms.load(Ordering::Acquire));
                    if shared.started.elapsed().saturating_sub(idle_since) >= idle {
                        tracing::info!("no client for {idle:?}; exiting");
                        return ExitCode::SUCCESS;
                    }
                }
            }
        }
    };

    let accept = {
        let shared = shared.clone();
        async move {
            loop {
                match listener.accept().await {
                    Ok(stream) => {
                        let shared = shared.clone();
                        tokio::spawn(async move { serve_connection(stream, shared).await });
                    }
                    Err(error) => {
                        tracing::warn!("accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    };

    let signals = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("signal received; exiting");
        ExitCode::SUCCESS
    };

    let code = tokio::select! {
        code = exit => code,
        code = signals => code,
        _ = accept => ExitCode::from(2),
    };
    let _ = shared.commands.send(Command::Shutdown);
    let _ = std::fs::remove_file(&endpoint.socket_path);
    code
}

fn run_engine(
    config: EngineConfig,
    commands: crossbeam_channel::Receiver<Command>,
    state: watch::Sender<LoadState>,
) {
    static BACKEND: std::sync::OnceLock<Result<llama_cpp_2::llama_backend::LlamaBackend, String>> =
        std::sync::OnceLock::new();
    let backend = BACKEND.get_or_init(|| {
        llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
        llama_cpp_2::llama_backend::LlamaBackend::init().map_err(|error| error.to_string())
    });
    let backend = match backend {
        Ok(backend) => backend,
        Err(error) => {
            let _ = state.send(LoadState::Failed(format!("cannot initialise llama.cpp: {error}")));
            return;
        }
    };
    let loaded_at = Instant::now();
    let loaded = match engine::load_model(backend, &config) {
        Ok(loaded) => loaded,
        Err(error) => {
            let _ = state.send(LoadState::Failed(format!("{error:#}")));
            return;
        }
    };
    let engine = match engine::Engine::new(backend, &loaded, &config) {
        Ok(engine) => engine,
        Err(error) => {
            let _ = state.send(LoadState::Failed(format!("{error:#}")));
            return;
        }
    };
    tracing::info!(
        "model {} ({}, {} parameters) ready in {:.1}s: ctx {} in {} slots, {} threads",
        loaded.info.name,
        loaded.info.architecture,
        loaded.info.n_params,
        loaded_at.elapsed().as_secs_f64(),
        engine.settings().n_ctx,
        engine.settings().n_parallel,
        engine.settings().n_threads
    );
    let hello = SidecarMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        sidecar_version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        model: loaded.info.clone(),
        engine: engine.settings().clone(),
    };
    let _ = state.send(LoadState::Ready(Arc::new(hello)));
    engine.run(commands);
}

async fn serve_connection(stream: LocalStream, shared: Arc<Shared>) {
    let connection = shared.next_connection.fetch_add(1, Ordering::Relaxed);
    let (recv_half, send_half) = tokio::io::split(stream);
    let mut reader = FramedRead::new(recv_half, framing::codec());
    let mut writer = FramedWrite::new(send_half, framing::codec());

    // Handshake: the first frame must be a Hello with our protocol version.
    let first = match reader.next().await {
        Some(Ok(frame)) => frame,
        _ => return,
    };
    match framing::decode::<ClientMessage>(&first) {
        Ok(ClientMessage::Hello {
            protocol_version,
            client,
        }) if protocol_version == PROTOCOL_VERSION => {
            tracing::info!("client {connection} connected: {client}");
        }
        Ok(ClientMessage::Hello {
            protocol_version,
            client,
        }) => {
            let message = format!(
                "protocol version mismatch: client `{client}` speaks {protocol_version}, this sidecar speaks {PROTOCOL_VERSION}"
            );
            tracing::warn!("{message}");
            let _ = writer
                .send(framing::encode(&SidecarMessage::Error {
                    id: None,
                    kind: ErrorKind::VersionMismatch,
                    message,
                }))
                .await;
            return;
        }
        Ok(_) | Err(_) => {
            let message = "the first message must be a hello".to_string();
            let _ = writer
                .send(framing::encode(&SidecarMessage::Error {
                    id: None,
                    kind: ErrorKind::BadRequest,
                    message,
                }))
                .await;
            return;
        }
    }

    // Wait for the model.
    let mut state = shared.state.clone();
    let hello = loop {
        let current = state.borrow().clone();
        match current {
            LoadState::Ready(hello) => break hello,
            LoadState::Failed(message) => {
                let _ = writer
                    .send(framing::encode(&SidecarMessage::Error {
                        id: None,
                        kind: ErrorKind::Engine,
                        message,
                    }))
                    .await;
                return;
            }
            LoadState::Loading => {
                if state.changed().await.is_err() {
                    return;
                }
            }
        }
    };
    if writer.send(framing::encode(&*hello)).await.is_err() {
        return;
    }

    shared.clients_connected.fetch_add(1, Ordering::AcqRel);
    shared.clients_total.fetch_add(1, Ordering::Relaxed);

    let (sink, mut outgoing) = mpsc::unbounded_channel::<SidecarMessage>();
    let writer_task = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            if writer.send(framing::encode(&message)).await.is_err() {
                break;
            }
        }
    });

    while let Some(frame) = reader.next().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                // A frame over the size limit or a broken stream: the framing is lost, close.
                let message = format!("bad frame, closing the connection: {error}");
                tracing::warn!("client {connection}: {message}");
                let _ = sink.send(SidecarMessage::Error {
                    id: None,
                    kind: ErrorKind::BadRequest,
                    message,
                });
                break;
            }
        };
        let message = match framing::decode::<ClientMessage>(&frame) {
            Ok(message) => message,
            Err(error) => {
                // Length framing is intact, so one bad JSON document costs only itself.
                tracing::warn!("client {connection}: {error}");
                let _ = sink.send(SidecarMessage::Error {
                    id: None,
                    kind: ErrorKind::BadRequest,
                    message: error.to_string(),
                });
                continue;
            }
        };
        let command = match message {
            ClientMessage::Hello { .. } => continue,
            ClientMessage::Complete { id, params } => Command::Submit {
                connection,
                id,
                job: Job::Complete(params),
                sink: sink.clone(),
            },
            ClientMessage::Chat { id, params } => Command::Submit {
                connection,
                id,
                job: Job::Chat(params),
                sink: sink.clone(),
            },
            ClientMessage::Tokenize {
                id,
                texts,
                count_only,
            } => Command::Tokenize {
                id,
                texts,
                count_only,
                parse_special: false,
                add_special: false,
                sink: sink.clone(),
            },
            ClientMessage::Cancel { id } => Command::Cancel { connection, id },
            ClientMessage::Stats { id } => shared.stats_command(id, sink.clone()),
        };
        if shared.commands.send(command).is_err() {
            break;
        }
    }

    tracing::info!("client {connection} disconnected");
    let _ = shared.commands.send(Command::Disconnected { connection });
    drop(sink);
    let _ = writer_task.await;
    if shared.clients_connected.fetch_sub(1, Ordering::AcqRel) == 1 {
        shared
            .idle_since_ms
            .store(shared.started.elapsed().as_millis() as u64, Ordering::Release);
    }
}

/// Take an exclusive, non-blocking lock on `path`; `Ok(None)` when another process holds it.
fn take_lock(path: &std::path::Path) -> std::io::Result<Option<std::fs::File>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a file descriptor we own.
        let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if result != 0 {
            let error = std::io::Error::last_os_error();
            return if error.kind() == std::io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(error)
            };
        }
        let _ = file.set_len(0);
        let _ = writeln!(&file, "{}", std::process::id());
    }
    Ok(Some(file))
}
