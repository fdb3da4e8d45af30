from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool

from enduro.tools import Workspace, WorkspaceError, workspace_tools, write_large_output
from enduro.tools.workspace import MAX_READ_CHARS, WorkspaceNotConfigured


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_text("top secret")
    return secret


# --- confinement ------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../x", "..", "~/x", "a\x00b"])
def test_escaping_paths_are_refused(ws: Workspace, bad: str) -> None:
    with pytest.raises(WorkspaceError) as info:
        ws.resolve(bad)
    assert repr(bad) in str(info.value)


def test_symlinked_directory_pointing_outside_is_refused(ws: Workspace, outside: Path) -> None:
    ws.root.mkdir()
    (ws.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        ws.read("link/secret.txt")
    with pytest.raises(WorkspaceError):
        ws.write("link/new.txt", "x")
    with pytest.raises(WorkspaceError):
        ws.list("link")
    assert not (outside / "new.txt").exists()


def test_symlinked_file_pointing_outside_is_refused(ws: Workspace, outside: Path) -> None:
    ws.root.mkdir()
    (ws.root / "s.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(WorkspaceError):
        ws.read("s.txt")
    with pytest.raises(WorkspaceError):
        ws.write("s.txt", "overwritten")
    with pytest.raises(WorkspaceError):
        ws.append("s.txt", "more")
    assert (outside / "secret.txt").read_text() == "top secret"


def test_dangling_symlink_pointing_outside_is_refused(ws: Workspace, outside: Path) -> None:
    ws.root.mkdir()
    (ws.root / "d.txt").symlink_to(outside / "not-yet.txt")
    with pytest.raises(WorkspaceError):
        ws.write("d.txt", "x")
    assert not (outside / "not-yet.txt").exists()


def test_dotdot_through_symlink_is_resolved_before_checking(ws: Workspace, outside: Path) -> None:
    ws.root.mkdir()
    (outside / "deeper").mkdir()
    (ws.root / "link").symlink_to(outside / "deeper")
    with pytest.raises(WorkspaceError):
        ws.read("link/../secret.txt")


def test_nested_and_internal_paths_are_allowed(ws: Workspace) -> None:
    assert ws.resolve("a/b/c.txt") == Path(os.path.realpath(ws.root)) / "a/b/c.txt"
    assert ws.resolve("a/../b.txt").name == "b.txt"
    assert ws.resolve(".") == Path(os.path.realpath(ws.root))
    ws.write("real.txt", "inside")
    (ws.root / "alias.txt").symlink_to(ws.root / "real.txt")
    assert ws.read("alias.txt") == "inside"


def test_root_is_created_on_demand(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "root"
    Workspace(root).resolve("x")
    assert root.is_dir()


# --- file operations --------------------------------------------------------------


def test_write_append_read_list_roundtrip(ws: Workspace) -> None:
    ws.write("notes/plan.md", "step 1\n")
    ws.append("notes/plan.md", "step 2\n")
    ws.append("log.txt", "created by append")
    assert ws.read("notes/plan.md") == "step 1\nstep 2\n"
    assert ws.read("notes/plan.md", offset=7) == "step 2\n"
    assert ws.list() == "log.txt  (17 bytes)\nnotes/"
    assert ws.list("notes") == "plan.md  (14 bytes)"


def test_write_is_atomic_and_leaves_no_temp_files(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.write("f.txt", "old")

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(WorkspaceError, match="No space left"):
        ws.write("f.txt", "new")
    monkeypatch.undo()
    assert ws.read("f.txt") == "old"
    assert os.listdir(ws.root) == ["f.txt"]
    ws.write("f.txt", "new")
    assert ws.read("f.txt") == "new"
    assert os.listdir(ws.root) == ["f.txt"]


def test_read_caps_long_files_and_says_how_to_continue(ws: Workspace) -> None:
    ws.write("big.txt", "x" * (MAX_READ_CHARS + 10))
    first = ws.read("big.txt")
    assert first.startswith("x" * MAX_READ_CHARS)
    assert f"offset={MAX_READ_CHARS}" in first
    assert ws.read("big.txt", offset=MAX_READ_CHARS) == "x" * 10
    assert ws.read("big.txt", limit=3).startswith("xxx\n\n[Truncated")


def test_read_replaces_invalid_utf8(ws: Workspace) -> None:
    ws.root.mkdir()
    (ws.root / "bin").write_bytes(b"ok\xff")
    assert ws.read("bin") == "ok\ufffd"


def test_helpful_errors(ws: Workspace) -> None:
    with pytest.raises(WorkspaceError, match=r"'missing\.txt' does not exist"):
        ws.read("missing.txt")
    ws.write("d/f.txt", "x")
    with pytest.raises(WorkspaceError, match="is a directory"):
        ws.read("d")
    with pytest.raises(WorkspaceError, match="is a directory"):
        ws.write("d", "x")
    with pytest.raises(WorkspaceError, match="is a file"):
        ws.list("d/f.txt")
    with pytest.raises(WorkspaceError, match="offset"):
        ws.read("d/f.txt", offset=-1)


def test_list_caps_entry_count(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("enduro.tools.workspace.MAX_LIST_ENTRIES", 3)
    for i in range(5):
        ws.write(f"f{i}.txt", "")
    listing = ws.list().splitlines()
    assert listing[:3] == ["f0.txt  (0 bytes)", "f1.txt  (0 bytes)", "f2.txt  (0 bytes)"]
    assert "2 more entries" in listing[3]


def test_write_large_output(tmp_path: Path) -> None:
    rel = write_large_output(tmp_path, "../call_1/x", "big" * 1000)
    assert rel == ".outputs/_call_1_x.txt"
    assert (tmp_path / rel).read_text() == "big" * 1000
    assert Workspace(tmp_path).read(rel).startswith("bigbig")


# --- the LangChain tools ----------------------------------------------------------


@pytest.fixture
def tools() -> dict[str, BaseTool]:
    return {t.name: t for t in workspace_tools()}


def _cfg(root: Path) -> Any:
    return {"configurable": {"enduro_workspace": str(root)}}


def test_tool_names_and_hidden_config(tools: dict[str, BaseTool]) -> None:
    assert set(tools) == {"read_file", "write_file", "append_file", "list_files"}
    for t in tools.values():
        schema = t.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
        assert "config" not in schema["properties"]
        assert t.description


async def test_tools_roundtrip(tools: dict[str, BaseTool], tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    out = await tools["write_file"].ainvoke({"path": "a/b.txt", "content": "hello"}, config=cfg)
    assert out == "Wrote 5 characters to a/b.txt."
    await tools["append_file"].ainvoke({"path": "a/b.txt", "content": " world"}, config=cfg)
    assert await tools["read_file"].ainvoke({"path": "a/b.txt"}, config=cfg) == "hello world"
    assert await tools["read_file"].ainvoke({"path": "a/b.txt", "offset": 6}, config=cfg) == (
        "world"
    )
    assert await tools["list_files"].ainvoke({}, config=cfg) == "a/"
    # The sync path works too, for callers that are not async.
    assert tools["list_files"].invoke({"path": "a"}, config=cfg) == "b.txt  (11 bytes)"


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../x"])
async def test_tool_error_returns_message_not_exception(
    tools: dict[str, BaseTool], tmp_path: Path, bad: str
) -> None:
    text = await tools["read_file"].ainvoke({"path": bad}, config=_cfg(tmp_path))
    assert repr(bad) in text

    call = {"name": "read_file", "args": {"path": bad}, "id": "call-1", "type": "tool_call"}
    msg = await tools["read_file"].ainvoke(call, config=_cfg(tmp_path))
    assert isinstance(msg, ToolMessage)
    assert msg.status == "error"
    assert msg.tool_call_id == "call-1"
    assert repr(bad) in msg.content
    assert "relative" in msg.content or "outside the workspace" in msg.content


async def test_missing_file_and_bad_arguments_come_back_as_errors(
    tools: dict[str, BaseTool], tmp_path: Path
) -> None:
    call = {"name": "read_file", "args": {"path": "nope"}, "id": "c", "type": "tool_call"}
    msg = await tools["read_file"].ainvoke(call, config=_cfg(tmp_path))
    assert msg.status == "error"
    assert "does not exist" in msg.content

    call = {"name": "write_file", "args": {"path": "x"}, "id": "c", "type": "tool_call"}
    msg = await tools["write_file"].ainvoke(call, config=_cfg(tmp_path))
    assert msg.status == "error"
    assert "content" in msg.content


async def test_missing_workspace_config_fails_loudly(tools: dict[str, BaseTool]) -> None:
    # A misconfigured graph is a programming error the model cannot fix, so it is raised.
    with pytest.raises(WorkspaceNotConfigured, match="enduro_workspace"):
        await tools["read_file"].ainvoke({"path": "x"}, config={"configurable": {}})
