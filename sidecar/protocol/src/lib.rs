//! The language between `hearth` and `hearth-sidecar`: message types, framing, the protocol
//! version, where the socket lives, and the client handle.
//!
//! Architecture invariant: this crate never links llama.cpp, so the language server builds and
//! runs its tests without compiling it.

pub mod client;
pub mod endpoint;
pub mod framing;
pub mod launch;
pub mod ledger;
pub mod messages;
pub mod remote;

pub use client::{
    ClientError, CompletionStream, SidecarClient, SidecarHello, StreamEvent, UsageEvent, UsageObserver,
    UsageOutcome,
};
pub use endpoint::Endpoint;
pub use launch::{connect_or_spawn, LaunchOptions, Origin, EXIT_ALREADY_RUNNING};
pub use messages::*;
pub use remote::{FimSetting, RemoteOptions};
