"""Process settings from the environment. Secrets live here and never in state or context."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from enduro.errors import ConfigError

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_DB_PATH = Path(".enduro") / "enduro.sqlite"
DEFAULT_WORKSPACE = Path(".enduro") / "workspaces"


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


@dataclass(frozen=True)
class Settings:
    """What the process knows from flags and env: flags win over env, env over defaults."""

    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    model: str = DEFAULT_MODEL
    database_url: str = str(DEFAULT_DB_PATH)
    workspace: str = str(DEFAULT_WORKSPACE)
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Env values, with non-None overrides (CLI flags) on top."""
        hooks = tuple(u for u in (_env("ENDURO_WEBHOOK_URL") or "").split(",") if u.strip())
        values: dict[str, object] = {
            "api_key": _env("OPENAI_API_KEY"),
            "base_url": _env("OPENAI_BASE_URL"),
            "model": _env("ENDURO_MODEL") or DEFAULT_MODEL,
            "database_url": _env("ENDURO_DATABASE_URL") or str(DEFAULT_DB_PATH),
            "workspace": _env("ENDURO_WORKSPACE") or str(DEFAULT_WORKSPACE),
            "webhook_urls": hooks,
            "webhook_secret": _env("ENDURO_WEBHOOK_SECRET"),
        }
        for key, value in overrides.items():
            if value is not None and value != ():
                values[key] = value
        return cls(**values)  # type: ignore[arg-type]

    def require_model_endpoint(self) -> None:
        """Refuse to start a run that cannot reach any model."""
        if not self.api_key and not self.base_url:
            raise ConfigError(
                "no model endpoint configured: set OPENAI_API_KEY (for OpenAI) or "
                "OPENAI_BASE_URL / --base-url (for an OpenAI-compatible server such as "
                "Ollama or vLLM, e.g. http://127.0.0.1:11434/v1)"
            )
