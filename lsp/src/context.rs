//! The server's view of the workspace: the `hearth-context` index (built in the background),
//! recent edit regions, and selection with the model's real tokenizer when it is available.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use hearth_context::{
    EstimateTokenCounter, Index, IndexOptions, RecentRegion, RecentRegionKind, RenderFormat, Selection,
    SelectionRequest, TokenCounter,
};
use hearth_protocol::{ModelInfo, SidecarClient};
use serde::Serialize;

use crate::pipeline::CompletionInput;

/// The context manifest: what `hearth context --json` and `hearth/context` return.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    #[serde(flatten)]
    pub selection: Selection,
    /// `model` (the sidecar's tokenizer) or `estimate` (bytes / 3.5, when no model is connected).
    pub counted_with: &'static str,
    /// `file_sep` (the model's repository format) or `path_comments`.
    pub format: &'static str,
    /// Whether the workspace index was ready (before it is, only the current file is used).
    pub index_ready: bool,
    pub indexed_files: usize,
}

impl Manifest {
    pub fn empty(budget: usize) -> Manifest {
        Manifest {
            selection: Selection {
                snippets: Vec::new(),
                rendered: String::new(),
                total_tokens: 0,
                budget_tokens: budget,
                candidates_considered: 0,
                elapsed_micros: 0,
            },
            counted_with: "estimate",
            format: "path_comments",
            index_ready: false,
            indexed_files: 0,
        }
    }
}

const RECENT_REGIONS: usize = 32;
const TOKEN_CACHE_ENTRIES: usize = 8192;

pub struct ContextEngine {
    root: Option<PathBuf>,
    index: RwLock<Option<Arc<RwLock<Index>>>>,
    recent: Mutex<VecDeque<RecentRegion>>,
    sequence: AtomicU64,
    token_cache: Mutex<HashMap<u64, usize>>,
}

/// Counts with the sidecar's tokenizer, remembering every text it has counted (snippets stay the
/// same from keystroke to keystroke, so after the first request nearly everything is cached).
struct ModelTokenCounter<'a> {
    client: &'a SidecarClient,
    runtime: tokio::runtime::Handle,
    cache: &'a Mutex<HashMap<u64, usize>>,
    /// Set when a text had to be estimated (the engine could not tokenize it).
    estimated: std::sync::atomic::AtomicBool,
}

/// Whether asking the engine to count tokens is cheap enough for every keystroke: the local
/// sidecar, or a server on this machine. A server across the network costs a round trip per new
/// snippet, so its prompts are budgeted with the estimate instead.
fn tokenizer_is_near(client: &SidecarClient) -> bool {
    client.hello().remote_url.as_deref().is_none_or(url_is_loopback)
}

fn url_is_loopback(url: &str) -> bool {
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn text_hash(text: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

impl TokenCounter for ModelTokenCounter<'_> {
    fn count(&self, text: &str) -> usize {
        let key = text_hash(text);
        if let Some(count) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return *count;
        }
        let counted = self
            .runtime
            .block_on(self.client.tokenize(vec![text.to_string()], true));
        let count = match counted {
            Ok((counts, _)) => counts.first().copied().unwrap_or(0) as usize,
            // The model went away mid-selection (or a server cannot tokenize): estimate this text.
            Err(_) => {
                self.estimated.store(true, std::sync::atomic::Ordering::Relaxed);
                return EstimateTokenCounter.count(text);
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= TOKEN_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, count);
        count
    }
}

impl ContextEngine {
    pub fn new(root: Option<PathBuf>) -> ContextEngine {
        ContextEngine {
            root,
            index: RwLock::new(None),
            recent: Mutex::default(),
            sequence: AtomicU64::new(1),
            token_cache: Mutex::default(),
        }
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    fn index(&self) -> Option<Arc<RwLock<Index>>> {
        self.index.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Build the workspace index (blocking; run it on a blocking thread).
    pub fn build_index(&self, progress: &dyn Fn(usize, usize)) -> Option<usize> {
        let root = self.root.as_ref()?;
        let index = Index::build(root, &IndexOptions::default(), progress);
        let files = index.file_count();
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(RwLock::new(index)));
        Some(files)
    }

    /// A saved or opened document's text becomes the index's view of that file.
    pub fn update_file(&self, path: &Path, text: &str) {
        if let Some(index) = self.index() {
            index
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .update_file(path, text);
        }
    }

    pub fn refresh_from_disk(&self, path: &Path) {
        if let Some(index) = self.index() {
            let mut index = index.write().unwrap_or_else(|p| p.into_inner());
            if path.exists() {
                index.refresh_file_from_disk(path);
            } else {
                index.remove_file(path);
            }
        }
    }

    /// Remember an edited (or viewed) region; recent regions are context candidates.
    pub fn record_region(&self, path: &Path, line: u32, kind: RecentRegionKind) {
        let line = line + 1;
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        if let Some(last) = recent.back_mut() {
            // Typing on and around the same lines extends the last region.
            if last.path == path
                && last.kind == kind
                && line + 3 >= last.start_line
                && line <= last.end_line + 3
            {
                last.start_line = last.start_line.min(line);
                last.end_line = last.end_line.max(line);
                last.sequence = sequence;
                return;
            }
        }
        if recent.len() == RECENT_REGIONS {
            recent.pop_front();
        }
        recent.push_back(RecentRegion {
            path: path.to_path_buf(),
            start_line: line,
            end_line: line,
            sequence,
            kind,
        });
    }

    pub fn render_format(model: &ModelInfo) -> RenderFormat {
        match &model.fim.sep {
            Some(sep) => RenderFormat::FileSep {
                file_sep: sep.text.clone(),
            },
            None => RenderFormat::PathComments,
        }
    }

    /// Select the context for a cursor. Runs the selection on a blocking thread.
    pub async fn select(
        self: &Arc<Self>,
        input: &CompletionInput,
        budget: usize,
        model: &ModelInfo,
        client: Option<&SidecarClient>,
    ) -> Manifest {
        let Some(index) = self.index() else {
            return Manifest::empty(budget);
        };
        let engine = self.clone();
        let input = input.clone();
        let format = Self::render_format(model);
        let client = client.cloned();
        let recent: Vec<RecentRegion> = self
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        let runtime = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            let index = index.read().unwrap_or_else(|p| p.into_inner());
            let mut request = SelectionRequest::new(
                &input.path,
                &input.text,
                input.cursor_byte,
                budget,
                format.clone(),
            );
            request.recent_regions = &recent;
            let (selection, counted_with) = match &client {
                Some(client) if tokenizer_is_near(client) => {
                    let counter = ModelTokenCounter {
                        client,
                        runtime,
                        cache: &engine.token_cache,
                        estimated: false.into(),
                    };
                    let selection = hearth_context::select(&index, &request, &counter);
                    let estimated = counter.estimated.load(std::sync::atomic::Ordering::Relaxed);
                    (selection, if estimated { "estimate" } else { "model" })
                }
                _ => (
                    hearth_context::select(&index, &request, &EstimateTokenCounter),
                    "estimate",
                ),
            };
            Manifest {
                selection,
                counted_with,
                format: match format {
                    RenderFormat::FileSep { .. } => "file_sep",
                    RenderFormat::PathComments => "path_comments",
                },
                index_ready: true,
                indexed_files: index.file_count(),
            }
        });
        task.await.unwrap_or_else(|_| Manifest::empty(budget))
    }
}

#[cfg(test)]
mod tests {
    use super::url_is_loopback;

    #[test]
    fn loopback_urls_are_recognised() {
        for url in [
            "http://127.0.0.1:8080/v1",
            "http://localhost/v1",
            "https://[::1]:9/v1",
            "http://127.1.2.3/v1",
        ] {
            assert!(url_is_loopback(url), "{url}");
        }
        for url in [
            "http://gpu-box:8000/v1",
            "https://api.example.com/v1",
            "http://10.0.0.2/v1",
            "http://127.example.com/v1",
        ] {
            assert!(!url_is_loopback(url), "{url}");
        }
    }
}
