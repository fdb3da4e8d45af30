"""Tools the agent can call: workspace files and web fetching."""

from __future__ import annotations

from langchain_core.tools import BaseTool

from enduro.tools.fetch import FetchRefused, check_address, make_fetch_tool
from enduro.tools.workspace import (
    Workspace,
    WorkspaceError,
    WorkspaceNotConfigured,
    workspace_tools,
    write_large_output,
)

__all__ = [
    "FetchRefused",
    "Workspace",
    "WorkspaceError",
    "WorkspaceNotConfigured",
    "check_address",
    "default_tools",
    "make_fetch_tool",
    "workspace_tools",
    "write_large_output",
]


def default_tools(allow_private: bool = False) -> list[BaseTool]:
    """The workspace file tools plus fetch_url; allow_private is for trusted local setups."""
    return [*workspace_tools(), make_fetch_tool(allow_private=allow_private)]
