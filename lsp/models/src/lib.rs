//! Model files and hardware for Hearth: a GGUF header reader, model summaries, memory planning,
//! hardware detection, discovery of models already on disk and the default model install.
//!
//! Architecture invariant: pure Rust, synchronous, no tokio and no llama.cpp. It reads file
//! headers and system files and runs `nvidia-smi`, `sysctl` and `pip`, nothing else; it never
//! reads tensor data.

pub mod discovery;
pub mod doctor;
pub mod gguf;
pub mod hardware;
pub mod install;
pub mod plan;
pub mod summary;

pub use discovery::{discover_models, resolve_model, DiscoveredModel, ModelStores, ResolveError};
pub use doctor::{doctor_report, DoctorReport};
pub use gguf::{GgmlType, GgufError, GgufFile};
pub use hardware::{detect_hardware, GpuDevice, Hardware};
pub use install::{install_default_model, InstallConfig, InstallError, InstallOutcome};
pub use plan::{plan_memory, KvCacheType, MemoryPlan, PlanRequest};
pub use summary::ModelSummary;
