//! Model files and hardware for Hearth.
