"""Chat models across event loops.

What a caller may pass as the model, and how enduro keeps it usable when one process runs
jobs under successive event loops.

Invariant: a model call made on event loop L touches only async HTTP clients that were
created on L or never used before. Such clients (httpx's, httpx2's, aiohttp's sessions)
keep pooled connections bound to the loop that opened them; a worker that runs each job
under its own `asyncio.run(...)` would otherwise get `RuntimeError: Event loop is closed` on
its second job. langchain-openai makes this easy to hit: every ChatOpenAI built with a
hashable timeout (the default) shares one process-wide cached client, so even a factory
that builds a fresh ChatOpenAI per job hands it the first loop's connections.

So every model enduro calls goes through `bind_to_loop` once per graph and event loop:

- a class with a registered binder gets a copy with clients of its own: ChatOpenAI and
  every other `BaseChatOpenAI` subclass are built in; `register_loop_binder` adds others;
- any other model is checked: when it reaches an async HTTP client that an earlier call used
  on another event loop, enduro refuses before calling it (for an instance passed to
  `advance_thread`: before the run starts) and says what to do instead.
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel

from enduro.context import EnduroContext
from enduro.errors import ConfigError

ModelFactory = Callable[[EnduroContext], BaseChatModel]
"""Builds the chat model for a run from its context (called once per graph and loop)."""
ModelSource = BaseChatModel | ModelFactory | None
"""What a caller may pass as the model: an instance, a factory, or None for enduro's own."""

M = TypeVar("M", bound=BaseChatModel)
LoopBinder = Callable[[M], M]
"""Returns the model with async HTTP clients of its own, for the running event loop."""

_BINDERS: dict[type[Any], Callable[[Any], Any]] = {}
# Client object -> the loop a call last used it on (weakly both ways: neither is kept alive).
_USED_ON: weakref.WeakKeyDictionary[Any, weakref.ref[asyncio.AbstractEventLoop]] = (
    weakref.WeakKeyDictionary()
)
_SCAN_DEPTH = 4
_SCAN_LIMIT = 400
_SKIP = (str, bytes, int, float, bool, type(None), type)


class LoopBoundModel(ConfigError):
    """The model holds an async HTTP client that a call already used on another event loop."""


def model_name_of(model: BaseChatModel, default: str) -> str:
    """The model name a chat model sends (`model_name` or `model`), else `default`."""
    for attr in ("model_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return default


def register_loop_binder(cls: type[M], binder: LoopBinder[M]) -> None:
    """Teach enduro to give models of `cls` (and its subclasses) fresh clients per loop.

    Args:
        cls: a chat model class, e.g. a provider's `ChatFoo`.
        binder: `(model) -> model` returning a copy whose async HTTP clients are new (not
            yet used); called once per graph and event loop, in that loop.
    """
    _BINDERS[cls] = binder


def bind_to_loop(model: M) -> M:
    """`model`, made safe to call on the running event loop (see the module docstring).

    Raises:
        LoopBoundModel: the model is of a class without a binder and reaches an async
            HTTP client already used on another event loop; the message says what to do.
    """
    binder = _binder_for(type(model))
    if binder is not None:
        bound: M = binder(model)
        return bound
    check_loop(model)
    return model


def check_loop(model: BaseChatModel) -> None:
    """Refuse a model that would fail on this loop (see `bind_to_loop`).

    A model of a class with a registered binder always passes, since it is rebound.

    Raises:
        LoopBoundModel: the model reaches a client used on another event loop.
    """
    if _binder_for(type(model)) is None:
        _refuse_if_used_elsewhere(model)


def _refuse_if_used_elsewhere(model: BaseChatModel) -> None:
    loop = _current_loop()
    for path, client in _clients(model):
        used = _USED_ON.get(client)
        if used is not None and used() is not loop:
            name = type(model).__name__
            raise LoopBoundModel(
                f"model {name} holds an async HTTP client ({name}{path}) that was used on "
                "another event loop, whose connections cannot be used on this one (the call "
                "would fail with 'Event loop is closed'). Pass a factory that builds the model "
                f"and its client for each run instead: model=lambda context: {name}(...); or "
                f"teach enduro to rebuild it: enduro.models.register_loop_binder({name}, "
                "lambda m: <m with a new client>)"
            )


def note_used(model: BaseChatModel) -> None:
    """Record that a call on the running loop used the async HTTP clients `model` reaches."""
    loop = _current_loop()
    if loop is None:
        return
    for _, client in _clients(model):
        _USED_ON[client] = weakref.ref(loop)


def _current_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _binder_for(cls: type[Any]) -> Callable[[Any], Any] | None:
    _register_builtin()
    for klass in cls.__mro__:
        if klass in _BINDERS:
            return _BINDERS[klass]
    return None


# Async HTTP client classes whose connections belong to one event loop: httpx's, httpx2's
# (openai >= 3 speaks through it) and aiohttp's. Looked up only among imported modules:
# a model can only hold a client of a library that is loaded.
_LOOP_BOUND = (("httpx", "AsyncClient"), ("httpx2", "AsyncClient"), ("aiohttp", "ClientSession"))


def _loop_bound_types() -> tuple[type[Any], ...]:
    kinds = (getattr(sys.modules.get(mod), name, None) for mod, name in _LOOP_BOUND)
    return tuple(kind for kind in kinds if isinstance(kind, type))


def _clients(model: BaseChatModel) -> Iterator[tuple[str, Any]]:
    """Async HTTP clients reachable from `model`'s attributes, breadth first and bounded.

    Each with the attribute path that reaches it, e.g. `.root_async_client._client`.
    """
    kinds = _loop_bound_types()
    seen: set[int] = set()
    queue: list[tuple[str, Any, int]] = [("", model, 0)]
    while queue and len(seen) < _SCAN_LIMIT:
        path, obj, depth = queue.pop(0)
        if id(obj) in seen or isinstance(obj, _SKIP):
            continue
        seen.add(id(obj))
        if isinstance(obj, kinds):
            yield path, obj
            continue
        if depth < _SCAN_DEPTH:
            queue.extend((f"{path}{key}", value, depth + 1) for key, value in _children(obj))


def _children(obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        yield from ((f"[{k!r}]", v) for k, v in obj.items())
        return
    if isinstance(obj, list | tuple | set | frozenset):
        yield from ((f"[{i}]", v) for i, v in enumerate(obj))
        return
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):
        yield from ((f".{k}", v) for k, v in attrs.items())
    private = getattr(obj, "__pydantic_private__", None)
    if isinstance(private, dict):
        yield from ((f".{k}", v) for k, v in private.items())


# -- built in: langchain-openai ---------------------------------------------------------------

_OPENAI_CLIENT_FIELDS = frozenset(
    {"client", "async_client", "root_client", "root_async_client", "http_async_client"}
)


def _bind_openai(model: Any) -> Any:
    """A copy of a ChatOpenAI (or any BaseChatOpenAI) with an async HTTP client of its own.

    Built from the fields the caller set, so its settings carry over. A caller's own
    `http_async_client` is kept (it may carry proxies or certificates) and checked like any
    other model's client.
    """
    import openai

    if model.http_async_client is not None and not model.openai_proxy:
        _refuse_if_used_elsewhere(model)
        return model
    drop = _OPENAI_CLIENT_FIELDS | ({"http_client"} if model.openai_proxy else set())
    fields = {name: getattr(model, name) for name in model.model_fields_set - drop}
    if not model.openai_proxy:
        # Its own client, not langchain-openai's process-wide cached one.
        fields["http_async_client"] = openai.DefaultAsyncHttpxClient()
    return type(model)(**fields)


_BUILTIN_DONE = False


def _register_builtin() -> None:
    global _BUILTIN_DONE
    if _BUILTIN_DONE:
        return
    _BUILTIN_DONE = True
    try:
        from langchain_openai.chat_models.base import BaseChatOpenAI
    except ImportError:  # pragma: no cover - langchain-openai is a dependency
        return
    _BINDERS.setdefault(BaseChatOpenAI, _bind_openai)
