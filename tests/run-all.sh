#!/usr/bin/env bash
# README command 2 (and what .ci/run calls): the whole test suite.
#   formatting, clippy, the Rust tests (unit + end-to-end on the real sidecar and default model),
#   the real-editor tests (Neovim; VS Code in code-server when HEARTH_VSCODE_E2E=1), the .vsix
#   packaging, and the benchmark harness in --quick mode. Builds llama.cpp's llama-server once
#   (tests/install-llama-server.sh, ~8 minutes, cached in ~/.cache/hearth/peer) for the tests
#   and the benchmark that compare Hearth with it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cache="${HEARTH_CACHE_DIR:-$HOME/.cache/hearth}"
step() { printf '\n==== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "build"
cargo build --workspace --all-targets
bin="$CARGO_TARGET_DIR/debug"

step "default model"
"$bin/hearth" model pull default

step "Python test tools (pytest, gguf)"
venv="$cache/venv-tests"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet -r tests/requirements.txt -r tests/fixtures/models/requirements.txt
# The FIM tests write tiny GGUF models with this Python (it has the `gguf` package).
export HEARTH_TEST_PYTHON="$venv/bin/python"

step "llama.cpp's llama-server (the peer: remote-backend test, typing benchmark; cached after the first build)"
HEARTH_LLAMA_SERVER="${HEARTH_LLAMA_SERVER:-$(tests/install-llama-server.sh)}"
export HEARTH_LLAMA_SERVER

step "Rust tests"
cargo test --workspace --no-fail-fast

step "tiny FIM models (gguf writer)"
"$venv/bin/python" -m pytest -q tests/fixtures/models

step "Neovim end-to-end"
nvim="$(tests/editors/install-nvim.sh)"
export HEARTH_NVIM="$nvim"
HEARTH_BIN="$bin/hearth" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/editors/test_neovim.py

step "VS Code extension: build, unit tests, .vsix"
(cd editors/vscode && npm ci --no-audit --no-fund && npm run build && npm test && npm run package)
ls -l editors/vscode/hearth.vsix

if [[ "${HEARTH_VSCODE_E2E:-0}" == 1 ]]; then
  step "VS Code end-to-end (code-server + headless Chromium)"
  tests/editors/install-code-server.sh >/dev/null
  (cd tests/editors/vscode && npm ci --no-audit --no-fund)
  HEARTH_BIN="$bin/hearth" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/editors/test_vscode.py
fi

step "benchmarks (--quick)"
"$bin/hearth-bench" --quick --out "$CARGO_TARGET_DIR/bench-quick-REPORT.md"

step "all tests passed"
