"""enduro: durable, budgeted, observable LangGraph agents for runs of hours or days.

The public API is what `__all__` lists; everything else is internal and may change.

Invariant: importing `enduro` (or any submodule, such as `enduro.cli` or `enduro.client`)
imports neither LangGraph's graph modules nor langchain-openai. The exports below load on
first attribute access (PEP 562 module `__getattr__`), so `enduro status` answers in a
fraction of the time that building a graph costs, while `from enduro import build_graph`
works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enduro import errors
    from enduro.client import Client, ThreadStatus, ThreadSummary
    from enduro.context import EnduroContext
    from enduro.errors import (
        BudgetStop,
        ConfigError,
        EnduroError,
        ErrorCode,
        PricingUnknown,
        ProviderStop,
        RunStop,
        StopReason,
        UnknownThread,
    )
    from enduro.graph import build_graph
    from enduro.runner import Outcome, advance_thread
    from enduro.state import AgentState
    from enduro.tools import default_tools

# Public name -> module that defines it.
_EXPORTS: dict[str, str] = {
    "AgentState": "enduro.state",
    "BudgetStop": "enduro.errors",
    "Client": "enduro.client",
    "ConfigError": "enduro.errors",
    "EnduroContext": "enduro.context",
    "EnduroError": "enduro.errors",
    "ErrorCode": "enduro.errors",
    "Outcome": "enduro.runner",
    "PricingUnknown": "enduro.errors",
    "ProviderStop": "enduro.errors",
    "RunStop": "enduro.errors",
    "StopReason": "enduro.errors",
    "ThreadStatus": "enduro.client",
    "ThreadSummary": "enduro.client",
    "UnknownThread": "enduro.errors",
    "advance_thread": "enduro.runner",
    "build_graph": "enduro.graph",
    "default_tools": "enduro.tools",
}

__all__ = [
    "AgentState",
    "BudgetStop",
    "Client",
    "ConfigError",
    "EnduroContext",
    "EnduroError",
    "ErrorCode",
    "Outcome",
    "PricingUnknown",
    "ProviderStop",
    "RunStop",
    "StopReason",
    "ThreadStatus",
    "ThreadSummary",
    "UnknownThread",
    "advance_thread",
    "build_graph",
    "default_tools",
    "errors",
]


def __getattr__(name: str) -> Any:
    """Load a public name on first use (see the module docstring for why).

    Raises:
        AttributeError: `name` is not part of enduro's public API.
    """
    if name == "errors":
        return importlib.import_module("enduro.errors")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'enduro' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
