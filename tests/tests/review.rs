//! Review through the real `hearth lsp` / `hearth review`, the sidecar and the default model.
//! The tiny model's findings are not judged, only their structure: parseable, on lines that
//! exist and changed, replaced and cleared as documented, and the exit status of the CLI.

mod support;

use std::process::{Command, Output};

use hearth_tests::*;
use serde_json::{json, Value};
use support::*;

const BUGGY: &str = "\n\ndef average_cents(prices: list[int]) -> int:\n    total = 0\n    for price in prices:\n        total = price\n    return total / 0\n";

fn review_command(root: &std::path::Path, runtime: &std::path::Path) -> Command {
    let config = runtime.join("config.toml");
    std::fs::write(
        &config,
        "[backend]\nidle-timeout-secs = 5\ncontext-size = 4096\nparallel = 2\nthreads = 2\n",
    )
    .unwrap();
    let mut command = Command::new(bin("hearth"));
    command
        .arg("review")
        .current_dir(root)
        .env("HEARTH_RUNTIME_DIR", runtime)
        .env("HEARTH_CONFIG", &config)
        .env("HEARTH_DATA_DIR", runtime.join("data"));
    command
}

fn json_report(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn publishes_for(client: &hearth_tests::lsp_client::LspClient, uri: &str) -> Vec<Value> {
    client
        .notifications
        .iter()
        .filter(|n| n["method"] == "textDocument/publishDiagnostics" && n["params"]["uri"] == uri)
        .map(|n| n["params"].clone())
        .collect()
}

#[test]
fn a_save_publishes_diagnostics_inside_the_document_and_a_close_clears_them() {
    let _serial = serial();
    let root = cart_fixture(false);
    let runtime = private_dir();
    let mut client = start_server(root.path(), runtime.path());
    let path = root.path().join("cart").join("cart.py");
    let original = std::fs::read_to_string(&path).unwrap();
    let uri = client.open(&path, "python", &original);
    let edited = format!("{original}{BUGGY}");
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": edited}]}),
    );
    std::fs::write(&path, &edited).unwrap();
    client.notify("textDocument/didSave", json!({"textDocument": {"uri": uri}}));
    client.pump_until(|c| !publishes_for(c, &uri).is_empty());
    let published = publishes_for(&client, &uri)[0].clone();
    assert_eq!(published["version"], 2, "{published}");
    let diagnostics = published["diagnostics"].as_array().unwrap().clone();
    let first_new_line = original.lines().count() as u64;
    for diagnostic in &diagnostics {
        assert_eq!(diagnostic["source"], "hearth");
        assert!(!diagnostic["message"].as_str().unwrap().trim().is_empty());
        assert!((1..=4).contains(&diagnostic["severity"].as_u64().unwrap()));
        assert_range_inside(&edited, &diagnostic["range"]);
        // Only the lines that changed since the file was opened are reviewed.
        assert!(
            diagnostic["range"]["start"]["line"].as_u64().unwrap() >= first_new_line,
            "{diagnostic}"
        );
        assert!(diagnostic["data"]["key"].is_string());
    }

    // "Ignore this finding": the diagnostics are published again without it.
    if let Some(diagnostic) = diagnostics.first() {
        let actions = client.request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": diagnostic["range"],
                   "context": {"diagnostics": [diagnostic], "only": ["quickfix"]}}),
        );
        let ignore = actions["result"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["title"] == "Hearth: ignore this finding")
            .unwrap_or_else(|| panic!("no ignore action: {actions}"))
            .clone();
        let seen = publishes_for(&client, &uri).len();
        let answer = client.request("workspace/executeCommand", ignore["command"].clone());
        assert_eq!(
            answer["result"]["dismissed"], diagnostic["data"]["key"],
            "{answer}"
        );
        client.pump_until(|c| publishes_for(c, &uri).len() > seen);
        let republished = publishes_for(&client, &uri).last().unwrap().clone();
        assert!(republished["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["data"]["key"] != diagnostic["data"]["key"]));
    }

    // Closing the file clears its diagnostics.
    let seen = publishes_for(&client, &uri).len();
    client.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
    client.pump_until(|c| publishes_for(c, &uri).len() > seen);
    assert_eq!(
        publishes_for(&client, &uri).last().unwrap()["diagnostics"],
        json!([])
    );
    client.shutdown();
}

#[test]
fn hearth_review_json_on_a_fixture_repository_reports_changed_lines_and_the_exit_status() {
    let _serial = serial();
    let root = cart_fixture(true);
    let runtime = private_dir();
    let path = root.path().join("cart").join("cart.py");
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{original}{BUGGY}")).unwrap();
    let first_new_line = original.lines().count() as u64 + 1;

    let output = review_command(root.path(), runtime.path())
        .args([
            "--diff",
            "HEAD",
            "--format",
            "json",
            "--min-severity",
            "info",
            "--fail-on",
            "info",
        ])
        .output()
        .unwrap();
    let report = json_report(&output);
    assert_eq!(report["files_reviewed"], 1, "only the changed file: {report}");
    assert_eq!(report["files_failed"], json!([]), "{report}");
    let findings = report["findings"].as_array().unwrap();
    for finding in findings {
        assert_eq!(finding["path"], "cart/cart.py");
        let line = finding["line"].as_u64().unwrap();
        assert!(line >= first_new_line && line <= first_new_line + 6, "{finding}");
        assert!(finding["end_line"].as_u64().unwrap() >= line);
        assert!(["info", "warning", "error"].contains(&finding["severity"].as_str().unwrap()));
        assert!(["bug", "security", "performance", "style"].contains(&finding["category"].as_str().unwrap()));
    }
    // --fail-on info: any finding fails the run.
    let expected = if findings.is_empty() { 0 } else { 1 };
    assert_eq!(output.status.code(), Some(expected), "{report}");

    // Text format, never failing: `path:line:col: severity: message [category]`.
    let output = review_command(root.path(), runtime.path())
        .args(["--diff", "HEAD", "--min-severity", "info", "--fail-on", "never"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let parts: Vec<&str> = line.splitn(5, ':').collect();
        assert_eq!(parts[0], "cart/cart.py", "{line}");
        assert!(parts[1].parse::<u64>().unwrap() >= first_new_line, "{line}");
        assert!(parts[2].parse::<u64>().unwrap() >= 1, "{line}");
        assert!(["info", "warning", "error"].contains(&parts[3].trim()), "{line}");
    }

    // Nothing to review and no revision: a usage error, status 2, without touching the model.
    let output = review_command(root.path(), runtime.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--diff"));
}

#[test]
fn the_schema_keeps_review_answers_parseable_over_many_files() {
    let _serial = serial();
    let root = private_dir();
    let snippets = [
        "def mean(xs):\n    return sum(xs) / len(xs)\n",
        "import os\n\ndef read(path):\n    f = open(path)\n    return f.read()\n",
        "def find(items, key):\n    for i in range(len(items)):\n        if items[i] == key:\n            return i\n",
        "def run(cmd):\n    import subprocess\n    return subprocess.call(cmd, shell=True)\n",
    ];
    for (index, snippet) in snippets.iter().enumerate() {
        std::fs::write(root.path().join(format!("m{index}.py")), snippet).unwrap();
    }
    let runtime = private_dir();
    let output = review_command(root.path(), runtime.path())
        .args([
            ".",
            "--format",
            "json",
            "--min-severity",
            "info",
            "--fail-on",
            "never",
        ])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json_report(&output);
    assert_eq!(report["files_reviewed"], snippets.len(), "{report}");
    assert_eq!(report["files_failed"], json!([]), "every answer parsed: {report}");
    for finding in report["findings"].as_array().unwrap() {
        let path = finding["path"].as_str().unwrap();
        let index: usize = path
            .trim_start_matches('m')
            .trim_end_matches(".py")
            .parse()
            .unwrap();
        let lines = snippets[index].lines().count() as u64;
        let line = finding["line"].as_u64().unwrap();
        assert!(line >= 1 && line <= lines, "{finding}");
    }
}
