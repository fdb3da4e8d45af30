"""http_post: send a JSON document to an allowed host, exactly once per tool call.

Invariants:
- Only hosts the run allowed (`--post-host HOST`, the context's `post_hosts`) are reached,
  and with fetch_url's address rules (no private, loopback or link-local address unless
  `--allow-private-urls`; the connection goes to the checked address, so DNS cannot switch
  it). Redirects are not followed: a POST that moved is reported, not re-sent elsewhere.
- The tool is side-effecting with policy `retry`: the tools node journals each call, and
  the request carries `Idempotency-Key: THREAD_ID:TOOL_CALL_ID`, the same on every re-run
  of one call, so a receiver that honours the header applies it once even when a crash
  lands between the POST and its checkpoint.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field

from enduro.hitl.policy import side_effect
from enduro.tools.fetch import USER_AGENT, FetchRefused, _getaddrinfo, _parse, _pinned_request
from enduro.tools.fetch import _Policy as _AddressPolicy

MAX_RESPONSE_CHARS = 4000
TIMEOUT_SECONDS = 30.0


class _PostArgs(BaseModel):
    url: str = Field(description="Absolute http:// or https:// URL on an allowed host.")
    body: dict[str, Any] = Field(description="The JSON object to send.")


def _allowed(url: str, hosts: list[str]) -> httpx.URL:
    parsed = _parse(url)
    if not hosts:
        raise FetchRefused(
            "http_post may not send anywhere in this run: the user allows hosts with "
            "--post-host HOST."
        )
    if parsed.host.lower() not in {h.lower() for h in hosts}:
        raise FetchRefused(
            f"Refused to POST to {parsed.host!r}: not an allowed host (allowed: "
            f"{', '.join(hosts)}). The user allows more with --post-host HOST."
        )
    return parsed


async def _http_post(url: str, body: dict[str, Any], config: RunnableConfig) -> str:
    conf = config.get("configurable") or {}
    key = conf.get("enduro_idempotency_key")
    if not key:
        raise ToolException("http_post needs an idempotency key: run it through enduro's graph.")
    policy = _AddressPolicy(
        allow_private=bool(conf.get("enduro_allow_private")),
        max_bytes=MAX_RESPONSE_CHARS * 4,
        timeout=TIMEOUT_SECONDS,
        max_chars=MAX_RESPONSE_CHARS,
        resolve=_getaddrinfo,
    )
    try:
        target = _allowed(url, list(conf.get("enduro_post_hosts") or []))
        async with (
            asyncio.timeout(TIMEOUT_SECONDS),
            httpx.AsyncClient(
                timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
            ) as client,
        ):
            request = await _pinned_request(
                client,
                target,
                policy,
                "POST",
                content=json.dumps(body).encode(),
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": str(key),
                    "User-Agent": USER_AGENT,
                },
            )
            response = await client.send(request)
    except FetchRefused as exc:
        raise ToolException(str(exc)) from exc
    except (TimeoutError, httpx.HTTPError) as exc:
        raise ToolException(
            f"POST to {url} failed ({type(exc).__name__}: {exc}); it may or may not have arrived."
        ) from exc
    status = f"{response.status_code} {response.reason_phrase}".strip()
    text = response.text[:MAX_RESPONSE_CHARS]
    if not response.is_success:
        raise ToolException(f"POST to {url} returned HTTP {status}: {text}")
    return f"HTTP {status}\n\n{text}"


def make_http_post_tool() -> BaseTool:
    """The http_post tool, declared side-effecting with policy `retry`."""
    tool = StructuredTool.from_function(
        coroutine=_http_post,
        name="http_post",
        description=(
            "POST a JSON object to a URL on a host the user allowed, and return the HTTP "
            "status and the start of the response. Each call is delivered once."
        ),
        args_schema=_PostArgs,
        handle_tool_error=True,
    )
    return side_effect(tool, "retry")
