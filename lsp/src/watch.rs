//! Our own file watcher, for clients that do not send `workspace/didChangeWatchedFiles` (they do
//! not offer dynamic registration for it, or refuse ours). Changes made outside the editor — a
//! `git checkout`, a code generator, another editor — then still reach the index.
//!
//! Events are gathered for a short quiet period (a checkout touches many files at once) and
//! filtered like the initial walk's top level: `.git/`, and what the root's `.gitignore`,
//! `.ignore` and `.hearthignore` exclude; the index applies its own per-file rules (secrets,
//! vendored, generated, size) when it re-reads a path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

/// Alive while held; dropping it stops watching (and its thread).
pub struct WorkspaceWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// How long events must pause before a batch is handed over, and the longest a batch waits.
const QUIET: Duration = Duration::from_millis(200);
const MOST: Duration = Duration::from_secs(2);

fn ignore_matcher(root: &Path) -> ignore::gitignore::Gitignore {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(root);
    for name in [".gitignore", ".ignore", ".hearthignore"] {
        let path = root.join(name);
        if path.is_file() {
            if let Some(error) = builder.add(&path) {
                tracing::warn!("{}: {error}", path.display());
            }
        }
    }
    builder.build().unwrap_or_else(|error| {
        tracing::warn!("ignore rules under {}: {error}", root.display());
        ignore::gitignore::Gitignore::empty()
    })
}

fn ignored(root: &Path, matcher: &ignore::gitignore::Gitignore, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(root) else {
        return true;
    };
    if relative.components().any(|part| part.as_os_str() == ".git") {
        return true;
    }
    matcher
        .matched_path_or_any_parents(relative, path.is_dir())
        .is_ignore()
}

/// Watch `root` recursively; `on_changes` gets each batch of changed files (created, modified or
/// removed), on the watcher's own thread.
pub fn start(
    root: PathBuf,
    on_changes: impl Fn(Vec<PathBuf>) + Send + 'static,
) -> notify::Result<WorkspaceWatcher> {
    let (sender, events) = mpsc::channel::<notify::Event>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
        Ok(event) => {
            let _ = sender.send(event);
        }
        Err(error) => tracing::warn!("file watcher: {error}"),
    })?;
    watcher.watch(&root, RecursiveMode::Recursive)?;
    let matcher = ignore_matcher(&root);
    std::thread::Builder::new()
        .name("hearth-watch".into())
        .spawn(move || {
            let wanted = |event: &notify::Event| {
                matches!(
                    event.kind,
                    EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
                )
            };
            // Ends when the watcher (and with it the sender) is dropped.
            while let Ok(first) = events.recv() {
                if !wanted(&first) {
                    continue; // reads (our own, too) are not changes
                }
                let mut paths: BTreeSet<PathBuf> = first.paths.into_iter().collect();
                let started = Instant::now();
                // Gather until no change arrives for QUIET (reads do not count), MOST at the longest.
                let mut quiet_since = Instant::now();
                while started.elapsed() < MOST && quiet_since.elapsed() < QUIET {
                    match events.recv_timeout(QUIET.saturating_sub(quiet_since.elapsed())) {
                        Ok(event) if wanted(&event) => {
                            paths.extend(event.paths);
                            quiet_since = Instant::now();
                        }
                        Ok(_) => {}
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                let paths: Vec<PathBuf> = paths
                    .into_iter()
                    .filter(|path| !path.is_dir() && !ignored(&root, &matcher, path))
                    .collect();
                if !paths.is_empty() {
                    tracing::debug!("{} files changed on disk", paths.len());
                    on_changes(paths);
                }
            }
        })
        .map_err(|error| notify::Error::generic(&error.to_string()))?;
    Ok(WorkspaceWatcher { _watcher: watcher })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules_of_the_root_apply() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(".gitignore"), "target/\n*.log\n").unwrap();
        std::fs::write(root.join(".hearthignore"), "generated/\n").unwrap();
        let matcher = ignore_matcher(root);
        assert!(ignored(root, &matcher, &root.join("target/debug/build/x.rs")));
        assert!(ignored(root, &matcher, &root.join("run.log")));
        assert!(ignored(root, &matcher, &root.join("generated/api.rs")));
        assert!(ignored(root, &matcher, &root.join(".git/HEAD")));
        assert!(ignored(root, &Matcher::empty(), Path::new("/elsewhere/file.rs")));
        assert!(!ignored(root, &matcher, &root.join("src/main.rs")));
    }

    type Matcher = ignore::gitignore::Gitignore;

    #[test]
    fn changes_arrive_in_batches_without_ignored_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join(".gitignore"), "ignored/\n").unwrap();
        std::fs::create_dir_all(root.join("ignored")).unwrap();
        let (sender, batches) = mpsc::channel();
        let _watcher = start(root.clone(), move |paths| {
            let _ = sender.send(paths);
        })
        .unwrap();
        std::fs::write(root.join("new.rs"), "fn new() {}\n").unwrap();
        std::fs::write(root.join("ignored/skip.rs"), "fn skip() {}\n").unwrap();
        let mut seen = BTreeSet::new();
        while let Ok(batch) = batches.recv_timeout(Duration::from_secs(10)) {
            seen.extend(batch);
            if seen.contains(&root.join("new.rs")) {
                break;
            }
        }
        assert!(seen.contains(&root.join("new.rs")), "{seen:?}");
        assert!(
            !seen.iter().any(|p| p.starts_with(root.join("ignored"))),
            "{seen:?}"
        );
    }
}
