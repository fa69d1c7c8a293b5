"""Cross-site request forgery: a change sent with the session cookie must come from the console itself.

A browser attaches the cookie to any request to this host, whichever page sends it, and SameSite=Strict
does not stop pages on another port or a sibling subdomain (same site, other origin). So a cookie-
authenticated change (every method but GET/HEAD/OPTIONS, body or not) needs:

1. the custom header `X-Pumpwatch-CSRF` (any non-empty value; the console's `api.js` sends it). Another
   origin cannot add a custom header without a CORS preflight, which this API never grants; and
2. when the browser says where the request comes from (`Origin`, else `Referer`), that origin must be the
   API's own (the scheme and Host it was reached by, after trusted proxies) or one listed in
   `PUMPWATCH_API_ORIGINS`. `Origin: null` (a sandboxed or privacy-stripped page) is refused.

The login (it sets the cookie) gets check 2 only, so another site cannot sign a browser into an account of
its choosing. Requests with `Authorization: Bearer` and the signed ack links carry their credential in
the request itself, which another site cannot make a browser send: they are exempt.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers

from pumpwatch.api.webconfig import normalize_origin

HEADER = "x-pumpwatch-csrf"


def own_origin(scheme: str, headers: Headers, server: tuple[str, int | None] | None) -> str | None:
    host = headers.get("host")
    if not host and server:
        host = f"{server[0]}:{server[1]}" if server[1] else server[0]
    return normalize_origin(f"{scheme}://{host}") if host else None


def origin_problem(headers: Headers, own: str | None, allowed: Collection[str]) -> str | None:
    """Why the request's stated origin is not ours; None when it is, or when the client states none."""
    stated = headers.get("origin")
    source = "Origin"
    if stated is None and headers.get("referer"):
        stated, source = headers["referer"], "Referer"
    if stated is None:
        return None
    origin = normalize_origin(stated)
    if origin is not None and (origin == own or origin in allowed):
        return None
    shown = (origin or stated)[:100]
    return (
        f"cross-origin request refused: {source} {shown} is not this API's origin ({own}); "
        "if a proxy rewrites Host, list the public origin in PUMPWATCH_API_ORIGINS"
    )


def csrf_problem(
    headers: Headers, own: str | None, allowed: Collection[str], *, cookie_session: bool
) -> str | None:
    if cookie_session and not headers.get(HEADER, "").strip():
        return (
            "a change made with the session cookie needs the X-Pumpwatch-CSRF header "
            "(the console sends it; scripts should use Authorization: Bearer)"
        )
    return origin_problem(headers, own, allowed)
