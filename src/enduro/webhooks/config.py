"""Webhook configuration: endpoints, the signing secret and the delivery knobs.

Everything is validated when a command starts, so a typo in a URL or a secret is an exit
code 2 at once rather than a run that goes silent hours later. The secret is kept out of
`repr`, and what is ever stored or printed is its fingerprint, never the secret itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from enduro._redact import redact
from enduro.errors import ConfigError
from enduro.settings import Settings
from enduro.webhooks.retry import DEFAULT_SCHEDULE

SECRET_PREFIX = "whsec_"
# The Standard Webhooks spec asks for secrets of 24 to 64 random bytes.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64

DEFAULT_HEARTBEAT_SECONDS = 30.0
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_FLUSH_SECONDS = 5.0


@dataclass(frozen=True)
class WebhookConfig:
    """What one process knows about webhooks (flags win over env, env over defaults)."""

    urls: tuple[str, ...] = ()
    """Endpoints this process subscribes the threads it runs to (validated)."""
    secret: str | None = field(default=None, repr=False)
    """`whsec_…` signing secret; None sends unsigned deliveries."""
    heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS
    """`run.heartbeat` after this much silence while a node is running."""
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    """Hard limit on one delivery attempt, connect to last byte."""
    flush_seconds: float = DEFAULT_FLUSH_SECONDS
    """How long a finishing run waits for its last events to be delivered."""
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    """Delays before the 2nd, 3rd, … attempt of one event (jitter is applied on top)."""
    jitter: float = 0.2
    """Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter]."""
    max_age_seconds: float | None = None
    """Retry an event no longer than this after it was written; None: the schedule's sum."""
    poll_seconds: float = 1.0
    """How often the sender looks for events written by other processes."""

    def __post_init__(self) -> None:
        for url in self.urls:
            validate_url(url)
        if self.secret is not None:
            secret_bytes(self.secret)
        for name in ("heartbeat_seconds", "timeout_seconds", "poll_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"webhook {name} must be greater than 0, got {getattr(self, name)}"
                )
        if self.flush_seconds < 0:
            raise ConfigError(f"webhook flush_seconds must be 0 or more, got {self.flush_seconds}")

    @property
    def fingerprint(self) -> str | None:
        """The signing secret's short fingerprint (see `fingerprint`), or None when unsigned."""
        return fingerprint(self.secret) if self.secret else None

    @classmethod
    def from_settings(cls, settings: Settings, **knobs: float | None) -> WebhookConfig:
        """From Settings (flags already merged over env); knobs left None keep defaults."""
        values: dict[str, object] = {k: v for k, v in knobs.items() if v is not None}
        heartbeat = _env_float("ENDURO_WEBHOOK_HEARTBEAT_SECONDS")
        if heartbeat is not None:
            values.setdefault("heartbeat_seconds", heartbeat)
        urls = tuple(u.strip() for u in settings.webhook_urls if u.strip())
        return cls(urls=urls, secret=settings.webhook_secret, **values)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls) -> WebhookConfig:
        """The webhook settings from the environment (`ENDURO_WEBHOOK_*`), defaults elsewhere.

        Raises:
            ConfigError: a URL, the secret or a duration is invalid; the message names it.
        """
        return cls.from_settings(Settings.from_env())


def _env_float(name: str) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number of seconds") from None


def validate_url(url: str) -> str:
    """An absolute http(s) URL with a host, or a ConfigError that names it."""
    shown = redact(url)
    hint = "give an absolute http:// or https:// URL, e.g. https://example.com/hooks/enduro"
    if not url or url != url.strip() or re.search(r"\s", url):
        raise ConfigError(f"webhook URL {shown!r} is empty or contains spaces: {hint}")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError as exc:
        raise ConfigError(f"webhook URL {shown!r} is malformed ({exc}): {hint}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"webhook URL {shown!r} has scheme {parts.scheme or '(none)'!r}: {hint}")
    if not parts.hostname:
        raise ConfigError(f"webhook URL {shown!r} has no host: {hint}")
    if parts.fragment:
        raise ConfigError(f"webhook URL {shown!r} has a #fragment, which is never sent: {hint}")
    del port
    return url


def secret_bytes(secret: str) -> bytes:
    """The key bytes of a `whsec_…` secret, or a ConfigError that says what is wrong."""
    how = "generate one with `enduro webhooks secret`"
    if not secret.startswith(SECRET_PREFIX):
        # Show only the shape: the value is a secret, even when it is a wrong one.
        raise ConfigError(
            f"webhook secret must start with {SECRET_PREFIX!r} (Standard Webhooks format), got "
            f"a value starting with {secret[:3]!r}…: {how}, and give the same value to "
            "--webhook-secret / ENDURO_WEBHOOK_SECRET and to your receiver"
        )
    body = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"webhook secret after {SECRET_PREFIX!r} is not valid base64: {how}"
        ) from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ConfigError(
            f"webhook secret decodes to {len(key)} bytes; the Standard Webhooks spec asks for "
            f"{MIN_SECRET_BYTES} to {MAX_SECRET_BYTES}: {how}"
        )
    return key


def new_secret() -> str:
    """A new signing secret: `whsec_` and 32 random bytes in base64 (Standard Webhooks form)."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def fingerprint(secret: str) -> str:
    """A short, non-reversible id of a secret: safe to store and print.

    It is enough to tell whether two processes sign with the same key. The key is 24+ random bytes,
    so a truncated SHA-256 of it cannot be brute-forced back.
    """
    digest = hashlib.sha256(b"enduro-webhook-secret\0" + secret_bytes(secret)).hexdigest()
    return f"fp_{digest[:16]}"


def endpoint_id(url: str) -> str:
    """Stable id of an endpoint URL (the same URL is the same endpoint in every process)."""
    return "ep_" + hashlib.sha256(url.encode()).hexdigest()[:12]
