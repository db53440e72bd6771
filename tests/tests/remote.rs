//! The remote backend against a real OpenAI-compatible server: `hearth-sidecar --openai-listen`
//! serving the default model on loopback. The same requests go once over the private socket and
//! once over HTTP, and must agree; `hearth complete` with `backend.kind = "openai"` completes
//! through it and records the request in the usage ledger that `hearth stats` prices.

use std::process::Command;
use std::time::Duration;

use hearth_protocol::*;
use hearth_tests::*;
use serde_json::Value;

async fn listening_sidecar(
    model: &std::path::Path,
    extra: &[&str],
) -> (SidecarProcess, SidecarClient, String) {
    let mut args = vec![
        "--openai-listen",
        "127.0.0.1:0",
        "--ctx-size",
        "4096",
        "--parallel",
        "2",
    ];
    args.extend_from_slice(extra);
    let sidecar = SidecarProcess::start(model, &args);
    let ipc = sidecar.connect("remote test").await;
    let address = ipc
        .stats()
        .await
        .unwrap()
        .openai_listen
        .unwrap_or_else(|| panic!("no HTTP address in the stats: {}", sidecar.log()));
    (sidecar, ipc, format!("http://{address}/v1"))
}

fn file_stem(client: &SidecarClient) -> String {
    std::path::Path::new(&client.model().path)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Both handles tokenize `text` to the same ids (the model's own tokenizer on both sides).
async fn assert_same_tokens(remote: &SidecarClient, ipc: &SidecarClient, text: &str) {
    let (remote_counts, remote_tokens) = remote.tokenize(vec![text.to_string()], false).await.unwrap();
    let (ipc_counts, ipc_tokens) = ipc.tokenize(vec![text.to_string()], false).await.unwrap();
    assert_eq!(remote_counts, ipc_counts);
    assert_eq!(remote_tokens, ipc_tokens);
}

fn remote_options(url: &str) -> RemoteOptions {
    RemoteOptions {
        base_url: url.to_string(),
        ..RemoteOptions::default()
    }
}

fn greedy(prompt: &str, max_tokens: u32, reuse_cache: bool) -> CompletionParams {
    CompletionParams {
        prompt: vec![PromptPart::Text(prompt.to_string())],
        add_bos: true,
        sampling: SamplingParams {
            max_tokens,
            temperature: 0.0,
            ..SamplingParams::default()
        },
        priority: Priority::Interactive,
        stream: true,
        reuse_cache,
    }
}

/// Streamed text and the final outcome.
async fn run(stream: CompletionStream) -> (String, CompletionOutcome) {
    let mut stream = stream;
    let mut streamed = String::new();
    loop {
        match stream.next_event().await.expect("the request succeeds") {
            StreamEvent::Token(text) => streamed.push_str(&text),
            StreamEvent::Done(outcome) => return (streamed, outcome),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_backend_gives_the_sidecars_answers_over_http() {
    let (sidecar, ipc, url) = listening_sidecar(&default_model(), &[]).await;
    let remote = SidecarClient::connect_remote(remote_options(&url), "remote test")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sidecar.log()));

    // What the server says about its model.
    assert!(remote.is_remote());
    assert_eq!(remote.hello().remote_url.as_deref(), Some(url.as_str()));
    assert_eq!(
        remote.model().name,
        file_stem(&ipc),
        "the API names the model by its file"
    );
    assert_eq!(
        remote.hello().engine.n_ctx_per_slot,
        ipc.hello().engine.n_ctx_per_slot
    );
    assert_eq!(remote.hello().engine.n_ctx_per_slot, 2048);
    assert!(!remote.model().fim.can_infill(), "SmolLM2 has no FIM tokens");

    // The tokenizer through /tokenize is the model's own.
    let text = fixture_source("pricing.py");
    assert_same_tokens(&remote, &ipc, &text).await;

    // The same cold greedy request over both paths gives the same text and token numbers.
    let prompt = &text[..text.len().min(1500)];
    let (_, over_socket) = run(ipc.complete(greedy(prompt, 24, false)).unwrap()).await;
    let (streamed, over_http) = run(remote.complete(greedy(prompt, 24, false)).unwrap()).await;
    assert!(!over_http.text.trim().is_empty());
    assert_eq!(over_http.text, over_socket.text);
    assert_eq!(
        streamed, over_http.text,
        "the streamed pieces add up to the answer"
    );
    assert_eq!(over_http.metrics.prompt_tokens, over_socket.metrics.prompt_tokens);
    assert_eq!(
        over_http.metrics.generated_tokens,
        over_socket.metrics.generated_tokens
    );
    assert_eq!(over_http.stop_reason, StopReason::MaxTokens);

    // KV reuse works through the HTTP API: the second request evaluates one token.
    let (_, first) = run(remote.complete(greedy(prompt, 8, true)).unwrap()).await;
    let (_, second) = run(remote.complete(greedy(prompt, 8, true)).unwrap()).await;
    assert_eq!(first.text, second.text);
    assert_eq!(
        second.metrics.reused_tokens + 1,
        second.metrics.prompt_tokens,
        "{:?}",
        second.metrics
    );
    assert_eq!(second.metrics.evaluated_tokens, 1);

    // Chat with a JSON schema goes as response_format and comes back parseable.
    let schema = serde_json::json!({
        "type": "object",
        "properties": { "answer": { "type": "integer" } },
        "required": ["answer"],
    });
    let chat = remote
        .chat(ChatParams {
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "What is 2 + 3? Answer in JSON.".into(),
            }],
            sampling: SamplingParams {
                max_tokens: 24,
                json_schema: Some(schema),
                ..SamplingParams::default()
            },
            priority: Priority::Background,
            stream: false,
        })
        .unwrap()
        .finish()
        .await
        .unwrap();
    let parsed: Value = serde_json::from_str(&chat.text).unwrap_or_else(|e| panic!("{e}: {:?}", chat.text));
    assert!(parsed["answer"].is_i64(), "{parsed}");

    // Dropping a stream cancels the request on the server: its HTTP connection closes.
    let before = ipc.stats().await.unwrap();
    let mut long = remote.complete(greedy(prompt, 1500, false)).unwrap();
    assert!(matches!(long.next_event().await.unwrap(), StreamEvent::Token(_)));
    drop(long);
    let mut after = ipc.stats().await.unwrap();
    for _ in 0..400 {
        if after.requests_cancelled > before.requests_cancelled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        after = ipc.stats().await.unwrap();
    }
    assert_eq!(
        after.requests_cancelled,
        before.requests_cancelled + 1,
        "{}",
        sidecar.log()
    );
    assert_eq!(after.requests_completed, before.requests_completed);
    let local = remote.stats().await.unwrap();
    assert_eq!(local.requests_cancelled, 1);
    assert_eq!(local.requests_completed, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_wants_its_key_and_refuses_other_machines_without_one() {
    let model = default_model();
    let runtime = private_dir();
    let endpoint = Endpoint::in_dir(runtime.path(), "keyed");
    let mut child = sidecar_command(
        &model,
        &endpoint,
        &[
            "--openai-listen",
            "127.0.0.1:0",
            "--openai-api-key-env",
            "HEARTH_TEST_KEY",
            "--ctx-size",
            "1024",
        ],
    )
    .env("HEARTH_TEST_KEY", "s3cret-key")
    .spawn()
    .unwrap();
    let ipc = connect_with_retry(&endpoint, "key test").await;
    let url = format!("http://{}/v1", ipc.stats().await.unwrap().openai_listen.unwrap());

    let refused = SidecarClient::connect_remote(remote_options(&url), "key test")
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(message.contains("401"), "{message}");
    assert!(
        message.contains("$HEARTH_OPENAI_API_KEY"),
        "names the variable to set: {message}"
    );

    let wrong = RemoteOptions {
        api_key: Some("guess".into()),
        ..remote_options(&url)
    };
    let message = SidecarClient::connect_remote(wrong, "key test")
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("was refused"), "{message}");

    let right = RemoteOptions {
        api_key: Some("s3cret-key".into()),
        ..remote_options(&url)
    };
    let remote = SidecarClient::connect_remote(right, "key test").await.unwrap();
    let answer = remote
        .complete(greedy("def add(a, b):", 6, true))
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(answer.metrics.generated_tokens, 6);
    let _ = child.kill();
    let _ = child.wait();

    // Beyond loopback without a key: refused at start, with the flag to use.
    let other = Endpoint::in_dir(runtime.path(), "open");
    let mut open = sidecar_command(&model, &other, &["--openai-listen", "0.0.0.0:0"])
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut open, Duration::from_secs(60)), Some(2));
    let log = std::fs::read_to_string(runtime.path().join("sidecar.log")).unwrap();
    assert!(log.contains("--openai-api-key-env"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_models_fim_tokens_are_read_from_its_vocabulary() {
    let (_guard, dir) = tiny_models();
    for name in ["qwen", "starcoder", "deepseek", "nofim"] {
        let (sidecar, ipc, url) = listening_sidecar(&dir.join(format!("{name}.gguf")), &[]).await;
        let remote = SidecarClient::connect_remote(remote_options(&url), "fim test")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", sidecar.log()));
        let (theirs, ours) = (&ipc.model().fim, &remote.model().fim);
        assert_eq!(ours.can_infill(), theirs.can_infill(), "{name}");
        for (remote_token, local_token) in [
            (&ours.pre, &theirs.pre),
            (&ours.suf, &theirs.suf),
            (&ours.mid, &theirs.mid),
        ] {
            assert_eq!(
                remote_token.as_ref().map(|t| (t.id, t.text.as_str())),
                local_token.as_ref().map(|t| (t.id, t.text.as_str())),
                "{name}"
            );
        }
    }
}

/// `hearth` with a config file and a private ledger.
fn hearth(dir: &std::path::Path, config: &str, args: &[&str]) -> Value {
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config).unwrap();
    let output = Command::new(bin("hearth"))
        .args(args)
        .env("HEARTH_RUNTIME_DIR", dir)
        .env("HEARTH_CONFIG", &config_path)
        .env("HEARTH_DATA_DIR", dir.join("data"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_completes_through_a_remote_server_and_prices_the_tokens() {
    let (sidecar, ipc, url) = listening_sidecar(&default_model(), &[]).await;
    let dir = private_dir();
    let config = format!(
        "[backend]\nkind = \"openai\"\nopenai-url = \"{url}\"\n# A cold prompt on a loaded 2-core machine can be slow.\nopenai-timeout-secs = 900\n\n[usage]\ncloud-input-per-mtok = 2.0\n\
         cloud-cached-input-per-mtok = 0.5\ncloud-output-per-mtok = 10.0\n"
    );
    let shop = fixtures_dir().join("shop");
    let location = format!("{}:42:1", shop.join("shop").join("pricing.py").display());
    let root = shop.display().to_string();
    let mut answers = Vec::new();
    for _ in 0..2 {
        answers.push(hearth(
            dir.path(),
            &config,
            &["complete", &location, "--root", &root, "--json"],
        ));
    }
    for answer in &answers {
        assert_eq!(answer["remote_url"], url.as_str(), "{answer}");
        assert_eq!(answer["model"], file_stem(&ipc).as_str());
        assert!(
            !answer["text"].as_str().unwrap_or_default().trim().is_empty(),
            "{answer}"
        );
    }
    assert_eq!(answers[0]["text"], answers[1]["text"]);
    let metrics: Vec<&Value> = answers.iter().map(|a| &a["suggestion"]["metrics"]).collect();
    // The second run's prompt was served from the server's KV cache.
    assert_eq!(
        metrics[1]["reused_tokens"].as_u64().unwrap() + 1,
        metrics[1]["prompt_tokens"].as_u64().unwrap()
    );

    // The ledger has both requests, and the price is the tokens times the configured rates.
    let stats = hearth(dir.path(), &config, &["stats", "--json"]);
    let totals = &stats["usage"]["totals"];
    assert_eq!(totals["completed"], 2, "{stats}");
    assert_eq!(totals["remote_requests"], 2, "{stats}");
    let sum = |key: &str| metrics.iter().map(|m| m[key].as_u64().unwrap()).sum::<u64>();
    let (prompt, reused, generated) = (
        sum("prompt_tokens"),
        sum("reused_tokens"),
        sum("generated_tokens"),
    );
    assert_eq!(totals["prompt_tokens"], prompt);
    assert_eq!(totals["reused_tokens"], reused);
    assert_eq!(totals["generated_tokens"], generated);
    let expected =
        (prompt - reused) as f64 * 2.0 / 1e6 + reused as f64 * 0.5 / 1e6 + generated as f64 * 10.0 / 1e6;
    let cloud = stats["usage"]["cost"]["cloud_cost"].as_f64().unwrap();
    assert!((cloud - expected).abs() < 1e-12, "{cloud} vs {expected}");
    // A remote server's energy is not ours to count.
    assert_eq!(stats["usage"]["cost"]["energy_kwh"], 0.0);
    assert_eq!(stats["remote"]["answers"], true, "{stats}");
    assert_eq!(stats["remote"]["model"], file_stem(&ipc).as_str());

    // The serving side keeps its own ledger of what it served over HTTP.
    let served_dir = sidecar.runtime.path().join("data").join("usage");
    let served: Vec<Value> = std::fs::read_dir(&served_dir)
        .unwrap()
        .flat_map(|entry| {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            text.lines()
                .map(|line| serde_json::from_str::<Value>(line).unwrap())
                .collect::<Vec<_>>()
        })
        .filter(|record| record["kind"] == "completion")
        .collect();
    assert_eq!(served.len(), 2, "{served:?}");
    for (record, metrics) in served.iter().zip(&metrics) {
        assert_eq!(record["backend"], "served");
        assert_eq!(record["outcome"], "completed");
        assert_eq!(record["prompt"], metrics["prompt_tokens"]);
        assert_eq!(record["generated"], metrics["generated_tokens"]);
    }
}

// llama.cpp's own server (the peer), built by `tests/install-llama-server.sh`: the remote backend
// against a third-party implementation of the API, checked against the local sidecar.

/// `$HEARTH_LLAMA_SERVER`, or where `tests/install-llama-server.sh` puts it. Missing is a failure.
fn llama_server_binary() -> std::path::PathBuf {
    let path = match std::env::var_os("HEARTH_LLAMA_SERVER") {
        Some(path) => std::path::PathBuf::from(path),
        None => std::env::var_os("HEARTH_PEER_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                    .join(".cache/hearth/peer")
            })
            .join("bin/llama-server"),
    };
    assert!(
        path.is_file(),
        "llama.cpp's llama-server is missing at {}: run tests/install-llama-server.sh (it builds it into \
         ~/.cache/hearth/peer; the README's test command runs it), or point HEARTH_LLAMA_SERVER at a build",
        path.display()
    );
    path
}

/// A `llama-server` process on a free loopback port; killed on drop.
struct LlamaServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl LlamaServer {
    async fn start(model: &std::path::Path) -> LlamaServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let dir = private_dir();
        let log = std::fs::File::create(dir.path().join("llama-server.log")).unwrap();
        let child = Command::new(llama_server_binary())
            .arg("--model")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", "4096", "-np", "1", "--threads", "2"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = LlamaServer { child, port, dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("llama-server exited ({status}):\n{}", server.log());
            }
            if matches!(server.try_get("/health"), Ok((200, _))) {
                return server;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "llama-server not healthy after 120 s:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("llama-server.log")).unwrap_or_default()
    }

    /// A plain HTTP/1.1 GET: status and body.
    fn try_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let raw = String::from_utf8_lossy(&raw);
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
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
        } else {
            body.to_string()
        };
        Ok((status, body))
    }

    fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.try_get(path).unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_backend_works_against_llama_cpps_own_server() {
    let model = default_model();
    let server = LlamaServer::start(&model).await;
    let sidecar = SidecarProcess::start(&model, &["--ctx-size", "4096", "--parallel", "1"]);
    let ipc = sidecar.connect("llama-server test").await;
    let url = server.url();
    let remote = SidecarClient::connect_remote(remote_options(&url), "llama-server test")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));

    // The model it lists, the slot size from /props, the trained context from the model list.
    assert!(remote.is_remote());
    let listed = server.get_json("/v1/models");
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&remote.model().name.as_str()), "{listed}");
    let props = server.get_json("/props");
    assert_eq!(props["default_generation_settings"]["n_ctx"], 4096, "{props}");
    assert_eq!(remote.hello().engine.n_ctx_per_slot, 4096);
    assert_eq!(remote.model().n_ctx_train, ipc.model().n_ctx_train);
    assert!(!remote.model().fim.can_infill(), "SmolLM2 has no FIM tokens");

    // /tokenize is the model's own tokenizer: the same ids as the sidecar's.
    let text = fixture_source("pricing.py");
    assert_same_tokens(&remote, &ipc, &text).await;

    // A greedy completion streams, and its prompt is the sidecar's (BOS included, once).
    let prompt = &text[..text.len().min(1500)];
    let (_, local) = run(ipc.complete(greedy(prompt, 24, false)).unwrap()).await;
    let (streamed, answer) = run(remote.complete(greedy(prompt, 24, false)).unwrap()).await;
    assert!(!answer.text.trim().is_empty(), "{answer:?}");
    assert_eq!(streamed, answer.text, "the streamed pieces add up to the answer");
    assert_eq!(answer.metrics.prompt_tokens, local.metrics.prompt_tokens);
    assert_eq!(answer.metrics.generated_tokens, 24, "{answer:?}");
    assert_eq!(answer.stop_reason, StopReason::MaxTokens);
    assert_eq!(
        answer.metrics.reused_tokens, 0,
        "cache_prompt: false evaluates it all"
    );
    assert_eq!(answer.metrics.evaluated_tokens, answer.metrics.prompt_tokens);

    // The same request twice with the cache on: llama-server's timings.cache_n says the second
    // one re-read only the last prompt token.
    let (_, first) = run(remote.complete(greedy(prompt, 8, true)).unwrap()).await;
    let (_, second) = run(remote.complete(greedy(prompt, 8, true)).unwrap()).await;
    assert_eq!(first.text, second.text);
    assert_eq!(
        second.metrics.reused_tokens + 1,
        second.metrics.prompt_tokens,
        "{:?}",
        second.metrics
    );
    assert_eq!(second.metrics.evaluated_tokens, 1, "{:?}", second.metrics);

    // Dropping a stream mid-generation makes llama-server stop: it logs that it cancelled the
    // task, and the slot is released long before the 1500 tokens asked for.
    let mut long = remote.complete(greedy(prompt, 1500, false)).unwrap();
    assert!(matches!(long.next_event().await.unwrap(), StreamEvent::Token(_)));
    let busy = server.get_json("/slots");
    assert_eq!(busy[0]["is_processing"], true, "{busy}");
    let task = busy[0]["id_task"].as_u64().unwrap();
    drop(long);
    let mut slots = server.get_json("/slots");
    for _ in 0..400 {
        if slots[0]["is_processing"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        slots = server.get_json("/slots");
    }
    assert_eq!(slots[0]["is_processing"], false, "{slots}\n{}", server.log());
    assert_eq!(slots[0]["id_task"], task, "{slots}");
    let log = server.log();
    let cancelled = log
        .find(&format!("cancel task, id_task = {task}\n"))
        .unwrap_or_else(|| panic!("no cancel of task {task} in the log:\n{log}"));
    // `release: id  0 | task N | stop processing: n_tokens = PROMPT + DECODED, ...`
    let released = format!("task {task} | stop processing: n_tokens = ");
    let at = log[cancelled..]
        .find(&released)
        .unwrap_or_else(|| panic!("task {task} not released after its cancel:\n{log}"));
    let rest = &log[cancelled + at + released.len()..];
    let n_tokens: u32 = rest[..rest.find(',').unwrap()].parse().unwrap();
    let decoded = n_tokens - answer.metrics.prompt_tokens;
    assert!((1..1500).contains(&decoded), "{decoded} tokens decoded\n{log}");
    let stats = remote.stats().await.unwrap();
    assert_eq!(stats.requests_cancelled, 1);
    assert_eq!(stats.requests_completed, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_server_shows_hearth_the_same_fim_tokens_as_the_sidecar() {
    let (_guard, dir) = tiny_models();
    for name in ["qwen", "starcoder", "deepseek", "nofim"] {
        let model = dir.join(format!("{name}.gguf"));
        let server = LlamaServer::start(&model).await;
        let sidecar = SidecarProcess::start(&model, &["--ctx-size", "1024"]);
        let ipc = sidecar.connect("fim test").await;
        let remote = SidecarClient::connect_remote(remote_options(&server.url()), "fim test")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", server.log()));
        let (theirs, ours) = (&ipc.model().fim, &remote.model().fim);
        assert_eq!(ours.can_infill(), theirs.can_infill(), "{name}");
        assert_eq!(ours.can_infill(), name != "nofim", "{name}");
        for (remote_token, local_token) in [
            (&ours.pre, &theirs.pre),
            (&ours.suf, &theirs.suf),
            (&ours.mid, &theirs.mid),
        ] {
            assert_eq!(
                remote_token.as_ref().map(|t| (t.id, t.text.as_str())),
                local_token.as_ref().map(|t| (t.id, t.text.as_str())),
                "{name}"
            );
        }
    }
}
