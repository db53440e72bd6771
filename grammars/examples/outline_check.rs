//! Checks that [`hearth_grammars::parse_outline`] gives the same outline as a full parse.
//!
//! `cargo run --release -p hearth-grammars --example outline_check -- [ROOT]...`
//!
//! Walks each ROOT (default: `~/.cargo/registry/src`) for files of supported languages,
//! extracts the outline (definitions and imports) of each from a full parse and from the
//! outline parse, prints every file where they differ and the parse times of both. For Rust
//! files it also compares the outline of the item scanner ([`scan_rust_outline`]) with the
//! full parse's and counts the files where the scanner falls back to tree-sitter.
//! `HEARTH_LANGUAGE=rust` checks only that language.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_grammars::{
    extract_outline, parse, parse_outline, scan_rust_failure, scan_rust_outline, LanguageId,
};

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
    let (mut scanned, mut scan_differing, mut fallbacks, mut scan_time) = (0, 0, 0, Duration::ZERO);
    let mut fallback_bytes = 0usize;
    for (path, language) in &found {
        let Ok(bytes) = std::fs::read(path) else { continue };
        if bytes.len() > 1024 * 1024 {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        // HEARTH_FALLBACK_REASONS=1: only print where the scanner gives up, and why.
        if std::env::var_os("HEARTH_FALLBACK_REASONS").is_some() {
            if *language == LanguageId::Rust {
                if let Some(offset) = scan_rust_failure(&text) {
                    let line = text[..offset].matches('\n').count() + 1;
                    let line_text = text[offset..].lines().next().unwrap_or("");
                    println!("fallback: {}:{line}: {}", path.display(), line_text.trim());
                }
            }
            continue;
        }
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
        if *language == LanguageId::Rust {
            let started = Instant::now();
            let scan = scan_rust_outline(&text);
            scan_time += started.elapsed();
            match scan {
                None => {
                    fallbacks += 1;
                    fallback_bytes += text.len();
                    if std::env::var_os("HEARTH_SHOW_FALLBACKS").is_some() {
                        println!("fallback: {}", path.display());
                    }
                }
                Some(scan) => {
                    scanned += 1;
                    if scan != full {
                        scan_differing += 1;
                        let first = full
                            .definitions
                            .iter()
                            .zip(&scan.definitions)
                            .find(|(left, right)| left != right);
                        let first_import = full
                            .imports
                            .iter()
                            .zip(&scan.imports)
                            .find(|(left, right)| left != right);
                        println!(
                            "scanner differs: {} ({} / {} definitions, {} / {} imports) first: {first:?} {first_import:?}",
                            path.display(),
                            full.definitions.len(),
                            scan.definitions.len(),
                            full.imports.len(),
                            scan.imports.len(),
                        );
                    }
                }
            }
        }
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
    println!(
        "scanner: {scanned} Rust files scanned, {scan_differing} differ; {fallbacks} fell back to \
         tree-sitter ({:.1} MB); scan {:.2} s",
        fallback_bytes as f64 / 1e6,
        scan_time.as_secs_f64()
    );
}
