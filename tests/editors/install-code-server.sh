#!/bin/sh
# Installs code-server 4.100.3 (the real VS Code workbench) for test_vscode.py into
# ~/.cache/hearth/code-server, from the npm registry only (recipe: /work/shared/REAL-CLIENTS.md).
# Needs the Debian packages: ripgrep chromium libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev
# (native modules are built from source). Idempotent; prints the code-server path.
set -eu
DIR="${HEARTH_CACHE_DIR:-$HOME/.cache/hearth}/code-server"
BIN="$DIR/node_modules/.bin/code-server"
if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi
for tool in rg chromium; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install ripgrep chromium libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev" >&2; exit 1; }
done
export npm_config_yes=true          # node-pty's postinstall runs `npx node-gyp ...`
mkdir -p "$DIR" && cd "$DIR"
[ -f package.json ] || echo '{"name":"csapp","private":true}' > package.json
{
  npm install --ignore-scripts code-server@4.100.3      # its postinstall would fetch rg from GitHub
  npm rebuild argon2
  cd node_modules/code-server/lib/vscode
  npm install --omit=dev --ignore-scripts
  mkdir -p node_modules/@vscode/ripgrep/bin             # existing bin/ => no ripgrep download
  cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
  npm rebuild                                           # node-pty, spdlog, kerberos, ...
  rm -rf node_modules.asar && ln -s node_modules node_modules.asar
  (cd bin/remote-cli && rm -f code-server && ln -s code-linux.sh code-server)
  (cd bin/helpers && rm -f browser.sh && ln -s browser-linux.sh browser.sh)
  cd extensions && npm install --omit=dev
} >&2
"$BIN" --version >/dev/null
echo "$BIN"
