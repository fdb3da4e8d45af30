"""An MCP server for the test suite, written with the official `mcp` package (FastMCP).

    python tests/mcpserver.py stdio
    python tests/mcpserver.py http PORT

Tools: `add(a, b)`, `record(note)` (appends the note to the file named by MCP_EFFECTS: the
test counts effects there) and `crash()` (the server process exits in the middle of the
call, as a server that dies mid-run).
"""

from __future__ import annotations

import os
import sys

from mcp.server.fastmcp import FastMCP

server = FastMCP("enduro-test", host="127.0.0.1", port=int(sys.argv[2]) if len(sys.argv) > 2 else 0)


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool()
def record(note: str) -> str:
    """Record a note (an external effect)."""
    with open(os.environ["MCP_EFFECTS"], "a") as f:
        f.write(note + "\n")
    return f"recorded {note!r}"


@server.tool()
def crash() -> str:
    """Die in the middle of the call."""
    os._exit(1)


if __name__ == "__main__":
    server.run(transport="stdio" if sys.argv[1] == "stdio" else "streamable-http")
