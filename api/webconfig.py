"""How the API meets the web: trusted proxies, allowed origins, body limit, docs and metrics exposure
(`web_config(Settings())`; the defaults are the safe ones)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from pumpwatch.api.inputs import MAX_BODY_BYTES
from pumpwatch.core.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class WebConfig:
    # Forwarded headers (X-Forwarded-For/-Proto, Forwarded) are believed only from these addresses or
    # networks: none by default, so a client can never choose its own address or scheme.
    trusted_proxies: tuple[Network, ...] = ()
    # Origins besides the API's own (scheme://host[:port] of the request) that may send cookie-
    # authenticated changes, e.g. the public name when a proxy rewrites Host.
    origins: frozenset[str] = frozenset()
    max_body_bytes: int = MAX_BODY_BYTES
    docs: bool = True  # /docs (Swagger UI from local files); the spec itself needs a login
    # `/metrics` on the API's port needs `Authorization: Bearer <token>`; None: not served there (the
    # collector's probe port serves it without a token)
    metrics_token: str | None = None
    # the network map's tile server (URL template with {z}, {x}, {y}) and its attribution; None: the
    # schematic without tiles. Its origin is the one other place the console's images may come from.
    map_tiles_url: str | None = None
    map_tiles_attribution: str = ""

    @property
    def tiles_origin(self) -> str | None:
        return normalize_origin(self.map_tiles_url) if self.map_tiles_url else None


def parse_tiles_url(value: str | None) -> str | None:
    """A tile URL template: http(s), with {z}, {x} and {y}; '' or None: no tiles (the schematic)."""
    url = (value or "").strip()
    if not url:
        return None
    missing = [p for p in ("{z}", "{x}", "{y}") if p not in url]
    if normalize_origin(url) is None or missing:
        raise ValueError(
            f"PUMPWATCH_MAP_TILES_URL {url!r} is not a tile URL template: it needs http(s)://host/… with "
            "{z}, {x} and {y} (e.g. https://tiles.city.example/{z}/{x}/{y}.png)"
            + (f"; missing {', '.join(missing)}" if missing else "")
        )
    return url


def parse_proxies(value: str | None) -> tuple[Network, ...]:
    """`"127.0.0.1, 10.0.0.0/8, ::1"` → networks. An entry that is not an address or network is an error
    (uvicorn would silently treat it as a literal that never matches)."""
    out: list[Network] = []
    for raw in (value or "").split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "*":
            raise ValueError("'*' would trust every client's forwarded headers: list the proxies' addresses")
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"{item!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)"
            ) from None
    return tuple(out)


def normalize_origin(value: str) -> str | None:
    """`https://Scada.City.jp:443/x` → `https://scada.city.jp`; None if it is no http(s) origin."""
    try:
        u = urlsplit(value.strip())
        port = u.port
    except ValueError:
        return None
    if u.scheme not in ("http", "https") or not u.hostname:
        return None
    host = u.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if u.scheme == "https" else 80
    return f"{u.scheme}://{host}" + (f":{port}" if port and port != default else "")


def parse_origins(value: str | None) -> frozenset[str]:
    out = set()
    for raw in (value or "").split(","):
        if not raw.strip():
            continue
        o = normalize_origin(raw)
        if o is None:
            raise ValueError(
                f"{raw.strip()!r} is not an origin (scheme://host[:port], e.g. https://scada.city.jp)"
            )
        out.add(o)
    return frozenset(out)


def web_config(settings: Settings) -> WebConfig:
    """The API's web settings (PUMPWATCH_TRUSTED_PROXIES, _API_ORIGINS, _API_DOCS, _METRICS_TOKEN,
    _MAP_TILES_URL, _MAP_TILES_ATTRIBUTION);
    ValueError with the reason if they do not hold together."""
    proxies = parse_proxies(settings.trusted_proxies)
    if settings.api_behind_tls_proxy and not proxies:
        raise ValueError(
            "PUMPWATCH_API_BEHIND_TLS_PROXY=true needs PUMPWATCH_TRUSTED_PROXIES (the proxy's address, "
            "e.g. 127.0.0.1): without it the API cannot tell the proxy's https from a forged header, so "
            "cookies would lose the Secure flag and the console's changes be refused as cross-origin"
        )
    return WebConfig(
        trusted_proxies=proxies,
        origins=parse_origins(settings.api_origins),
        docs=settings.api_docs,
        metrics_token=settings.metrics_token or None,
        map_tiles_url=parse_tiles_url(settings.map_tiles_url),
        map_tiles_attribution=settings.map_tiles_attribution,
    )
