//! Import resolution: which indexed files an import's module text refers to.
//!
//! Heuristic and language-agnostic: relative paths (`./util`, `../lib/db`, Python's
//! `.models`) are joined to the importing file's directory; everything else is split into
//! segments (`crate::store::Store` → `store`, `Store`) and matched against the trailing
//! components of indexed paths (`src/store.rs`, `store/mod.rs`, a Go package directory).

use std::path::Path;

use hearth_grammars::LanguageId;

use crate::index::Index;

/// At most this many files per import (a Go package or a Rust module directory).
const MAX_FILES_PER_MODULE: usize = 4;

const SOURCE_EXTENSIONS: &[&str] = &[
    ".h", ".hpp", ".hh", ".hxx", ".c", ".cc", ".cpp", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".py",
    ".rb", ".php", ".lua", ".sh", ".go", ".rs", ".java", ".cs",
];

/// Segments that name no file: path keywords of various languages.
const IGNORED_SEGMENTS: &[&str] = &["crate", "self", "super", "*", "~", "@", "$crate"];

fn strip_source_extension(module: &str) -> &str {
    for extension in SOURCE_EXTENSIONS {
        if let Some(stripped) = module.strip_suffix(extension) {
            if !stripped.is_empty() {
                return stripped;
            }
        }
    }
    module
}

/// Path components of a file key without the extension, for suffix matching: the
/// directories, then the stem unless it is a package file (`mod`, `__init__`, `index`).
fn key_components(key: &str) -> Vec<&str> {
    let path = Path::new(key);
    let mut components: Vec<&str> = path
        .parent()
        .map(|parent| parent.iter().filter_map(|part| part.to_str()).collect())
        .unwrap_or_default();
    if let Some(stem) = path.file_stem().and_then(|stem| stem.to_str()) {
        if !matches!(stem, "mod" | "__init__" | "index") {
            components.push(stem);
        }
    }
    components
}

fn trailing_match_count(segments: &[&str], components: &[&str]) -> usize {
    segments
        .iter()
        .rev()
        .zip(components.iter().rev())
        .take_while(|(segment, component)| segment == component)
        .count()
}

fn family_matches(index: &Index, file: u32, family: LanguageId) -> bool {
    index
        .file_by_id(file)
        .is_some_and(|entry| entry.language.family() == family)
}

/// Joins a relative module path to `from_key`'s directory; `None` if it climbs above the root.
fn join_relative(from_key: &str, parent_levels: usize, rest: &[&str]) -> Option<Vec<String>> {
    let mut components: Vec<String> = Path::new(from_key)
        .parent()
        .map(|parent| {
            parent
                .iter()
                .filter_map(|part| part.to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for _ in 0..parent_levels {
        components.pop()?;
    }
    for part in rest {
        match *part {
            "" | "." => {}
            ".." => {
                components.pop()?;
            }
            other => components.push(other.to_string()),
        }
    }
    Some(components)
}

fn files_at_path(index: &Index, family: LanguageId, target: &[String]) -> Vec<u32> {
    let Some(last) = target.last() else {
        return Vec::new();
    };
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let mut found: Vec<u32> = index
        .files_with_module_key(last)
        .iter()
        .copied()
        .filter(|&file| family_matches(index, file, family))
        .filter(|&file| {
            index.file_by_id(file).is_some_and(|entry| {
                let components = key_components(&entry.relative_path);
                let directory_components: Vec<&str> = Path::new(&*entry.relative_path)
                    .parent()
                    .map(|parent| parent.iter().filter_map(|part| part.to_str()).collect())
                    .unwrap_or_default();
                components == target || directory_components == target
            })
        })
        .collect();
    sort_by_path_and_cap(index, &mut found);
    found
}

fn sort_by_path_and_cap(index: &Index, files: &mut Vec<u32>) {
    files.sort_by(|left, right| {
        let left_path = index.file_by_id(*left).map(|entry| &*entry.relative_path);
        let right_path = index.file_by_id(*right).map(|entry| &*entry.relative_path);
        left_path.cmp(&right_path)
    });
    files.dedup();
    files.truncate(MAX_FILES_PER_MODULE);
}

pub(crate) fn resolve_module(index: &Index, from_key: &str, family: LanguageId, module: &str) -> Vec<u32> {
    let module = strip_source_extension(module.trim());
    if module.is_empty() {
        return Vec::new();
    }
    // `./util`, `../lib/db`
    if module.starts_with("./") || module.starts_with("../") {
        let parts: Vec<&str> = module.split(['/', '\\']).collect();
        return match join_relative(from_key, 0, &parts) {
            Some(target) => files_at_path(index, family, &target),
            None => Vec::new(),
        };
    }
    // Python relative imports: `.models`, `..pkg.models`
    if family == LanguageId::Python && module.starts_with('.') {
        let dots = module.len() - module.trim_start_matches('.').len();
        let rest: Vec<&str> = module[dots..]
            .split('.')
            .filter(|part| !part.is_empty())
            .collect();
        if rest.is_empty() {
            return Vec::new();
        }
        return match join_relative(from_key, dots - 1, &rest) {
            Some(target) => files_at_path(index, family, &target),
            None => Vec::new(),
        };
    }
    let segments: Vec<&str> = module
        .split([':', '.', '/', '\\'])
        .map(|segment| segment.trim_start_matches('@'))
        .filter(|segment| !segment.is_empty() && !IGNORED_SEGMENTS.contains(segment))
        .collect();
    let attempts: Vec<&[&str]> = if segments.len() > 1 {
        vec![&segments[..], &segments[..segments.len() - 1]]
    } else {
        vec![&segments[..]]
    };
    for attempt in attempts {
        let Some(last) = attempt.last() else {
            continue;
        };
        let mut best_score = 0;
        let mut best: Vec<u32> = Vec::new();
        for &file in index.files_with_module_key(last) {
            if !family_matches(index, file, family) {
                continue;
            }
            let Some(entry) = index.file_by_id(file) else {
                continue;
            };
            if &*entry.relative_path == from_key {
                continue;
            }
            let components = key_components(&entry.relative_path);
            let directory_components: Vec<&str> = Path::new(&*entry.relative_path)
                .parent()
                .map(|parent| parent.iter().filter_map(|part| part.to_str()).collect())
                .unwrap_or_default();
            let score = trailing_match_count(attempt, &components)
                .max(trailing_match_count(attempt, &directory_components));
            if score == 0 {
                continue;
            }
            if score > best_score {
                best_score = score;
                best.clear();
            }
            if score == best_score {
                best.push(file);
            }
        }
        if !best.is_empty() {
            sort_by_path_and_cap(index, &mut best);
            return best;
        }
    }
    Vec::new()
}
