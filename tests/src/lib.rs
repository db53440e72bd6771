//! Shared harness for the end-to-end tests: where the built binaries and the default model are,
//! private runtime directories, and sidecar processes that are killed when the test ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_protocol::{Endpoint, SidecarClient};

/// The directory holding the workspace's built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> → target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` before the tests (the README's test command does)",
        path.display()
    );
    path
}

/// The real default model (SmolLM2-135M-Instruct Q4_1). Tests never pass without it.
pub fn default_model() -> PathBuf {
    if let Some(path) = std::env::var_os("HEARTH_TEST_MODEL") {
        return PathBuf::from(path);
    }
    let dir = std::env::var_os("HEARTH_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache").join("hearth").join("models"));
    let path = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "the default model is missing at {}: run `hearth model pull default` (the README's setup command does)",
        path.display()
    );
    path
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// A sidecar process started by a test; killed on drop.
pub struct SidecarProcess {
    pub child: Child,
    pub endpoint: Endpoint,
    pub runtime: tempfile::TempDir,
}

impl SidecarProcess {
    /// Start `hearth-sidecar` on `model` with extra flags, in a private runtime directory.
    pub fn start(model: &Path, extra: &[&str]) -> SidecarProcess {
        let runtime = private_dir();
        let endpoint = Endpoint::in_dir(runtime.path(), "test");
        let child = sidecar_command(model, &endpoint, extra)
            .spawn()
            .expect("spawn hearth-sidecar");
        SidecarProcess {
            child,
            endpoint,
            runtime,
        }
    }

    pub async fn connect(&self, name: &str) -> SidecarClient {
        connect_with_retry(&self.endpoint, name).await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.runtime.path().join("sidecar.log")).unwrap_or_default()
    }
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("hearth-test-")
        .tempdir()
        .expect("temp dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    dir
}

pub fn sidecar_command(model: &Path, endpoint: &Endpoint, extra: &[&str]) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(endpoint.runtime_dir.join("sidecar.log"))
        .expect("log file");
    let mut command = Command::new(bin("hearth-sidecar"));
    command
        .arg("--model")
        .arg(model)
        .arg("--socket")
        .arg(&endpoint.socket_path)
        .arg("--lock-file")
        .arg(&endpoint.lock_path)
        .args(["--idle-timeout", "0", "--threads", "2"])
        // Requests served over HTTP go to a private usage ledger.
        .env("HEARTH_DATA_DIR", endpoint.runtime_dir.join("data"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    command
}

/// Connect, retrying while the sidecar starts (bounded: 120 s, then a clear failure).
pub async fn connect_with_retry(endpoint: &Endpoint, name: &str) -> SidecarClient {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match SidecarClient::connect(endpoint, name, Duration::from_secs(120)).await {
            Ok(client) => return client,
            Err(error) if Instant::now() > deadline => panic!("cannot connect to the sidecar: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Wait for a child to exit (bounded), returning its exit code.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Some real Python from the fixture project, long enough for cache and cancel tests.
pub fn fixture_source(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("shop")
        .join("shop")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Copy a fixture tree (tests may then edit the copy).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Tiny llama models, one per FIM token family, written by `fixtures/models/make_tiny_models.py`
/// into a private directory (kept alive by the returned guard).
pub fn tiny_models() -> (tempfile::TempDir, PathBuf) {
    let dir = private_dir();
    let python = std::env::var("HEARTH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = fixtures_dir().join("models").join("make_tiny_models.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "make_tiny_models.py failed with {python} (it needs the `gguf` package: pip install -r \
         tests/fixtures/models/requirements.txt, or set HEARTH_TEST_PYTHON): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = dir.path().to_path_buf();
    (dir, path)
}

pub mod lsp_client;
