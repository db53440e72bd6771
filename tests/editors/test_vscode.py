"""Smoke test of the VS Code extension in the real VS Code workbench (code-server 4.100.3 in
headless Chromium) against the real `hearth lsp`: the .vsix installs and activates, the status
bar item shows what `hearth/status` reports, ghost text appears and Tab accepts it into the file.

    tests/editors/install-code-server.sh            # once (Debian: chromium ripgrep + build deps)
    (cd tests/editors/vscode && npm ci)             # playwright-core
    HEARTH_BIN=$PWD/target/debug/hearth python3 -m pytest tests/editors/test_vscode.py -v

Skips, saying why, when HEARTH_BIN is unset or when code-server / chromium are not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXTENSION_DIR = REPO / "editors" / "vscode"
SMOKE_DIR = Path(__file__).resolve().parent / "vscode"
DEFAULT_CODE_SERVER = Path.home() / ".cache/hearth/code-server/node_modules/.bin/code-server"


@pytest.fixture(scope="session")
def code_server_bin() -> str:
    path = os.environ.get("HEARTH_CODE_SERVER") or str(DEFAULT_CODE_SERVER)
    if not os.access(path, os.X_OK):
        pytest.skip(f"code-server not found at {path}: run tests/editors/install-code-server.sh "
                    "or set HEARTH_CODE_SERVER")
    if not shutil.which("chromium"):
        pytest.skip("chromium is not installed (apt-get install chromium)")
    if not (SMOKE_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.skip("playwright-core is not installed: (cd tests/editors/vscode && npm ci)")
    return path


@pytest.fixture(scope="session")
def vsix(tmp_path_factory) -> Path:
    if not (EXTENSION_DIR / "node_modules").is_dir():
        subprocess.run(["npm", "ci"], cwd=EXTENSION_DIR, check=True, capture_output=True, timeout=600)
    out = tmp_path_factory.mktemp("vsix") / "hearth.vsix"
    subprocess.run(["npm", "run", "build"], cwd=EXTENSION_DIR, check=True, capture_output=True, timeout=600)
    subprocess.run(
        ["npx", "vsce", "package", "--no-dependencies", "--allow-missing-repository", "--out", str(out)],
        cwd=EXTENSION_DIR, check=True, capture_output=True, timeout=600,
    )
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_vsix_activates_shows_status_and_accepts_ghost_text(
    hearth_bin, code_server_bin, vsix, runtime_dir, shop_workspace, tmp_path
):
    user_data = tmp_path / "user-data"
    extensions = tmp_path / "extensions"
    (user_data / "User").mkdir(parents=True)
    (user_data / "User" / "settings.json").write_text(json.dumps({
        "security.workspace.trust.enabled": False,
        "workbench.startupEditor": "none",
        "hearth.serverPath": hearth_bin,
        "editor.inlineSuggest.enabled": True,
    }))
    config = tmp_path / "code-server.yaml"
    config.write_text("auth: none\n")
    env = dict(os.environ, XDG_RUNTIME_DIR=runtime_dir)

    install = subprocess.run(
        [code_server_bin, "--user-data-dir", str(user_data), "--extensions-dir", str(extensions),
         "--install-extension", str(vsix)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    listed = subprocess.run(
        [code_server_bin, "--user-data-dir", str(user_data), "--extensions-dir", str(extensions),
         "--list-extensions"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert "hearth.hearth" in listed.stdout.split(), listed.stdout

    port = free_port()
    server_log = open(tmp_path / "code-server.log", "w")
    server = subprocess.Popen(
        [code_server_bin, "--config", str(config), "--bind-addr", f"127.0.0.1:{port}", "--auth", "none",
         "--disable-telemetry", "--disable-update-check", "--user-data-dir", str(user_data),
         "--extensions-dir", str(extensions), str(shop_workspace)],
        env=env, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "code-server.log").read_text()
                assert time.monotonic() < deadline, "code-server did not come up"
                time.sleep(0.5)

        results_path = tmp_path / "smoke.json"
        smoke = subprocess.run(
            ["node", str(SMOKE_DIR / "smoke.mjs")],
            cwd=SMOKE_DIR,
            env=dict(env, SMOKE_URL=f"http://127.0.0.1:{port}", SMOKE_WORKSPACE=str(shop_workspace),
                     SMOKE_FILE="shop/pricing.py", SMOKE_RESULTS=str(results_path),
                     SMOKE_PROFILE=str(tmp_path / "browser"), SMOKE_SCREENSHOT=str(tmp_path / "failure.png")),
            capture_output=True, text=True, timeout=600,
        )
        assert results_path.exists(), smoke.stdout + smoke.stderr
        results = json.loads(results_path.read_text())
        logs = "\n".join(
            p.read_text(errors="replace") for p in sorted(user_data.glob("logs/*/exthost*/**/*.log"))
        )
        assert results["done"], (
            f"{results.get('error')}\nstatus texts: {results['statusTexts']}\nscreenshot: {tmp_path / 'failure.png'}"
            f"\n--- extension host logs ---\n{logs[-4000:]}"
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        server_log.close()

    # The extension was activated by the extension host.
    assert re.search(r"hearth\.hearth", logs), logs[-4000:]
    # The status bar showed hearth/status: the model once the server said something.
    final_status = results["statusTexts"][-1]
    assert not re.search(r"starting|stopped", final_status, re.I), results["statusTexts"]
    # The accepted ghost text is in the saved file, after the typed header, piece by piece (the
    # DOM splits ghost text into an inline decoration and view-zone lines).
    saved = (shop_workspace / "shop" / "pricing.py").read_text()
    header = "def total_with_tax(order: Order) -> int:"
    assert header in saved, saved[-800:]
    typed_and_accepted = saved.split(header, 1)[1]
    ghost = results["ghostTexts"][-1].replace("\u00a0", " ")
    pieces = [piece.strip() for piece in ghost.split("\n") if piece.strip()]
    assert pieces, ghost
    for piece in pieces:
        assert piece in typed_and_accepted, (piece, typed_and_accepted)
