//! The connection to the inference sidecar: found or started on demand, restarted with backoff
//! when it dies. The rest of the server keeps working while the model is down.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hearth_protocol::{
    connect_or_spawn, ClientError, FimSetting, LaunchOptions, Origin, RemoteOptions, SidecarClient,
};

use crate::config::Config;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendStatus {
    Idle,
    Starting,
    Ready,
    Error(String),
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Config(String),
    #[error("the sidecar failed to start {seconds_ago:.0}s ago ({message}); retrying in {retry_in:.0}s")]
    Backoff {
        message: String,
        seconds_ago: f64,
        retry_in: f64,
    },
}

struct Failure {
    at: Instant,
    message: String,
    attempts: u32,
}

pub struct Backend {
    client: tokio::sync::Mutex<Option<SidecarClient>>,
    status: Mutex<BackendStatus>,
    failure: Mutex<Option<Failure>>,
    client_name: String,
    /// Where sockets live; `None` = the per-user default (tests isolate it).
    runtime_dir: Option<PathBuf>,
}

/// `default` → the cached default model; a path → itself; a name → a model found in the
/// Ollama / Hugging Face / LM Studio / Hearth stores.
pub fn resolve_model(spec: &str) -> Result<PathBuf, String> {
    let spec = match (spec.strip_prefix("~/"), dirs::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest).display().to_string(),
        _ => spec.to_string(),
    };
    hearth_models::discovery::resolve_model(&spec, &hearth_models::discovery::ModelStores::from_environment())
        .map_err(|error| error.to_string())
}

pub fn sidecar_program(config: &Config) -> PathBuf {
    if let Some(path) = &config.sidecar_path {
        return path.clone();
    }
    if let Some(path) = std::env::var_os("HEARTH_SIDECAR") {
        return PathBuf::from(path);
    }
    if let Ok(exe) = std::env::current_exe() {
        let beside = exe.with_file_name(format!("hearth-sidecar{}", std::env::consts::EXE_SUFFIX));
        if beside.exists() {
            return beside;
        }
    }
    PathBuf::from("hearth-sidecar")
}

pub fn launch_options(config: &Config, runtime_dir: Option<PathBuf>) -> Result<LaunchOptions, String> {
    let model_path = resolve_model(&config.model)?;
    let backend = &config.backend;
    let mut engine_args = vec![
        "--ctx-size".to_string(),
        backend.context_size.to_string(),
        "--parallel".to_string(),
        backend.parallel.to_string(),
        "--gpu-layers".to_string(),
        backend.gpu_layers.clone(),
    ];
    if backend.threads > 0 {
        engine_args.extend(["--threads".to_string(), backend.threads.to_string()]);
    }
    Ok(LaunchOptions {
        sidecar_program: sidecar_program(config),
        model_path,
        engine_args,
        idle_timeout_secs: backend.idle_timeout_secs,
        startup_timeout: Duration::from_secs(600),
        runtime_dir,
    })
}

/// How to reach the OpenAI-compatible server of `backend.kind = "openai"`.
pub fn remote_options(config: &Config) -> Result<RemoteOptions, String> {
    let backend = &config.backend;
    if backend.openai_url.trim().is_empty() {
        return Err(
            "backend.kind = \"openai\" needs backend.openai-url (e.g. \"http://127.0.0.1:8080/v1\")".into(),
        );
    }
    let api_key = match backend.openai_api_key_env.as_str() {
        "" => None,
        var => std::env::var(var).ok().filter(|key| !key.is_empty()),
    };
    Ok(RemoteOptions {
        base_url: backend.openai_url.trim().to_string(),
        model: backend.openai_model.clone(),
        api_key,
        api_key_env: backend.openai_api_key_env.clone(),
        fim: FimSetting::parse(&backend.openai_fim).map_err(|e| format!("backend.openai-fim: {e}"))?,
        context_size: backend.context_size,
        request_timeout: Duration::from_secs(backend.openai_timeout_secs.max(1)),
        max_retries: backend.openai_retries,
        ca_file: (!backend.openai_ca_file.is_empty()).then(|| PathBuf::from(&backend.openai_ca_file)),
        ..RemoteOptions::default()
    })
}

/// Connect as the configuration says: the local sidecar (found or started) or a remote server.
async fn connect(
    config: &Config,
    runtime_dir: Option<PathBuf>,
    client_name: &str,
) -> Result<SidecarClient, BackendError> {
    match config.backend.kind.as_str() {
        "openai" => {
            let options = remote_options(config).map_err(BackendError::Config)?;
            Ok(SidecarClient::connect_remote(options, client_name).await?)
        }
        "sidecar" => {
            let options = launch_options(config, runtime_dir).map_err(BackendError::Config)?;
            let (client, origin) = connect_or_spawn(&options, client_name).await?;
            tracing::info!(
                "sidecar pid {} ({}) serving {}",
                client.hello().pid,
                if origin == Origin::Spawned {
                    "started"
                } else {
                    "already running"
                },
                client.model().name
            );
            Ok(client)
        }
        other => Err(BackendError::Config(format!(
            "backend.kind `{other}`: use \"sidecar\" (local llama.cpp) or \"openai\" (an OpenAI-compatible server)"
        ))),
    }
}

impl Backend {
    pub fn new(client_name: String) -> Backend {
        Backend {
            client: tokio::sync::Mutex::new(None),
            status: Mutex::new(BackendStatus::Idle),
            failure: Mutex::new(None),
            client_name,
            runtime_dir: std::env::var_os("HEARTH_RUNTIME_DIR").map(PathBuf::from),
        }
    }

    pub fn status(&self) -> BackendStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_status(&self, status: BackendStatus) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    /// The connected client if there is one (no connecting).
    pub async fn current(&self) -> Option<SidecarClient> {
        let guard = self.client.lock().await;
        guard.as_ref().filter(|client| !client.is_closed()).cloned()
    }

    /// A live client, connecting or starting the sidecar when needed. Returns whether this call
    /// (re)connected, so the caller can announce it.
    pub async fn client(&self, config: &Config) -> Result<(SidecarClient, bool), BackendError> {
        let mut guard = self.client.lock().await;
        if let Some(client) = guard.as_ref() {
            if !client.is_closed() {
                return Ok((client.clone(), false));
            }
            tracing::warn!("the sidecar connection closed; reconnecting");
            *guard = None;
        }
        if let Some(failure) = &*self.failure.lock().unwrap_or_else(|p| p.into_inner()) {
            let wait = Duration::from_millis(500 * 2u64.pow(failure.attempts.min(6)));
            let elapsed = failure.at.elapsed();
            if elapsed < wait {
                return Err(BackendError::Backoff {
                    message: failure.message.clone(),
                    seconds_ago: elapsed.as_secs_f64(),
                    retry_in: (wait - elapsed).as_secs_f64(),
                });
            }
        }
        self.set_status(BackendStatus::Starting);
        match connect(config, self.runtime_dir.clone(), &self.client_name).await {
            Err(BackendError::Config(message)) => {
                self.set_status(BackendStatus::Error(message.clone()));
                Err(BackendError::Config(message))
            }
            Ok(client) => {
                if config.usage.enabled {
                    if let Some(ledger) = crate::usage::Ledger::open_default() {
                        client.set_usage_observer(ledger.observer());
                    }
                }
                *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
                self.set_status(BackendStatus::Ready);
                *guard = Some(client.clone());
                Ok((client, true))
            }
            Err(error) => {
                let message = error.to_string();
                let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
                let attempts = failure.as_ref().map_or(0, |f| f.attempts + 1);
                *failure = Some(Failure {
                    at: Instant::now(),
                    message: message.clone(),
                    attempts,
                });
                self.set_status(BackendStatus::Error(message));
                Err(error)
            }
        }
    }

    /// Forget the current connection (e.g. after the configuration changed the model).
    pub async fn reset(&self) {
        *self.client.lock().await = None;
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.set_status(BackendStatus::Idle);
    }
}
