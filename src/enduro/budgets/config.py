"""Checks made before a run starts.

A bad budget is an error at once (exit 2), not a failure hours later.
"""

from __future__ import annotations

from enduro.budgets.limits import deadline_epoch
from enduro.budgets.pricing import override_price, require_price
from enduro.context import EnduroContext
from enduro.errors import ConfigError


def check_budget_config(context: EnduroContext, model: str | None = None) -> None:
    """Refuse a context whose limits cannot be kept (ConfigError, naming what to change).

    model: the model name calls will be priced under (default: the context's).
    """
    for name, spec in (context.prices or {}).items():
        try:
            override_price(spec)
        except ConfigError as exc:
            raise ConfigError(f"price override for model {name!r}: {exc}") from None
    if context.max_usd is not None:
        require_price(model or context.model, context.prices)
        reserve = context.final_reserve_usd
        if reserve is not None and not 0 <= reserve < context.max_usd:
            raise ConfigError(
                f"final reserve ${reserve} must be at least 0 and less than --max-usd "
                f"${context.max_usd}: lower --final-reserve-usd or raise --max-usd"
            )
    deadline_epoch(context.deadline)
    if context.max_output_tokens < 1:
        raise ConfigError(f"max_output_tokens must be at least 1, got {context.max_output_tokens}")
