//! What the machine has: CPU cores, RAM, GPUs.
//!
//! Detection reads `/proc/cpuinfo` and `/proc/meminfo` on Linux, runs `nvidia-smi` when it is
//! on `PATH`, and asks `sysctl hw.memsize` on macOS (Apple GPUs share that memory). The parsers
//! are public and pure so they can be tested with captured text.

use serde::Serialize;
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

/// The machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hardware {
    pub cpu: CpuInfo,
    /// `None` when the total could not be read.
    pub memory: Option<HostMemory>,
    pub gpus: Vec<GpuDevice>,
    /// Plain-words notes on how detection went ("no NVIDIA GPU found: nvidia-smi is not
    /// installed").
    pub notes: Vec<String>,
}

/// CPU facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuInfo {
    pub model_name: Option<String>,
    /// Physical cores (unique core ids); equals `logical_cpus` when they cannot be told apart.
    pub physical_cores: usize,
    pub logical_cpus: usize,
}

/// Host RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HostMemory {
    pub total_bytes: u64,
    /// `MemAvailable`; `None` where the system does not say.
    pub available_bytes: Option<u64>,
}

impl HostMemory {
    /// Available bytes, or the total when the system does not report availability.
    pub fn usable_bytes(&self) -> u64 {
        self.available_bytes.unwrap_or(self.total_bytes)
    }
}

/// The kind of accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuKind {
    /// A discrete NVIDIA GPU reported by nvidia-smi.
    Nvidia,
    /// An Apple Silicon GPU sharing system memory.
    AppleUnified,
}

/// One GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuDevice {
    pub name: String,
    pub kind: GpuKind,
    pub total_bytes: u64,
    /// Free now (NVIDIA), or the share of unified memory Metal lets the GPU use (Apple).
    pub free_bytes: u64,
}

impl Hardware {
    /// A machine without GPUs, for tests and for `--cpu-only` style planning.
    pub fn cpu_only(physical_cores: usize, total_ram_bytes: u64, available_ram_bytes: u64) -> Self {
        Hardware {
            cpu: CpuInfo {
                model_name: None,
                physical_cores,
                logical_cpus: physical_cores,
            },
            memory: Some(HostMemory {
                total_bytes: total_ram_bytes,
                available_bytes: Some(available_ram_bytes),
            }),
            gpus: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// Detects the hardware of this machine. Never fails; what could not be found is said in
/// `notes`.
pub fn detect_hardware() -> Hardware {
    let mut notes = Vec::new();
    let logical_cpus = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok();
    let physical_cores = cpuinfo
        .as_deref()
        .and_then(parse_cpuinfo_physical_cores)
        .unwrap_or(logical_cpus);
    let model_name = cpuinfo.as_deref().and_then(parse_cpuinfo_model_name);

    let mut memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .as_deref()
        .and_then(parse_meminfo);

    let mut gpus = Vec::new();
    match run_with_timeout(
        "nvidia-smi",
        &[
            "--query-gpu=name,memory.total,memory.free",
            "--format=csv,noheader,nounits",
        ],
        Duration::from_secs(15),
    ) {
        CommandOutcome::NotInstalled => {
            notes.push("no NVIDIA GPU found: nvidia-smi is not installed".to_string())
        }
        CommandOutcome::Failed(reason) => {
            notes.push(format!("no NVIDIA GPU found: nvidia-smi failed ({reason})"))
        }
        CommandOutcome::Succeeded(stdout) => {
            let nvidia = parse_nvidia_smi_csv(&stdout);
            if nvidia.is_empty() {
                notes.push("no NVIDIA GPU found: nvidia-smi listed no devices".to_string());
            }
            gpus.extend(nvidia);
        }
    }

    if cfg!(target_os = "macos") {
        if let CommandOutcome::Succeeded(stdout) =
            run_with_timeout("sysctl", &["-n", "hw.memsize"], Duration::from_secs(5))
        {
            if let Ok(total_bytes) = stdout.trim().parse::<u64>() {
                memory.get_or_insert(HostMemory {
                    total_bytes,
                    available_bytes: None,
                });
                if cfg!(target_arch = "aarch64") {
                    gpus.push(apple_unified_gpu(total_bytes));
                }
            }
        }
    }

    if gpus.is_empty() {
        notes.push("no GPU found: the model will run on the CPU".to_string());
    }
    if memory.is_none() {
        notes.push("could not read the amount of RAM".to_string());
    }
    Hardware {
        cpu: CpuInfo {
            model_name,
            physical_cores,
            logical_cpus,
        },
        memory,
        gpus,
        notes,
    }
}

/// An Apple Silicon GPU: Metal lets one process use about 2/3 of unified memory on machines
/// with up to 36 GiB and about 3/4 above (`recommendedMaxWorkingSetSize`).
pub fn apple_unified_gpu(memory_bytes: u64) -> GpuDevice {
    let usable = if memory_bytes <= 36 * 1024 * MIB {
        memory_bytes / 3 * 2
    } else {
        memory_bytes / 4 * 3
    };
    GpuDevice {
        name: "Apple Silicon GPU (unified memory)".to_string(),
        kind: GpuKind::AppleUnified,
        total_bytes: memory_bytes,
        free_bytes: usable,
    }
}

/// Counts unique (physical id, core id) pairs. `None` when the text has no `core id` lines
/// (some ARM kernels), so the caller falls back to the logical CPU count.
pub fn parse_cpuinfo_physical_cores(cpuinfo: &str) -> Option<usize> {
    let mut cores = HashSet::new();
    for processor in cpuinfo.split("\n\n") {
        let mut physical_id = None;
        let mut core_id = None;
        for line in processor.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            match key.trim() {
                "physical id" => physical_id = Some(value.trim().to_string()),
                "core id" => core_id = Some(value.trim().to_string()),
                _ => {}
            }
        }
        if let Some(core_id) = core_id {
            cores.insert((physical_id.unwrap_or_default(), core_id));
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}

fn parse_cpuinfo_model_name(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// Reads `MemTotal` and `MemAvailable` (kB) from `/proc/meminfo` text.
pub fn parse_meminfo(meminfo: &str) -> Option<HostMemory> {
    let field = |name: &str| -> Option<u64> {
        meminfo.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kilobytes: u64 = rest.split_whitespace().next()?.parse().ok()?;
            kilobytes.checked_mul(1024)
        })
    };
    Some(HostMemory {
        total_bytes: field("MemTotal")?,
        available_bytes: field("MemAvailable"),
    })
}

/// Parses `nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits`
/// output (memory in MiB). Lines that do not parse are skipped.
pub fn parse_nvidia_smi_csv(output: &str) -> Vec<GpuDevice> {
    output
        .lines()
        .filter_map(|line| {
            // The name may contain commas, so take the two numbers from the right.
            let mut fields = line.rsplitn(3, ',');
            let free_mib: u64 = fields.next()?.trim().parse().ok()?;
            let total_mib: u64 = fields.next()?.trim().parse().ok()?;
            let name = fields.next()?.trim();
            if name.is_empty() {
                return None;
            }
            Some(GpuDevice {
                name: name.to_string(),
                kind: GpuKind::Nvidia,
                total_bytes: total_mib.saturating_mul(MIB),
                free_bytes: free_mib.saturating_mul(MIB),
            })
        })
        .collect()
}

enum CommandOutcome {
    NotInstalled,
    Failed(String),
    Succeeded(String),
}

/// Runs a command, killing it if it takes longer than `timeout` (a wedged driver can make
/// nvidia-smi hang).
fn run_with_timeout(program: &str, arguments: &[&str], timeout: Duration) -> CommandOutcome {
    let mut child = match Command::new(program)
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return CommandOutcome::NotInstalled,
        Err(error) => return CommandOutcome::Failed(error.to_string()),
    };
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return CommandOutcome::Failed(format!("no answer within {} seconds", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => return CommandOutcome::Failed(error.to_string()),
        }
    }
    match child.wait_with_output() {
        Ok(output) if output.status.success() => {
            CommandOutcome::Succeeded(String::from_utf8_lossy(&output.stdout).into_owned())
        }
        Ok(output) => CommandOutcome::Failed(format!("exit status {}", output.status)),
        Err(error) => CommandOutcome::Failed(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperthreaded_cpu_counts_physical_cores_once() {
        // Two sockets, two cores each, two threads per core: 8 logical, 4 physical.
        let mut text = String::new();
        let mut processor = 0;
        for socket in 0..2 {
            for _thread in 0..2 {
                for core in 0..2 {
                    text.push_str(&format!(
                        "processor\t: {processor}\nmodel name\t: Test CPU\nphysical id\t: {socket}\ncore id\t\t: {core}\n\n"
                    ));
                    processor += 1;
                }
            }
        }
        assert_eq!(parse_cpuinfo_physical_cores(&text), Some(4));
        assert_eq!(parse_cpuinfo_model_name(&text).as_deref(), Some("Test CPU"));
    }

    #[test]
    fn cpuinfo_without_core_ids_gives_none() {
        let text = "processor\t: 0\nBogoMIPS\t: 48.00\n\nprocessor\t: 1\nBogoMIPS\t: 48.00\n";
        assert_eq!(parse_cpuinfo_physical_cores(text), None);
    }

    #[test]
    fn meminfo_is_parsed_in_bytes() {
        let text = "MemTotal:       16318540 kB\nMemFree:         1048576 kB\nMemAvailable:    8159270 kB\n";
        let memory = parse_meminfo(text).unwrap();
        assert_eq!(memory.total_bytes, 16_318_540 * 1024);
        assert_eq!(memory.available_bytes, Some(8_159_270 * 1024));
        assert_eq!(parse_meminfo("garbage"), None);
    }

    #[test]
    fn nvidia_smi_csv_with_two_gpus_and_a_comma_in_a_name() {
        let text =
            "NVIDIA GeForce RTX 4090, 24564, 23012\nNVIDIA H200, Rev 1, 143771, 143000\n\nbroken line\n";
        let gpus = parse_nvidia_smi_csv(text);
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA GeForce RTX 4090");
        assert_eq!(gpus[0].total_bytes, 24_564 * 1024 * 1024);
        assert_eq!(gpus[0].free_bytes, 23_012 * 1024 * 1024);
        assert_eq!(gpus[1].name, "NVIDIA H200, Rev 1");
        assert_eq!(gpus[1].kind, GpuKind::Nvidia);
    }

    #[test]
    fn apple_gpu_gets_two_thirds_or_three_quarters_of_memory() {
        let gib = 1024 * MIB;
        assert_eq!(apple_unified_gpu(24 * gib).free_bytes, 16 * gib);
        assert_eq!(apple_unified_gpu(64 * gib).free_bytes, 48 * gib);
    }

    #[test]
    fn detection_on_this_machine_reports_cores_and_memory() {
        let hardware = detect_hardware();
        assert!(hardware.cpu.physical_cores >= 1);
        assert!(hardware.cpu.physical_cores <= hardware.cpu.logical_cpus.max(1) * 2);
        if cfg!(target_os = "linux") {
            let memory = hardware.memory.expect("Linux has /proc/meminfo");
            assert!(memory.total_bytes > 0);
            assert!(memory.available_bytes.unwrap() <= memory.total_bytes);
        }
        if hardware.gpus.is_empty() {
            assert!(hardware.notes.iter().any(|note| note.contains("no GPU found")));
        }
    }
}
