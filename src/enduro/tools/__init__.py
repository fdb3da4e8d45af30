"""Tools the agent can call.

Workspace files, web fetching, asking a person, and (when the run allows hosts) JSON POSTs.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool

from enduro.tools.ask import make_ask_human_tool
from enduro.tools.fetch import FetchRefused, check_address, make_fetch_tool
from enduro.tools.post import make_http_post_tool
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
    "make_ask_human_tool",
    "make_fetch_tool",
    "make_http_post_tool",
    "workspace_tools",
    "write_large_output",
]


def default_tools(allow_private: bool = False, *, post: bool = False) -> list[BaseTool]:
    """The workspace file tools, fetch_url and ask_human; with `post`, http_post too.

    http_post sends only to the hosts the run's context allows. allow_private is for trusted local
    setups.
    """
    tools = [
        *workspace_tools(),
        make_fetch_tool(allow_private=allow_private),
        make_ask_human_tool(),
    ]
    if post:
        tools.append(make_http_post_tool())
    return tools
