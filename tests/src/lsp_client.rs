//! A small, strict LSP client for driving the real `hearth lsp` binary over stdio.
//! It records every message, so tests can check that each request got exactly one answer.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct LspClient {
    pub child: Child,
    log_path: std::path::PathBuf,
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    next_id: i64,
    /// Responses by id, every one received (a second answer to an id is kept to be caught).
    pub responses: HashMap<i64, Vec<Value>>,
    pub notifications: Vec<Value>,
    pub server_requests: Vec<Value>,
}

/// How long any single wait may take before the test fails (a guard against hangs, not a
/// performance assertion: the model may be loading on a busy machine).
const WAIT: Duration = Duration::from_secs(300);

impl LspClient {
    pub fn start(hearth: &Path, runtime_dir: &Path, extra_env: &[(&str, &str)]) -> LspClient {
        let mut command = Command::new(hearth);
        command
            .arg("lsp")
            .env("HEARTH_RUNTIME_DIR", runtime_dir)
            .env("HEARTH_CONFIG", runtime_dir.join("no-user-config.toml"))
            .env("HEARTH_DATA_DIR", runtime_dir.join("data"))
            .env("HEARTH_LOG", "info,hearth=debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(runtime_dir.join("lsp.log"))
                    .expect("lsp log"),
            ));
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn hearth lsp");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, incoming) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(value) = line.strip_prefix("Content-Length: ") {
                        length = value.parse::<usize>().ok();
                    }
                }
                let Some(length) = length else { return };
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let Ok(message) = serde_json::from_slice::<Value>(&body) else {
                    return;
                };
                if sender.send(message).is_err() {
                    return;
                }
            }
        });
        LspClient {
            child,
            log_path: runtime_dir.join("lsp.log"),
            stdin,
            incoming,
            next_id: 1,
            responses: HashMap::new(),
            notifications: Vec::new(),
            server_requests: Vec::new(),
        }
    }

    pub fn send_raw(&mut self, body: &[u8]) {
        let header = format!("Content-Length: {}\r\n\r\n", body.len());
        self.stdin.write_all(header.as_bytes()).expect("write header");
        self.stdin.write_all(body).expect("write body");
        self.stdin.flush().expect("flush");
    }

    fn send(&mut self, message: &Value) {
        self.send_raw(serde_json::to_string(message).expect("json").as_bytes());
    }

    pub fn request_async(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn handle(&mut self, message: Value) {
        if message.get("method").is_some() && message.get("id").is_some() {
            // A request from the server (progress create, registerCapability): answer it.
            let id = message["id"].clone();
            self.server_requests.push(message);
            self.send(&json!({"jsonrpc": "2.0", "id": id, "result": null}));
        } else if message.get("method").is_some() {
            self.notifications.push(message);
        } else if let Some(id) = message.get("id").and_then(Value::as_i64) {
            self.responses.entry(id).or_default().push(message);
        }
    }

    /// Pump messages until `done` holds (or fail after the guard timeout).
    pub fn pump_until(&mut self, mut done: impl FnMut(&LspClient) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.incoming.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(message) => self.handle(message),
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(error) => panic!("no answer from the server ({error:?})"),
            }
        }
    }

    /// Pump for a while, collecting whatever arrives.
    pub fn pump_for(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Ok(message) = self.incoming.recv_timeout(left) {
                self.handle(message);
            }
        }
    }

    pub fn response(&mut self, id: i64) -> Value {
        self.pump_until(|client| client.responses.contains_key(&id));
        self.responses[&id][0].clone()
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.request_async(method, params);
        self.response(id)
    }

    pub fn initialize(&mut self, root: &Path, encodings: &[&str], options: Value) -> Value {
        let workspace = json!({"didChangeWatchedFiles": {"dynamicRegistration": true}});
        self.initialize_with(root, encodings, options, workspace)
    }

    /// `initialize` with the given `workspace` client capabilities (e.g. none: a client that
    /// does not watch files for the server).
    pub fn initialize_with(
        &mut self,
        root: &Path,
        encodings: &[&str],
        options: Value,
        workspace: Value,
    ) -> Value {
        let root_uri = file_uri(root);
        let response = self.request(
            "initialize",
            json!({
                "processId": std::process::id(),
                "rootUri": root_uri,
                "workspaceFolders": [{"uri": root_uri, "name": "fixture"}],
                "capabilities": {
                    "general": {"positionEncodings": encodings},
                    "window": {"workDoneProgress": true},
                    "workspace": workspace,
                    "textDocument": {"inlineCompletion": {}}
                },
                "initializationOptions": options,
            }),
        );
        self.notify("initialized", json!({}));
        response
    }

    pub fn open(&mut self, path: &Path, language_id: &str, text: &str) -> String {
        let uri = file_uri(path);
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": language_id, "version": 1, "text": text}}),
        );
        uri
    }

    pub fn shutdown(mut self) -> LspClient {
        let id = self.request_async("shutdown", Value::Null);
        self.response(id);
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            // Keep reading so late messages are counted too.
            if let Ok(message) = self.incoming.recv_timeout(Duration::from_millis(50)) {
                self.handle(message);
            }
        }
        self
    }

    /// The server's exit code, once it has exited.
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child
            .try_wait()
            .ok()
            .flatten()
            .and_then(|status| status.code())
    }

    /// Every request id got exactly one answer.
    pub fn assert_one_answer_each(&self, ids: &[i64]) {
        for id in ids {
            let count = self.responses.get(id).map_or(0, Vec::len);
            assert_eq!(
                count,
                1,
                "request {id} got {count} answers: {:?}",
                self.responses.get(id)
            );
        }
    }
}

impl Drop for LspClient {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- hearth lsp log (last lines) ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}
