//! Turns a cursor position into a model prompt and raw model output into a suggestion.
//!
//! Architecture invariant: pure logic. No IO, no async runtime, no llama.cpp; every function is
//! deterministic and cheap enough to call on each keystroke.

pub mod cache;
pub mod fim;
pub mod lexical;
pub mod mode;
pub mod postprocess;
