//! The real `hearth-sidecar` on the real default model (SmolLM2-135M-Instruct Q4_1, CPU).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hearth_protocol::*;
use hearth_tests::*;
use interprocess::local_socket::tokio::{prelude::*, Stream as LocalStream};
use tokio_util::codec::{FramedRead, FramedWrite};

fn completion(text: &str, max_tokens: u32) -> CompletionParams {
    CompletionParams {
        prompt: vec![PromptPart::Text(text.to_string())],
        add_bos: true,
        sampling: SamplingParams {
            max_tokens,
            ..Default::default()
        },
        priority: Priority::Interactive,
        stream: false,
        reuse_cache: true,
    }
}

fn long_source() -> String {
    // ~3k tokens of real code.
    let mut text = String::new();
    for name in ["inventory.py", "pricing.py", "models.py", "cli.py", "catalog.py"] {
        text.push_str(&format!("# file: shop/{name}\n{}\n", fixture_source(name)));
    }
    text.repeat(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_reports_the_model_truthfully() {
    let model = default_model();
    let sidecar = SidecarProcess::start(&model, &["--ctx-size", "4096", "--parallel", "2"]);
    let client = sidecar.connect("handshake test").await;
    let info = client.model();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.n_layer, 30);
    assert_eq!(info.n_params, 134_515_008);
    assert_eq!(info.file_size, std::fs::metadata(&model).unwrap().len());
    assert_eq!(info.n_ctx_train, 8192);
    assert_eq!(info.n_vocab, 49152);
    assert!(info.has_chat_template, "SmolLM2-Instruct ships a chat template");
    assert!(
        !info.fim.can_infill(),
        "SmolLM2 has no FIM tokens: {:?}",
        info.fim
    );
    assert_eq!(info.eos.as_ref().map(|t| t.text.as_str()), Some("<|im_end|>"));
    let engine = &client.hello().engine;
    assert_eq!(
        (engine.n_ctx, engine.n_parallel, engine.n_ctx_per_slot),
        (4096, 2, 2048)
    );
    assert_eq!(engine.n_threads, 2);
    assert_eq!(client.hello().pid, sidecar.child.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_returns_text_and_the_second_request_reuses_the_prefix() {
    let sidecar = SidecarProcess::start(&default_model(), &["--ctx-size", "8192", "--parallel", "1"]);
    let client = sidecar.connect("reuse test").await;
    let source = fixture_source("inventory.py");
    let first = client
        .complete(completion(&source, 8))
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert!(!first.text.is_empty());
    assert!(first.metrics.generated_tokens >= 1 && first.metrics.generated_tokens <= 8);
    let (counts, _) = client.tokenize(vec![source.clone()], true).await.unwrap();
    assert_eq!(
        first.metrics.prompt_tokens, counts[0],
        "prompt = the text's tokens (SmolLM2 adds no BOS)"
    );
    assert_eq!(first.metrics.reused_tokens, 0, "a fresh slot has nothing cached");
    assert_eq!(first.metrics.evaluated_tokens, counts[0]);

    // The same file with one more line typed at the end: only the new tokens are evaluated.
    let typed = format!("{source}\n    def total(self) -> int:\n");
    let second = client
        .complete(completion(&typed, 8))
        .unwrap()
        .finish()
        .await
        .unwrap();
    let (counts, _) = client.tokenize(vec![typed], true).await.unwrap();
    assert_eq!(second.metrics.prompt_tokens, counts[0]);
    assert!(
        second.metrics.reused_tokens + 16 >= first.metrics.prompt_tokens,
        "reused {} of the {} shared tokens",
        second.metrics.reused_tokens,
        first.metrics.prompt_tokens
    );
    assert!(
        second.metrics.evaluated_tokens <= 24,
        "evaluated {}",
        second.metrics.evaluated_tokens
    );
    assert_eq!(
        second.metrics.reused_tokens + second.metrics.evaluated_tokens,
        second.metrics.prompt_tokens
    );

    // Greedy decoding is deterministic: the same prompt gives the same text.
    let again = client
        .complete(completion(&source, 8))
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(again.text, first.text);

    let stats = client.stats().await.unwrap();
    assert_eq!(stats.requests_completed, 3);
    assert!(stats.reused_tokens_total >= u64::from(second.metrics.reused_tokens));
    assert!(
        stats.resident_memory_bytes > 50 * 1024 * 1024,
        "the model is resident"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_sends_tokens_that_add_up_to_the_text() {
    let sidecar = SidecarProcess::start(&default_model(), &["--ctx-size", "2048", "--parallel", "1"]);
    let client = sidecar.connect("stream test").await;
    let mut params = completion("def fibonacci(n):\n    ", 12);
    params.stream = true;
    let mut stream = client.complete(params).unwrap();
    let mut streamed = String::new();
    let mut pieces = 0;
    let outcome = loop {
        match stream.next_event().await.unwrap() {
            StreamEvent::Token(piece) => {
                streamed.push_str(&piece);
                pieces += 1;
            }
            StreamEvent::Done(outcome) => break outcome,
        }
    };
    assert_eq!(streamed, outcome.text);
    assert!(pieces >= 2, "{pieces} pieces");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_strings_cut_the_text_and_are_not_part_of_it() {
    let sidecar = SidecarProcess::start(&default_model(), &["--ctx-size", "2048", "--parallel", "1"]);
    let client = sidecar.connect("stop test").await;
    let mut params = completion("1, 2, 3, 4, 5, 6,", 32);
    let unstopped = client.complete(params.clone()).unwrap().finish().await.unwrap();
    let stop = unstopped.text.trim_start().chars().next().unwrap().to_string();
    params.sampling.stop = vec![stop.clone()];
    let stopped = client.complete(params).unwrap().finish().await.unwrap();
    assert_eq!(stopped.stop_reason, StopReason::StopString);
    assert!(
        !stopped.text.contains(&stop),
        "{:?} contains {stop:?}",
        stopped.text
    );
    assert!(unstopped.text.starts_with(&stopped.text));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_constrains_the_output() {
    let sidecar = SidecarProcess::start(&default_model(), &["--ctx-size", "2048", "--parallel", "1"]);
    let client = sidecar.connect("grammar test").await;
    let schema = serde_json::json!({
        "type": "object",
        "properties": { "severity": { "enum": ["info", "warning", "error"] }, "line": { "type": "integer" } },
        "required": ["severity", "line"]
    });
    for prompt in ["Report one finding as JSON:", "x = 1\n# review:", "{"] {
        let mut params = completion(prompt, 48);
        params.sampling.json_schema = Some(schema.clone());
        let outcome = client.complete(params).unwrap().finish().await.unwrap();
        let value: serde_json::Value = serde_json::from_str(&outcome.text).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?} (stop {:?})",
                outcome.text, outcome.stop_reason
            )
        });
        assert!(
            ["info", "warning", "error"].contains(&value["severity"].as_str().unwrap()),
            "{value}"
        );
        assert!(value["line"].is_i64(), "{value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_uses_the_models_template() {
    let sidecar = SidecarProcess::start(&default_model(), &["--ctx-size", "2048", "--parallel", "1"]);
    let client = sidecar.connect("chat test").await;
    let params = ChatParams {
        messages: vec![ChatMessage {
            role: "user".into(),
            content: "Say hello.".into(),
        }],
        sampling: SamplingParams {
            max_tokens: 16,
            ..Default::default()
        },
        priority: Priority::Background,
        stream: false,
    };
    let outcome = client.chat(params).unwrap().finish().await.unwrap();
    assert!(!outcome.text.trim().is_empty());
    assert!(
        !outcome.text.contains("<|im_start|>"),
        "control tokens leaked: {:?}",
        outcome.text
    );
    // The template wraps the message in <|im_start|>…<|im_end|> turns: many more tokens than the text.
    let (counts, _) = client.tokenize(vec!["Say hello.".into()], true).await.unwrap();
    assert!(
        outcome.metrics.prompt_tokens > counts[0] + 5,
        "{} vs {}",
        outcome.metrics.prompt_tokens,
        counts[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_long_prompt_early() {
    let sidecar = SidecarProcess::start(
        &default_model(),
        &[
            "--ctx-size",
            "8192",
            "--parallel",
            "1",
            "--ubatch-size",
            "32",
            "--batch-size",
            "32",
        ],
    );
    let client = sidecar.connect("cancel test").await;
    let prompt = long_source();
    let stream = client.complete(completion(&prompt, 16)).unwrap();
    // Cancel once the prompt is being decoded (not while it waits in the queue).
    while client.stats().await.unwrap().active_requests == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.cancel();
    let error = stream.finish().await.unwrap_err();
    assert!(error.is_cancelled(), "{error}");
    let message = error.to_string();
    // "cancelled after N of M prompt tokens and 0 generated"
    let numbers: Vec<u64> = message
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 3, "{message}");
    assert!(numbers[1] > 2000, "the prompt is long: {message}");
    assert!(numbers[0] < numbers[1] / 2, "stopped early: {message}");
    let stats = client.stats().await.unwrap();
    assert_eq!(stats.requests_cancelled, 1);
    // The sidecar keeps serving.
    let outcome = client
        .complete(completion("def main():", 4))
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert!(outcome.metrics.generated_tokens >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_cancels_it_in_the_sidecar() {
    let sidecar = SidecarProcess::start(
        &default_model(),
        &[
            "--ctx-size",
            "8192",
            "--parallel",
            "1",
            "--ubatch-size",
            "32",
            "--batch-size",
            "32",
        ],
    );
    let client = sidecar.connect("drop test").await;
    let stream = client.complete(completion(&long_source(), 16)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(stream);
    // The next request is served once the dropped one stopped; its numbers show it was cancelled.
    let outcome = client
        .complete(completion("x = 1", 2))
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert!(outcome.metrics.generated_tokens >= 1);
    let stats = client.stats().await.unwrap();
    assert_eq!(stats.requests_cancelled, 1);
    assert!(
        stats.evaluated_tokens_total < 2000,
        "the long prompt was not finished: {}",
        stats.evaluated_tokens_total
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_share_one_sidecar_and_a_second_start_exits() {
    let model = default_model();
    let sidecar = SidecarProcess::start(&model, &["--ctx-size", "4096", "--parallel", "2"]);
    let first = sidecar.connect("window 1").await;
    let second = sidecar.connect("window 2").await;
    assert_eq!(first.hello().pid, second.hello().pid);
    let (a, b) = tokio::join!(
        async {
            first
                .complete(completion("def add(a, b):", 6))
                .unwrap()
                .finish()
                .await
        },
        async {
            second
                .complete(completion("class Point:", 6))
                .unwrap()
                .finish()
                .await
        },
    );
    assert!(a.unwrap().metrics.generated_tokens >= 1);
    assert!(b.unwrap().metrics.generated_tokens >= 1);
    assert_eq!(first.stats().await.unwrap().clients_connected, 2);

    // A second sidecar for the same endpoint finds the lock taken and exits with code 3.
    let mut again = sidecar_command(&model, &sidecar.endpoint, &[]).spawn().unwrap();
    assert_eq!(
        wait_exit(&mut again, Duration::from_secs(30)),
        Some(EXIT_ALREADY_RUNNING)
    );
    let outcome = first
        .complete(completion("x = ", 2))
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert!(
        outcome.metrics.generated_tokens >= 1,
        "the first sidecar still serves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_launchers_end_with_one_sidecar() {
    let runtime = private_dir();
    let options = LaunchOptions {
        sidecar_program: bin("hearth-sidecar"),
        model_path: default_model(),
        engine_args: vec!["--ctx-size".into(), "2048".into(), "--threads".into(), "2".into()],
        idle_timeout_secs: 5,
        startup_timeout: Duration::from_secs(120),
        runtime_dir: Some(runtime.path().to_path_buf()),
    };
    let (a, b, c) = tokio::join!(
        connect_or_spawn(&options, "racer a"),
        connect_or_spawn(&options, "racer b"),
        connect_or_spawn(&options, "racer c")
    );
    let (a, b, c) = (a.unwrap().0, b.unwrap().0, c.unwrap().0);
    assert_eq!(a.hello().pid, b.hello().pid);
    assert_eq!(a.hello().pid, c.hello().pid);
    let pid = a.hello().pid;

    // The socket is private to the user.
    let endpoint = options.endpoint().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&endpoint.socket_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "socket mode");
        let dir_mode = std::fs::metadata(&endpoint.runtime_dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700, "runtime dir mode");
    }

    // With no clients for the idle timeout (5 s), the sidecar exits by itself.
    drop((a, b, c));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while process_alive(pid) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !process_alive(pid),
        "sidecar {pid} should have exited after its idle timeout"
    );
    assert!(
        !endpoint.socket_path.exists(),
        "the socket file is removed on exit"
    );
}

fn process_alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped by init in this sandbox) counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.split_whitespace().nth(2).is_none_or(|state| state != "Z"),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_busy_and_prompt_too_long() {
    let sidecar = SidecarProcess::start(
        &default_model(),
        &["--ctx-size", "1024", "--parallel", "1", "--queue-capacity", "2"],
    );
    let client = sidecar.connect("queue test").await;

    // Too long for the 1024-token slot: refused with the numbers, nothing truncated.
    let error = client
        .complete(completion(&long_source(), 4))
        .unwrap()
        .finish()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::PromptTooLong), "{error}");
    assert!(error.to_string().contains("a slot holds 1024"), "{error}");

    // One slot: a background job runs, another waits; an interactive one jumps the queue.
    let mut running = completion("# A long story about a cat\n", 40);
    running.priority = Priority::Background;
    let mut waiting = completion("# Another story\n", 8);
    waiting.priority = Priority::Background;
    let urgent = completion("def urgent():", 4);
    let running = client.complete(running).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = client.complete(waiting).unwrap();
    let urgent = client.complete(urgent).unwrap();
    // Queue capacity 2 is now full: the next request is refused as busy.
    let refused = client
        .complete(completion("x", 2))
        .unwrap()
        .finish()
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), Some(ErrorKind::Busy), "{refused}");

    let finished = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let track = |name: &'static str, stream: CompletionStream| {
        let finished = finished.clone();
        async move {
            let outcome = stream.finish().await.unwrap();
            finished.lock().unwrap().push(name);
            outcome
        }
    };
    let (_, urgent_outcome, waiting_outcome) = tokio::join!(
        track("running", running),
        track("urgent", urgent),
        track("waiting", waiting)
    );
    assert_eq!(*finished.lock().unwrap(), vec!["running", "urgent", "waiting"]);
    assert!(urgent_outcome.metrics.queue_ms < waiting_outcome.metrics.queue_ms);
    let stats = client.stats().await.unwrap();
    assert_eq!(stats.requests_rejected_busy, 1);
}

async fn raw_connection(
    endpoint: &Endpoint,
) -> (
    FramedRead<tokio::io::ReadHalf<LocalStream>, tokio_util::codec::LengthDelimitedCodec>,
    FramedWrite<tokio::io::WriteHalf<LocalStream>, tokio_util::codec::LengthDelimitedCodec>,
) {
    let stream = LocalStream::connect(endpoint.socket_name().unwrap())
        .await
        .unwrap();
    let (read, write) = tokio::io::split(stream);
    (
        FramedRead::new(read, framing::codec()),
        FramedWrite::new(write, framing::codec()),
    )
}

async fn next_message(
    reader: &mut FramedRead<tokio::io::ReadHalf<LocalStream>, tokio_util::codec::LengthDelimitedCodec>,
) -> SidecarMessage {
    let frame = tokio::time::timeout(Duration::from_secs(60), reader.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    framing::decode(&frame).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_version_mismatch_and_disconnects_do_not_hurt_others() {
    let sidecar = SidecarProcess::start(&default_model(), &["--ctx-size", "2048", "--parallel", "2"]);
    let good = sidecar.connect("bystander").await;

    // A client from the future.
    let (mut reader, mut writer) = raw_connection(&sidecar.endpoint).await;
    let hello = ClientMessage::Hello {
        protocol_version: 999,
        client: "future".into(),
    };
    writer.send(framing::encode(&hello)).await.unwrap();
    match next_message(&mut reader).await {
        SidecarMessage::Error {
            kind: ErrorKind::VersionMismatch,
            message,
            ..
        } => {
            assert!(
                message.contains("999") && message.contains(&PROTOCOL_VERSION.to_string()),
                "{message}"
            )
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }

    // Malformed JSON after a good handshake: an error, and the connection keeps working.
    let (mut reader, mut writer) = raw_connection(&sidecar.endpoint).await;
    let hello = ClientMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        client: "sloppy".into(),
    };
    writer.send(framing::encode(&hello)).await.unwrap();
    assert!(matches!(
        next_message(&mut reader).await,
        SidecarMessage::Hello { .. }
    ));
    writer
        .send(bytes::Bytes::from_static(b"{\"type\":\"complete\",\"id\":"))
        .await
        .unwrap();
    match next_message(&mut reader).await {
        SidecarMessage::Error {
            id: None,
            kind: ErrorKind::BadRequest,
            message,
        } => assert!(message.contains("malformed"), "{message}"),
        other => panic!("expected a bad-request error, got {other:?}"),
    }
    writer
        .send(framing::encode(&ClientMessage::Stats { id: 5 }))
        .await
        .unwrap();
    assert!(matches!(
        next_message(&mut reader).await,
        SidecarMessage::Stats { id: 5, .. }
    ));

    // A client that disconnects mid-stream.
    let mut params = completion(&fixture_source("pricing.py"), 64);
    params.stream = true;
    writer
        .send(framing::encode(&ClientMessage::Complete { id: 6, params }))
        .await
        .unwrap();
    drop(writer);
    drop(reader);

    // A FIM token this model does not have: a clear error.
    let mut fim = completion("x", 2);
    fim.prompt = vec![
        PromptPart::Special(SpecialToken::FimPre),
        PromptPart::Text("x".into()),
    ];
    let error = good.complete(fim).unwrap().finish().await.unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::BadRequest));
    assert!(error.to_string().contains("FimPre"), "{error}");

    // An invalid grammar: a clear error.
    let mut bad_grammar = completion("x", 2);
    bad_grammar.sampling.grammar = Some("root ::= (".into());
    let error = good.complete(bad_grammar).unwrap().finish().await.unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::BadRequest), "{error}");

    // Everyone else is still served.
    let outcome = good
        .complete(completion("def main():", 4))
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert!(outcome.metrics.generated_tokens >= 1);
}

fn start_and_expect_failure(model: &std::path::Path) -> (Option<i32>, String) {
    let runtime = private_dir();
    let endpoint = Endpoint::in_dir(runtime.path(), "bad");
    let mut child = sidecar_command(model, &endpoint, &[]).spawn().unwrap();
    let code = wait_exit(&mut child, Duration::from_secs(60));
    let log = std::fs::read_to_string(runtime.path().join("sidecar.log")).unwrap_or_default();
    (code, log)
}

#[test]
fn bad_model_files_give_one_clear_error() {
    let dir = private_dir();
    let missing = dir.path().join("nope.gguf");
    let (code, log) = start_and_expect_failure(&missing);
    assert_eq!(code, Some(2));
    assert!(log.contains("model file not found"), "{log}");

    let not_gguf = dir.path().join("notes.gguf");
    std::fs::write(&not_gguf, "these are my notes, not a model").unwrap();
    let (code, log) = start_and_expect_failure(&not_gguf);
    assert_eq!(code, Some(2));
    assert!(log.contains("is not a GGUF model file"), "{log}");

    // The real model cut to 1 MiB: the header is there, the weights are not.
    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(default_model()).unwrap();
    std::fs::write(&truncated, &bytes[..1024 * 1024]).unwrap();
    let (code, log) = start_and_expect_failure(&truncated);
    assert_eq!(code, Some(2));
    assert!(log.contains("truncated"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // A well-formed GGUF of an architecture llama.cpp does not know.
    let unknown = dir.path().join("unknown-arch.gguf");
    let mut writer = hearth_models::gguf::writer::GgufWriter::new();
    writer
        .add_string("general.architecture", "hearth-imaginary")
        .add_string("general.name", "imaginary")
        .add_u32("hearth-imaginary.block_count", 1)
        .add_tensor("token_embd.weight", &[64, 32], hearth_models::gguf::GgmlType::F32);
    writer.write_to_path(&unknown).unwrap();
    let (code, log) = start_and_expect_failure(&unknown);
    assert_eq!(code, Some(2));
    assert!(log.contains("architecture `hearth-imaginary`"), "{log}");
    assert!(log.contains("does not support the architecture"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_work_pauses_for_completions_and_resumes_intact() {
    let sidecar = SidecarProcess::start(&default_model(), &["--ctx-size", "4096", "--parallel", "2"]);
    let client = sidecar.connect("pause test").await;
    // Counting goes on for all 300 tokens: a long job.
    let mut review = completion("1, 2, 3, 4, 5,", 300);
    review.priority = Priority::Background;
    // Alone, the background job produces this text.
    let alone = client.complete(review.clone()).unwrap().finish().await.unwrap();

    // Again, with completions arriving while it runs: they are served first (the background job
    // pauses), and the job's text is unchanged — it was never batched with them.
    let background = client.complete(review).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut interactive = Vec::new();
    for prompt in ["def add(a, b):", "class Cart:", "import os\n"] {
        interactive.push(
            client
                .complete(completion(prompt, 6))
                .unwrap()
                .finish()
                .await
                .unwrap(),
        );
    }
    // The completions were served while the background job was still running.
    assert_eq!(
        client.stats().await.unwrap().active_requests,
        1,
        "the background job overlapped them"
    );
    let together = background.finish().await.unwrap();
    assert_eq!(alone.metrics.generated_tokens, 300);
    assert_eq!(
        together.text, alone.text,
        "pausing and resuming kept the background job's state"
    );
    assert!(interactive
        .iter()
        .all(|outcome| outcome.metrics.generated_tokens >= 1));
}
