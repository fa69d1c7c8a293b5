"""Signed, expiring, single-use one-click ack links: `{public_url}/api/v1/notify/ack/{token}`.

The token is `base64url(json payload) . base64url(HMAC-SHA256(secret_key, payload))`; the payload names
the message (its alarms come from `notification_alarm`), the person it went to, that person's tenant and
the expiry. The signature is the link's authentication, so it is compared in constant time, and an expired,
altered or out-of-range token is refused (a `TokenError`, never an exception from deep inside). What the
token names must also match the stored message (person, tenant), and a message's link acknowledges once
(`alarms.notify.service.ack_by_token`). The secret is never the public default outside `pumpwatch demo`
(pumpwatch.core.settings), so nobody else can sign one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_TOKEN = 2048  # characters; a real one is about 150
MAX_ID = 2**63 - 1  # what the database holds
MAX_EXPIRY = 253402300799  # 9999-12-31T23:59:59Z: what a datetime holds


class TokenError(Exception):
    pass


@dataclass(frozen=True)
class AckToken:
    notification_id: int
    person: str
    tenant: str | None  # None: a link made before tenants were named in it (it expires within a day)
    expires_at: datetime


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _sig(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), b"pumpwatch-ack:" + payload, hashlib.sha256).digest()


def sign(
    secret: str, notification_id: int, person: str, expires_at: datetime, tenant: str | None = None
) -> str:
    body: dict[str, object] = {"n": notification_id, "p": person, "e": int(expires_at.timestamp())}
    if tenant is not None:
        body["t"] = tenant
    payload = json.dumps(body, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_sig(secret, payload))}"


def _int(v: object, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError("out of range")
    return v


def verify(secret: str, token: str, now: datetime) -> AckToken:
    if len(token) > MAX_TOKEN:
        raise TokenError("this link is malformed")
    try:
        p64, s64 = token.split(".")
        payload, sig = _unb64(p64), _unb64(s64)
    except (ValueError, TypeError, binascii.Error):
        raise TokenError("this link is malformed") from None
    if not hmac.compare_digest(sig, _sig(secret, payload)):
        raise TokenError("this link is not valid (altered, or signed with another key)")
    try:
        d = json.loads(payload)
        person, tenant = d["p"], d.get("t")
        if not isinstance(person, str) or not (tenant is None or isinstance(tenant, str)):
            raise ValueError("not text")
        expires = datetime.fromtimestamp(_int(d["e"], 0, MAX_EXPIRY), UTC)
        t = AckToken(_int(d["n"], 1, MAX_ID), person, tenant, expires)
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        raise TokenError("this link is malformed") from None
    if now >= t.expires_at:
        raise TokenError(f"this link expired at {t.expires_at.isoformat()}")
    return t
