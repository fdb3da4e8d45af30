"""Per-thread workspace directory and the file tools the model uses on it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field, ValidationError

WORKSPACE_CONFIG_KEY = "enduro_workspace"
MAX_READ_CHARS = 200_000
MAX_LIST_ENTRIES = 500
OUTPUTS_DIR = ".outputs"

_SKIP_CHUNK = 1 << 20


class WorkspaceError(ValueError):
    """A path or operation the workspace refuses; the text is meant for the model."""


class WorkspaceNotConfigured(RuntimeError):
    """The graph invoked a file tool without telling it which workspace to use."""


class Workspace:
    """A directory that file operations cannot escape.

    Every path is relative to ``root`` and is checked after resolving symlinks, so a
    link inside the workspace cannot be used to reach files outside it.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def resolve(self, path: str) -> Path:
        """The real path of `path` inside the workspace, symlinks resolved.

        Raises:
            WorkspaceError: `path` is not a string, holds a NUL, is absolute or starts with
                `~`, or leads outside the workspace (through `..` or a symlink).
        """
        if not isinstance(path, str) or "\x00" in path:
            raise WorkspaceError(f"Invalid path {path!r}: use a plain relative path string.")
        if os.path.isabs(path) or path.startswith("~"):
            raise WorkspaceError(
                f"Path {path!r} is absolute; use a path relative to the workspace, e.g. 'notes.md'."
            )
        root = self._real_root()
        # realpath follows every symlink, dangling ones included, before applying "..",
        # so the containment check sees where the OS would actually go.
        target = Path(os.path.realpath(root / (path or ".")))
        if not target.is_relative_to(root):
            raise WorkspaceError(
                f"Path {path!r} leads outside the workspace; only paths inside it are allowed."
            )
        return target

    def read(self, path: str, offset: int = 0, limit: int = MAX_READ_CHARS) -> str:
        """Up to `limit` characters of a text file from character `offset`.

        `limit` is capped at `MAX_READ_CHARS`; a longer file ends with a note giving the
        offset to read on from. Undecodable bytes are replaced.

        Raises:
            WorkspaceError: a negative offset, a non-positive limit, a path that is missing,
                outside the workspace or a directory, or an OS error (named in the text).
        """
        if offset < 0 or limit <= 0:
            raise WorkspaceError(
                f"Bad range offset={offset}, limit={limit}: offset must be >= 0 and limit > 0."
            )
        limit = min(limit, MAX_READ_CHARS)
        target = self._existing(path)
        if target.is_dir():
            raise WorkspaceError(f"{path!r} is a directory; use list_files to see its contents.")
        with _os_errors(path), target.open(encoding="utf-8", errors="replace") as f:
            skipped = 0
            # Text offsets count characters, which cannot be seeked to directly.
            while skipped < offset and (chunk := f.read(min(_SKIP_CHUNK, offset - skipped))):
                skipped += len(chunk)
            text = f.read(limit + 1)
        if len(text) <= limit:
            if not text and offset:
                return f"[{path!r} has no text at offset {offset}; the file is shorter.]"
            return text
        end = offset + limit
        return (
            f"{text[:limit]}\n\n[Truncated: showed characters {offset}-{end} of {path!r}. "
            f"Call read_file with offset={end} to read more.]"
        )

    def write(self, path: str, content: str) -> None:
        """Replace (or create) a file with `content`, atomically, creating parent directories.

        Readers and a crash see the old file or the new one, never half of it.

        Raises:
            WorkspaceError: the path is outside the workspace or not writable.
        """
        target = self._writable(path)
        with _os_errors(path):
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write to a sibling temp file and rename so readers and crashes never
            # see a half-written file; the same directory keeps os.replace atomic.
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(content)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    def append(self, path: str, content: str) -> None:
        """Append `content` to a file, creating it and its parent directories if needed.

        Raises:
            WorkspaceError: the path is outside the workspace or not writable.
        """
        target = self._writable(path)
        with _os_errors(path):
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a", encoding="utf-8") as f:
                f.write(content)

    def list(self, path: str = ".") -> str:
        """One line per entry of a directory, sorted by name, at most `MAX_LIST_ENTRIES`.

        Raises:
            WorkspaceError: the path is missing, outside the workspace or a file.
        """
        target = self._existing(path)
        if not target.is_dir():
            raise WorkspaceError(f"{path!r} is a file, not a directory; use read_file to read it.")
        with _os_errors(path), os.scandir(target) as it:
            entries = sorted(it, key=lambda e: e.name)
            lines = [_describe(e) for e in entries[:MAX_LIST_ENTRIES]]
        if len(entries) > MAX_LIST_ENTRIES:
            lines.append(
                f"... and {len(entries) - MAX_LIST_ENTRIES} more entries; list a subdirectory "
                "to narrow down."
            )
        return "\n".join(lines) if lines else f"({path!r} is empty)"

    def _real_root(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(os.path.realpath(self.root))

    def _existing(self, path: str) -> Path:
        target = self.resolve(path)
        if not target.exists():
            raise WorkspaceError(f"{path!r} does not exist; use list_files to see what does.")
        return target

    def _writable(self, path: str) -> Path:
        target = self.resolve(path)
        if target.is_dir():
            raise WorkspaceError(f"{path!r} is a directory; give a file path such as 'dir/x.txt'.")
        return target


def _describe(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return f"{entry.name}@ (symlink)"
    if entry.is_dir():
        return f"{entry.name}/"
    return f"{entry.name}  ({entry.stat().st_size} bytes)"


@contextlib.contextmanager
def _os_errors(path: str) -> Iterator[None]:
    # OS errors would otherwise escape the tool and crash the graph; the model can
    # usually recover from them if it is told what went wrong.
    try:
        yield
    except OSError as exc:
        raise WorkspaceError(f"Cannot access {path!r}: {exc.strerror or exc}.") from exc


def write_large_output(root: Path, name: str, text: str) -> str:
    """Save a bulky tool output in the workspace and return its workspace-relative path."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:100] or "output"
    relative = f"{OUTPUTS_DIR}/{safe}.txt"
    Workspace(root).write(relative, text)
    return relative


# --- LangChain tools -------------------------------------------------------------


class _PathArgs(BaseModel):
    path: str = Field(description="File path relative to the workspace root, e.g. 'notes/plan.md'.")


class _ReadArgs(_PathArgs):
    offset: int = Field(default=0, ge=0, description="Character offset to start reading at.")
    limit: int = Field(
        default=MAX_READ_CHARS,
        gt=0,
        description=f"Maximum characters to return (at most {MAX_READ_CHARS}).",
    )


class _WriteArgs(_PathArgs):
    content: str = Field(description="Text to write.")


class _ListArgs(BaseModel):
    path: str = Field(default=".", description="Directory relative to the workspace root.")


def _workspace_from(config: RunnableConfig) -> Workspace:
    root = config.get("configurable", {}).get(WORKSPACE_CONFIG_KEY)
    if not root:
        raise WorkspaceNotConfigured(
            f"No workspace configured: pass config={{'configurable': {{'{WORKSPACE_CONFIG_KEY}': "
            "'/path/to/dir'}} when invoking the graph or tool."
        )
    return Workspace(str(root))


def _read(ws: Workspace, path: str, offset: int = 0, limit: int = MAX_READ_CHARS) -> str:
    return ws.read(path, offset, limit)


def _write(ws: Workspace, path: str, content: str) -> str:
    ws.write(path, content)
    return f"Wrote {len(content)} characters to {path}."


def _append(ws: Workspace, path: str, content: str) -> str:
    ws.append(path, content)
    return f"Appended {len(content)} characters to {path}."


def _list(ws: Workspace, path: str = ".") -> str:
    return ws.list(path)


_Op = Callable[..., str]


def _as_tool(name: str, description: str, args: type[BaseModel], op: _Op) -> BaseTool:
    def run(config: RunnableConfig, **kwargs: object) -> str:
        try:
            return op(_workspace_from(config), **kwargs)
        except WorkspaceError as exc:
            raise ToolException(str(exc)) from exc

    async def arun(config: RunnableConfig, **kwargs: object) -> str:
        # File I/O blocks; keep it off the event loop that runs the whole graph.
        return await asyncio.to_thread(run, config, **kwargs)

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=name,
        description=description,
        args_schema=args,
        handle_tool_error=True,
        handle_validation_error=_explain_validation_error,
    )


def _explain_validation_error(exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
    )
    return f"Invalid arguments ({problems}). Fix them and call the tool again."


def workspace_tools() -> list[BaseTool]:
    """The four file tools; each reads its workspace root from the run config."""
    return [
        _as_tool(
            "read_file",
            "Read a text file from your workspace. Long files come back in pieces of at most "
            f"{MAX_READ_CHARS} characters; use offset to continue where a piece ended.",
            _ReadArgs,
            _read,
        ),
        _as_tool(
            "write_file",
            "Create or overwrite a text file in your workspace (parent directories are "
            "created). Use it to keep notes, plans and results that must survive long runs.",
            _WriteArgs,
            _write,
        ),
        _as_tool(
            "append_file",
            "Append text to the end of a file in your workspace, creating it if missing. "
            "Include your own newlines.",
            _WriteArgs,
            _append,
        ),
        _as_tool(
            "list_files",
            "List a directory in your workspace: directories end with '/', files show sizes. "
            "Large tool outputs are saved under .outputs/.",
            _ListArgs,
            _list,
        ),
    ]
