//! The workspace index: per-file definitions, imports and similarity windows.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use hearth_grammars::LanguageId;
use serde::Serialize;

use crate::analysis::{analyze_text, Definition, FileAnalysis, Import};
use crate::fxhash::FxHashMap;
use crate::lexical::content_hash;
use crate::walk::{
    check_content, check_path, read_source_file, relative_key, walk_workspace, IndexOptions, SkipReason,
    WalkStatistics,
};

/// Everything the index keeps about one file. It does not keep the file's text, except
/// for texts given to [`Index::update_file`] (open documents, which may differ from disk).
#[derive(Debug, Clone, Serialize)]
pub struct FileEntry {
    /// Path relative to the workspace root, with `/` separators.
    pub relative_path: Box<str>,
    #[serde(serialize_with = "serialize_language")]
    pub language: LanguageId,
    pub content_hash: u64,
    pub byte_length: u32,
    pub line_count: u32,
    pub definitions: Vec<Definition>,
    pub imports: Vec<Import>,
    #[serde(skip)]
    pub(crate) window_range: Range<u32>,
    #[serde(skip)]
    pub(crate) open_text: Option<Arc<str>>,
}

fn serialize_language<S: serde::Serializer>(language: &LanguageId, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(language.name())
}

impl FileEntry {
    /// Name of the definition that encloses `definition`, if any.
    pub fn scope_name(&self, definition: &Definition) -> Option<&str> {
        let scope = definition.scope?;
        self.definitions.get(scope as usize).map(|parent| &*parent.name)
    }
}

/// Where a definition lives: file id and index into that file's definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DefinitionLocation {
    pub file: u32,
    pub definition: u32,
}

/// One similarity window: 0-based lines `start_line..end_line` of a file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub file: u32,
    pub start_line: u32,
    pub end_line: u32,
    pub token_count: u32,
}

/// BM25 parameters for window similarity.
const BM25_K1: f32 = 1.2;
const BM25_B: f32 = 0.75;
/// A similarity query visits at most this many postings (rare tokens first).
const MAX_POSTINGS_PER_QUERY: usize = 60_000;

/// The workspace index. Build it with [`Index::build`], keep it current with
/// [`Index::update_file`] / [`Index::remove_file`], query it with [`crate::select`].
#[derive(Debug)]
pub struct Index {
    root: PathBuf,
    options: IndexOptions,
    files: Vec<Option<FileEntry>>,
    file_ids: FxHashMap<Box<str>, u32>,
    definitions_by_name: FxHashMap<Box<str>, Vec<DefinitionLocation>>,
    /// File stem (`store` for `store.rs`) and parent directory name → files.
    files_by_module_key: FxHashMap<Box<str>, Vec<u32>>,
    windows: Vec<Window>,
    postings: FxHashMap<u64, Vec<u32>>,
    live_window_count: u64,
    live_window_token_total: u64,
    statistics: WalkStatistics,
}

impl Index {
    /// An empty index of `root`.
    pub fn new(root: &Path, options: IndexOptions) -> Index {
        Index {
            root: root.to_path_buf(),
            options,
            files: Vec::new(),
            file_ids: FxHashMap::default(),
            definitions_by_name: FxHashMap::default(),
            files_by_module_key: FxHashMap::default(),
            windows: Vec::new(),
            postings: FxHashMap::default(),
            live_window_count: 0,
            live_window_token_total: 0,
            statistics: WalkStatistics::default(),
        }
    }

    /// Walks `root` and indexes every source file that passes the filters (see
    /// [`IndexOptions`]). Files are read and parsed on worker threads; `progress(done, total)`
    /// is called on the calling thread after each file.
    pub fn build(root: &Path, options: &IndexOptions, progress: &dyn Fn(usize, usize)) -> Index {
        let mut index = Index::new(root, options.clone());
        let mut statistics = WalkStatistics::default();
        let walked = walk_workspace(root, options, &mut statistics);
        let total = walked.len();
        let next_file = AtomicUsize::new(0);
        let thread_count = options.thread_count().min(total.max(1));
        std::thread::scope(|scope| {
            let (sender, receiver) = mpsc::channel::<(usize, Result<FileAnalysis, SkipReason>)>();
            for _ in 0..thread_count {
                let sender = sender.clone();
                let walked = &walked;
                let next_file = &next_file;
                scope.spawn(move || loop {
                    let position = next_file.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = walked.get(position) else {
                        break;
                    };
                    let result = read_source_file(&file.absolute_path, options)
                        .map(|text| analyze_text(file.language, &text, true));
                    if sender.send((position, result)).is_err() {
                        break;
                    }
                });
            }
            drop(sender);
            let mut done = 0;
            for (position, result) in receiver {
                done += 1;
                match result {
                    Ok(analysis) => {
                        index.insert_analysis(&walked[position].relative_key, analysis, None);
                        statistics.files_indexed += 1;
                    }
                    Err(reason) => statistics.count_skip(reason),
                }
                progress(done, total);
            }
        });
        index.statistics = statistics;
        index
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn options(&self) -> &IndexOptions {
        &self.options
    }

    /// What the last [`Index::build`] indexed and skipped.
    pub fn statistics(&self) -> &WalkStatistics {
        &self.statistics
    }

    pub fn file_count(&self) -> usize {
        self.file_ids.len()
    }

    pub fn definition_count(&self) -> usize {
        self.files
            .iter()
            .flatten()
            .map(|file| file.definitions.len())
            .sum()
    }

    /// Number of live similarity windows.
    pub fn window_count(&self) -> usize {
        self.live_window_count as usize
    }

    /// Every indexed file, in no particular order.
    pub fn files(&self) -> impl Iterator<Item = &FileEntry> {
        self.files.iter().flatten()
    }

    /// The key of `path` (absolute under the root, or relative to it).
    pub fn relative_key(&self, path: &Path) -> Option<String> {
        let relative = if path.is_absolute() {
            path.strip_prefix(&self.root).ok()?
        } else {
            path
        };
        let key = relative_key(relative);
        (!key.is_empty()).then_some(key)
    }

    pub(crate) fn file_id(&self, key: &str) -> Option<u32> {
        self.file_ids.get(key).copied()
    }

    pub(crate) fn file_by_id(&self, id: u32) -> Option<&FileEntry> {
        self.files.get(id as usize).and_then(Option::as_ref)
    }

    /// The entry of `path` (absolute under the root, or relative).
    pub fn file(&self, path: &Path) -> Option<&FileEntry> {
        let key = self.relative_key(path)?;
        self.file_by_id(self.file_id(&key)?)
    }

    /// Every definition named `name`, sorted by path and line.
    pub fn definitions_named(&self, name: &str) -> Vec<(&FileEntry, &Definition)> {
        let mut found: Vec<(&FileEntry, &Definition)> = self
            .definition_locations(name)
            .iter()
            .filter_map(|location| self.resolve_location(*location))
            .collect();
        found.sort_by(|left, right| {
            (&left.0.relative_path, left.1.start_line).cmp(&(&right.0.relative_path, right.1.start_line))
        });
        found
    }

    pub(crate) fn definition_locations(&self, name: &str) -> &[DefinitionLocation] {
        self.definitions_by_name
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub(crate) fn resolve_location(&self, location: DefinitionLocation) -> Option<(&FileEntry, &Definition)> {
        let file = self.file_by_id(location.file)?;
        let definition = file.definitions.get(location.definition as usize)?;
        Some((file, definition))
    }

    /// The current text of an indexed file: the text given to [`Index::update_file`], or the
    /// file re-read from disk. `None` when the file changed on disk since it was indexed
    /// (offsets would be stale), vanished, or is secret.
    pub fn file_text(&self, file: &FileEntry) -> Option<Arc<str>> {
        if let Some(text) = &file.open_text {
            return Some(Arc::clone(text));
        }
        let relative = Path::new(&*file.relative_path);
        if check_path(relative, &self.options).is_err() {
            return None;
        }
        // No content checks: an unchanged hash means the text passed them when indexed.
        let bytes = std::fs::read(self.root.join(relative)).ok()?;
        if bytes.len() != file.byte_length as usize && std::str::from_utf8(&bytes).is_ok() {
            return None;
        }
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        };
        (content_hash(&text) == file.content_hash).then(|| Arc::from(text))
    }

    /// Indexes `text` as the content of `path` (an open document or a changed file) and
    /// keeps the text in memory. Returns false — and forgets the path — when the path is
    /// outside the root, secret, of an unsupported language, or the text fails the
    /// content filters (binary, generated, minified, too large).
    pub fn update_file(&mut self, path: &Path, text: &str) -> bool {
        let Some(key) = self.relative_key(path) else {
            return false;
        };
        let checked = check_path(Path::new(&key), &self.options)
            .and_then(|language| check_content(text.as_bytes(), &self.options).map(|()| language));
        match checked {
            Ok(language) => {
                let analysis = analyze_text(language, text, true);
                self.insert_analysis(&key, analysis, Some(Arc::from(text)));
                true
            }
            Err(_) => {
                self.remove_key(&key);
                false
            }
        }
    }

    /// Re-reads `path` from disk (after a file-system change), dropping any in-memory text.
    pub fn refresh_file_from_disk(&mut self, path: &Path) -> bool {
        let Some(key) = self.relative_key(path) else {
            return false;
        };
        let language = match check_path(Path::new(&key), &self.options) {
            Ok(language) => language,
            Err(_) => {
                self.remove_key(&key);
                return false;
            }
        };
        match read_source_file(&self.root.join(&key), &self.options) {
            Ok(text) => {
                let analysis = analyze_text(language, &text, true);
                self.insert_analysis(&key, analysis, None);
                true
            }
            Err(_) => {
                self.remove_key(&key);
                false
            }
        }
    }

    /// Forgets `path`. Returns whether it was indexed.
    pub fn remove_file(&mut self, path: &Path) -> bool {
        match self.relative_key(path) {
            Some(key) => self.remove_key(&key),
            None => false,
        }
    }

    fn module_keys(key: &str) -> Vec<&str> {
        let path = Path::new(key);
        let mut keys = Vec::with_capacity(2);
        let directory = path
            .parent()
            .and_then(|parent| parent.file_name())
            .and_then(|name| name.to_str());
        if let Some(stem) = path.file_stem().and_then(|stem| stem.to_str()) {
            if !matches!(stem, "mod" | "__init__" | "index") {
                keys.push(stem);
            }
        }
        if let Some(directory) = directory {
            if !keys.contains(&directory) {
                keys.push(directory);
            }
        }
        keys
    }

    fn remove_key(&mut self, key: &str) -> bool {
        let Some(id) = self.file_ids.remove(key) else {
            return false;
        };
        let Some(entry) = self.files.get_mut(id as usize).and_then(Option::take) else {
            return false;
        };
        self.forget_entry(id, &entry);
        true
    }

    fn forget_entry(&mut self, id: u32, entry: &FileEntry) {
        for definition in &entry.definitions {
            if let Some(locations) = self.definitions_by_name.get_mut(&definition.name) {
                locations.retain(|location| location.file != id);
                if locations.is_empty() {
                    self.definitions_by_name.remove(&definition.name);
                }
            }
        }
        for module_key in Index::module_keys(&entry.relative_path) {
            if let Some(files) = self.files_by_module_key.get_mut(module_key) {
                files.retain(|&file| file != id);
                if files.is_empty() {
                    self.files_by_module_key.remove(module_key);
                }
            }
        }
        for window_id in entry.window_range.clone() {
            if let Some(window) = self.windows.get(window_id as usize) {
                self.live_window_count = self.live_window_count.saturating_sub(1);
                self.live_window_token_total = self
                    .live_window_token_total
                    .saturating_sub(u64::from(window.token_count));
            }
        }
    }

    fn insert_analysis(&mut self, key: &str, analysis: FileAnalysis, open_text: Option<Arc<str>>) {
        let id = match self.file_ids.get(key) {
            Some(&id) => {
                if let Some(old_entry) = self.files.get_mut(id as usize).and_then(Option::take) {
                    self.forget_entry(id, &old_entry);
                }
                id
            }
            None => {
                let id = u32::try_from(self.files.len()).unwrap_or(u32::MAX);
                self.files.push(None);
                self.file_ids.insert(key.into(), id);
                id
            }
        };
        let first_window = u32::try_from(self.windows.len()).unwrap_or(u32::MAX);
        for window in &analysis.windows {
            let window_id = u32::try_from(self.windows.len()).unwrap_or(u32::MAX);
            let token_count = u32::try_from(window.tokens.len()).unwrap_or(u32::MAX);
            self.windows.push(Window {
                file: id,
                start_line: window.start_line,
                end_line: window.end_line,
                token_count,
            });
            for &token in &window.tokens {
                self.postings.entry(token).or_default().push(window_id);
            }
            self.live_window_count += 1;
            self.live_window_token_total += u64::from(token_count);
        }
        let window_range = first_window..u32::try_from(self.windows.len()).unwrap_or(u32::MAX);
        for (position, definition) in analysis.definitions.iter().enumerate() {
            let location = DefinitionLocation {
                file: id,
                definition: u32::try_from(position).unwrap_or(u32::MAX),
            };
            match self.definitions_by_name.get_mut(&definition.name) {
                Some(locations) => locations.push(location),
                None => {
                    self.definitions_by_name
                        .insert(definition.name.clone(), vec![location]);
                }
            }
        }
        for module_key in Index::module_keys(key) {
            self.files_by_module_key
                .entry(module_key.into())
                .or_default()
                .push(id);
        }
        self.files[id as usize] = Some(FileEntry {
            relative_path: key.into(),
            language: analysis.language,
            content_hash: analysis.content_hash,
            byte_length: analysis.byte_length,
            line_count: analysis.line_count,
            definitions: analysis.definitions,
            imports: analysis.imports,
            window_range,
            open_text,
        });
        self.compact_windows_if_mostly_dead();
    }

    fn window_is_live(&self, window_id: u32) -> bool {
        let Some(window) = self.windows.get(window_id as usize) else {
            return false;
        };
        self.file_by_id(window.file)
            .is_some_and(|file| file.window_range.contains(&window_id))
    }

    /// Drops dead windows (of removed or re-indexed files) once they outnumber live ones.
    fn compact_windows_if_mostly_dead(&mut self) {
        let dead = self.windows.len() as u64 - self.live_window_count.min(self.windows.len() as u64);
        if dead < 4096 || dead < self.live_window_count {
            return;
        }
        let mut new_ids = vec![u32::MAX; self.windows.len()];
        let mut new_windows = Vec::with_capacity(self.live_window_count as usize);
        for (window_id, new_id) in new_ids.iter_mut().enumerate() {
            if self.window_is_live(window_id as u32) {
                *new_id = new_windows.len() as u32;
                new_windows.push(self.windows[window_id]);
            }
        }
        for entry in self.files.iter_mut().flatten() {
            let start = entry.window_range.start as usize;
            let end = entry.window_range.end as usize;
            let new_start = (start..end)
                .find_map(|id| Some(new_ids[id]).filter(|&new| new != u32::MAX))
                .unwrap_or(0);
            let live_count = (start..end).filter(|&id| new_ids[id] != u32::MAX).count() as u32;
            entry.window_range = new_start..new_start + live_count;
        }
        self.postings.retain(|_, window_ids| {
            window_ids.retain_mut(|window_id| {
                let new_id = new_ids[*window_id as usize];
                *window_id = new_id;
                new_id != u32::MAX
            });
            !window_ids.is_empty()
        });
        self.windows = new_windows;
    }

    /// Windows most similar to `query_tokens` (BM25 over distinct tokens), excluding
    /// `excluded_file`. Scores are normalised to 0..=1 by the query's own score.
    pub(crate) fn similar_windows(
        &self,
        query_tokens: &[u64],
        excluded_file: Option<u32>,
        limit: usize,
    ) -> Vec<(Window, f32)> {
        if self.live_window_count == 0 || query_tokens.is_empty() || limit == 0 {
            return Vec::new();
        }
        // Posting lists still hold dead windows until the next compaction, so document
        // frequencies are counted against all windows, dead included; the threshold for
        // "too common to help" scales by the same dead/live inflation.
        let live_windows = self.live_window_count as f32;
        let window_total = (self.windows.len() as f32).max(live_windows);
        let inflation = window_total / live_windows;
        let average_length = (self.live_window_token_total as f32 / live_windows).max(1.0);
        let max_document_frequency = ((self.live_window_count / 10).max(64) as f32 * inflation) as usize;
        let mut terms: Vec<(&Vec<u32>, f32)> = query_tokens
            .iter()
            .filter_map(|token| self.postings.get(token))
            .filter(|posting| posting.len() <= max_document_frequency)
            .map(|posting| {
                let frequency = posting.len() as f32;
                let idf = (1.0 + (window_total - frequency + 0.5) / (frequency + 0.5)).ln();
                (posting, idf)
            })
            .collect();
        terms.sort_by_key(|(posting, _)| posting.len());
        let query_length = query_tokens.len() as f32;
        let query_norm = BM25_K1 * (1.0 - BM25_B + BM25_B * query_length / average_length);
        let best_possible: f32 = query_tokens
            .iter()
            .filter_map(|token| self.postings.get(token))
            .map(|posting| {
                let frequency = (posting.len() as f32).min(window_total);
                (1.0 + (window_total - frequency + 0.5) / (frequency + 0.5)).ln() * (BM25_K1 + 1.0)
                    / (1.0 + query_norm)
            })
            .sum();
        if best_possible <= 0.0 {
            return Vec::new();
        }
        // Dense accumulator indexed by window id, plus the list of touched windows.
        let mut scores: Vec<f32> = vec![0.0; self.windows.len()];
        let mut touched: Vec<u32> = Vec::new();
        let mut visited = 0;
        for (posting, idf) in terms {
            if visited + posting.len() > MAX_POSTINGS_PER_QUERY {
                break;
            }
            visited += posting.len();
            for &window_id in posting {
                let (Some(window), Some(score)) = (
                    self.windows.get(window_id as usize),
                    scores.get_mut(window_id as usize),
                ) else {
                    continue;
                };
                if *score == 0.0 {
                    touched.push(window_id);
                }
                let length_norm =
                    BM25_K1 * (1.0 - BM25_B + BM25_B * window.token_count as f32 / average_length);
                *score += idf * (BM25_K1 + 1.0) / (1.0 + length_norm);
            }
        }
        let mut ranked: Vec<(u32, f32)> = touched
            .into_iter()
            .filter(|&window_id| Some(self.windows[window_id as usize].file) != excluded_file)
            .filter(|&window_id| self.window_is_live(window_id))
            .map(|window_id| (window_id, scores[window_id as usize]))
            .collect();
        // The best `limit` by score (ties by window id), then sorted with a tie-break that
        // does not depend on window ids (path, line).
        if limit < ranked.len() {
            ranked.select_nth_unstable_by(limit, |left, right| {
                right.1.total_cmp(&left.1).then(left.0.cmp(&right.0))
            });
            ranked.truncate(limit);
        }
        let mut ranked: Vec<(Window, f32)> = ranked
            .into_iter()
            .map(|(window_id, score)| (self.windows[window_id as usize], (score / best_possible).min(1.0)))
            .collect();
        ranked.sort_by(|left, right| {
            right
                .1
                .total_cmp(&left.1)
                .then_with(|| self.path_of(left.0.file).cmp(self.path_of(right.0.file)))
                .then_with(|| left.0.start_line.cmp(&right.0.start_line))
        });
        ranked.truncate(limit);
        ranked
    }

    /// Files that `module` (as written in an import of the file `from_key`) refers to.
    pub(crate) fn resolve_module(&self, from_key: &str, family: LanguageId, module: &str) -> Vec<u32> {
        crate::resolve::resolve_module(self, from_key, family, module)
    }

    fn path_of(&self, file: u32) -> &str {
        self.file_by_id(file)
            .map(|entry| &*entry.relative_path)
            .unwrap_or("")
    }

    pub(crate) fn files_with_module_key(&self, key: &str) -> &[u32] {
        self.files_by_module_key
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}
