//! Model files and hardware for Hearth: a GGUF header reader, model summaries, memory planning,
//! hardware detection, discovery of models already on disk and the default model install.
//!
//! Architecture invariant: pure Rust, synchronous, no tokio and no llama.cpp. It reads file
//! headers and system files and may run `nvidia-smi`, `sysctl` and `pip`, nothing else.

pub mod gguf;
pub mod hardware;
pub mod plan;
pub mod summary;
