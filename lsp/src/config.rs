//! Configuration: one `Config`, assembled from layers (later wins):
//! built-in defaults ← user file (`~/.config/hearth/config.toml`) ← workspace `.hearth.toml` ←
//! LSP `initializationOptions` ← `workspace/didChangeConfiguration`.
//!
//! TOML keys are kebab-case; LSP settings are the same keys in camelCase (under `hearth`).
//! [`SETTINGS`] lists every user-facing key once; the VS Code extension's `package.json` is
//! checked against it by a test, so the two cannot drift.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct Config {
    /// GGUF path, `default`, or a model name found in the local stores.
    pub model: String,
    /// The `hearth-sidecar` program (default: next to `hearth`, then PATH).
    pub sidecar_path: Option<PathBuf>,
    pub backend: BackendConfig,
    pub completion: CompletionConfig,
    pub context: ContextConfig,
    pub review: ReviewConfig,
    pub usage: UsageConfig,
    /// LSP language ids Hearth stays quiet in.
    pub disabled_languages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct BackendConfig {
    /// `sidecar` (local llama.cpp) or `openai` (an OpenAI-compatible server).
    pub kind: String,
    /// 0 = physical cores.
    pub threads: u32,
    pub context_size: u32,
    /// `auto` or a number of layers.
    pub gpu_layers: String,
    pub parallel: u32,
    pub idle_timeout_secs: u64,
    pub openai_url: String,
    pub openai_model: String,
    pub openai_api_key_env: String,
    /// `auto` (read from the server's vocabulary), `none`, or a family name.
    pub openai_fim: String,
    pub openai_timeout_secs: u64,
    pub openai_retries: u32,
    /// PEM file with an extra root certificate (a server behind a private CA).
    pub openai_ca_file: String,
}

/// The usage ledger (`hearth stats`) and the prices it compares against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct UsageConfig {
    /// Record per-day usage (counts and timings only, never code).
    pub enabled: bool,
    /// Cloud price per million uncached input tokens, in your currency.
    pub cloud_input_per_mtok: f64,
    /// Cloud price per million cached input tokens.
    pub cloud_cached_input_per_mtok: f64,
    /// Cloud price per million output tokens.
    pub cloud_output_per_mtok: f64,
    /// Extra power the machine draws while the local model works, in watts.
    pub watts: f64,
    /// Electricity price per kWh.
    pub price_per_kwh: f64,
    /// What the local hardware cost (0 = no break-even line).
    pub hardware_cost: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct CompletionConfig {
    pub enabled: bool,
    pub debounce_ms: u64,
    pub max_tokens: u32,
    /// `auto`, `always` or `never`.
    pub multiline: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct ContextConfig {
    /// Tokens of cross-file context; 0 = sized to the model's context.
    pub budget_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct ReviewConfig {
    pub enabled: bool,
    /// `info`, `warning` or `error`.
    pub min_severity: String,
    pub max_findings: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            model: "default".into(),
            sidecar_path: None,
            backend: BackendConfig::default(),
            completion: CompletionConfig::default(),
            context: ContextConfig::default(),
            review: ReviewConfig::default(),
            usage: UsageConfig::default(),
            disabled_languages: Vec::new(),
        }
    }
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            kind: "sidecar".into(),
            threads: 0,
            context_size: 8192,
            gpu_layers: "auto".into(),
            parallel: 4,
            idle_timeout_secs: 600,
            openai_url: String::new(),
            openai_model: String::new(),
            openai_api_key_env: "HEARTH_OPENAI_API_KEY".into(),
            openai_fim: "auto".into(),
            openai_timeout_secs: 120,
            openai_retries: 2,
            openai_ca_file: String::new(),
        }
    }
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            enabled: true,
            cloud_input_per_mtok: 3.0,
            cloud_cached_input_per_mtok: 0.3,
            cloud_output_per_mtok: 15.0,
            watts: 150.0,
            price_per_kwh: 0.3,
            hardware_cost: 0.0,
        }
    }
}

impl Default for CompletionConfig {
    fn default() -> Self {
        CompletionConfig {
            enabled: true,
            debounce_ms: 40,
            max_tokens: 64,
            multiline: "auto".into(),
        }
    }
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            enabled: true,
            min_severity: "warning".into(),
            max_findings: 20,
        }
    }
}

/// One user-facing setting, as editors show it.
pub struct Setting {
    /// Dotted kebab-case path (`completion.debounce-ms`).
    pub key: &'static str,
    pub description: &'static str,
    pub enum_values: &'static [&'static str],
}

/// Every setting an editor exposes. Defaults and types come from [`Config::default`].
pub const SETTINGS: &[Setting] = &[
    Setting { key: "model", description: "Model: a GGUF file path, `default` (SmolLM2-135M, installed by `hearth model pull default`), or a model name found in Ollama / Hugging Face / LM Studio stores.", enum_values: &[] },
    Setting { key: "backend.kind", description: "Inference backend: the local llama.cpp sidecar, or an OpenAI-compatible server.", enum_values: &["sidecar", "openai"] },
    Setting { key: "backend.threads", description: "CPU threads for the sidecar (0 = physical cores).", enum_values: &[] },
    Setting { key: "backend.context-size", description: "Sidecar context size in tokens, shared by the parallel slots (up to 131072).", enum_values: &[] },
    Setting { key: "backend.gpu-layers", description: "Layers offloaded to the GPU: `auto` (as many as fit) or a number.", enum_values: &[] },
    Setting { key: "backend.parallel", description: "Parallel sequences (slots) the sidecar decodes together.", enum_values: &[] },
    Setting { key: "backend.idle-timeout-secs", description: "The sidecar exits after this many seconds without clients (0 = never).", enum_values: &[] },
    Setting { key: "backend.openai-url", description: "Base URL of an OpenAI-compatible server (backend.kind = openai).", enum_values: &[] },
    Setting { key: "backend.openai-model", description: "Model name sent to the OpenAI-compatible server.", enum_values: &[] },
    Setting { key: "backend.openai-api-key-env", description: "Environment variable holding the API key for the OpenAI-compatible server.", enum_values: &[] },
    Setting { key: "backend.openai-fim", description: "Fill-in-the-middle tokens of the remote model: read from its vocabulary (`auto`, needs a /tokenize endpoint), `none`, or a family.", enum_values: &["auto", "none", "qwen", "starcoder", "deepseek", "codellama", "codestral"] },
    Setting { key: "backend.openai-timeout-secs", description: "Longest a request to the OpenAI-compatible server may take, answer included.", enum_values: &[] },
    Setting { key: "backend.openai-retries", description: "Retries (with backoff) after a connection failure, 429 or 5xx from the OpenAI-compatible server.", enum_values: &[] },
    Setting { key: "backend.openai-ca-file", description: "PEM file with an extra root certificate for an HTTPS server behind a private CA.", enum_values: &[] },
    Setting { key: "completion.enabled", description: "Offer inline completions (ghost text) and completion items.", enum_values: &[] },
    Setting { key: "completion.debounce-ms", description: "Wait this long after a keystroke before asking the model.", enum_values: &[] },
    Setting { key: "completion.max-tokens", description: "Most tokens generated per suggestion.", enum_values: &[] },
    Setting { key: "completion.multiline", description: "Multi-line suggestions: decided from the cursor position, always, or never.", enum_values: &["auto", "always", "never"] },
    Setting { key: "context.budget-tokens", description: "Tokens of cross-file context in each prompt (0 = sized to the model's context).", enum_values: &[] },
    Setting { key: "review.enabled", description: "Review changed code on save and publish findings as diagnostics.", enum_values: &[] },
    Setting { key: "review.min-severity", description: "Lowest severity of review findings to publish.", enum_values: &["info", "warning", "error"] },
    Setting { key: "review.max-findings", description: "Most review findings published per file.", enum_values: &[] },
    Setting { key: "usage.enabled", description: "Record per-day usage (requests, tokens, latency; never code) for `hearth stats`.", enum_values: &[] },
    Setting { key: "usage.cloud-input-per-mtok", description: "Cloud price per million uncached input tokens, for the cost comparison in `hearth stats`.", enum_values: &[] },
    Setting { key: "usage.cloud-cached-input-per-mtok", description: "Cloud price per million cached input tokens.", enum_values: &[] },
    Setting { key: "usage.cloud-output-per-mtok", description: "Cloud price per million output tokens.", enum_values: &[] },
    Setting { key: "usage.watts", description: "Extra power the machine draws while the local model works (watts), for the energy estimate.", enum_values: &[] },
    Setting { key: "usage.price-per-kwh", description: "Electricity price per kWh.", enum_values: &[] },
    Setting { key: "usage.hardware-cost", description: "What the local hardware cost; `hearth stats` then shows the break-even time (0 = off).", enum_values: &[] },
    Setting { key: "disabled-languages", description: "LSP language ids in which Hearth stays quiet.", enum_values: &[] },
];

pub fn kebab_to_camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for ch in key.chars() {
        if ch == '-' {
            upper = true;
        } else if upper {
            out.extend(ch.to_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

pub fn camel_to_kebab(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for ch in key.chars() {
        if ch.is_ascii_uppercase() {
            out.push('-');
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// Rewrite every object key of an LSP settings value from camelCase to kebab-case.
pub fn settings_to_kebab(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (camel_to_kebab(k), settings_to_kebab(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Deep-merge `overlay` into `base` (objects merge, everything else replaces).
pub fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(key) {
                    Some(slot) if slot.is_object() && value.is_object() => merge(slot, value),
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

/// The layers a `Config` is made of, kept so any one can be replaced later.
#[derive(Debug, Clone, Default)]
pub struct ConfigLayers {
    pub user_file: Option<Value>,
    pub workspace_file: Option<Value>,
    pub initialization_options: Option<Value>,
    pub client_settings: Option<Value>,
}

impl ConfigLayers {
    /// Merge the layers into a `Config`; an invalid layer is reported and skipped, never fatal.
    pub fn resolve(&self) -> (Config, Vec<String>) {
        let mut errors = Vec::new();
        let mut merged = serde_json::to_value(Config::default()).unwrap_or_else(|_| json!({}));
        let layers = [
            ("user config file", &self.user_file),
            (".hearth.toml", &self.workspace_file),
            ("initializationOptions", &self.initialization_options),
            ("editor settings", &self.client_settings),
        ];
        for (name, layer) in layers {
            let Some(layer) = layer else { continue };
            let mut candidate = merged.clone();
            merge(&mut candidate, layer);
            match serde_json::from_value::<Config>(candidate.clone()) {
                Ok(_) => merged = candidate,
                Err(error) => errors.push(format!("{name}: {error}")),
            }
        }
        let config = serde_json::from_value(merged).unwrap_or_default();
        (config, errors)
    }
}

/// LSP settings (`{"hearth": {...}}` or the inner object) in kebab-case form.
pub fn lsp_settings_layer(value: &Value) -> Option<Value> {
    let inner = value.get("hearth").unwrap_or(value);
    match inner {
        Value::Object(map) if !map.is_empty() => Some(settings_to_kebab(inner)),
        _ => None,
    }
}

pub fn read_toml_layer(path: &Path) -> Result<Option<Value>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let value: toml::Value = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::to_value(value)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

pub fn user_config_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("HEARTH_CONFIG") {
        return Some(PathBuf::from(path));
    }
    dirs::config_dir().map(|dir| dir.join("hearth").join("config.toml"))
}

/// Layers from files (user and workspace), with their errors.
pub fn file_layers(workspace_root: Option<&Path>) -> (ConfigLayers, Vec<String>) {
    let mut errors = Vec::new();
    let mut layers = ConfigLayers::default();
    if let Some(path) = user_config_path() {
        match read_toml_layer(&path) {
            Ok(layer) => layers.user_file = layer,
            Err(error) => errors.push(error),
        }
    }
    if let Some(root) = workspace_root {
        match read_toml_layer(&root.join(".hearth.toml")) {
            Ok(layer) => layers.workspace_file = layer,
            Err(error) => errors.push(error),
        }
    }
    (layers, errors)
}

fn lookup<'a>(value: &'a Value, dotted_kebab: &str) -> Option<&'a Value> {
    dotted_kebab
        .split('.')
        .try_fold(value, |value, part| value.get(part))
}

/// VS Code's `contributes.configuration.properties`, generated from [`SETTINGS`] and the defaults.
pub fn vscode_properties() -> Map<String, Value> {
    let defaults = serde_json::to_value(Config::default()).unwrap_or_else(|_| json!({}));
    let mut properties = Map::new();
    for setting in SETTINGS {
        let default = lookup(&defaults, setting.key).cloned().unwrap_or(Value::Null);
        let kind = match &default {
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::Array(_) => "array",
            _ => "string",
        };
        let camel: Vec<String> = setting.key.split('.').map(kebab_to_camel).collect();
        let mut property = json!({ "type": kind, "default": default, "description": setting.description });
        if !setting.enum_values.is_empty() {
            property["enum"] = json!(setting.enum_values);
        }
        if kind == "array" {
            property["items"] = json!({ "type": "string" });
        }
        properties.insert(format!("hearth.{}", camel.join(".")), property);
    }
    properties
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win_and_keys_convert() {
        let layers = ConfigLayers {
            user_file: Some(json!({"model": "/models/user.gguf", "completion": {"max-tokens": 32}})),
            workspace_file: Some(json!({"completion": {"debounce-ms": 10}})),
            initialization_options: lsp_settings_layer(&json!({"hearth": {"completion": {"maxTokens": 16}}})),
            client_settings: lsp_settings_layer(&json!({"disabledLanguages": ["markdown"]})),
        };
        let (config, errors) = layers.resolve();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(config.model, "/models/user.gguf");
        assert_eq!(config.completion.max_tokens, 16);
        assert_eq!(config.completion.debounce_ms, 10);
        assert_eq!(config.disabled_languages, vec!["markdown".to_string()]);
        assert_eq!(config.backend.context_size, 8192);
    }

    #[test]
    fn a_bad_layer_is_reported_and_skipped() {
        let layers = ConfigLayers {
            workspace_file: Some(json!({"completion": {"max-tokens": "lots"}})),
            client_settings: lsp_settings_layer(&json!({"hearth": {"compleshun": {}}})),
            ..Default::default()
        };
        let (config, errors) = layers.resolve();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with(".hearth.toml"), "{errors:?}");
        assert!(errors[1].contains("compleshun"), "{errors:?}");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn every_setting_names_a_real_key() {
        let defaults = serde_json::to_value(Config::default()).unwrap();
        for setting in SETTINGS {
            assert!(
                lookup(&defaults, setting.key).is_some(),
                "{} is not a Config key",
                setting.key
            );
        }
        assert_eq!(kebab_to_camel("idle-timeout-secs"), "idleTimeoutSecs");
        assert_eq!(camel_to_kebab("idleTimeoutSecs"), "idle-timeout-secs");
    }

    #[test]
    fn vscode_extension_settings_match_the_server() {
        let manifest_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../editors/vscode/package.json");
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
        let contributed = manifest["contributes"]["configuration"]["properties"]
            .as_object()
            .unwrap()
            .clone();
        let expected = vscode_properties();
        for (key, property) in &expected {
            let theirs = contributed
                .get(key)
                .unwrap_or_else(|| panic!("package.json lacks {key}"));
            assert_eq!(theirs["default"], property["default"], "default of {key}");
            assert_eq!(theirs["type"], property["type"], "type of {key}");
            if property.get("enum").is_some() {
                assert_eq!(theirs["enum"], property["enum"], "enum of {key}");
            }
        }
        for key in contributed.keys() {
            assert!(
                expected.contains_key(key) || key == "hearth.serverPath",
                "package.json has {key}, which the server does not know"
            );
        }
    }
}
