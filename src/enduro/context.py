"""Per-run knobs: LangGraph's `context_schema`, so Studio renders them as a form.

Nothing secret goes here (keys live in `Settings`); a context is stored with the thread and
shown in Studio.

Each field's attribute docstring is its help text in Studio: the Agent Server builds the form
from `TypeAdapter(EnduroContext).json_schema()` (langgraph's `get_context_jsonschema` for a
dataclass), and pydantic's `use_attribute_docstrings` turns those docstrings into each
property's `description`. The config is a plain dict, so importing this module does not import
pydantic (the status CLI stays fast).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from enduro.errors import ConfigError
from enduro.settings import DEFAULT_MODEL, DEFAULT_WORKSPACE

if TYPE_CHECKING:
    from pydantic import ConfigDict

LIMIT_KEYS: tuple[str, ...] = (
    "max_usd",
    "max_minutes",
    "max_iterations",
    "max_llm_calls",
    "max_tool_calls",
    "max_tokens",
    "deadline",
)


def _default_model() -> str:
    return os.environ.get("ENDURO_MODEL") or DEFAULT_MODEL


def _default_workspace() -> str:
    return os.environ.get("ENDURO_WORKSPACE") or str(DEFAULT_WORKSPACE)


@dataclass(kw_only=True)
class EnduroContext:
    """Knobs of one run. Limits left as None are unlimited."""

    # Read by pydantic when the Agent Server builds the JSON schema (Studio's form); a
    # ClassVar, so not a field.
    __pydantic_config__: ClassVar[ConfigDict] = {"use_attribute_docstrings": True}

    model: str = field(default_factory=_default_model)
    """Model name sent to the OpenAI-compatible endpoint."""
    max_usd: float | None = None
    """Hard spend limit in US dollars."""
    max_minutes: float | None = None
    """Active run time limit, summed over every segment of the run."""
    max_iterations: int | None = None
    """Agent-loop iterations (act calls) before a graceful finish."""
    max_llm_calls: int | None = None
    """Model calls before a graceful finish."""
    max_tool_calls: int | None = None
    """Tool calls before a graceful finish."""
    max_tokens: int | None = None
    """Prompt plus completion tokens over the whole run (reserved before each call)."""
    deadline: str | None = None
    """Absolute wall-clock deadline, ISO 8601 (e.g. `2026-01-31T18:00:00+00:00`)."""
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per-model price overrides in USD per million tokens: `{model: {"input": …, "output":
    …, "cached_input": …}}`; `{"input": 0, "output": 0}` marks a free, self-hosted model.
    Models not listed are priced from the genai-prices catalogue."""
    final_reserve_usd: float | None = None
    """Dollars kept back for finish's summarising call (default 5% of max_usd)."""
    call_timeout_seconds: float = 600.0
    """Longest a single model call may take (shortened further to the time left)."""
    tool_timeout_seconds: float = 300.0
    """Longest a single tool call may take (shortened further to the time left)."""
    max_output_tokens: int = 2048
    """`max_tokens` sent on every model call, so no answer is unbounded."""
    max_step_attempts: int = 3
    """How often reflect may send one step back before it counts as failed."""
    max_replans: int = 3
    """How often reflect may replace the remaining steps."""
    max_tool_rounds: int = 8
    """Tool rounds within one step before the step goes to reflect regardless."""
    large_output_chars: int = 4000
    """Tool outputs longer than this go to the workspace; state keeps a preview and a path."""
    workspace: str = field(default_factory=_default_workspace)
    """Directory holding one sub-directory per thread for the file tools."""
    allow_private_urls: bool = False
    """Let fetch_url and http_post reach private, loopback and link-local addresses."""
    approve: list[str] = field(default_factory=list)
    """Tools whose every call waits for a person's approval (`*`: every tool)."""
    side_effects: dict[str, str] = field(default_factory=dict)
    """Tools with an external side effect, run at most once per call: `{tool: policy}`
    where policy says what a resume does when a crash left the outcome unknown (`retry`,
    `skip` or `ask`)."""
    approval_timeout_seconds: float | None = None
    """Pending approvals and questions older than this are answered automatically (a
    rejection) when the thread is next touched; None waits forever."""
    post_hosts: list[str] = field(default_factory=list)
    """Host names http_post may send to; empty leaves http_post out of the tools."""
    mcp_config: str | None = None
    """Path of the MCP config file the run loads its MCP tools from (never its contents:
    `${VAR}` references are resolved again from the environment at every start)."""
    mcp_config_sha256: str | None = None
    """Hash of that file when the run started, to warn when a resume finds it changed."""

    def limits(self) -> dict[str, float | int | str | None]:
        """The limits as the status JSON shows them."""
        return {key: getattr(self, key) for key in LIMIT_KEYS}

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-able data (how the context is stored with the thread)."""
        return asdict(self)

    def with_overrides(self, overrides: ContextOverrides) -> EnduroContext:
        """This context with the knobs given for one segment; knobs left None carry over.

        Args:
            overrides: new values; `overrides.unset` names limits to remove, and
                `overrides.prices` is merged per model, where the key "" stands for the
                model in effect after the overrides (the CLI flags' "this model").

        Returns:
            A new context; `self` is unchanged.
        """
        data = self.to_dict()
        for key in _OVERRIDABLE:
            value = getattr(overrides, key)
            if value is not None:
                data[key] = value
        for key in overrides.unset:
            data[key] = None
        prices = dict(data.get("prices") or {})
        for model, spec in overrides.prices.items():
            name = model or data["model"]
            prices[name] = {**prices.get(name, {}), **spec}
        data["prices"] = prices
        return EnduroContext.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnduroContext:
        """Build from stored JSON, ignoring keys a newer or older version wrote."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, kw_only=True)
class ContextOverrides:
    """Knobs given for one segment of a run (a resume's command line, a worker's job).

    Each field left None keeps the thread's stored value; see `EnduroContext` for units.
    """

    model: str | None = None
    """Model name for this and later segments."""
    max_usd: float | None = None
    """Spend limit in US dollars."""
    max_minutes: float | None = None
    """Active run time limit in minutes, over every segment."""
    max_iterations: int | None = None
    """Agent-loop iterations."""
    max_llm_calls: int | None = None
    """Model calls."""
    max_tool_calls: int | None = None
    """Tool calls."""
    max_tokens: int | None = None
    """Prompt plus completion tokens over the whole run."""
    deadline: str | None = None
    """Absolute wall-clock deadline, ISO 8601."""
    final_reserve_usd: float | None = None
    """Dollars kept back for finish's summarising call."""
    max_output_tokens: int | None = None
    """`max_tokens` sent on every model call."""
    workspace: str | None = None
    """Directory of the per-thread workspaces."""
    allow_private_urls: bool | None = None
    """Let fetch_url reach private addresses."""
    approve: list[str] | None = None
    """Tools whose calls wait for approval (replaces the stored list)."""
    side_effects: dict[str, str] | None = None
    """Side-effecting tools and their policies (replaces the stored map)."""
    approval_timeout_seconds: float | None = None
    """Seconds after which pending approvals and questions are answered automatically."""
    post_hosts: list[str] | None = None
    """Hosts http_post may send to (replaces the stored list)."""
    mcp_config: str | None = None
    """Path of the MCP config file."""
    mcp_config_sha256: str | None = None
    """Hash of the MCP config file when it was last loaded."""
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Price overrides in USD per million tokens, merged per model into the stored ones; the
    key "" means the model in effect after these overrides."""
    unset: tuple[str, ...] = ()
    """Limits (names from `LIMIT_KEYS`) to remove."""

    def __post_init__(self) -> None:
        """Check `unset`.

        Raises:
            ConfigError: `unset` names something that is not a limit.
        """
        bad = [name for name in self.unset if name not in LIMIT_KEYS]
        if bad:
            raise ConfigError(
                f"cannot unset {bad}: only limits can be removed ({', '.join(LIMIT_KEYS)})"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ContextOverrides:
        """Overrides from a plain mapping (e.g. JSON a job queue carried).

        Raises:
            ConfigError: a key is not a field of `ContextOverrides`; the message names it.
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown context overrides {unknown}: known are {', '.join(sorted(known))}"
            )
        data = dict(values)
        if "unset" in data:
            data["unset"] = tuple(data["unset"])
        return cls(**data)


_OVERRIDABLE = tuple(
    k for k in ContextOverrides.__dataclass_fields__ if k not in ("prices", "unset")
)
