"""End-to-end tests: a real Neovim (0.12-dev, headless) with the plugin in editors/neovim, its own
LSP client, and the real `hearth lsp` with the real default model.

Each test runs tests/editors/nvim_driver.lua for one scenario; the driver writes what Neovim saw to
a JSON file and the assertions are made here. Run:

    HEARTH_BIN=target/debug/hearth python3 -m pytest tests/editors -v
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NEOVIM_PLUGIN = REPO / "editors" / "neovim"
DRIVER = Path(__file__).resolve().parent / "nvim_driver.lua"
DRIVER_TIMEOUT_S = 300
SECRET_TOKEN = "hearth-fixture-secret-7c1e2f9a0b4d"


def run_driver(
    scenario: str,
    *,
    nvim_bin: str,
    hearth_bin: str,
    runtime_dir: str,
    workspace: Path,
    file: str,
    tmp_path: Path,
    settings: dict | None = None,
    plugin_options: dict | None = None,
) -> dict:
    results_path = tmp_path / f"{scenario}-results.json"
    server_stderr = tmp_path / f"{scenario}-server-stderr.log"
    env = dict(os.environ)
    env.update(
        {
            "XDG_RUNTIME_DIR": runtime_dir,
            "HEARTH_BIN": hearth_bin,
            "HEARTH_DRIVER_SCENARIO": scenario,
            "HEARTH_DRIVER_RESULTS": str(results_path),
            "HEARTH_DRIVER_FILE": str(workspace / file),
            "HEARTH_DRIVER_PLUGIN": str(NEOVIM_PLUGIN),
            "HEARTH_DRIVER_SERVER_STDERR": str(server_stderr),
            "HEARTH_DRIVER_TIMEOUT_MS": str((DRIVER_TIMEOUT_S - 20) * 1000),
            "HEARTH_DRIVER_SETTINGS": json.dumps(settings or {}),
            "HEARTH_DRIVER_PLUGIN_OPTIONS": json.dumps(plugin_options or {}),
        }
    )
    process = subprocess.Popen(
        [nvim_bin, "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", f"luafile {DRIVER}"],
        cwd=workspace,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output, _ = process.communicate(timeout=DRIVER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    log = server_stderr.read_text(errors="replace") if server_stderr.exists() else ""
    context = (
        f"\n--- nvim output ---\n{output.decode(errors='replace')[-4000:]}"
        f"\n--- hearth lsp stderr (last 6000 chars) ---\n{log[-6000:]}"
    )
    assert results_path.exists(), f"the driver wrote no results (nvim exit {process.returncode}){context}"
    results = json.loads(results_path.read_text())
    results["_context"] = context
    assert results.get("done"), (
        f"scenario {scenario!r} failed: {results.get('error')}\n{results.get('traceback', '')}"
        f"\nnotifications: {results.get('notifications')}{context}"
    )
    return results


@pytest.fixture
def drive(nvim_bin, hearth_bin, runtime_dir, shop_workspace, tmp_path):
    def run(scenario: str, file: str, settings: dict | None = None, plugin_options: dict | None = None) -> dict:
        return run_driver(
            scenario,
            nvim_bin=nvim_bin,
            hearth_bin=hearth_bin,
            runtime_dir=runtime_dir,
            workspace=shop_workspace,
            file=file,
            tmp_path=tmp_path,
            settings=settings,
            plugin_options=plugin_options,
        )

    return run


# --- position helpers (LSP positions are in the negotiated encoding) ---------------------------


def lsp_character_to_index(line: str, character: int, encoding: str) -> int:
    """Python str index of LSP `character` in `line`."""
    if encoding == "utf-8":
        return len(line.encode("utf-8")[:character].decode("utf-8"))
    if encoding == "utf-16":
        return len(line.encode("utf-16-le")[: 2 * character].decode("utf-16-le"))
    if encoding == "utf-32":
        return character
    raise AssertionError(f"unknown position encoding {encoding!r}")


def encoded_length(line: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(line.encode("utf-8"))
    if encoding == "utf-16":
        return len(line.encode("utf-16-le")) // 2
    return len(line)


def byte_col_to_index(line: str, byte_col: int) -> int:
    return len(line.encode("utf-8")[:byte_col].decode("utf-8"))


def offset(lines: list[str], row: int, index: int) -> int:
    return sum(len(line) + 1 for line in lines[:row]) + index


def expected_after_accept(results: dict) -> str:
    """The buffer text after accepting `results['item']`, the way LSP defines it: insertText
    replaces `range` when the item has one, else it is inserted at the cursor."""
    lines = results["lines_before"]
    text = "\n".join(lines)
    item = results["item"]
    insert_text = item["insertText"]
    assert isinstance(insert_text, str), f"expected plain-text insertText, got {insert_text!r}"
    if item.get("range"):
        encoding = results["offset_encoding"]
        start, end = item["range"]["start"], item["range"]["end"]
        start_offset = offset(
            lines, start["line"], lsp_character_to_index(lines[start["line"]], start["character"], encoding)
        )
        end_offset = offset(
            lines, end["line"], lsp_character_to_index(lines[end["line"]], end["character"], encoding)
        )
        return text[:start_offset] + insert_text + text[end_offset:]
    cursor = results["cursor_before"]
    at = offset(lines, cursor["row"], byte_col_to_index(lines[cursor["row"]], cursor["col"]))
    return text[:at] + insert_text + text[at:]


# --- tests ----------------------------------------------------------------------------------------


def test_server_attaches_and_advertises_inline_completion(drive):
    results = drive("attach", "shop/pricing.py")
    assert results["filetype"] == "python"
    caps = results["capabilities"]
    assert caps["inline_completion"] is True, caps
    assert caps["completion"] is True, caps
    assert results["offset_encoding"] in ("utf-8", "utf-16"), results["offset_encoding"]
    assert isinstance(caps.get("code_action"), dict) and caps["code_action"].get("resolveProvider") is True, caps
    assert "hearth.rewrite" in caps["execute_commands"], caps
    # The plugin found the project root (the copy's pyproject.toml) and turned ghost text on.
    assert Path(results["root_dir"]).name == "shop", results["root_dir"]
    assert results["inline_completion_enabled"] is True
    assert results["tab_mapping"] == "hearth: accept suggestion"


def test_ghost_text_appears_and_tab_accepts_it(drive):
    results = drive("ghost_text", "shop/pricing.py")
    item = results["item"]
    insert_text = item["insertText"]
    assert isinstance(insert_text, str) and insert_text.strip(), item
    ghost = results["ghost"]
    cursor = results["cursor_before"]
    # Neovim shows the part of the suggestion that is not typed yet, at the cursor.
    assert ghost["text"].strip(), ghost
    assert insert_text.endswith(ghost["text"]), (insert_text, ghost)
    assert ghost["row"] == cursor["row"], (ghost, cursor)
    # Accepting puts exactly the server's suggestion into the buffer.
    after = "\n".join(results["lines_after"])
    assert after == expected_after_accept(results), (results["lines_before"], item, results["lines_after"])
    assert after != "\n".join(results["lines_before"])
    assert results["mode_after"] == "i"


def test_accept_word_inserts_the_next_word_of_the_suggestion(drive):
    results = drive("accept_word", "shop/pricing.py")
    item = results["item"]
    insert_text = item["insertText"]
    assert isinstance(insert_text, str) and insert_text.strip(), item
    lines_before, cursor = results["lines_before"], results["cursor_before"]
    before = "\n".join(lines_before)
    at = offset(lines_before, cursor["row"], byte_col_to_index(lines_before[cursor["row"]], cursor["col"]))
    # The untyped rest of the suggestion is what the ghost text showed.
    rest = results["ghost"]["text"]
    assert insert_text.endswith(rest) and rest, (insert_text, rest)
    match = re.match(r"\s*[A-Za-z0-9_]+|\s*[^A-Za-z0-9_\s]+|\s+", rest)
    word = match.group(0) if match else rest
    if word == rest:
        # A one-word suggestion is accepted whole (and may replace a range).
        assert "\n".join(results["lines_after"]) == expected_after_accept(results)
    else:
        assert "\n".join(results["lines_after"]) == before[:at] + word + before[at:], (rest, word)


def test_completion_item_inserts_the_whole_suggestion(drive):
    # The path of Neovim 0.11 (no inline completion API) and of editors like Helix.
    results = drive("completion_items", "shop/pricing.py", plugin_options={"inline_completion": False})
    assert results["inline_completion_enabled"] is False
    items = results["completion_responses"][-1]["items"]
    assert items and results["menu"], results["completion_responses"]
    first = items[0]
    assert first.get("detail") == "hearth", first
    new_text = first["textEdit"]["newText"]
    assert new_text.strip(), first
    # label = the first line of the suggestion
    assert first["label"].strip() and first["label"].strip() in new_text.split("\n")[0], first
    accepted = results["accepted_item"]
    assert results["complete_reason"] == "accept"
    assert accepted["label"] in [item["label"] for item in items], accepted
    text_edit = accepted["textEdit"]
    edit_range = text_edit.get("range") or text_edit["insert"]
    expected = expected_after_accept(
        {
            "lines_before": results["lines_before"],
            "offset_encoding": results["offset_encoding"],
            "cursor_before": results["cursor_before"],
            "item": {"insertText": text_edit["newText"], "range": edit_range},
        }
    )
    assert "\n".join(results["lines_after"]) == expected, (results["lines_before"], accepted, results["lines_after"])


def test_code_action_is_listed_resolved_and_applied(drive):
    results = drive("code_action", "shop/pricing.py")
    assert results["listed"], "no code actions listed"
    assert all(action["title"] for action in results["listed"]), results["listed"]
    chosen = results["chosen"]
    if not chosen["had_edit"] and results.get("command") is None:
        # Lazy action: the edit came from codeAction/resolve.
        assert results.get("resolved") is True, results
        assert results["edits"], f"codeAction/resolve returned no edit for this file: {results}"
    before, after = "\n".join(results["lines_before"]), "\n".join(results["lines_after"])
    assert after != before
    for edit in results.get("edits") or []:
        if edit["newText"].strip():
            assert edit["newText"] in after + "\n", edit


def test_write_publishes_hearth_diagnostics_inside_the_buffer(drive):
    results = drive("diagnostics", "shop/pricing.py", settings={"review": {"minSeverity": "info"}})
    lines = results["lines_saved"]
    assert results["lines_after"] == lines
    encoding = results["offset_encoding"]
    hearth = [
        diagnostic
        for publish in results["publishes_after_write"]
        for diagnostic in publish["diagnostics"]
        if diagnostic.get("source") == "hearth"
    ]
    assert hearth, results["publishes_after_write"]
    for diagnostic in hearth:
        assert diagnostic["message"].strip(), diagnostic
        assert diagnostic.get("severity", 1) in (1, 2, 3, 4), diagnostic
        start, end = diagnostic["range"]["start"], diagnostic["range"]["end"]
        assert (start["line"], start["character"]) <= (end["line"], end["character"]), diagnostic
        for position in (start, end):
            line = position["line"]
            if line == len(lines):  # the end of the document, as "start of the line after"
                assert position is end and position["character"] == 0, diagnostic
                continue
            assert 0 <= line < len(lines), (diagnostic, len(lines))
            assert 0 <= position["character"] <= encoded_length(lines[line], encoding), (
                diagnostic,
                lines[line],
            )
    # Neovim took them in.
    assert any(d["source"] == "hearth" for d in results["vim_diagnostics"]), results["vim_diagnostics"]


def test_context_manifest_never_includes_the_env_file(drive):
    results = drive("context", "shop/pricing.py")
    manifest = json.loads(results["manifest_json"])
    assert isinstance(manifest, dict) and manifest, manifest
    text = results["manifest_json"]
    assert SECRET_TOKEN not in text
    assert not re.search(r'(^|[/"])\.env"', text), "the context manifest mentions the .env file"
    # pricing.py uses Order and Category from shop/models.py right at the cursor: cross-file
    # context that leaves that module out is not doing its job.
    assert "models.py" in text, f"no context from shop/models.py after {results['context_requests']} requests: {text}"


def test_checkhealth_reports_model_state_and_latency(drive):
    results = drive("checkhealth", "shop/pricing.py")
    health = "\n".join(results["health"])
    assert "hearth/stats answered" in health, health
    assert "sidecar state: ready" in health, health
    assert re.search(r"last completion latency: \d+ ms", health), health
    ready = [status for status in results["statuses"] if status.get("state") == "ready"]
    assert ready, results["statuses"]
    assert ready[-1]["model"], ready[-1]
    assert results["statusline"].startswith("hearth: ready"), results["statusline"]
