"""Fixtures for the real-editor end-to-end tests.

The server binary comes from HEARTH_BIN; without it the tests skip and say why. Every process the
tests start (Neovim, `hearth lsp`, the sidecar the server starts by itself) runs with
XDG_RUNTIME_DIR pointing at a directory of this test session, so the tests never talk to a
user's running sidecar, and at the end of the session every process that carries that directory
in its environment is stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE_SHOP = REPO / "tests" / "fixtures" / "shop"
NEOVIM_PLUGIN = REPO / "editors" / "neovim"
INSTALL_NVIM = Path(__file__).resolve().parent / "install-nvim.sh"


@pytest.fixture(scope="session")
def hearth_bin() -> str:
    value = os.environ.get("HEARTH_BIN")
    if not value:
        pytest.skip(
            "HEARTH_BIN is not set: build the server and run with "
            "HEARTH_BIN=/path/to/hearth (e.g. target/debug/hearth) to run the editor tests"
        )
    path = shutil.which(value) or value
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"HEARTH_BIN={value!r} is not an executable file")
    return os.path.abspath(path)


@pytest.fixture(scope="session")
def nvim_bin() -> str:
    result = subprocess.run(
        ["bash", str(INSTALL_NVIM)], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"install-nvim.sh failed:\n{result.stderr}")
    path = result.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK), path
    return path


def processes_with_env(name: str, value: str) -> list[int]:
    """PIDs of our own processes whose environment has NAME=VALUE."""
    needle = f"{name}={value}".encode()
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as file:
                environ = file.read().split(b"\0")
        except OSError:
            continue
        if needle in environ:
            found.append(int(entry))
    return found


def stop_pids(pids: list[int], grace_s: float = 5.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and not is_zombie(pid)]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


@pytest.fixture(scope="session")
def runtime_dir():
    """A private XDG_RUNTIME_DIR for everything this session starts."""
    path = tempfile.mkdtemp(prefix="hearth-e2e-runtime-")
    os.chmod(path, stat.S_IRWXU)
    yield path
    stop_pids(processes_with_env("XDG_RUNTIME_DIR", path))
    leftover = processes_with_env("XDG_RUNTIME_DIR", path)
    shutil.rmtree(path, ignore_errors=True)
    assert not leftover, f"processes still running after the session: {leftover}"


@pytest.fixture
def shop_workspace(tmp_path: Path) -> Path:
    """A fresh copy of tests/fixtures/shop (the tests write to it)."""
    dest = tmp_path / "shop"
    shutil.copytree(
        FIXTURE_SHOP, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache")
    )
    return dest
