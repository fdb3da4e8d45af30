"""Who may talk to the dashboard, and what every answer carries.

Rules (DESIGN.md: "answer a request from outside loopback to the dashboard without its
token" is something nothing may do):
- The rule is about the bind address. Bound to a loopback address (127.0.0.0/8, ::1,
  `localhost`), no token is needed; bound anywhere else (0.0.0.0, a LAN address, a name
  that resolves beyond loopback) the dashboard refuses to start without one (exit 2). With
  a token, EVERY request needs it, wherever it comes from: `Authorization: Bearer TOKEN`
  for the API, or the session cookie that the login form sets for pages.
- The session cookie is `nonce.HMAC(token, nonce)`: HttpOnly, SameSite=Strict; the token
  itself never goes into a cookie, a page or an answer.
- Unsafe methods (POST) need proof they come from our own page: the Bearer token (a
  browser never adds it on its own), or the double-submit pair (the `enduro_csrf` cookie
  echoed in the `X-CSRF-Token` header or a `csrf` form field, which a cross-site page can
  neither read nor set); an `Origin` header, when sent, must be our own.
- Without a token, the Host header must name a loopback host or the bind host: a page on
  another site cannot reach the dashboard through DNS rebinding.
- Every answer carries a Content-Security-Policy that allows only our own scripts and
  styles (no inline script, no CDN), plus nosniff, no framing and no referrer to other sites.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from enduro.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_COOKIE = "enduro_session"
CSRF_COOKIE = "enduro_csrf"
CSRF_HEADER = "x-csrf-token"
MIN_TOKEN_CHARS = 16
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on our own
    # form posts, which the CSRF check must then refuse.
    (b"referrer-policy", b"same-origin"),
]
# Reachable without a token even when one is set: the login form and the static assets
# (which hold no data).
PUBLIC_PREFIXES = ("/login", "/static/")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def is_loopback(host: str) -> bool:
    """True when every address `host` binds to is a loopback address."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as exc:
        raise ConfigError(f"cannot resolve --host {host!r}: {exc}") from exc
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


@dataclass(frozen=True)
class Access:
    """The dashboard's access rules, fixed at start."""

    host: str
    token: str | None = None

    @classmethod
    def check(cls, host: str, token: str | None) -> Access:
        """The checked settings for binding `host` with `token`.

        Raises ConfigError (exit 2) for a non-loopback bind without a token, or a token too short to
        resist guessing.
        """
        if token is not None and len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(
                f"the dashboard token has {len(token)} characters; use at least "
                f"{MIN_TOKEN_CHARS} (`--token` alone generates one)"
            )
        if token is None and not is_loopback(host):
            raise ConfigError(
                f"--host {host} is not a loopback address: the dashboard would answer anyone "
                "who can reach it. Set a token (ENDURO_DASHBOARD_TOKEN, --token TOKEN, or "
                "--token alone to generate one) or bind 127.0.0.1"
            )
        return cls(host=host, token=token)

    def session_value(self) -> str:
        """A new session cookie value: a random nonce and its HMAC under the token."""
        assert self.token is not None
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._mac(nonce)}"

    def valid_session(self, value: str | None) -> bool:
        """Whether a session cookie was issued under this token (False without a token)."""
        if self.token is None or not value or "." not in value:
            return False
        nonce, _, mac = value.partition(".")
        return hmac.compare_digest(mac, self._mac(nonce))

    def valid_token(self, given: str | None) -> bool:
        """Whether `given` is the token, compared in constant time (False without a token)."""
        return (
            self.token is not None
            and given is not None
            and (hmac.compare_digest(given.encode(), self.token.encode()))
        )

    def bearer(self, request: Request) -> bool:
        """Whether the request carries `Authorization: Bearer <token>` with the right token."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.valid_token(value.strip())

    def _mac(self, nonce: str) -> str:
        assert self.token is not None
        message = f"session:{nonce}".encode()
        return hmac.new(self.token.encode(), message, hashlib.sha256).hexdigest()

    def host_allowed(self, request: Request) -> bool:
        """Whether the Host header names a loopback name or the bound host (DNS rebinding guard)."""
        name = (request.url.hostname or "").lower()
        return name in LOOPBACK_NAMES or name == self.host.lower()


def csrf_ok(request: Request, form_value: str | None = None) -> bool:
    """The double-submit CSRF check.

    The cookie must equal the header (or form field), and an Origin header, if any, must be this
    server's own.
    """
    cookie = request.cookies.get(CSRF_COOKIE)
    given = form_value if form_value is not None else request.headers.get(CSRF_HEADER)
    if not cookie or not given or not hmac.compare_digest(cookie.encode(), given.encode()):
        return False
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin is None or origin == own


def new_csrf() -> str:
    """A fresh CSRF token for the double-submit cookie (128 random bits, hex)."""
    return secrets.token_hex(16)


class Guard:
    """ASGI middleware guarding every request.

    Security headers on every answer, the Host check, the token check and the CSRF check of unsafe
    API methods (the login form checks its own).
    """

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check one ASGI request; pass it on, or answer 400, 401, 403 or a login redirect."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        request = Request(scope)
        refusal = self.refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def refusal(self, request: Request) -> Response | None:
        """The answer that refuses `request`, or None to let it through."""
        access, path = self.access, request.url.path
        if access.token is None and not access.host_allowed(request):
            return JSONResponse(_error("bad_host", "unexpected Host header"), status_code=400)
        by_bearer = access.bearer(request)
        if (
            access.token is not None
            and not path.startswith(PUBLIC_PREFIXES)
            and not by_bearer
            and not access.valid_session(request.cookies.get(SESSION_COOKIE))
        ):
            if path.startswith("/api/") or path == "/openapi.json":
                return JSONResponse(
                    _error("unauthorized", "send Authorization: Bearer TOKEN"),
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return RedirectResponse(f"/login?next={quote(path)}", status_code=303)
        unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
        if unsafe and path.startswith("/api/") and not by_bearer and not csrf_ok(request):
            return JSONResponse(
                _error(
                    "csrf",
                    "POST needs Authorization: Bearer TOKEN, or the enduro_csrf cookie "
                    "echoed in an X-CSRF-Token header",
                ),
                status_code=403,
            )
        return None


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
