"""Signing an event per the Standard Webhooks specification, with its maintained library (pure).

Secrets are in the specification's `whsec_<base64>` form. During a rotation's overlap every current secret signs:
`webhook-signature` carries one `v1,<signature>` per secret, space-separated, and a receiver holding either
verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from tasks.errors import WebhookConfigError

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64  # the specification: between 24 and 64 bytes


def parse_secret(text: str) -> str:
    """A secret as an operator wrote it (a file's content): `whsec_` and the base64 of 24 to 64 bytes."""
    secret = text.strip()
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookConfigError("a webhook secret must be in the whsec_<base64> form (Standard Webhooks)")
    try:
        raw = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookConfigError("a webhook secret's part after whsec_ must be base64") from None
    if not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
        raise WebhookConfigError(f"a webhook secret must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return secret


def new_secret() -> str:
    """A fresh secret of 32 random bytes, in the whsec_ form."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def fingerprint(secret: str) -> str:
    """A short name for a secret that reveals nothing of it (what `webhooks show` prints)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def headers(secrets: Sequence[str], msg_id: str, sent: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt: its id, its timestamp, and one signature per secret."""
    if not secrets:
        raise WebhookConfigError("an endpoint with no secret cannot sign")
    sent = sent.astimezone(UTC)
    signatures = " ".join(Webhook(secret).sign(msg_id, sent, body) for secret in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(sent.timestamp())), "webhook-signature": signatures}
