//! The peer: llama.cpp's own `llama-server` with its prompt cache (`cache_prompt: true`, what
//! llama.vim and llama.vscode use), fed the typing session's prompts.
//!
//! At every request point of the typing session where Hearth answered (from the model or from
//! its typed-along cache), right after Hearth's answer, the peer gets the exact token ids Hearth's
//! sidecar evaluates there through `POST /completion`, each answer awaited: the same model,
//! prompt tokens, greedy sampling, `n_predict`, stop strings, threads, context, batch and KV
//! type. Alternating request by request keeps both under the same machine load. `tests/install-llama-server.sh` builds the binary; without it the section
//! says so and the rest of the benchmark runs as before.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hearth_protocol::EngineSettings;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::procs::{tail, terminate_pid};
use crate::util::median;

/// `--llama-server`, else `$HEARTH_LLAMA_SERVER`, else where `tests/install-llama-server.sh` puts
/// it. `Err` says why there is none.
pub fn locate(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    let (path, origin) = if let Some(path) = explicit {
        (path, "--llama-server")
    } else if let Some(path) = std::env::var_os("HEARTH_LLAMA_SERVER") {
        (PathBuf::from(path), "$HEARTH_LLAMA_SERVER")
    } else {
        let dir = std::env::var_os("HEARTH_PEER_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/hearth/peer")
            });
        (dir.join("bin/llama-server"), "the default place")
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "llama-server not found at {} ({origin}); `tests/install-llama-server.sh` builds it",
            path.display()
        ))
    }
}

/// One request point of the session, as the peer gets it.
#[derive(Debug, Clone)]
pub struct PeerPrompt {
    pub request_index: usize,
    pub tokens: Vec<i32>,
    pub max_tokens: u32,
    pub stop: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerRequest {
    pub request_index: usize,
    /// Client side: connect, send, whole answer read.
    pub client_ms: f64,
    pub prompt_tokens: u32,
    /// `timings.cache_n`: prompt tokens taken from the slot's cache.
    pub cached_tokens: u32,
    /// `timings.prompt_n`.
    pub evaluated_tokens: u32,
    pub generated_tokens: u32,
    /// `timings.prompt_ms + timings.predicted_ms`.
    pub server_ms: f64,
    pub text: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerResult {
    pub program: String,
    pub version: String,
    pub args: Vec<String>,
    pub load_seconds: f64,
    /// The untimed warm-up: the prompt Hearth's slot held before the first keystroke.
    pub warm_prompt_tokens: u32,
    pub warm_ms: f64,
    pub requests: Vec<PeerRequest>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub evaluated_p50: f64,
    pub generated_p50: f64,
}

/// A running `llama-server` on a free loopback port; stopped on drop.
pub struct PeerServer {
    child: std::process::Child,
    port: u16,
    log_path: PathBuf,
    pub program: PathBuf,
    pub load_seconds: f64,
    _dir: tempfile::TempDir,
}

/// The flags that give `llama-server` the sidecar's engine settings.
pub fn server_args(engine: &EngineSettings) -> Vec<String> {
    vec![
        "--ctx-size".into(),
        engine.n_ctx_per_slot.to_string(),
        "--parallel".into(),
        "1".into(),
        "--threads".into(),
        engine.n_threads.to_string(),
        "--threads-batch".into(),
        engine.n_threads.to_string(),
        "--batch-size".into(),
        engine.n_batch.to_string(),
        "--ubatch-size".into(),
        engine.n_ubatch.to_string(),
        "--cache-type-k".into(),
        engine.kv_cache_type.clone(),
        "--cache-type-v".into(),
        engine.kv_cache_type.clone(),
        "--n-gpu-layers".into(),
        engine.gpu_layers.max(0).to_string(),
        // The sidecar's default is `auto` too (its handshake says `false` for auto).
        "--flash-attn".into(),
        if engine.flash_attention { "on" } else { "auto" }.into(),
    ]
}

impl PeerServer {
    pub async fn spawn(program: &Path, model: &Path, args: &[String]) -> anyhow::Result<PeerServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::Builder::new().prefix("hearth-bench-peer-").tempdir()?;
        let log_path = dir.path().join("llama-server.log");
        let log = std::fs::File::create(&log_path)?;
        let started = Instant::now();
        let child = std::process::Command::new(program)
            .arg("--model")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}", program.display()))?;
        let mut server = PeerServer {
            child,
            port,
            log_path,
            program: program.to_path_buf(),
            load_seconds: 0.0,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!(
                    "llama-server exited ({status}) before serving:\n{}",
                    tail(&server.log(), 15)
                );
            }
            if matches!(server.http("GET", "/health", None).await, Ok((200, _))) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "llama-server was not healthy after 5 minutes:\n{}",
                    tail(&server.log(), 15)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.load_seconds = started.elapsed().as_secs_f64();
        Ok(server)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// One HTTP/1.1 exchange on a fresh connection: status and body.
    async fn http(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, String)> {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            stream.set_nodelay(true)?;
            let body = body.map(Value::to_string).unwrap_or_default();
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                self.port,
                body.len()
            );
            stream.write_all(request.as_bytes()).await?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await?;
            anyhow::Ok(raw)
        };
        let raw = tokio::time::timeout(Duration::from_secs(300), exchange)
            .await
            .context("llama-server did not answer within 5 minutes")??;
        let raw = String::from_utf8_lossy(&raw);
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok((status, body))
    }

    pub async fn version(&self) -> String {
        let output = std::process::Command::new(&self.program)
            .arg("--version")
            .output();
        output
            .ok()
            .and_then(|o| {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                text.lines()
                    .find(|l| l.starts_with("version"))
                    .map(|l| l.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into())
    }

    /// `POST /completion` with the prompt as token ids, greedy, the prompt cache on.
    pub async fn complete(&self, prompt: &PeerPrompt) -> anyhow::Result<PeerRequest> {
        let body = json!({
            "prompt": prompt.tokens,
            "n_predict": prompt.max_tokens,
            "stop": prompt.stop,
            "cache_prompt": true,
            "temperature": 0.0,
            "stream": false,
        });
        let started = Instant::now();
        let (status, text) = self.http("POST", "/completion", Some(&body)).await?;
        let client_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status != 200 {
            bail!("llama-server /completion: HTTP {status}: {}", tail(&text, 5));
        }
        let answer: Value = serde_json::from_str(&text)
            .with_context(|| format!("llama-server /completion: bad JSON: {}", tail(&text, 5)))?;
        let timings = &answer["timings"];
        let n = |v: &Value| v.as_u64().unwrap_or(0) as u32;
        Ok(PeerRequest {
            request_index: prompt.request_index,
            client_ms,
            prompt_tokens: n(&answer["tokens_evaluated"]),
            cached_tokens: n(&timings["cache_n"]),
            evaluated_tokens: n(&timings["prompt_n"]),
            generated_tokens: n(&answer["tokens_predicted"]),
            server_ms: timings["prompt_ms"].as_f64().unwrap_or(0.0)
                + timings["predicted_ms"].as_f64().unwrap_or(0.0),
            text: answer["content"].as_str().unwrap_or("").to_string(),
        })
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        terminate_pid(self.child.id());
        let _ = self.child.wait();
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// The peer, started before the session and asked right after Hearth at each request point, so
/// that both see the same machine load; each engine runs while the other one is idle.
pub struct PeerRun {
    server: PeerServer,
    result: PeerResult,
}

impl PeerRun {
    /// Start `llama-server` with the sidecar's settings and warm its slot with `warm` (untimed,
    /// like the calibration probe that warms Hearth's slot before the first keystroke).
    pub async fn start(
        program: &Path,
        model: &Path,
        engine: &EngineSettings,
        warm: &PeerPrompt,
    ) -> anyhow::Result<PeerRun> {
        let args = server_args(engine);
        let server = PeerServer::spawn(program, model, &args).await?;
        let warmed = server
            .complete(warm)
            .await
            .with_context(|| format!("llama-server log tail:\n{}", tail(&server.log(), 15)))?;
        let result = PeerResult {
            program: program.display().to_string(),
            version: server.version().await,
            args,
            load_seconds: server.load_seconds,
            warm_prompt_tokens: warmed.prompt_tokens,
            warm_ms: warmed.client_ms,
            ..PeerResult::default()
        };
        Ok(PeerRun { server, result })
    }

    pub async fn complete(&mut self, prompt: &PeerPrompt) -> anyhow::Result<()> {
        let answer = self
            .server
            .complete(prompt)
            .await
            .with_context(|| format!("llama-server log tail:\n{}", tail(&self.server.log(), 15)))?;
        self.result.requests.push(answer);
        Ok(())
    }

    pub fn finish(self) -> PeerResult {
        let mut result = self.result;
        let requests = &result.requests;
        let times: Vec<f64> = requests.iter().map(|r| r.client_ms).collect();
        let of = |f: &dyn Fn(&PeerRequest) -> u32| -> Vec<f64> {
            requests.iter().map(|r| f64::from(f(r))).collect()
        };
        result.p50_ms = median(&times);
        result.p90_ms = crate::util::percentile(&times, 0.9);
        result.evaluated_p50 = median(&of(&|r| r.evaluated_tokens));
        result.generated_p50 = median(&of(&|r| r.generated_tokens));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"), "{\"a\":1}");
    }

    #[test]
    fn the_peer_gets_the_sidecars_engine_settings() {
        let engine = EngineSettings {
            n_ctx_per_slot: 4096,
            n_threads: 2,
            n_batch: 2048,
            n_ubatch: 512,
            kv_cache_type: "q8_0".into(),
            ..EngineSettings::default()
        };
        let args = server_args(&engine).join(" ");
        assert!(args.contains("--ctx-size 4096 --parallel 1 --threads 2 --threads-batch 2"));
        assert!(args.contains("--batch-size 2048 --ubatch-size 512"));
        assert!(args.contains("--cache-type-k q8_0 --cache-type-v q8_0"));
        assert!(args.ends_with("--n-gpu-layers 0 --flash-attn auto"));
    }
}
