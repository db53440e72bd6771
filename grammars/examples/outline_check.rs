//! Checks that [`hearth_grammars::parse_outline`] gives the same outline as a full parse.
//!
//! `cargo run --release -p hearth-grammars --example outline_check -- [ROOT]...`
//!
//! Walks each ROOT (default: `~/.cargo/registry/src`) for files of supported languages,
//! extracts the outline (definitions and imports) of each from a full parse and from the
//! outline parse, prints every file where they differ and the parse times of both.
//! `HEARTH_LANGUAGE=rust` checks only that language.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_grammars::{extract_outline, parse, parse_outline, LanguageId};

fn files(root: &Path, out: &mut Vec<(PathBuf, LanguageId)>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_dir() {
            files(&path, out);
        } else if let Some(language) = kind.is_file().then(|| LanguageId::from_path(&path)).flatten() {
            out.push((path, language));
        }
    }
}

fn main() {
    let mut roots: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if roots.is_empty() {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        roots.push(home.join(".cargo/registry/src"));
    }
    let mut found = Vec::new();
    for root in &roots {
        files(root, &mut found);
    }
    if let Some(name) = std::env::var_os("HEARTH_LANGUAGE") {
        found.retain(|(_, language)| *language.name() == *name);
    }
    found.sort();
    let (mut full_time, mut outline_time) = (Duration::ZERO, Duration::ZERO);
    let (mut checked, mut differing, mut definitions, mut imports) = (0, 0, 0, 0);
    for (path, language) in &found {
        let Ok(bytes) = std::fs::read(path) else { continue };
        if bytes.len() > 1024 * 1024 {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        let started = Instant::now();
        let Some(full_tree) = parse(*language, &text) else {
            continue;
        };
        full_time += started.elapsed();
        let started = Instant::now();
        let Some(outline_tree) = parse_outline(*language, &text) else {
            continue;
        };
        outline_time += started.elapsed();
        let full = extract_outline(*language, &full_tree, &text);
        let outline = extract_outline(*language, &outline_tree, &text);
        checked += 1;
        definitions += full.definitions.len();
        imports += full.imports.len();
        if full != outline {
            differing += 1;
            let first = full
                .definitions
                .iter()
                .zip(&outline.definitions)
                .find(|(left, right)| left != right);
            println!(
                "differs: {} ({} / {} definitions, {} / {} imports) first: {first:?}",
                path.display(),
                full.definitions.len(),
                outline.definitions.len(),
                full.imports.len(),
                outline.imports.len(),
            );
        }
    }
    println!(
        "{checked} files, {definitions} definitions, {imports} imports; {differing} differ; \
         parse {:.2} s full, {:.2} s outline",
        full_time.as_secs_f64(),
        outline_time.as_secs_f64()
    );
}
