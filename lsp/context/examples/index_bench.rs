//! Index and selection benchmark.
//!
//! `cargo run --release -p hearth-context --example index_bench -- [ROOT] [SELECTIONS] [BUDGET]`
//!
//! Indexes ROOT (default: the Rust crate sources under `~/.cargo/registry/src`), prints the
//! build time, files, definitions and windows, then runs SELECTIONS (default 1000) context
//! selections at pseudo-random cursors of pseudo-random indexed files with a BUDGET
//! (default 2048 tokens) and prints the p50/p90/p99 selection times.

use std::path::PathBuf;
use std::time::Instant;

use hearth_context::{
    select, EstimateTokenCounter, Index, IndexOptions, LanguageId, RenderFormat, SelectionRequest,
};

/// xorshift64*: deterministic pseudo-random numbers without a dependency.
struct PseudoRandom(u64);

impl PseudoRandom {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            0
        } else {
            (self.next() % bound as u64) as usize
        }
    }
}

fn default_root() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("."));
    home.join("registry").join("src")
}

fn percentile(sorted: &[u64], fraction: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let position = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[position]
}

/// Resident set size of this process, from `/proc/self/status` (0 where unavailable).
fn resident_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
            })
        })
        .unwrap_or(0)
        * 1024
}

fn main() {
    let mut arguments = std::env::args().skip(1);
    let root = arguments.next().map(PathBuf::from).unwrap_or_else(default_root);
    let selections: usize = arguments
        .next()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1000);
    let budget: usize = arguments
        .next()
        .and_then(|text| text.parse().ok())
        .unwrap_or(2048);

    println!("root: {}", root.display());
    let resident_before = resident_bytes("VmRSS");
    let started = Instant::now();
    // HEARTH_BENCH_ALL_LANGUAGES=1 indexes every language; by default only Rust sources
    // (the registry also holds C/C++ trees such as llama.cpp and grammar parser tables).
    let options = IndexOptions {
        only_languages: match std::env::var_os("HEARTH_BENCH_ALL_LANGUAGES") {
            Some(_) => None,
            None => Some(vec![LanguageId::Rust]),
        },
        ..IndexOptions::default()
    };
    let index = Index::build(&root, &options, &|_, _| {});
    let build_seconds = started.elapsed().as_secs_f64();
    let statistics = index.statistics();
    println!(
        "build: {build_seconds:.2} s, {} files ({:.0} files/s, {:.2} s per 1000 files), {} definitions, {} windows",
        index.file_count(),
        index.file_count() as f64 / build_seconds.max(1e-9),
        build_seconds * 1000.0 / (index.file_count().max(1) as f64),
        index.definition_count(),
        index.window_count(),
    );
    println!("walk: {statistics:?}");
    println!(
        "memory: resident {:.0} MiB after the build ({:.0} MiB more than before), peak {:.0} MiB",
        resident_bytes("VmRSS") as f64 / 1048576.0,
        (resident_bytes("VmRSS") as f64 - resident_before as f64) / 1048576.0,
        resident_bytes("VmHWM") as f64 / 1048576.0,
    );

    let files: Vec<_> = index.files().collect();
    if files.is_empty() {
        println!("no files indexed");
        return;
    }
    let mut random = PseudoRandom(0x9e37_79b9_7f4a_7c15);
    let mut micros: Vec<u64> = Vec::with_capacity(selections);
    let mut snippet_total = 0usize;
    let mut token_total = 0usize;
    let counter = EstimateTokenCounter;
    let format = RenderFormat::FileSep {
        file_sep: "<|file_sep|>".to_string(),
    };
    let mut attempts = 0;
    while micros.len() < selections && attempts < selections * 4 {
        attempts += 1;
        let file = files[random.below(files.len())];
        let Some(text) = index.file_text(file) else {
            continue;
        };
        let cursor = random.below(text.len() + 1);
        let path = root.join(&*file.relative_path);
        let request = SelectionRequest::new(&path, &text, cursor, budget, format.clone());
        let started = Instant::now();
        let selection = select(&index, &request, &counter);
        micros.push(started.elapsed().as_micros() as u64);
        assert!(selection.total_tokens <= budget);
        snippet_total += selection.snippets.len();
        token_total += selection.total_tokens;
    }
    micros.sort_unstable();
    let count = micros.len().max(1);
    println!(
        "select ({} runs, budget {budget}): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.1} snippets and {:.0} tokens on average",
        micros.len(),
        percentile(&micros, 0.5) as f64 / 1000.0,
        percentile(&micros, 0.9) as f64 / 1000.0,
        percentile(&micros, 0.99) as f64 / 1000.0,
        micros.last().copied().unwrap_or(0) as f64 / 1000.0,
        snippet_total as f64 / count as f64,
        token_total as f64 / count as f64,
    );
}
