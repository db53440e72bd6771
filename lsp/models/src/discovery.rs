//! Finding GGUF models already on disk: Hearth's own cache, Ollama, the Hugging Face hub cache
//! and LM Studio. Every root is a field of [`ModelStores`], so tests point them at a tempdir.

use crate::install::DEFAULT_MODEL_FILE_NAME;
use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Ollama's media type for the weights layer of a manifest.
pub const OLLAMA_MODEL_MEDIA_TYPE: &str = "application/vnd.ollama.image.model";

/// Where to look for models.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModelStores {
    /// Hearth's model cache (`hearth model pull` writes here).
    pub hearth_model_dir: Option<PathBuf>,
    /// Ollama model directories (each holding `manifests/` and `blobs/`).
    pub ollama_model_dirs: Vec<PathBuf>,
    /// Hugging Face hub cache (holding `models--org--name/`).
    pub huggingface_hub_dir: Option<PathBuf>,
    /// LM Studio model directories.
    pub lm_studio_dirs: Vec<PathBuf>,
}

impl ModelStores {
    /// The usual locations, from the process environment and home directory.
    pub fn from_environment() -> ModelStores {
        ModelStores::from_variables(|name| std::env::var_os(name), dirs::home_dir())
    }

    /// The usual locations, reading variables through `variable`:
    /// * Hearth: `$HEARTH_MODEL_DIR`, else `$XDG_CACHE_HOME/hearth/models`, else
    ///   `~/.cache/hearth/models`.
    /// * Ollama: `$OLLAMA_MODELS`, else `~/.ollama/models` and (Linux service installs)
    ///   `/usr/share/ollama/.ollama/models`.
    /// * Hugging Face: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    ///   `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
    /// * LM Studio: `~/.lmstudio/models` and `~/.cache/lm-studio/models`.
    pub fn from_variables(variable: impl Fn(&str) -> Option<OsString>, home: Option<PathBuf>) -> ModelStores {
        let non_empty = |name: &str| variable(name).filter(|value| !value.is_empty());
        let xdg_cache = non_empty("XDG_CACHE_HOME").map(PathBuf::from);
        let home_cache = home.as_ref().map(|home| home.join(".cache"));
        let cache = xdg_cache.clone().or(home_cache.clone());

        let hearth_model_dir = non_empty("HEARTH_MODEL_DIR")
            .map(PathBuf::from)
            .or_else(|| cache.as_ref().map(|cache| cache.join("hearth").join("models")));

        let ollama_model_dirs = match non_empty("OLLAMA_MODELS") {
            Some(directory) => vec![PathBuf::from(directory)],
            None => {
                let mut directories: Vec<PathBuf> = home
                    .iter()
                    .map(|home| home.join(".ollama").join("models"))
                    .collect();
                if cfg!(target_os = "linux") {
                    directories.push(PathBuf::from("/usr/share/ollama/.ollama/models"));
                }
                directories
            }
        };

        let huggingface_hub_dir = non_empty("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| non_empty("HF_HOME").map(|home| PathBuf::from(home).join("hub")))
            .or_else(|| cache.as_ref().map(|cache| cache.join("huggingface").join("hub")));

        let mut lm_studio_dirs = Vec::new();
        if let Some(home) = &home {
            lm_studio_dirs.push(home.join(".lmstudio").join("models"));
        }
        if let Some(home_cache) = &home_cache {
            lm_studio_dirs.push(home_cache.join("lm-studio").join("models"));
        }

        ModelStores {
            hearth_model_dir,
            ollama_model_dirs,
            huggingface_hub_dir,
            lm_studio_dirs,
        }
    }

    /// All roots, for messages.
    pub fn searched_directories(&self) -> Vec<PathBuf> {
        let mut directories = Vec::new();
        directories.extend(self.hearth_model_dir.clone());
        directories.extend(self.ollama_model_dirs.iter().cloned());
        directories.extend(self.huggingface_hub_dir.clone());
        directories.extend(self.lm_studio_dirs.iter().cloned());
        directories
    }
}

/// Which store a model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    Hearth,
    Ollama,
    HuggingFace,
    LmStudio,
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            ModelSource::Hearth => "Hearth",
            ModelSource::Ollama => "Ollama",
            ModelSource::HuggingFace => "Hugging Face",
            ModelSource::LmStudio => "LM Studio",
        })
    }
}

/// A model found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveredModel {
    pub source: ModelSource,
    /// The name to show and to pass to `--model` (`qwen2.5-coder:1.5b`, `org/name/file.gguf`).
    pub name: String,
    /// Other names that select this model (`org/name`, `org/name:q4_k_m`, the file stem).
    pub aliases: Vec<String>,
    pub path: PathBuf,
    pub size_bytes: u64,
}

impl DiscoveredModel {
    fn matches(&self, spec: &str) -> bool {
        self.name.eq_ignore_ascii_case(spec)
            || self.aliases.iter().any(|alias| alias.eq_ignore_ascii_case(spec))
    }
}

/// Why a model spec could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "no model given — pass a path to a .gguf file or a model name, or run `hearth model pull default`"
    )]
    EmptySpec,
    #[error("model file not found: {path} — check the path, or run `hearth model list` to see the models Hearth can find")]
    PathNotFound { path: PathBuf },
    #[error(
        "the default model is not installed (expected {expected_path}) — run `hearth model pull default`"
    )]
    DefaultNotInstalled { expected_path: PathBuf },
    #[error("{}", no_match_message(spec, found, searched))]
    NoMatch {
        spec: String,
        /// `name (source): path` for each model found.
        found: Vec<String>,
        searched: Vec<PathBuf>,
    },
    #[error("{}", ambiguous_message(spec, candidates))]
    Ambiguous {
        spec: String,
        candidates: Vec<DiscoveredModel>,
    },
}

fn no_match_message(spec: &str, found: &[String], searched: &[PathBuf]) -> String {
    if found.is_empty() {
        let searched: Vec<String> = searched.iter().map(|path| path.display().to_string()).collect();
        format!(
            "no model named '{spec}' and no GGUF models found (searched {}) — pass a path to a .gguf file or run `hearth model pull default`",
            searched.join(", ")
        )
    } else {
        format!(
            "no model named '{spec}'. Models found:\n  {}\nPass one of these names, a path to a .gguf file, or run `hearth model pull default`",
            found.join("\n  ")
        )
    }
}

fn ambiguous_message(spec: &str, candidates: &[DiscoveredModel]) -> String {
    let lines: Vec<String> = candidates
        .iter()
        .map(|model| format!("{} ({}): {}", model.name, model.source, model.path.display()))
        .collect();
    format!(
        "'{spec}' matches several models:\n  {}\nPass the full name or the path of one of them",
        lines.join("\n  ")
    )
}

/// Every model in `stores`, Hearth's first, then Ollama, Hugging Face, LM Studio; the same
/// file found twice is listed once.
pub fn discover_models(stores: &ModelStores) -> Vec<DiscoveredModel> {
    let mut models = Vec::new();
    if let Some(directory) = &stores.hearth_model_dir {
        models.extend(discover_hearth_models(directory));
    }
    for directory in &stores.ollama_model_dirs {
        models.extend(discover_ollama_models(directory));
    }
    if let Some(directory) = &stores.huggingface_hub_dir {
        models.extend(discover_huggingface_models(directory));
    }
    for directory in &stores.lm_studio_dirs {
        models.extend(discover_lm_studio_models(directory));
    }
    let mut seen = std::collections::HashSet::new();
    models.retain(|model| {
        let key = std::fs::canonicalize(&model.path).unwrap_or_else(|_| model.path.clone());
        seen.insert(key)
    });
    models
}

/// Turns a `--model` value into a file path: an existing path, `default` (Hearth's default
/// model), or a name or alias of a discovered model (case-insensitive).
pub fn resolve_model(spec: &str, stores: &ModelStores) -> Result<PathBuf, ResolveError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(ResolveError::EmptySpec);
    }
    if spec == "default" {
        let expected_path = stores
            .hearth_model_dir
            .clone()
            .unwrap_or_default()
            .join(DEFAULT_MODEL_FILE_NAME);
        return if expected_path.is_file() {
            Ok(expected_path)
        } else {
            Err(ResolveError::DefaultNotInstalled { expected_path })
        };
    }
    let expanded = expand_home(spec);
    if expanded.is_file() {
        return Ok(expanded);
    }
    let models = discover_models(stores);
    let matches: Vec<&DiscoveredModel> = models.iter().filter(|model| model.matches(spec)).collect();
    match matches.as_slice() {
        [single] => return Ok(single.path.clone()),
        [] => {}
        several => {
            return Err(ResolveError::Ambiguous {
                spec: spec.to_string(),
                candidates: several.iter().map(|model| (*model).clone()).collect(),
            })
        }
    }
    if looks_like_path(spec) {
        return Err(ResolveError::PathNotFound { path: expanded });
    }
    Err(ResolveError::NoMatch {
        spec: spec.to_string(),
        found: models
            .iter()
            .map(|model| format!("{} ({}): {}", model.name, model.source, model.path.display()))
            .collect(),
        searched: stores.searched_directories(),
    })
}

fn expand_home(spec: &str) -> PathBuf {
    if let Some(rest) = spec.strip_prefix("~/") {
        if let Some(home) = dirs::home_dir() {
            return home.join(rest);
        }
    }
    PathBuf::from(spec)
}

fn looks_like_path(spec: &str) -> bool {
    spec.starts_with('/')
        || spec.starts_with('.')
        || spec.starts_with('~')
        || spec.contains('\\')
        || spec.to_ascii_lowercase().ends_with(".gguf")
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}

fn is_gguf_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("gguf"))
}

/// Files that are not a loadable model on their own: vision projectors and the second and
/// later parts of split models (llama.cpp loads a split model from its first part).
fn is_auxiliary_gguf(file_name: &str) -> bool {
    let lower = file_name.to_ascii_lowercase();
    if lower.starts_with("mmproj") {
        return true;
    }
    // `name-00002-of-00003.gguf`
    if let Some(stem) = lower.strip_suffix(".gguf") {
        let parts: Vec<&str> = stem.rsplitn(4, '-').collect();
        if parts.len() == 4
            && parts[1] == "of"
            && parts[0].chars().all(|c| c.is_ascii_digit())
            && parts[2].chars().all(|c| c.is_ascii_digit())
        {
            return parts[2].trim_start_matches('0') != "1";
        }
    }
    false
}

/// `.gguf` files under `directory`, at most `max_depth` directories down, sorted. Follows
/// symlinked files (the Hugging Face cache links snapshots to blobs) but not symlinked
/// directories.
fn find_gguf_files(directory: &Path, max_depth: u32) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(directory) else {
        return found;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|entry| entry.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let Ok(link_metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if link_metadata.is_dir() {
            if max_depth > 0 {
                found.extend(find_gguf_files(&path, max_depth - 1));
            }
        } else if is_gguf_name(&path)
            && path.is_file()
            && !path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(is_auxiliary_gguf)
        {
            found.push(path);
        }
    }
    found
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The quantization tag in a file name: `qwen2.5-coder-1.5b-instruct-q4_k_m` → `q4_k_m`.
pub fn quantization_tag(stem: &str) -> Option<String> {
    stem.rsplit(['-', '.'])
        .find(|part| {
            let lower = part.to_ascii_lowercase();
            let quantized = (lower.starts_with('q') || lower.starts_with("iq"))
                && lower
                    .trim_start_matches('i')
                    .chars()
                    .nth(1)
                    .is_some_and(|c| c.is_ascii_digit());
            quantized || matches!(lower.as_str(), "f16" | "bf16" | "f32")
        })
        .map(str::to_ascii_lowercase)
}

fn discover_hearth_models(directory: &Path) -> Vec<DiscoveredModel> {
    find_gguf_files(directory, 0)
        .into_iter()
        .map(|path| {
            let mut aliases = vec![file_name(&path)];
            if file_name(&path) == DEFAULT_MODEL_FILE_NAME {
                aliases.push("default".to_string());
            }
            DiscoveredModel {
                source: ModelSource::Hearth,
                name: file_stem(&path),
                aliases,
                size_bytes: file_size(&path),
                path,
            }
        })
        .collect()
}

/// `manifests/<host>/<namespace>/<model>/<tag>` → the blob of the model layer.
fn discover_ollama_models(directory: &Path) -> Vec<DiscoveredModel> {
    let manifests = directory.join("manifests");
    let mut models = Vec::new();
    for host in sorted_subdirectories(&manifests) {
        for namespace in sorted_subdirectories(&host) {
            for model in sorted_subdirectories(&namespace) {
                let Ok(tags) = std::fs::read_dir(&model) else {
                    continue;
                };
                let mut tags: Vec<PathBuf> = tags.filter_map(|tag| tag.ok().map(|t| t.path())).collect();
                tags.sort();
                for tag_path in tags {
                    if !tag_path.is_file() {
                        continue;
                    }
                    let Some(blob) = ollama_model_blob(directory, &tag_path) else {
                        continue;
                    };
                    let host_name = file_name(&host);
                    let namespace_name = file_name(&namespace);
                    let model_name = file_name(&model);
                    let tag = file_name(&tag_path);
                    let short = if host_name == "registry.ollama.ai" && namespace_name == "library" {
                        model_name.clone()
                    } else if host_name == "registry.ollama.ai" {
                        format!("{namespace_name}/{model_name}")
                    } else {
                        format!("{host_name}/{namespace_name}/{model_name}")
                    };
                    let name = format!("{short}:{tag}");
                    let mut aliases = vec![format!("{host_name}/{namespace_name}/{model_name}:{tag}")];
                    if tag == "latest" {
                        aliases.push(short.clone());
                    }
                    models.push(DiscoveredModel {
                        source: ModelSource::Ollama,
                        name,
                        aliases,
                        size_bytes: file_size(&blob),
                        path: blob,
                    });
                }
            }
        }
    }
    models
}

fn ollama_model_blob(directory: &Path, manifest_path: &Path) -> Option<PathBuf> {
    let metadata = std::fs::metadata(manifest_path).ok()?;
    if metadata.len() > 4 * 1024 * 1024 {
        return None;
    }
    let text = std::fs::read_to_string(manifest_path).ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
    let digest = manifest
        .get("layers")?
        .as_array()?
        .iter()
        .find(|layer| {
            layer.get("mediaType").and_then(|value| value.as_str()) == Some(OLLAMA_MODEL_MEDIA_TYPE)
        })?
        .get("digest")?
        .as_str()?;
    let (algorithm, hex) = digest.split_once(':')?;
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let blob = directory.join("blobs").join(format!("{algorithm}-{hex}"));
    blob.is_file().then_some(blob)
}

fn sorted_subdirectories(directory: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    let mut directories: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir())
        .collect();
    directories.sort();
    directories
}

/// `models--org--name/snapshots/<revision>/**.gguf`, only the revision `refs/main` names when
/// that file exists.
fn discover_huggingface_models(hub: &Path) -> Vec<DiscoveredModel> {
    let mut models = Vec::new();
    for repository in sorted_subdirectories(hub) {
        let directory_name = file_name(&repository);
        let Some(repository_id) = directory_name
            .strip_prefix("models--")
            .and_then(|rest| rest.split_once("--"))
            .map(|(organization, name)| format!("{organization}/{name}"))
        else {
            continue;
        };
        let snapshots = repository.join("snapshots");
        let main_revision = std::fs::read_to_string(repository.join("refs").join("main"))
            .ok()
            .map(|revision| revision.trim().to_string())
            .filter(|revision| snapshots.join(revision).is_dir());
        let revisions = match main_revision {
            Some(revision) => vec![snapshots.join(revision)],
            None => sorted_subdirectories(&snapshots),
        };
        for revision in revisions {
            for path in find_gguf_files(&revision, 3) {
                let relative = path
                    .strip_prefix(&revision)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                let mut aliases = vec![repository_id.clone(), file_stem(&path)];
                if let Some(tag) = quantization_tag(&file_stem(&path)) {
                    aliases.push(format!("{repository_id}:{tag}"));
                    aliases.push(format!("hf.co/{repository_id}:{tag}"));
                }
                models.push(DiscoveredModel {
                    source: ModelSource::HuggingFace,
                    name: format!("{repository_id}/{relative}"),
                    aliases,
                    size_bytes: file_size(&path),
                    path,
                });
            }
        }
    }
    models
}

/// `<publisher>/<repository>/<file>.gguf` under each LM Studio directory.
fn discover_lm_studio_models(directory: &Path) -> Vec<DiscoveredModel> {
    find_gguf_files(directory, 4)
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(directory)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let mut aliases = vec![file_stem(&path)];
            let components: Vec<&str> = relative.split('/').collect();
            if components.len() >= 3 {
                let repository = format!("{}/{}", components[0], components[1]);
                if let Some(tag) = quantization_tag(&file_stem(&path)) {
                    aliases.push(format!("{repository}:{tag}"));
                }
                aliases.push(repository);
            }
            DiscoveredModel {
                source: ModelSource::LmStudio,
                name: relative,
                aliases,
                size_bytes: file_size(&path),
                path,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_parts_after_the_first_and_projectors_are_auxiliary() {
        assert!(!is_auxiliary_gguf("model-00001-of-00003.gguf"));
        assert!(is_auxiliary_gguf("model-00002-of-00003.gguf"));
        assert!(is_auxiliary_gguf("mmproj-model-f16.gguf"));
        assert!(!is_auxiliary_gguf("qwen2.5-coder-1.5b-q4_k_m.gguf"));
    }

    #[test]
    fn quantization_tags_are_found_in_file_names() {
        assert_eq!(
            quantization_tag("qwen2.5-coder-1.5b-instruct-q4_k_m").as_deref(),
            Some("q4_k_m")
        );
        assert_eq!(
            quantization_tag("SmolLM2-135M-Instruct.Q4_1").as_deref(),
            Some("q4_1")
        );
        assert_eq!(quantization_tag("Model-IQ4_XS").as_deref(), Some("iq4_xs"));
        assert_eq!(quantization_tag("model-BF16").as_deref(), Some("bf16"));
        assert_eq!(quantization_tag("plain-model"), None);
    }

    #[test]
    fn environment_overrides_choose_the_store_roots() {
        let variables = |name: &str| -> Option<OsString> {
            match name {
                "HEARTH_MODEL_DIR" => Some("/models/hearth".into()),
                "OLLAMA_MODELS" => Some("/models/ollama".into()),
                "HF_HOME" => Some("/models/hf".into()),
                _ => None,
            }
        };
        let stores = ModelStores::from_variables(variables, Some(PathBuf::from("/home/user")));
        assert_eq!(stores.hearth_model_dir, Some(PathBuf::from("/models/hearth")));
        assert_eq!(stores.ollama_model_dirs, vec![PathBuf::from("/models/ollama")]);
        assert_eq!(stores.huggingface_hub_dir, Some(PathBuf::from("/models/hf/hub")));
        assert_eq!(
            stores.lm_studio_dirs,
            vec![
                PathBuf::from("/home/user/.lmstudio/models"),
                PathBuf::from("/home/user/.cache/lm-studio/models")
            ]
        );

        let defaults = ModelStores::from_variables(|_| None, Some(PathBuf::from("/home/user")));
        assert_eq!(
            defaults.hearth_model_dir,
            Some(PathBuf::from("/home/user/.cache/hearth/models"))
        );
        assert_eq!(
            defaults.huggingface_hub_dir,
            Some(PathBuf::from("/home/user/.cache/huggingface/hub"))
        );
        assert_eq!(
            defaults.ollama_model_dirs[0],
            PathBuf::from("/home/user/.ollama/models")
        );

        let xdg = ModelStores::from_variables(|name| (name == "XDG_CACHE_HOME").then(|| "/xdg".into()), None);
        assert_eq!(xdg.hearth_model_dir, Some(PathBuf::from("/xdg/hearth/models")));
        assert_eq!(
            xdg.huggingface_hub_dir,
            Some(PathBuf::from("/xdg/huggingface/hub"))
        );
    }
}
