//! Find the user's sidecar for a model, or start one detached and wait for it.
//!
//! Races are settled by the sidecar itself: it takes an exclusive lock on the endpoint's lock file
//! before binding the socket and exits with [`EXIT_ALREADY_RUNNING`] when another process holds it.
//! So two language servers that both find nobody listening may both spawn, and still end with one
//! sidecar; both then connect to it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{ClientError, SidecarClient};
use crate::endpoint::Endpoint;

/// Exit code of a sidecar that found another one already serving its endpoint.
pub const EXIT_ALREADY_RUNNING: i32 = 3;

#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// The `hearth-sidecar` executable.
    pub sidecar_program: PathBuf,
    pub model_path: PathBuf,
    /// Engine flags passed through (`--ctx-size 8192 --threads 2 ...`). They are part of the
    /// endpoint key: different settings get a different sidecar.
    pub engine_args: Vec<String>,
    pub idle_timeout_secs: u64,
    /// How long to wait for the socket to appear and the model to load.
    pub startup_timeout: Duration,
    /// Override the runtime directory (tests); `None` uses the per-user default.
    pub runtime_dir: Option<PathBuf>,
}

impl LaunchOptions {
    pub fn endpoint(&self) -> std::io::Result<Endpoint> {
        let fingerprint = self.engine_args.join(" ");
        match &self.runtime_dir {
            Some(dir) => {
                crate::endpoint::ensure_private_dir(dir)?;
                let probe = Endpoint::for_model(&self.model_path, &fingerprint)?;
                Ok(Endpoint::in_dir(dir, &probe.key))
            }
            None => Endpoint::for_model(&self.model_path, &fingerprint),
        }
    }

    pub fn command(&self, endpoint: &Endpoint) -> Command {
        let mut command = Command::new(&self.sidecar_program);
        command
            .arg("--model")
            .arg(&self.model_path)
            .arg("--socket")
            .arg(&endpoint.socket_path)
            .arg("--lock-file")
            .arg(&endpoint.lock_path)
            .arg("--idle-timeout")
            .arg(self.idle_timeout_secs.to_string())
            .args(&self.engine_args);
        command
    }
}

/// Where the sidecar came from, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    AlreadyRunning,
    Spawned,
}

/// Connect to the sidecar serving `options`' endpoint, starting it when nobody answers.
pub async fn connect_or_spawn(
    options: &LaunchOptions,
    client_name: &str,
) -> Result<(SidecarClient, Origin), ClientError> {
    let endpoint = options
        .endpoint()
        .map_err(|error| ClientError::Launch(format!("runtime directory: {error}")))?;
    if let Ok(client) = SidecarClient::connect(&endpoint, client_name, options.startup_timeout).await {
        return Ok((client, Origin::AlreadyRunning));
    }
    if !options.model_path.exists() {
        return Err(ClientError::Launch(format!(
            "model file not found: {} — set `model` in .hearth.toml or run `hearth model pull default`",
            options.model_path.display()
        )));
    }
    let mut child = spawn_detached(options, &endpoint)?;
    let deadline = Instant::now() + options.startup_timeout;
    let mut delay = Duration::from_millis(20);
    loop {
        match SidecarClient::connect(&endpoint, client_name, options.startup_timeout).await {
            Ok(client) => return Ok((client, Origin::Spawned)),
            // The sidecar answered but refused (bad model, version mismatch): final.
            Err(error @ (ClientError::Sidecar { .. } | ClientError::VersionMismatch { .. })) => {
                return Err(error)
            }
            Err(_) => {}
        }
        if let Ok(Some(status)) = child.try_wait() {
            if status.code() != Some(EXIT_ALREADY_RUNNING) {
                return Err(ClientError::Launch(format!(
                    "hearth-sidecar exited ({status}) before serving: {}",
                    log_tail(&endpoint)
                )));
            }
        }
        if Instant::now() >= deadline {
            return Err(ClientError::Timeout(format!(
                "the sidecar did not answer within {:?}: {}",
                options.startup_timeout,
                log_tail(&endpoint)
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

fn spawn_detached(options: &LaunchOptions, endpoint: &Endpoint) -> Result<Child, ClientError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&endpoint.log_path)
        .map_err(|error| ClientError::Launch(format!("{}: {error}", endpoint.log_path.display())))?;
    let mut command = options.command(endpoint);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe; the child leaves our session so it outlives us
        // and is not killed with the editor's process group.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    command.spawn().map_err(|error| {
        ClientError::Launch(format!(
            "cannot run {}: {error} — build it with `cargo build --release` or set `sidecarPath`",
            options.sidecar_program.display()
        ))
    })
}

/// The last lines of the sidecar's log, to explain a failed start.
pub fn log_tail(endpoint: &Endpoint) -> String {
    let text = std::fs::read_to_string(&endpoint.log_path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(5);
    if lines.is_empty() {
        format!("(no log at {})", endpoint.log_path.display())
    } else {
        lines[start..].join(" | ")
    }
}
