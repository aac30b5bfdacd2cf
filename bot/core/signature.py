"""Slack's request signature (SPEC §8): HMAC-SHA256 of `v0:{timestamp}:{raw body}`, within five minutes of now."""

from __future__ import annotations

import hashlib
import hmac
import re

WINDOW_SECONDS = 5 * 60
"""How far a request's timestamp may be from now, either way (Slack's own recommendation)."""

_TIMESTAMP = re.compile(r"[0-9]{1,15}")


def expected_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Slack-Signature` Slack sends for `body` at `timestamp`."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()


def refusal(*, secret: bytes, timestamp: str | None, signature: str | None, body: bytes, now: float) -> str | None:
    """Why a request is not one Slack signed just now (a short reason for the log), or None when it is.

    Works on the raw bytes as received: nothing is decoded or parsed before this says None.
    """
    if not secret:
        return "no signing secret is configured"
    if timestamp is None:
        return "no single X-Slack-Request-Timestamp header"
    if not _TIMESTAMP.fullmatch(timestamp):
        return "X-Slack-Request-Timestamp is not a number of seconds"
    if abs(now - int(timestamp)) > WINDOW_SECONDS:
        return "X-Slack-Request-Timestamp is more than 5 minutes from now"
    if signature is None:
        return "no single X-Slack-Signature header"
    given = signature.encode("utf-8", "backslashreplace")
    if not hmac.compare_digest(expected_signature(secret, timestamp, body).encode("ascii"), given):
        return "X-Slack-Signature does not match the body"
    return None
