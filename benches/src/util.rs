//! Small helpers: percentiles, machine facts, resident memory, deterministic pseudo-random numbers.

use serde::Serialize;

/// Value at `fraction` (0..=1) of an already sorted slice (nearest rank); 0 when empty.
pub fn percentile_sorted(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let position = ((sorted.len() - 1) as f64 * fraction.clamp(0.0, 1.0)).round() as usize;
    sorted[position]
}

/// Percentile of an unsorted list.
pub fn percentile(values: &[f64], fraction: f64) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(|a, b| a.total_cmp(b));
    percentile_sorted(&sorted, fraction)
}

pub fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

/// `a / b`, or NaN when `b` is not positive (reported as "n/a").
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        a / b
    } else {
        f64::NAN
    }
}

/// xorshift64*: deterministic pseudo-random numbers without a dependency.
pub struct PseudoRandom(pub u64);

impl PseudoRandom {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            0
        } else {
            (self.next_u64() % bound as u64) as usize
        }
    }
}

/// Resident memory of this process in bytes (Linux; 0 elsewhere).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|text| text.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * page_size())
        .unwrap_or(0)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub logical_cores: usize,
    pub physical_cores: usize,
    pub memory_bytes: u64,
    pub os: String,
    pub gpus: Vec<String>,
    pub load_average: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let mut cores = std::collections::HashSet::new();
        let (mut physical, mut core) = (None::<String>, None::<String>);
        for line in cpuinfo.lines().chain(std::iter::once("")) {
            if let Some((key, value)) = line.split_once(':') {
                match key.trim() {
                    "physical id" => physical = Some(value.trim().to_string()),
                    "core id" => core = Some(value.trim().to_string()),
                    _ => {}
                }
            } else if line.trim().is_empty() {
                if let (Some(p), Some(c)) = (physical.take(), core.take()) {
                    cores.insert((p, c));
                }
            }
        }
        let logical_cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(0);
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    l.strip_prefix("PRETTY_NAME=")
                        .map(|v| v.trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        let gpus = std::process::Command::new("nvidia-smi")
            .arg("-L")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let load_average = std::fs::read_to_string("/proc/loadavg")
            .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        Machine {
            cpu_model,
            logical_cores,
            physical_cores: if cores.is_empty() {
                logical_cores
            } else {
                cores.len()
            },
            memory_bytes,
            os,
            gpus,
            load_average,
        }
    }
}

/// Length of the longest common prefix.
pub fn common_prefix<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Where the repository lives (this crate is `benches/`).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from("."))
}

/// Real Rust source text from this repository (sorted, deterministic), for prompts.
pub fn corpus_text() -> String {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in [
        "sidecar/src",
        "sidecar/protocol/src",
        "lsp/src",
        "lsp/context/src",
        "lsp/completion/src",
        "lsp/models/src",
        "grammars/src",
    ] {
        collect_rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    let mut text = String::new();
    for file in files {
        if let Ok(content) = std::fs::read_to_string(&file) {
            text.push_str(&content);
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
    }
    if text.len() < 4096 {
        // Should never happen in the repository; keep the benchmark running anyway.
        let line = "fn add(a: u32, b: u32) -> u32 { a + b }\n";
        text.push_str(&line.repeat(4096 / line.len() + 1));
    }
    text
}

fn collect_rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A `file://` URI for an absolute path (percent-encoding what needs it).
pub fn file_uri(path: &std::path::Path) -> String {
    let mut uri = String::from("file://");
    for byte in path.to_string_lossy().bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                uri.push(byte as char)
            }
            other => uri.push_str(&format!("%{other:02X}")),
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let values = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(median(&values), 3.0);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert_eq!(percentile(&values, 1.0), 5.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert!(ratio(1.0, 0.0).is_nan());
    }

    #[test]
    fn uris_are_percent_encoded() {
        assert_eq!(file_uri(std::path::Path::new("/a b/c.py")), "file:///a%20b/c.py");
    }
}
