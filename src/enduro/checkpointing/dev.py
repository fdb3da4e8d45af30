"""The saver `langgraph dev` uses (langgraph.json `checkpointer.path`): enduro's own database,
so threads started by the CLI can be read and continued in the dev server and Studio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from enduro.settings import Settings
from enduro.storage import open_backend


@asynccontextmanager
async def checkpointer() -> AsyncIterator[BaseCheckpointSaver[Any]]:
    async with open_backend(Settings.from_env().database_url) as backend:
        yield backend.saver
