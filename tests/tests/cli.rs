//! The `hearth` command line on the fixture project, with the real sidecar and default model.

use std::path::Path;
use std::process::{Command, Output};

use hearth_tests::*;
use serde_json::Value;

fn hearth(runtime: &Path, args: &[&str]) -> Output {
    let model = default_model();
    // Sidecars started here leave 5 s after their last client.
    let config = runtime.join("config.toml");
    std::fs::write(&config, "[backend]\nidle-timeout-secs = 5\n").unwrap();
    Command::new(bin("hearth"))
        .args(args)
        .env("HEARTH_RUNTIME_DIR", runtime)
        .env("HEARTH_CONFIG", &config)
        .env("HEARTH_DATA_DIR", runtime.join("data"))
        .env("HEARTH_MODEL_DIR", model.parent().unwrap())
        .output()
        .expect("run hearth")
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn shop() -> std::path::PathBuf {
    fixtures_dir().join("shop")
}

#[test]
fn a_second_complete_reuses_the_running_sidecar_and_its_cached_prompt() {
    let runtime = private_dir();
    let file = shop().join("shop").join("pricing.py");
    let location = format!("{}:42:1", file.display());
    let root = shop().display().to_string();
    let first = json(&hearth(
        runtime.path(),
        &["complete", &location, "--root", &root, "--json"],
    ));
    let second = json(&hearth(
        runtime.path(),
        &["complete", &location, "--root", &root, "--json"],
    ));
    assert_eq!(
        first["sidecar_pid"], second["sidecar_pid"],
        "the second run found the first one's sidecar"
    );
    let text = first["text"].as_str().expect("a suggestion");
    assert!(!text.trim().is_empty());
    // Greedy decoding on the same prompt: the same suggestion, served mostly from the KV cache.
    assert_eq!(first["text"], second["text"]);
    let metrics = &second["suggestion"]["metrics"];
    let prompt = metrics["prompt_tokens"].as_u64().unwrap();
    let reused = metrics["reused_tokens"].as_u64().unwrap();
    assert!(reused + 1 == prompt, "reused {reused} of {prompt}");
    // The context came from other files of the project, never from its .env.
    let snippets = second["suggestion"]["context"]["snippets"].as_array().unwrap();
    assert!(
        snippets.iter().any(|s| s["path"] == "shop/models.py"),
        "{snippets:?}"
    );
    assert!(!second.to_string().contains(".env"));

    // No suggestion in the middle of a word, and the CLI says why instead of printing nothing.
    let mid_word = format!("{}:3:3", file.display());
    let output = hearth(runtime.path(), &["complete", &mid_word, "--root", &root]);
    assert!(output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("touches a word"), "{stderr}");
    let declined = json(&hearth(
        runtime.path(),
        &["complete", &mid_word, "--root", &root, "--json"],
    ));
    assert!(declined["text"].is_null());
    assert!(declined["declined"]["reason"]
        .as_str()
        .unwrap()
        .contains("touches a word"));
}

#[test]
fn context_manifest_names_the_definitions_used_and_respects_the_budget() {
    let runtime = private_dir();
    let location = format!("{}:52:30", shop().join("shop").join("pricing.py").display());
    let root = shop().display().to_string();
    for budget in ["64", "300", "4000"] {
        let manifest = json(&hearth(
            runtime.path(),
            &[
                "context", &location, "--root", &root, "--budget", budget, "--json",
            ],
        ));
        let budget: u64 = budget.parse().unwrap();
        let total = manifest["total_tokens"].as_u64().unwrap();
        assert!(total <= budget, "{total} > {budget}");
        assert_eq!(manifest["budget_tokens"].as_u64(), Some(budget));
        let snippets = manifest["snippets"].as_array().unwrap();
        for snippet in snippets {
            for key in [
                "path",
                "start_line",
                "end_line",
                "kind",
                "reason",
                "score",
                "tokens",
            ] {
                assert!(snippet.get(key).is_some(), "{key} missing in {snippet}");
            }
            assert!(!snippet["path"].as_str().unwrap().contains(".env"));
        }
        if budget >= 300 {
            // `quote` uses `Order` from shop/models.py: its definition is in the manifest.
            let order = snippets
                .iter()
                .find(|s| s["path"] == "shop/models.py" && s["reason"].as_str().unwrap().contains("`Order`"));
            assert!(order.is_some(), "{snippets:#?}");
        }
    }
}

#[test]
fn bad_input_gives_a_clear_error() {
    let runtime = private_dir();
    let binary = runtime.path().join("blob.py");
    std::fs::write(&binary, b"\x00\x01\x02binary").unwrap();
    let output = hearth(
        runtime.path(),
        &["complete", &format!("{}:1:1", binary.display())],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("looks binary"));

    let output = hearth(runtime.path(), &["complete", "no-such-file.py:1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("FILE:LINE:COL"));

    let missing = runtime.path().join("missing.gguf");
    let output = hearth(
        runtime.path(),
        &[
            "--model",
            missing.to_str().unwrap(),
            "complete",
            &format!("{}:1:1", shop().join("shop/models.py").display()),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing.gguf"), "{stderr}");
}

#[test]
fn doctor_and_model_list_read_the_real_model() {
    let runtime = private_dir();
    let report = json(&hearth(runtime.path(), &["doctor", "--json", "--ctx", "8192"]));
    let text = report.to_string();
    assert!(text.contains("llama"), "{report:#}");
    assert!(
        text.contains("134515008"),
        "the parameter count of SmolLM2-135M: {report:#}"
    );
    let models = json(&hearth(runtime.path(), &["model", "list", "--json"]));
    let models = models.as_array().unwrap();
    let default = models.iter().find(|m| {
        m["path"]
            .as_str()
            .unwrap()
            .ends_with("SmolLM2-135M-Instruct.Q4_1.gguf")
    });
    let default = default.unwrap_or_else(|| panic!("{models:?}"));
    assert_eq!(default["fim"], false);
    assert_eq!(default["quantization"], "Q4_1");
}
