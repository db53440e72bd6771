//! Where a sidecar listens: one well-known, per-user, per-model socket.
//!
//! Unix: `$XDG_RUNTIME_DIR/hearth/` (or `$TMPDIR/hearth-<uid>/`), a directory of mode 0700 owned by
//! the user, holding `sidecar-<key>.sock` (mode 0600), `sidecar-<key>.lock` (held by the running
//! sidecar for its whole life, so a second one started for the same key exits) and
//! `sidecar-<key>.log`. Windows: a named pipe `hearth-<user>-<key>`.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Short stable key: a hash of the model path and the settings that change the engine.
    pub key: String,
    pub runtime_dir: PathBuf,
    pub socket_path: PathBuf,
    pub lock_path: PathBuf,
    pub log_path: PathBuf,
}

impl Endpoint {
    /// The endpoint for a model and an engine-settings fingerprint (the same pair always maps to
    /// the same socket, so every editor window of the user finds the one sidecar).
    pub fn for_model(model_path: &Path, settings_fingerprint: &str) -> io::Result<Endpoint> {
        let canonical = model_path
            .canonicalize()
            .unwrap_or_else(|_| model_path.to_path_buf());
        let mut hasher = Fnv1a::default();
        hasher.write(canonical.to_string_lossy().as_bytes());
        hasher.write(b"\0");
        hasher.write(settings_fingerprint.as_bytes());
        let key = format!("{:016x}", hasher.0);
        Endpoint::for_key(&key)
    }

    pub fn for_key(key: &str) -> io::Result<Endpoint> {
        let runtime_dir = private_runtime_dir()?;
        Ok(Endpoint::in_dir(&runtime_dir, key))
    }

    /// An endpoint inside an explicit directory (the caller guarantees its permissions).
    pub fn in_dir(runtime_dir: &Path, key: &str) -> Endpoint {
        Endpoint {
            key: key.to_string(),
            runtime_dir: runtime_dir.to_path_buf(),
            socket_path: runtime_dir.join(format!("sidecar-{key}.sock")),
            lock_path: runtime_dir.join(format!("sidecar-{key}.lock")),
            log_path: runtime_dir.join(format!("sidecar-{key}.log")),
        }
    }

    /// The name the local socket is bound to.
    pub fn socket_name(&self) -> io::Result<interprocess::local_socket::Name<'static>> {
        #[cfg(unix)]
        {
            use interprocess::local_socket::{GenericFilePath, ToFsName};
            self.socket_path.clone().to_fs_name::<GenericFilePath>()
        }
        #[cfg(not(unix))]
        {
            use interprocess::local_socket::{GenericNamespaced, ToNsName};
            let user = std::env::var("USERNAME").unwrap_or_else(|_| "user".into());
            format!("hearth-{user}-{}", self.key).to_ns_name::<GenericNamespaced>()
        }
    }
}

/// The per-user directory for sockets, locks and logs, created with mode 0700:
/// `$HEARTH_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/hearth`, else `$TMPDIR/hearth-<uid>`.
pub fn private_runtime_dir() -> io::Result<PathBuf> {
    let dir = match (
        std::env::var_os("HEARTH_RUNTIME_DIR"),
        std::env::var_os("XDG_RUNTIME_DIR"),
    ) {
        (Some(dir), _) if !dir.is_empty() => PathBuf::from(dir),
        (_, Some(base)) if !base.is_empty() => PathBuf::from(base).join("hearth"),
        _ => std::env::temp_dir().join(format!("hearth-{}", current_uid())),
    };
    ensure_private_dir(&dir)?;
    Ok(dir)
}

#[cfg(unix)]
fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

#[cfg(not(unix))]
fn current_uid() -> u32 {
    0
}

/// Create `dir` (mode 0700) or check that an existing one belongs to us and is private.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        let metadata = std::fs::symlink_metadata(dir)?;
        if !metadata.is_dir() {
            return Err(io::Error::other(format!("{} is not a directory", dir.display())));
        }
        if metadata.uid() != current_uid() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} belongs to another user (uid {}); refusing to use it",
                    dir.display(),
                    metadata.uid()
                ),
            ));
        }
        if metadata.mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// FNV-1a, 64 bit: stable across runs and platforms (unlike `DefaultHasher`).
#[derive(Debug)]
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_model_and_settings_give_the_same_key() {
        let a = Endpoint::for_model(Path::new("/models/a.gguf"), "ctx=8192").unwrap();
        let b = Endpoint::for_model(Path::new("/models/a.gguf"), "ctx=8192").unwrap();
        let c = Endpoint::for_model(Path::new("/models/a.gguf"), "ctx=4096").unwrap();
        let d = Endpoint::for_model(Path::new("/models/b.gguf"), "ctx=8192").unwrap();
        assert_eq!(a, b);
        assert_ne!(a.key, c.key);
        assert_ne!(a.key, d.key);
        assert_eq!(a.key.len(), 16);
    }

    #[cfg(unix)]
    #[test]
    fn runtime_dir_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let temp = std::env::temp_dir().join(format!("hearth-endpoint-test-{}", std::process::id()));
        let dir = temp.join("hearth");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::remove_dir_all(&temp).unwrap();
    }
}
