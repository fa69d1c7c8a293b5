"""Signed, expiring one-click ack links: `{public_url}/api/v1/notify/ack/{token}`.

The token is `base64url(json payload) . base64url(HMAC-SHA256(secret_key, payload))`; the payload names
the message (its alarms come from `notification_alarm`), the person and the expiry. The signature is the
link's authentication, so it is compared in constant time, and an expired or altered token is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime


class TokenError(Exception):
    pass


@dataclass(frozen=True)
class AckToken:
    notification_id: int
    person: str
    expires_at: datetime


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _sig(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), b"pumpwatch-ack:" + payload, hashlib.sha256).digest()


def sign(secret: str, notification_id: int, person: str, expires_at: datetime) -> str:
    payload = json.dumps(
        {"n": notification_id, "p": person, "e": int(expires_at.timestamp())}, separators=(",", ":")
    ).encode()
    return f"{_b64(payload)}.{_b64(_sig(secret, payload))}"


# What a token's fields may hold: a notification row id, a person id, an expiry a datetime can represent.
MAX_ID = 2**31 - 1
MAX_EXPIRY = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp())


def _payload(payload: bytes) -> AckToken:
    """The signed payload as an AckToken; TokenError for anything out of bounds (a validly signed
    `e=10**20` or `n=2**70` must be refused, not reach `fromtimestamp` or the database)."""
    try:
        d = json.loads(payload)
        n, p, e = d["n"], d["p"], d["e"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise TokenError("this link is malformed") from None
    if type(n) is not int or type(e) is not int or not isinstance(p, str):
        raise TokenError("this link is malformed")
    if not 1 <= n <= MAX_ID or not 0 <= e <= MAX_EXPIRY or not 0 < len(p) <= 200:
        raise TokenError("this link is malformed")
    try:
        p.encode("utf-8")
    except UnicodeEncodeError:
        raise TokenError("this link is malformed") from None
    return AckToken(n, p, datetime.fromtimestamp(e, UTC))


def verify(secret: str, token: str, now: datetime) -> AckToken:
    try:
        p64, s64 = token.split(".")
        payload, sig = _unb64(p64), _unb64(s64)
    except (ValueError, TypeError):
        raise TokenError("this link is malformed") from None
    if not hmac.compare_digest(sig, _sig(secret, payload)):
        raise TokenError("this link is not valid (altered, or signed with another key)")
    t = _payload(payload)
    if now >= t.expires_at:
        raise TokenError(f"this link expired at {t.expires_at.isoformat()}")
    return t
