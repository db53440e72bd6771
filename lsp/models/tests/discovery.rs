//! Discovery and resolution against fake Hearth, Ollama, Hugging Face and LM Studio stores
//! built in a tempdir.

use hearth_models::discovery::{discover_models, resolve_model, ModelSource, ModelStores, ResolveError};
use hearth_models::gguf::writer::GgufWriter;
use hearth_models::gguf::GgmlType;
use hearth_models::install::DEFAULT_MODEL_FILE_NAME;
use std::path::{Path, PathBuf};

fn write_tiny_model(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer = GgufWriter::new();
    writer.add_string("general.architecture", "llama").add_tensor(
        "token_embd.weight",
        &[32, 4],
        GgmlType::F16,
    );
    writer.write_to_path(path).unwrap();
}

fn write_ollama_manifest(ollama: &Path, host: &str, namespace: &str, model: &str, tag: &str, hex: &str) {
    let manifest_directory = ollama.join("manifests").join(host).join(namespace).join(model);
    std::fs::create_dir_all(&manifest_directory).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:c0ffee", "size": 10},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:7e3", "size": 5},
            {"mediaType": "application/vnd.ollama.image.model", "digest": format!("sha256:{hex}"), "size": 100}
        ]
    });
    std::fs::write(manifest_directory.join(tag), manifest.to_string()).unwrap();
}

/// A symlink where the platform has them (the Hugging Face cache layout), a copy elsewhere.
fn link_or_copy(target: PathBuf, link: PathBuf) -> std::io::Result<()> {
    #[cfg(unix)]
    return std::os::unix::fs::symlink(target, link);
    #[cfg(not(unix))]
    return std::fs::copy(target, link).map(|_| ());
}

struct FakeStores {
    _directory: tempfile::TempDir,
    root: PathBuf,
    stores: ModelStores,
}

fn fake_stores() -> FakeStores {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path().to_path_buf();
    let hearth = root.join("hearth-models");
    let ollama = root.join("ollama");
    let hub = root.join("hf-hub");
    let lm_studio = root.join("lmstudio");

    write_tiny_model(&hearth.join(DEFAULT_MODEL_FILE_NAME));
    write_tiny_model(&hearth.join("my-own.gguf"));
    std::fs::write(hearth.join("notes.txt"), "not a model").unwrap();

    write_tiny_model(&ollama.join("blobs").join("sha256-aaaa"));
    write_tiny_model(&ollama.join("blobs").join("sha256-bbbb"));
    write_tiny_model(&ollama.join("blobs").join("sha256-cccc"));
    write_ollama_manifest(
        &ollama,
        "registry.ollama.ai",
        "library",
        "qwen2.5-coder",
        "1.5b",
        "aaaa",
    );
    write_ollama_manifest(
        &ollama,
        "registry.ollama.ai",
        "library",
        "llama3.2",
        "latest",
        "bbbb",
    );
    write_ollama_manifest(&ollama, "hf.co", "bartowski", "Some-GGUF", "Q4_K_M", "cccc");
    // A manifest whose blob is gone, and one that is not JSON: both skipped.
    write_ollama_manifest(&ollama, "registry.ollama.ai", "library", "gone", "latest", "dddd");
    let broken = ollama.join("manifests/registry.ollama.ai/library/broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("latest"), "{not json").unwrap();

    // Hugging Face: refs/main names rev-new; rev-old must be ignored. Snapshot files are
    // symlinks to blobs, as huggingface_hub writes them.
    let repository = hub.join("models--Qwen--Qwen2.5-Coder-1.5B-Instruct-GGUF");
    write_tiny_model(&repository.join("blobs").join("b1"));
    write_tiny_model(&repository.join("blobs").join("b2"));
    let snapshot = repository.join("snapshots").join("rev-new");
    std::fs::create_dir_all(&snapshot).unwrap();
    link_or_copy(
        repository.join("blobs").join("b1"),
        snapshot.join("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
    )
    .unwrap();
    link_or_copy(
        repository.join("blobs").join("b2"),
        snapshot.join("qwen2.5-coder-1.5b-instruct-q8_0.gguf"),
    )
    .unwrap();
    write_tiny_model(&snapshot.join("mmproj-model-f16.gguf"));
    write_tiny_model(&repository.join("snapshots/rev-old/qwen2.5-coder-1.5b-instruct-q2_k.gguf"));
    std::fs::create_dir_all(repository.join("refs")).unwrap();
    std::fs::write(repository.join("refs").join("main"), "rev-new\n").unwrap();
    // A split model: only the first part is listed.
    let split = hub.join("models--org--Big-GGUF/snapshots/r1");
    write_tiny_model(&split.join("big-q4_k_m-00001-of-00002.gguf"));
    write_tiny_model(&split.join("big-q4_k_m-00002-of-00002.gguf"));

    write_tiny_model(&lm_studio.join("lmstudio-community/Coder-GGUF/Coder-Q4_K_M.gguf"));

    let stores = ModelStores {
        hearth_model_dir: Some(hearth),
        ollama_model_dirs: vec![ollama],
        huggingface_hub_dir: Some(hub),
        lm_studio_dirs: vec![lm_studio, root.join("missing-lm-studio")],
    };
    FakeStores {
        _directory: directory,
        root,
        stores,
    }
}

#[test]
fn discovery_lists_every_store_in_order() {
    let fake = fake_stores();
    let models = discover_models(&fake.stores);
    let listed: Vec<(ModelSource, &str)> = models
        .iter()
        .map(|model| (model.source, model.name.as_str()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (ModelSource::Hearth, "SmolLM2-135M-Instruct.Q4_1"),
            (ModelSource::Hearth, "my-own"),
            (ModelSource::Ollama, "hf.co/bartowski/Some-GGUF:Q4_K_M"),
            (ModelSource::Ollama, "llama3.2:latest"),
            (ModelSource::Ollama, "qwen2.5-coder:1.5b"),
            (
                ModelSource::HuggingFace,
                "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
            ),
            (
                ModelSource::HuggingFace,
                "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q8_0.gguf"
            ),
            (
                ModelSource::HuggingFace,
                "org/Big-GGUF/big-q4_k_m-00001-of-00002.gguf"
            ),
            (
                ModelSource::LmStudio,
                "lmstudio-community/Coder-GGUF/Coder-Q4_K_M.gguf"
            ),
        ]
    );
    let qwen = models
        .iter()
        .find(|model| model.name == "qwen2.5-coder:1.5b")
        .unwrap();
    assert_eq!(qwen.path, fake.root.join("ollama/blobs/sha256-aaaa"));
    assert!(qwen.size_bytes > 0);
}

#[test]
fn names_aliases_and_paths_resolve() {
    let fake = fake_stores();
    let resolve = |spec: &str| resolve_model(spec, &fake.stores);
    let root = &fake.root;
    assert_eq!(
        resolve("default").unwrap(),
        root.join("hearth-models").join(DEFAULT_MODEL_FILE_NAME)
    );
    assert_eq!(resolve("my-own").unwrap(), root.join("hearth-models/my-own.gguf"));
    assert_eq!(
        resolve("qwen2.5-coder:1.5b").unwrap(),
        root.join("ollama/blobs/sha256-aaaa")
    );
    // `:latest` may be left out, and names are case-insensitive.
    assert_eq!(
        resolve("Llama3.2").unwrap(),
        root.join("ollama/blobs/sha256-bbbb")
    );
    assert_eq!(
        resolve("hf.co/bartowski/Some-GGUF:Q4_K_M").unwrap(),
        root.join("ollama/blobs/sha256-cccc")
    );
    let q8 = resolve("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF:q8_0").unwrap();
    assert_eq!(q8.file_name().unwrap(), "qwen2.5-coder-1.5b-instruct-q8_0.gguf");
    assert_eq!(
        resolve("qwen2.5-coder-1.5b-instruct-q4_k_m")
            .unwrap()
            .file_name()
            .unwrap(),
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    );
    assert_eq!(
        resolve("lmstudio-community/Coder-GGUF").unwrap(),
        root.join("lmstudio/lmstudio-community/Coder-GGUF/Coder-Q4_K_M.gguf")
    );
    let absolute = root.join("hearth-models/my-own.gguf");
    assert_eq!(resolve(absolute.to_str().unwrap()).unwrap(), absolute);
}

#[test]
fn two_quantizations_of_one_repository_are_ambiguous() {
    let fake = fake_stores();
    let error = resolve_model("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", &fake.stores).unwrap_err();
    match &error {
        ResolveError::Ambiguous { candidates, .. } => assert_eq!(candidates.len(), 2),
        other => panic!("expected Ambiguous, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains("matches several models"));
    assert!(message.contains("qwen2.5-coder-1.5b-instruct-q8_0.gguf"));
}

#[test]
fn unknown_names_list_what_was_found_and_what_to_do() {
    let fake = fake_stores();
    let error = resolve_model("starcoder2:3b", &fake.stores).unwrap_err();
    assert!(matches!(error, ResolveError::NoMatch { .. }));
    let message = error.to_string();
    assert!(message.contains("no model named 'starcoder2:3b'"));
    assert!(message.contains("qwen2.5-coder:1.5b (Ollama)"));
    assert!(message.contains("hearth model pull default"));

    let error = resolve_model("./missing/model.gguf", &fake.stores).unwrap_err();
    assert!(matches!(error, ResolveError::PathNotFound { .. }), "{error:?}");
    assert!(error
        .to_string()
        .starts_with("model file not found: ./missing/model.gguf"));

    assert!(matches!(
        resolve_model("  ", &fake.stores),
        Err(ResolveError::EmptySpec)
    ));
}

#[test]
fn empty_stores_say_where_they_looked() {
    let directory = tempfile::tempdir().unwrap();
    let stores = ModelStores {
        hearth_model_dir: Some(directory.path().join("hearth")),
        ollama_model_dirs: vec![directory.path().join("ollama")],
        huggingface_hub_dir: None,
        lm_studio_dirs: Vec::new(),
    };
    assert!(discover_models(&stores).is_empty());
    let error = resolve_model("default", &stores).unwrap_err();
    assert!(matches!(error, ResolveError::DefaultNotInstalled { .. }));
    assert!(error.to_string().contains("run `hearth model pull default`"));
    let message = resolve_model("anything", &stores).unwrap_err().to_string();
    assert!(message.contains("no GGUF models found"));
    assert!(message.contains(&directory.path().join("ollama").display().to_string()));
}
