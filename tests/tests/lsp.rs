//! The real `hearth lsp` binary, spoken to over stdio, with its real sidecar and the default model.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_tests::lsp_client::LspClient;
use hearth_tests::*;
use serde_json::{json, Value};

fn options() -> Value {
    json!({"hearth": {"completion": {"debounceMs": 0, "maxTokens": 40}, "backend": {"idleTimeoutSecs": 5, "contextSize": 4096, "parallel": 2}}})
}

/// A copy of the shop fixture in a temp dir (tests may edit it).
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("hearth-ws-").tempdir().unwrap();
    copy_dir(&fixtures_dir().join("shop"), dir.path());
    dir
}

fn start(runtime: &Path) -> LspClient {
    // Every test uses the real default model through the user's model cache.
    let model = default_model();
    let model_dir = model.parent().unwrap().to_string_lossy().into_owned();
    LspClient::start(&bin("hearth"), runtime, &[("HEARTH_MODEL_DIR", &model_dir)])
}

fn inline(client: &mut LspClient, uri: &str, line: u32, character: u32) -> i64 {
    client.request_async(
        "textDocument/inlineCompletion",
        json!({
            "textDocument": {"uri": uri},
            "position": {"line": line, "character": character},
            "context": {"triggerKind": 2}
        }),
    )
}

/// The items of an inline completion answer (`InlineCompletionItem[]` or a list).
fn inline_items(response: &Value) -> Vec<Value> {
    let result = &response["result"];
    result
        .as_array()
        .or_else(|| result["items"].as_array())
        .unwrap_or_else(|| panic!("not an inline completion answer: {response}"))
        .clone()
}

fn document_text(client: &mut LspClient, uri: &str) -> String {
    let response = client.request("hearth/document", json!({"uri": uri}));
    response["result"]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{response}"))
        .to_string()
}

#[test]
fn initialize_advertises_both_completion_kinds_and_negotiates_the_encoding() {
    let runtime = private_dir();
    let ws = workspace();
    let mut client = start(runtime.path());
    let response = client.initialize(ws.path(), &["utf-8", "utf-16"], options());
    let capabilities = &response["result"]["capabilities"];
    assert_eq!(
        capabilities["inlineCompletionProvider"],
        json!(true),
        "{capabilities}"
    );
    assert!(capabilities["completionProvider"].is_object(), "{capabilities}");
    assert_eq!(capabilities["positionEncoding"], "utf-8");
    assert_eq!(capabilities["textDocumentSync"]["change"], 2, "incremental sync");
    client.shutdown();

    let mut client = start(runtime.path());
    let response = client.initialize(ws.path(), &["utf-16"], options());
    assert_eq!(response["result"]["capabilities"]["positionEncoding"], "utf-16");
    // `shutdown` + `exit` end the process while stdin is still open (editors may keep it).
    let mut client = client.shutdown();
    assert_eq!(client.exit_code(), Some(0));
}

#[test]
fn typing_in_a_real_file_gets_a_suggestion_that_continues_it() {
    let runtime = private_dir();
    let ws = workspace();
    let path = ws.path().join("shop").join("pricing.py");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut client = start(runtime.path());
    client.initialize(ws.path(), &["utf-16"], options());
    let uri = client.open(&path, "python", &text);

    // Start a new function at the end of the file, as a user would type it.
    let end_line = text.lines().count() as u32;
    let typed = "\n\ndef total_with_tax(order: Order) -> int:\n    ";
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"range": {"start": {"line": end_line, "character": 0}, "end": {"line": end_line, "character": 0}}, "text": typed}]
        }),
    );
    let cursor_line = end_line + 3;
    let id = inline(&mut client, &uri, cursor_line, 4);
    let response = client.response(id);
    let items = inline_items(&response);
    assert_eq!(items.len(), 1, "{response}");
    let suggestion = items[0]["insertText"].as_str().unwrap();
    assert!(!suggestion.trim().is_empty());
    assert_eq!(
        items[0]["range"]["start"],
        json!({"line": cursor_line, "character": 4})
    );

    // The server's numbers: the sidecar reused the prompt's stable front on a second request.
    let stats = client.request("hearth/stats", Value::Null);
    let server = &stats["result"]["server"];
    assert_eq!(server["completionsAnswered"], 1, "{stats}");
    let sidecar = &stats["result"]["sidecar"];
    assert_eq!(sidecar["model"]["architecture"], "llama", "{stats}");
    let recent = sidecar["recent"].as_array().unwrap();
    let first = recent.last().unwrap();
    assert!(
        first["prompt_tokens"].as_u64().unwrap() > 200,
        "context + file: {first}"
    );
    // The request is in this user's usage ledger (a private one per test).
    let today = &stats["result"]["usageToday"];
    assert_eq!(today["completed"], 1, "{stats}");
    assert_eq!(today["prompt_tokens"], first["prompt_tokens"], "{stats}");
    assert_eq!(today["generated_tokens"], first["generated_tokens"], "{stats}");

    // Type one more character that the suggestion does not start with: a new model request,
    // which reuses nearly all of the previous prompt.
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": {"uri": uri, "version": 3},
            "contentChanges": [{"range": {"start": {"line": cursor_line, "character": 4}, "end": {"line": cursor_line, "character": 4}}, "text": "#"}]
        }),
    );
    let id = inline(&mut client, &uri, cursor_line, 5);
    client.response(id);
    let stats = client.request("hearth/stats", Value::Null);
    let recent = stats["result"]["sidecar"]["recent"].as_array().unwrap().clone();
    if recent.len() >= 2 {
        let second = recent.last().unwrap();
        let prompt = second["prompt_tokens"].as_u64().unwrap();
        let evaluated = second["evaluated_tokens"].as_u64().unwrap();
        assert!(
            evaluated * 10 <= prompt,
            "one keystroke re-evaluated {evaluated} of {prompt} tokens"
        );
    }
    client.shutdown();
}

#[test]
fn incremental_edits_with_emoji_cjk_and_crlf_land_in_both_encodings() {
    let runtime = private_dir();
    let ws = workspace();
    for (encoding, emoji_width) in [("utf-8", 4u32), ("utf-16", 2u32)] {
        let mut client = start(runtime.path());
        client.initialize(ws.path(), &[encoding], options());
        let path = ws.path().join("scratch.py");
        let uri = client.open(&path, "python", "s = \"😀\"\r\nname = \"名前\"\r\n");
        // Insert after the emoji (inside the quotes), and after the CJK word.
        let after_emoji = 5 + emoji_width;
        let after_cjk = 8 + if encoding == "utf-8" { 6 } else { 2 };
        client.notify(
            "textDocument/didChange",
            json!({
                "textDocument": {"uri": uri, "version": 2},
                "contentChanges": [
                    {"range": {"start": {"line": 0, "character": after_emoji}, "end": {"line": 0, "character": after_emoji}}, "text": "!"},
                    {"range": {"start": {"line": 1, "character": after_cjk}, "end": {"line": 1, "character": after_cjk}}, "text": "_x"},
                    {"range": {"start": {"line": 1, "character": 999}, "end": {"line": 1, "character": 999}}, "text": "  # past the end"}
                ]
            }),
        );
        assert_eq!(
            document_text(&mut client, &uri),
            "s = \"😀!\"\r\nname = \"名前_x\"  # past the end\r\n",
            "{encoding}"
        );
        // An edit for an older version than the document's never lands.
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 1}, "contentChanges": [{"text": "clobbered"}]}),
        );
        assert!(document_text(&mut client, &uri).starts_with("s = \"😀!\""));
        client.shutdown();
    }
}

#[test]
fn a_burst_of_requests_and_cancels_gets_exactly_one_answer_each() {
    let runtime = private_dir();
    let ws = workspace();
    let path = ws.path().join("shop").join("inventory.py");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut client = start(runtime.path());
    client.initialize(ws.path(), &["utf-16"], options());
    let uri = client.open(&path, "python", &text);
    let end_line = text.lines().count() as u32;
    let mut ids = Vec::new();
    let mut version = 1;
    for (index, ch) in "\n    def total(self):\n        return".chars().enumerate() {
        version += 1;
        let typed_before: String = "\n    def total(self):\n        return"
            .chars()
            .take(index)
            .collect();
        let line = end_line + typed_before.matches('\n').count() as u32;
        let column = typed_before.rsplit('\n').next().unwrap().chars().count() as u32;
        client.notify(
            "textDocument/didChange",
            json!({
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": {"line": line, "character": column}, "end": {"line": line, "character": column}}, "text": ch.to_string()}]
            }),
        );
        let (line, column) = if ch == '\n' {
            (line + 1, 0)
        } else {
            (line, column + 1)
        };
        let id = inline(&mut client, &uri, line, column);
        if index % 3 == 0 {
            client.notify("$/cancelRequest", json!({"id": id}));
        }
        ids.push(id);
    }
    // Unknown methods and malformed messages in the middle of it all.
    let unknown = client.request_async("hearth/doesNotExist", json!({}));
    client.send_raw(b"{this is not json");
    let never_opened = inline(&mut client, "file:///nowhere/never-opened.py", 3, 4);
    let past_the_end = inline(&mut client, &uri, 10_000, 10_000);
    ids.extend([unknown, never_opened, past_the_end]);
    for id in &ids {
        client.response(*id);
    }
    client.pump_for(Duration::from_millis(500));
    client.assert_one_answer_each(&ids);
    assert_eq!(
        client.responses[&unknown][0]["error"]["code"], -32601,
        "method not found"
    );
    assert!(inline_items(&client.responses[&never_opened][0]).is_empty());
    // Superseded and cancelled requests end as empty results or RequestCancelled, never hang.
    for id in &ids[..ids.len() - 3] {
        let answer = &client.responses[id][0];
        let ok = answer.get("result").is_some() || answer["error"]["code"] == -32800;
        assert!(ok, "request {id}: {answer}");
    }
    // The server is still alive and answering.
    let stats = client.request("hearth/stats", Value::Null);
    assert!(
        stats["result"]["server"]["completionsRequested"]
            .as_u64()
            .unwrap()
            >= 30,
        "{stats}"
    );
    let client = client.shutdown();
    assert_eq!(
        client
            .responses
            .values()
            .filter(|answers| answers.len() > 1)
            .count(),
        0
    );
}

#[test]
fn killing_the_sidecar_mid_request_gives_an_error_and_the_next_request_restarts_it() {
    let runtime = private_dir();
    let ws = workspace();
    let path = ws.path().join("shop").join("models.py");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut client = start(runtime.path());
    let mut options = options();
    options["hearth"]["completion"]["maxTokens"] = json!(64);
    options["hearth"]["completion"]["multiline"] = json!("always");
    client.initialize(ws.path(), &["utf-16"], options);
    let uri = client.open(&path, "python", &text);
    let end_line = text.lines().count() as u32;

    // Warm up: the first request starts the sidecar.
    let id = inline(&mut client, &uri, end_line, 0);
    client.response(id);
    let stats = client.request("hearth/stats", Value::Null);
    let pid = stats["result"]["sidecar"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("{stats}")) as i32;

    // Ask again at a new place and kill the sidecar while it works.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"range": {"start": {"line": end_line, "character": 0}, "end": {"line": end_line, "character": 0}}, "text": "\n\nclass Warehouse:\n"}]}),
    );
    let id = inline(&mut client, &uri, end_line + 3, 0);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: killing a process we started (through the server) by its pid.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let answer = client.response(id);
    let killed_mid_request = answer.get("error").is_some();
    if killed_mid_request {
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("sidecar") || message.contains("closed"),
            "{answer}"
        );
    } else {
        // The answer raced the kill: it must still be a proper result.
        inline_items(&answer);
    }

    // The next request after the backoff starts a fresh sidecar and gets an answer.
    let mut answered = None;
    for attempt in 0..20 {
        std::thread::sleep(Duration::from_millis(500 * (attempt + 1).min(4)));
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 3 + attempt}, "contentChanges": [{"range": {"start": {"line": end_line + 3, "character": 0}, "end": {"line": end_line + 3, "character": 0}}, "text": " "}]}),
        );
        let id = inline(&mut client, &uri, end_line + 3, 1 + attempt as u32);
        let answer = client.response(id);
        if answer.get("result").is_some() {
            answered = Some(answer);
            break;
        }
    }
    assert!(answered.is_some(), "no answer after the sidecar restarted");
    let stats = client.request("hearth/stats", Value::Null);
    let new_pid = stats["result"]["sidecar"]["pid"].as_u64().unwrap() as i32;
    assert_ne!(new_pid, pid, "a new sidecar serves");
    client.shutdown();
}

#[test]
fn two_editor_windows_share_one_sidecar() {
    let runtime = private_dir();
    let ws = workspace();
    let path: PathBuf = ws.path().join("shop").join("catalog.py");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut pids = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut client = start(runtime.path());
        client.initialize(ws.path(), &["utf-16"], options());
        let uri = client.open(&path, "python", &text);
        let id = inline(&mut client, &uri, text.lines().count() as u32, 0);
        client.response(id);
        let stats = client.request("hearth/stats", Value::Null);
        pids.push(
            stats["result"]["sidecar"]["pid"]
                .as_u64()
                .unwrap_or_else(|| panic!("{stats}")),
        );
        clients.push(client);
    }
    assert_eq!(pids[0], pids[1], "both windows talk to the same sidecar");
    let socket_dir = std::fs::read_dir(runtime.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sock"));
    assert_eq!(socket_dir.count(), 1);
    for client in clients {
        client.shutdown();
    }
}

#[test]
fn an_editor_gets_ghost_text_from_a_remote_server() {
    // The "remote" server is a sidecar serving the default model over its OpenAI-compatible API.
    let server = SidecarProcess::start(
        &default_model(),
        &[
            "--openai-listen",
            "127.0.0.1:0",
            "--ctx-size",
            "4096",
            "--parallel",
            "2",
        ],
    );
    let address = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ipc = server.connect("lsp remote test").await;
        ipc.stats().await.unwrap().openai_listen.expect("an HTTP address")
    });
    let runtime = private_dir();
    let ws = workspace();
    let path = ws.path().join("shop").join("pricing.py");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut client = start(runtime.path());
    let options = json!({"hearth": {
        "completion": {"debounceMs": 0, "maxTokens": 24},
        "backend": {"kind": "openai", "openaiUrl": format!("http://{address}/v1"), "openaiTimeoutSecs": 900},
    }});
    client.initialize(ws.path(), &["utf-16"], options);
    let uri = client.open(&path, "python", &text);
    let end_line = text.lines().count() as u32;
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"range": {"start": {"line": end_line, "character": 0}, "end": {"line": end_line, "character": 0}}, "text": "\n\ndef total_with_tax(order: Order) -> int:\n    "}]
        }),
    );
    let id = inline(&mut client, &uri, end_line + 3, 4);
    let response = client.response(id);
    let items = inline_items(&response);
    assert_eq!(items.len(), 1, "{response}");
    assert!(!items[0]["insertText"].as_str().unwrap().trim().is_empty());

    let stats = client.request("hearth/stats", Value::Null);
    let today = &stats["result"]["usageToday"];
    assert_eq!(today["remote_requests"], 1, "{stats}");
    assert_eq!(today["completed"], 1, "{stats}");
    // The HTTP server answered it (its own numbers), and no local sidecar was started.
    let recent = stats["result"]["sidecar"]["recent"].as_array().unwrap().clone();
    assert_eq!(recent.len(), 1, "{stats}");
    assert_eq!(today["prompt_tokens"], recent[0]["prompt_tokens"]);
    let sockets = std::fs::read_dir(runtime.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sock")
        })
        .count();
    assert_eq!(sockets, 0, "no sidecar of our own");
    client.shutdown();
}

#[test]
fn files_changed_outside_the_editor_reach_the_context_without_client_watching() {
    let runtime = private_dir();
    let ws = workspace();
    let path = ws.path().join("shop").join("pricing.py");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut client = start(runtime.path());
    // A client that does not watch files for the server (no dynamic registration).
    client.initialize_with(ws.path(), &["utf-16"], options(), json!({}));
    let uri = client.open(&path, "python", &text);
    let end_line = text.lines().count() as u32;
    let typed = "\n\ndef shipping(order):\n    return brand_new_shipping_rate(order)";
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"range": {"start": {"line": end_line, "character": 0}, "end": {"line": end_line, "character": 0}}, "text": typed}]
        }),
    );
    let position = json!({"line": end_line + 3, "character": 40});
    let context = |client: &mut LspClient| {
        client.request(
            "hearth/context",
            json!({"textDocument": {"uri": uri}, "position": position}),
        )
    };
    // Wait for the first index (bounded), then write a new file behind the editor's back.
    for _ in 0..600 {
        if context(&mut client)["result"]["index_ready"] == true {
            break;
        }
        client.pump_for(Duration::from_millis(50));
    }
    std::fs::write(
        ws.path().join("shop").join("shipping.py"),
        "def brand_new_shipping_rate(order):\n    return 499 if order.total_cents() < 5000 else 0\n",
    )
    .unwrap();
    let mut found = false;
    for _ in 0..200 {
        let manifest = context(&mut client);
        let snippets = manifest["result"]["snippets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if snippets.iter().any(|s| s["path"] == "shop/shipping.py") {
            found = true;
            break;
        }
        client.pump_for(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(runtime.path().join("lsp.log")).unwrap_or_default();
    assert!(
        found,
        "the new file never reached the index: {}\n{log}",
        context(&mut client)
    );
    client.shutdown();
}
