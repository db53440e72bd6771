//! Helpers shared by the code-action and review tests: the `cart` fixture in a private copy, and
//! applying LSP text edits the way an editor does.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use hearth_tests::lsp_client::LspClient;
use hearth_tests::*;
use serde_json::{json, Value};

/// The tests of one file run one at a time: each starts its own sidecar, and several models
/// decoding at once on a small CPU make every answer slower than the review timeout.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// `initializationOptions` for tests: a small context (fast prompts on a busy CPU) and a sidecar
/// that exits a few seconds after the last client.
pub fn test_options() -> Value {
    json!({"hearth": {"backend": {"idleTimeoutSecs": 5, "contextSize": 4096, "parallel": 2, "threads": 2},
                      "review": {"minSeverity": "info"}}})
}

/// A private copy of `tests/fixtures/review` (a git repository with one commit when `git` is set).
pub fn cart_fixture(git: bool) -> tempfile::TempDir {
    let dir = private_dir();
    copy_dir(&fixtures_dir().join("review"), dir.path());
    if git {
        for args in [
            &["init", "-q"][..],
            &["add", "."],
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "-m",
                "fixture",
            ],
        ] {
            let status = Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .status()
                .expect("git");
            assert!(status.success(), "git {args:?}");
        }
    }
    dir
}

/// Start `hearth lsp` on `root` with UTF-8 positions and versioned workspace edits.
pub fn start_server(root: &Path, runtime: &Path) -> LspClient {
    let mut client = LspClient::start(&bin("hearth"), runtime, &[]);
    let root_uri = lsp_client::file_uri(root);
    client.request(
        "initialize",
        json!({
            "processId": std::process::id(),
            "rootUri": root_uri,
            "workspaceFolders": [{"uri": root_uri, "name": "cart"}],
            "capabilities": {
                "general": {"positionEncodings": ["utf-8"]},
                "window": {"workDoneProgress": true},
                "workspace": {"workspaceEdit": {"documentChanges": true, "resourceOperations": ["create"]},
                              "applyEdit": true},
                "textDocument": {"codeAction": {"resolveSupport": {"properties": ["edit"]},
                                                "dataSupport": true},
                                 "publishDiagnostics": {"versionSupport": true}}
            },
            "initializationOptions": test_options(),
        }),
    );
    client.notify("initialized", json!({}));
    client
}

/// Wait until the server is connected to its sidecar; returns the sidecar's request count.
pub fn sidecar_requests(client: &mut LspClient) -> u64 {
    loop {
        let stats = client.request("hearth/stats", Value::Null);
        if let Some(total) = stats["result"]["sidecar"]["requests_total"].as_u64() {
            return total;
        }
        client.pump_for(std::time::Duration::from_millis(500));
    }
}

/// Byte offset of a UTF-8 LSP position (clamped to the line).
pub fn offset(text: &str, position: &Value) -> usize {
    let line = position["line"].as_u64().unwrap() as usize;
    let character = position["character"].as_u64().unwrap() as usize;
    let mut start = 0;
    for _ in 0..line {
        match text[start..].find('\n') {
            Some(at) => start += at + 1,
            None => return text.len(),
        }
    }
    let line_end = text[start..].find('\n').map_or(text.len(), |at| start + at);
    (start + character).min(line_end)
}

/// Apply LSP text edits (non-overlapping, UTF-8 positions) to `text`.
pub fn apply_edits(text: &str, edits: &[Value]) -> String {
    let mut ranges: Vec<(usize, usize, String)> = edits
        .iter()
        .map(|edit| {
            let start = offset(text, &edit["range"]["start"]);
            let end = offset(text, &edit["range"]["end"]);
            assert!(start <= end, "inverted range in {edit}");
            (start, end, edit["newText"].as_str().unwrap().to_string())
        })
        .collect();
    ranges.sort_by_key(|(start, _, _)| std::cmp::Reverse(*start));
    let mut out = text.to_string();
    for (start, end, new_text) in ranges {
        out.replace_range(start..end, &new_text);
    }
    out
}

/// Every position lies inside `text` (a line that exists, a column within it).
pub fn assert_range_inside(text: &str, range: &Value) {
    let lines: Vec<&str> = text.split('\n').collect();
    let start = (&range["start"]["line"], &range["start"]["character"]);
    let end = (&range["end"]["line"], &range["end"]["character"]);
    for (line, character) in [start, end] {
        let line = line.as_u64().unwrap() as usize;
        let character = character.as_u64().unwrap() as usize;
        assert!(
            line < lines.len(),
            "line {line} is past the end ({} lines): {range}",
            lines.len()
        );
        assert!(
            character <= lines[line].len(),
            "column {character} is past line {line}: {range}"
        );
    }
    let ordered = (start.0.as_u64(), start.1.as_u64()) <= (end.0.as_u64(), end.1.as_u64());
    assert!(ordered, "range ends before it starts: {range}");
}

pub fn path_of(root: &Path, relative: &str) -> PathBuf {
    root.join(relative)
}
