"""Tools from MCP servers (`--mcp-config FILE`), through langchain-mcp-adapters.

The file is the common `mcpServers` JSON, with enduro's per-server and per-tool settings:

    {"mcpServers": {
       "files": {"command": "python", "args": ["server.py"], "env": {"TOKEN": "${TOKEN}"},
                 "approve": ["delete"],            # or true: every tool of the server
                 "sideEffect": "retry",            # every tool of the server (retry|skip|ask)
                 "tools": {"write": {"approve": true, "sideEffect": "ask"}}},
       "remote": {"url": "https://mcp.example/mcp", "headers": {"Authorization": "Bearer ${KEY}"}}
    }}

Invariants:
- Tools are named `server__tool`, so two servers' tools never collide and the approval and
  side-effect flags (`--approve files__delete`) name one tool exactly.
- `${VAR}` is resolved from the environment each time the file is loaded and never stored:
  the thread keeps the file's path and a hash of its text; a resume (or a worker) loads it
  again and warns when the hash changed.
- Every server is started (stdio) or reached (HTTP) and asked for its tools before the run
  starts; one that fails is a ConfigError naming it (exit 2, nothing ran). Each tool call
  opens its own session (the adapters' default), so a server that died mid-run is started
  again by the next call, and a call that fails is a tool error the model sees.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from langchain_core.tools import BaseTool

from enduro.errors import ConfigError
from enduro.hitl.policy import EFFECT_POLICIES, requires_approval, side_effect

if TYPE_CHECKING:
    from langchain_mcp_adapters.sessions import Connection

SEPARATOR = "__"
LOAD_TIMEOUT_SECONDS = 30.0
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class McpServer:
    """One server of the file, with `${VAR}` resolved."""

    name: str
    connection: dict[str, Any]
    """A langchain-mcp-adapters connection (stdio or streamable_http)."""
    settings: dict[str, Any]
    """enduro's keys: approve, sideEffect, tools."""


def file_sha256(path: str) -> str:
    """Hash of the file's text as written (references unresolved: no secret is hashed)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_config(path: str, environ: dict[str, str] | None = None) -> list[McpServer]:
    """The servers of an MCP config file.

    Raises:
        ConfigError: the file is missing or not JSON, has no `mcpServers` object, a server
            is neither stdio (`command`) nor HTTP (`url`), a setting is not valid, or a
            `${VAR}` is not set; the message names the file, the server and the key.
    """
    env = dict(os.environ if environ is None else environ)
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"--mcp-config {path!r}: no such file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--mcp-config {path!r} is not readable JSON: {exc}") from None
    servers = raw.get("mcpServers") if isinstance(raw, dict) else None
    if not isinstance(servers, dict) or not servers:
        raise ConfigError(f"--mcp-config {path!r} has no `mcpServers` object")
    return [_server(path, name, spec, env) for name, spec in servers.items()]


def _server(path: str, name: str, spec: Any, env: dict[str, str]) -> McpServer:
    where = f"MCP server {name!r} in {path}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected an object")
    if SEPARATOR in name or not name:
        raise ConfigError(f"{where}: a server name must be non-empty and not contain '__'")
    spec = _resolve(spec, env, where)
    if "command" in spec:
        connection: dict[str, Any] = {
            "transport": "stdio",
            "command": str(spec["command"]),
            "args": [str(a) for a in spec.get("args") or []],
        }
        if spec.get("env"):
            # The server gets PATH etc. too: an env given here adds to the run's own.
            connection["env"] = {**env, **{k: str(v) for k, v in spec["env"].items()}}
        if spec.get("cwd"):
            connection["cwd"] = str(spec["cwd"])
    elif "url" in spec:
        connection = {"transport": "streamable_http", "url": str(spec["url"])}
        if spec.get("headers"):
            connection["headers"] = {k: str(v) for k, v in spec["headers"].items()}
    else:
        raise ConfigError(f"{where}: give `command` (stdio) or `url` (streamable HTTP)")
    settings = {k: spec[k] for k in ("approve", "sideEffect", "tools") if k in spec}
    _check_settings(where, settings)
    return McpServer(name, connection, settings)


def _resolve(value: Any, env: dict[str, str], where: str) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            var = match.group(1)
            if var not in env:
                raise ConfigError(f"{where}: ${{{var}}} is not set in the environment")
            return env[var]

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_resolve(v, env, where) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, env, where) for k, v in value.items()}
    return value


def _check_settings(where: str, settings: dict[str, Any]) -> None:
    approve = settings.get("approve")
    if approve is not None and not isinstance(approve, bool | list):
        raise ConfigError(f"{where}: `approve` must be true, false or a list of tool names")
    policies = [settings.get("sideEffect")]
    for tool, per in (settings.get("tools") or {}).items():
        if not isinstance(per, dict):
            raise ConfigError(f"{where}: `tools.{tool}` must be an object")
        policies.append(per.get("sideEffect"))
    for policy in policies:
        if policy is not None and policy not in EFFECT_POLICIES:
            raise ConfigError(
                f"{where}: sideEffect {policy!r} is not one of {', '.join(EFFECT_POLICIES)}"
            )


def _apply_settings(tool: BaseTool, original: str, settings: dict[str, Any]) -> BaseTool:
    per = (settings.get("tools") or {}).get(original) or {}
    approve = settings.get("approve")
    if per.get("approve") or approve is True or (isinstance(approve, list) and original in approve):
        requires_approval(tool)
    policy = per.get("sideEffect") or settings.get("sideEffect")
    if policy:
        side_effect(tool, policy)
    return tool


async def _server_tools(server: McpServer) -> list[BaseTool]:
    from langchain_mcp_adapters.tools import load_mcp_tools

    try:
        async with asyncio.timeout(LOAD_TIMEOUT_SECONDS):
            tools = await load_mcp_tools(
                None,
                connection=cast("Connection", server.connection),
                server_name=server.name,
            )
    except Exception as exc:
        raise ConfigError(
            f"MCP server {server.name!r} failed to start or answer: {_reason(exc)}. Check its "
            "`command`/`url` in the --mcp-config file, or run it by hand to see its errors"
        ) from None
    out = []
    for tool in tools:
        original = tool.name
        tool.name = f"{server.name}{SEPARATOR}{original}"
        out.append(_apply_settings(tool, original, server.settings))
    return out


def _reason(exc: BaseException) -> str:
    """The innermost message of an exception group (anyio wraps transport failures)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return f"no answer within {LOAD_TIMEOUT_SECONDS:g}s"
    return f"{type(exc).__name__}: {exc}"[:500]


async def load_mcp_tools(path: str) -> list[BaseTool]:
    """Every tool of every server in the file, named `server__tool`.

    The file's approval and side-effect settings are applied.

    Raises:
        ConfigError: the file is invalid or a server failed to start or answer.
    """
    servers = read_config(path)
    groups = await asyncio.gather(*(_server_tools(s) for s in servers))
    return [tool for group in groups for tool in group]
