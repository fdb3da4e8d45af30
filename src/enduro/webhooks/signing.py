"""Standard Webhooks headers, signed with the `standardwebhooks` package.

`webhook-id` is the event's id, the same on every retry so receivers can deduplicate;
`webhook-timestamp` is the time of this attempt, so a retry hours later still passes the
receiver's five-minute replay window; `webhook-signature` is `v1,<base64 HMAC-SHA256>` of
`id.timestamp.body`, present whenever a secret is configured.
"""

from __future__ import annotations

from datetime import UTC, datetime

from standardwebhooks import Webhook

from enduro.webhooks.config import secret_bytes

USER_AGENT = "enduro-webhooks/1"


class Signer:
    """Signs deliveries with a Standard Webhooks secret (`whsec_…`).

    Raises:
        ConfigError: the secret is not `whsec_` + base64 of 24 to 64 bytes.
    """

    def __init__(self, secret: str) -> None:
        # Validate with enduro's rules (clear errors) before the library sees the value.
        secret_bytes(secret)
        self._webhook = Webhook(secret)

    def __repr__(self) -> str:
        return "Signer(***)"

    def sign(self, event_id: str, at: datetime, body: str) -> str:
        """The `webhook-signature` header value for one delivery (`v1,<base64 HMAC-SHA256>`)."""
        return str(self._webhook.sign(event_id, at, body))


def delivery_headers(
    event_id: str, body: str, signer: Signer | None, at: datetime | None = None
) -> dict[str, str]:
    """The headers of one delivery.

    JSON content type, user agent, `webhook-id`, `webhook-timestamp` (epoch seconds)
    and, with a signer, `webhook-signature`.
    """
    at = at or datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
    }
    if signer is not None:
        headers["webhook-signature"] = signer.sign(event_id, at, body)
    return headers


def verify(secret: str, body: bytes, headers: dict[str, str]) -> object:
    """The parsed body if the signature is valid and fresh; raises otherwise.

    Any exception means invalid: malformed headers make the library raise other exceptions than its
    own.
    """
    return Webhook(secret).verify(body, headers)
