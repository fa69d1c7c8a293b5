"""Security headers on every answer: the console's strict Content-Security-Policy (no inline script or
style, nothing from another origin, never framed), nosniff, Referrer-Policy, and `Cache-Control:
no-store` on API answers (operator data must not stay in a shared or browser cache). HSTS when the
request came over HTTPS (directly, or from a trusted proxy that says so).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def csp(img_origins: tuple[str, ...] = ()) -> str:
    """The policy; `img_origins`: the one kind of outside source allowed, the network map's tile server."""
    img = " ".join(["'self'", "data:", *img_origins])  # Swagger UI's icons are data: URIs in its stylesheet
    return _CSP.replace("img-src 'self' data:", f"img-src {img}")


_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
CSP = _CSP
ALWAYS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin: the ack links' tokens never leave in a Referer, and a same-origin POST still carries
    # its Origin (with no-referrer a browser sends `Origin: null`, which the CSRF check refuses)
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
NO_STORE_PREFIXES = ("/api/", "/openapi.json", "/metrics", "/healthz", "/readyz")
HSTS = "max-age=31536000"


class SecurityHeaders:
    def __init__(self, app: ASGIApp, img_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.always = {**ALWAYS, "Content-Security-Policy": csp(img_origins)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = scope["path"].startswith(NO_STORE_PREFIXES)
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                for name, value in self.always.items():
                    h.setdefault(name, value)
                if no_store:
                    h["Cache-Control"] = "no-store"
                if https:
                    h.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, with_headers)
