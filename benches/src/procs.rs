//! The processes a benchmark starts: sidecars (spawned directly, as children) and `hearth lsp`
//! (spoken to over its stdio). Every process started here is killed by its own PID when its
//! handle drops, including the sidecar the language server starts detached.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hearth_protocol::{Endpoint, SidecarClient};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

/// Where `hearth` and `hearth-sidecar` are: next to this executable unless given.
#[derive(Debug, Clone)]
pub struct Programs {
    pub hearth: PathBuf,
    pub sidecar: PathBuf,
}

impl Programs {
    pub fn locate(hearth: Option<PathBuf>, sidecar: Option<PathBuf>) -> anyhow::Result<Programs> {
        let beside = |name: &str| -> PathBuf {
            std::env::current_exe()
                .ok()
                .map(|exe| exe.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
                .unwrap_or_else(|| PathBuf::from(name))
        };
        let programs = Programs {
            hearth: hearth.unwrap_or_else(|| beside("hearth")),
            sidecar: sidecar.unwrap_or_else(|| beside("hearth-sidecar")),
        };
        for path in [&programs.hearth, &programs.sidecar] {
            if !path.exists() {
                bail!(
                    "{} not found: build the binaries first with `cargo build -p hearth -p hearth-sidecar -p hearth-benches` \
                     (same profile as this benchmark), or pass --hearth / --sidecar",
                    path.display()
                );
            }
        }
        Ok(programs)
    }
}

/// Send SIGTERM, wait a little, then SIGKILL: only the given PID, never a group or a name.
pub fn terminate_pid(pid: u32) {
    if pid == 0 || pid == std::process::id() {
        return;
    }
    let pid = pid as libc::pid_t;
    // SAFETY: kill(2) with a specific positive PID we started (or learnt from its handshake).
    unsafe {
        if libc::kill(pid, libc::SIGTERM) != 0 {
            return;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        // SAFETY: signal 0 only probes whether the process still exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// A sidecar started by the benchmark, with its private socket directory.
pub struct Sidecar {
    child: std::process::Child,
    pub endpoint: Endpoint,
    pub client: SidecarClient,
    pub args: Vec<String>,
    pub load_seconds: f64,
    _dir: tempfile::TempDir,
}

impl Sidecar {
    pub async fn spawn(program: &Path, model: &Path, args: &[String]) -> anyhow::Result<Sidecar> {
        let dir = tempfile::Builder::new().prefix("hearth-bench-").tempdir()?;
        let endpoint = Endpoint::in_dir(dir.path(), "bench");
        let log = std::fs::File::create(&endpoint.log_path)?;
        let started = Instant::now();
        let mut child = std::process::Command::new(program)
            .arg("--model")
            .arg(model)
            .arg("--socket")
            .arg(&endpoint.socket_path)
            .arg("--lock-file")
            .arg(&endpoint.lock_path)
            // Exits a minute after its last client leaves, even if this process is killed.
            .arg("--idle-timeout")
            .arg("60")
            .args(args)
            .env("HEARTH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot run {}", program.display()))?;
        let deadline = Instant::now() + Duration::from_secs(900);
        let client = loop {
            if endpoint.socket_path.exists() {
                if let Ok(client) =
                    SidecarClient::connect(&endpoint, "hearth-bench", Duration::from_secs(900)).await
                {
                    break client;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&endpoint.log_path).unwrap_or_default();
                bail!(
                    "hearth-sidecar {args:?} exited ({status}) before serving:\n{}",
                    tail(&log, 15)
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("hearth-sidecar did not answer within 15 minutes");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Ok(Sidecar {
            child,
            endpoint,
            client,
            args: args.to_vec(),
            load_seconds: started.elapsed().as_secs_f64(),
            _dir: dir,
        })
    }

    /// Another connection to the same sidecar (one per simulated client).
    pub async fn connect(&self) -> anyhow::Result<SidecarClient> {
        Ok(SidecarClient::connect(&self.endpoint, "hearth-bench", Duration::from_secs(60)).await?)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        terminate_pid(self.child.id());
        let _ = self.child.wait();
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

type PendingMap = Arc<Mutex<HashMap<i64, oneshot::Sender<Value>>>>;

/// `hearth lsp` as a child process, spoken to in LSP JSON-RPC over its stdio.
pub struct LspServer {
    child: Child,
    stdin: Arc<tokio::sync::Mutex<Option<ChildStdin>>>,
    pending: PendingMap,
    next_id: i64,
    pub runtime_dir: tempfile::TempDir,
    pub log_path: PathBuf,
    /// `window/showMessage` errors and warnings the server sent.
    pub messages: Arc<Mutex<Vec<String>>>,
    /// The sidecar the server started (learnt from `hearth/stats`), killed with the server.
    pub sidecar_pid: Option<u32>,
    stats_variant: usize,
    reader: tokio::task::JoinHandle<()>,
}

impl LspServer {
    pub async fn spawn(programs: &Programs) -> anyhow::Result<LspServer> {
        let runtime_dir = tempfile::Builder::new().prefix("hearth-bench-lsp-").tempdir()?;
        let log_path = runtime_dir.path().join("hearth-lsp.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(&programs.hearth)
            .arg("lsp")
            .env("HEARTH_RUNTIME_DIR", runtime_dir.path())
            .env("HEARTH_SIDECAR", &programs.sidecar)
            // No user configuration file: the benchmark's settings only.
            .env("HEARTH_CONFIG", runtime_dir.path().join("no-user-config.toml"))
            .env("HEARTH_DATA_DIR", runtime_dir.path().join("data"))
            .env("HEARTH_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {} lsp", programs.hearth.display()))?;
        let stdin = Arc::new(tokio::sync::Mutex::new(child.stdin.take()));
        let stdout = child.stdout.take().context("no stdout")?;
        let pending: PendingMap = Arc::default();
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let reply_stdin = stdin.clone();
        let reader_pending = pending.clone();
        let reader_messages = messages.clone();
        let reader = tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            loop {
                let Ok(Some(message)) = read_message(&mut reader).await else {
                    break;
                };
                let has_method = message.get("method").is_some();
                match (message.get("id").and_then(Value::as_i64), has_method) {
                    (Some(id), false) => {
                        if let Some(sender) = reader_pending
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id)
                        {
                            let _ = sender.send(message);
                        }
                    }
                    (_, true) if message.get("id").is_some() => {
                        // A request from the server (progress token, registration...): answer null.
                        let reply = json!({"jsonrpc": "2.0", "id": message["id"], "result": null});
                        let _ = write_message(&reply_stdin, &reply).await;
                    }
                    _ => {
                        if message["method"] == "window/showMessage" {
                            let kind = message["params"]["type"].as_i64().unwrap_or(4);
                            if kind <= 2 {
                                reader_messages
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push(message["params"]["message"].as_str().unwrap_or("").to_string());
                            }
                        }
                    }
                }
            }
            // The server is gone: wake everyone waiting.
            reader_pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
        });
        Ok(LspServer {
            child,
            stdin,
            pending,
            next_id: 1,
            runtime_dir,
            log_path,
            messages,
            sidecar_pid: None,
            stats_variant: 0,
            reader,
        })
    }

    async fn write(&mut self, message: &Value) -> anyhow::Result<()> {
        write_message(&self.stdin, message).await
    }

    pub async fn notify(&mut self, method: &str, params: Value) -> anyhow::Result<()> {
        self.write(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await
    }

    /// Send a request (params `None` = no `params` member) and wait for its answer's `result`.
    pub async fn request(
        &mut self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let (sender, receiver) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, sender);
        let mut message = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if let Some(params) = params {
            message["params"] = params;
        }
        self.write(&message).await?;
        let answer = match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => bail!("hearth lsp exited while answering {method}: {}", self.log_tail()),
            Err(_) => {
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                bail!("hearth lsp did not answer {method} within {timeout:?}")
            }
        };
        if let Some(error) = answer.get("error") {
            bail!("{method} failed: {error}");
        }
        Ok(answer.get("result").cloned().unwrap_or(Value::Null))
    }

    /// `hearth/stats`. Servers have disagreed on its params (none, `null`, `{}`): try each and
    /// remember the one accepted.
    pub async fn stats(&mut self) -> anyhow::Result<Value> {
        let variants = [Some(Value::Null), None, Some(json!({}))];
        let mut last_error = None;
        for attempt in 0..variants.len() {
            let choice = (self.stats_variant + attempt) % variants.len();
            match self
                .request("hearth/stats", variants[choice].clone(), Duration::from_secs(60))
                .await
            {
                Ok(value) => {
                    self.stats_variant = choice;
                    return Ok(value);
                }
                Err(error) if error.to_string().contains("-32602") => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("hearth/stats failed")))
    }

    pub fn log_tail(&self) -> String {
        tail(&std::fs::read_to_string(&self.log_path).unwrap_or_default(), 10)
    }

    /// `shutdown` + `exit`, then make sure the server and its sidecar are gone.
    pub async fn close(mut self) {
        let _ = self.request("shutdown", None, Duration::from_secs(10)).await;
        let _ = self.notify("exit", Value::Null).await;
        self.stdin.lock().await.take();
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        self.reader.abort();
        if let Some(pid) = self.sidecar_pid.take() {
            terminate_pid(pid);
        }
    }
}

impl Drop for LspServer {
    fn drop(&mut self) {
        if let Some(id) = self.child.id() {
            terminate_pid(id);
        }
        if let Some(pid) = self.sidecar_pid.take() {
            terminate_pid(pid);
        }
    }
}

async fn write_message(
    stdin: &tokio::sync::Mutex<Option<ChildStdin>>,
    message: &Value,
) -> anyhow::Result<()> {
    let body = serde_json::to_vec(message)?;
    let mut guard = stdin.lock().await;
    let stdin = guard.as_mut().context("the server's stdin is closed")?;
    stdin
        .write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes())
        .await?;
    stdin.write_all(&body).await?;
    stdin.flush().await?;
    Ok(())
}

async fn read_message<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> anyhow::Result<Option<Value>> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>()?);
            }
        }
    }
    let length = length.context("LSP message without Content-Length")?;
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await?;
    Ok(Some(serde_json::from_slice(&body)?))
}
