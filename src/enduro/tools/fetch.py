"""The fetch_url tool: read a web page as text without letting the model reach internal hosts."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
from bs4 import BeautifulSoup
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field

MAX_REDIRECTS = 5
USER_AGENT = "enduro-fetch/0.1"
_REDIRECT_CODES = {301, 302, 303, 307, 308}
_ALLOWED_TYPES = {"application/json", "application/xml", "application/xhtml+xml"}
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_BREAK = "\u2029"
_BLOCK_TAGS = [
    *("p", "div", "br", "hr", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr", "th", "td"),
    *("h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "section", "article"),
    *("header", "footer", "nav", "aside", "main", "figure", "figcaption", "form"),
]

Resolver = Callable[[str, int], Awaitable[list[str]]]


class FetchRefused(ValueError):
    """The fetch policy forbids this URL or address."""


def check_address(ip: str, allow_private: bool) -> None:
    """Refuse addresses that are not on the public internet, unless allow_private."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError as exc:
        raise FetchRefused(f"{ip!r} is not an IP address.") from exc
    if allow_private:
        return
    # An IPv6 socket given ::ffff:a.b.c.d talks to a.b.c.d, so judge the IPv4 address.
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    reason = _non_public_reason(addr)
    if reason:
        raise FetchRefused(
            f"Refused to connect to {ip}: it is a {reason} address. Only public internet "
            "addresses may be fetched."
        )


def _non_public_reason(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    checks = [
        ("loopback", addr.is_loopback),
        ("link-local", addr.is_link_local),
        ("unspecified", addr.is_unspecified),
        ("multicast", addr.is_multicast),
        ("reserved", addr.is_reserved),
        ("private", addr.is_private),
        # Catches ranges such as carrier-grade NAT (100.64.0.0/10) that are neither
        # "private" nor routable on the internet.
        ("non-global", not addr.is_global),
    ]
    return next((name for name, hit in checks if hit), None)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class _FetchArgs(BaseModel):
    url: str = Field(description="Absolute http:// or https:// URL to fetch.")


@dataclass(frozen=True)
class _Policy:
    allow_private: bool
    max_bytes: int
    timeout: float
    max_chars: int
    resolve: Resolver


def make_fetch_tool(
    *,
    allow_private: bool = False,
    max_bytes: int = 2_000_000,
    timeout: float = 20.0,
    max_chars: int = 20_000,
    resolver: Resolver | None = None,
) -> BaseTool:
    """Build the async-only ``fetch_url`` tool.

    ``resolver`` maps (host, port) to IP strings; it defaults to the system resolver
    and exists so tests can simulate DNS answers.
    """
    policy = _Policy(allow_private, max_bytes, timeout, max_chars, resolver or _getaddrinfo)

    async def fetch_url(url: str, config: RunnableConfig) -> str:
        # A run may opt in to private addresses through its context (the tools node puts
        # the flag in the call's config); the tool's own setting is the floor.
        run_allows = bool((config.get("configurable") or {}).get("enduro_allow_private"))
        effective = replace(policy, allow_private=True) if run_allows else policy
        try:
            async with asyncio.timeout(policy.timeout):
                return await _fetch(url, effective)
        except TimeoutError as exc:
            raise ToolException(
                f"Timed out after {policy.timeout}s fetching {url}; the site is slow or "
                "unreachable, try again later or another source."
            ) from exc
        except httpx.TimeoutException as exc:
            raise ToolException(f"Timed out fetching {url} ({type(exc).__name__}).") from exc
        except FetchRefused as exc:
            raise ToolException(str(exc)) from exc
        except httpx.InvalidURL as exc:
            raise ToolException(f"Invalid URL while fetching {url}: {exc}.") from exc
        except httpx.HTTPError as exc:
            raise ToolException(f"Could not fetch {url}: {exc or type(exc).__name__}.") from exc

    return StructuredTool.from_function(
        coroutine=fetch_url,
        name="fetch_url",
        description=(
            "Fetch a public web page or text/JSON/XML document over HTTP(S) and return it as "
            f"plain text (HTML is converted to readable text; at most {max_chars} characters). "
            "Binary content such as images or PDFs is refused."
        ),
        args_schema=_FetchArgs,
        handle_tool_error=True,
    )


async def _fetch(url: str, policy: _Policy) -> str:
    # Redirects are followed by hand so every hop gets the same address check.
    async with httpx.AsyncClient(
        timeout=policy.timeout,
        follow_redirects=False,
        # A proxy would connect on our behalf and bypass the address check.
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    ) as client:
        current = _parse(url)
        for _ in range(MAX_REDIRECTS + 1):
            request = await _pinned_request(client, current, policy)
            response = await client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECT_CODES and location:
                    current = _parse(str(current.join(location)))
                    continue
                return await _render(current, response, policy)
            finally:
                await response.aclose()
    raise ToolException(
        f"Too many redirects (more than {MAX_REDIRECTS}) starting from {url}; "
        "the site may be redirecting in a loop."
    )


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchRefused(f"Invalid URL {url!r}: {exc}.") from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchRefused(
            f"Refused URL {url!r}: scheme {parsed.scheme!r} is not allowed; use http or https."
        )
    if not parsed.host:
        raise FetchRefused(f"Invalid URL {url!r}: it has no host name.")
    return parsed


async def _pinned_request(
    client: httpx.AsyncClient,
    url: httpx.URL,
    policy: _Policy,
    method: str = "GET",
    **build: Any,
) -> httpx.Request:
    """Check every address of the host, then connect to one of them by IP.

    Connecting to the checked IP, rather than letting httpx resolve the name again,
    stops a DNS server from answering with a public address for the check and a
    private one for the connection.
    """
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = [url.host] if _is_ip(url.host) else await policy.resolve(url.host, port)
    except OSError as exc:
        raise FetchRefused(f"Could not resolve host {url.host!r}: {exc}.") from exc
    if not addresses:
        raise FetchRefused(f"Host {url.host!r} did not resolve to any address.")
    for ip in addresses:
        check_address(ip, policy.allow_private)
    ip = addresses[0].split("%", 1)[0]
    request = client.build_request(method, url.copy_with(host=ip), **build)
    # The server and the TLS certificate must still see the real host name.
    request.headers["Host"] = url.netloc.decode("ascii")
    request.extensions["sni_hostname"] = url.host
    return request


async def _render(url: httpx.URL, response: httpx.Response, policy: _Policy) -> str:
    status = f"{response.status_code} {response.reason_phrase}".strip()
    if not response.is_success:
        raise ToolException(f"{url} returned HTTP {status}; the page could not be fetched.")
    content_type = response.headers.get("content-type", "")
    mime = content_type.split(";", 1)[0].strip().lower()
    if not _is_text(mime):
        raise ToolException(
            f"Refused {url}: content type {mime or '(none)'!r} is not text. Only text/*, "
            "JSON and XML documents can be fetched."
        )
    body, cut = await _read_capped(response, policy.max_bytes)
    charset = response.charset_encoding
    text = _html_to_text(body, charset) if mime in _HTML_TYPES else _decode(body, charset)
    if cut:
        text += f"\n\n[Body truncated: only the first {policy.max_bytes} bytes were downloaded.]"
    out = f"URL: {url}\nStatus: {status}\nContent-Type: {content_type}\n\n{text}"
    if len(out) > policy.max_chars:
        out = (
            f"{out[: policy.max_chars]}\n\n[Truncated: showing the first {policy.max_chars} "
            f"of {len(out)} characters.]"
        )
    return out


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_text(mime: str) -> bool:
    return mime.startswith("text/") or mime in _ALLOWED_TYPES or mime.endswith(("+json", "+xml"))


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    buf = bytearray()
    async for chunk in response.aiter_bytes():
        buf += chunk
        if len(buf) > max_bytes:
            return bytes(buf[:max_bytes]), True
    return bytes(buf), False


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # the server named a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _html_to_text(body: bytes, charset: str | None) -> str:
    # Without a charset in the HTTP header, BeautifulSoup finds <meta charset> itself.
    soup = BeautifulSoup(body, "html.parser", from_encoding=charset)
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = ""
    if soup.title:
        title = _squash(soup.title.get_text())
        soup.title.decompose()  # reported once, as the title line
    # Mark block boundaries with a character HTML whitespace never contains, so source
    # line breaks can be collapsed while paragraphs and list items stay on their own lines.
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before(_BREAK)
        tag.append(_BREAK)
    blocks = (_squash(part) for part in soup.get_text().split(_BREAK))
    text = "\n".join(block for block in blocks if block)
    return f"Title: {title}\n\n{text}" if title else text


def _squash(text: str) -> str:
    return re.sub(r"[ \t\n\r\f\v\xa0]+", " ", text).strip()
