"""The saver `langgraph dev` uses (langgraph.json `checkpointer.path`).

It is enduro's own database, so threads started by the CLI can be read and continued in the dev
server and Studio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from enduro.settings import Settings
from enduro.storage import open_backend


@asynccontextmanager
async def checkpointer() -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """Yield the saver on `ENDURO_DATABASE_URL` (SQLite path or PostgreSQL URL).

    `langgraph dev` enters this once at startup and closes it at shutdown.

    Raises:
        ConfigError: the database URL is missing or not one enduro can open.
    """
    async with open_backend(Settings.from_env().database_url) as backend:
        yield backend.saver
