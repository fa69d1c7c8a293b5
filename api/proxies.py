"""Forwarded headers, believed only from the configured proxies (`PUMPWATCH_TRUSTED_PROXIES`, none by
default).

From a trusted proxy, uvicorn's `ProxyHeadersMiddleware` (the well-kept piece) sets the client address
from `X-Forwarded-For` (the first untrusted address from the right, so a client cannot prepend its own)
and the scheme from `X-Forwarded-Proto`; an RFC 7239 `Forwarded` header is translated into those two
when the proxy sent no `X-Forwarded-*`. From anyone else they change nothing. Either way the headers are
then removed, so no code further in can read a forged one by mistake. The audit log's source address,
the login throttle, the Secure cookie flag and the CSRF origin check all see the result.

uvicorn must not apply its own proxy handling in front of this (its default trusts 127.0.0.1):
`pumpwatch.app.serve.api_server_config` sets `proxy_headers=False`.
"""

from __future__ import annotations

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from pumpwatch.api.webconfig import Network

FORWARDING = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"})


class TrustedProxies:
    def __init__(self, app: ASGIApp, trusted: tuple[Network, ...] = ()) -> None:
        self.app = app
        self.trusted = trusted
        self._proxied = (
            # (uvicorn types an ASGI app with its own TypedDicts, starlette with MutableMapping: the same at
            # run time, so the one ignore of the kind)
            ProxyHeadersMiddleware(self._strip, trusted_hosts=[str(n) for n in trusted])  # type: ignore[arg-type]
            if trusted
            else None
        )

    def _trusts(self, client: tuple[str, int] | None) -> bool:
        if not client:
            return False
        try:
            ip = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self._proxied is not None and self._trusts(scope.get("client")):
            scope["headers"] = _rfc7239_as_x_forwarded(scope["headers"])
            await self._proxied(scope, receive, send)  # type: ignore[arg-type]  # (as above: ASGI type families)
            return
        await self._strip(scope, receive, send)

    async def _strip(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k not in FORWARDING]
        await self.app(scope, receive, send)


def _rfc7239_as_x_forwarded(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    names = {k for k, _ in headers}
    if b"x-forwarded-for" in names or b"x-forwarded-proto" in names or b"forwarded" not in names:
        return headers
    fors: list[str] = []
    proto: str | None = None
    value = b",".join(v for k, v in headers if k == b"forwarded").decode("latin-1")
    for element in value.split(","):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            key, sep, val = pair.strip().partition("=")
            if sep:
                pairs[key.strip().lower()] = val.strip().strip('"')
        if "for" in pairs:
            fors.append(pairs["for"])
        proto = pairs.get("proto")  # the nearest proxy's (the last element's) alone counts
    extra = []
    if fors:
        extra.append((b"x-forwarded-for", ", ".join(fors).encode("latin-1")))
    if proto:
        extra.append((b"x-forwarded-proto", proto.lower().encode("latin-1")))
    return [*headers, *extra]
